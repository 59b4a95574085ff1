#!/usr/bin/env bash
# Builds the unit tests (--lib --bins of coregate and coregate-bench) for aarch64 with Debian's
# cross gcc and runs them under qemu-user.
#
#   packaging/test-aarch64.sh [--install]
#
# --install first installs what is missing (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
# qemu-user via apt-get; the Rust target via rustup). Whatever still cannot be had makes the
# script skip with a message and exit 0, unless COREGATE_REQUIRE_AARCH64=1.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=aarch64-unknown-linux-gnu
gcc=aarch64-linux-gnu-gcc
sysroot=/usr/aarch64-linux-gnu

if [[ ${1:-} == --install ]]; then
  missing=()
  command -v "$gcc" >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
  if ((${#missing[@]})); then
    echo "test-aarch64.sh: apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
      echo "test-aarch64.sh: apt-get failed" >&2
  fi
  rustup target list --installed 2>/dev/null | grep -qx "$triple" ||
    rustup target add "$triple" || echo "test-aarch64.sh: rustup target add failed" >&2
fi

skip() {
  if [[ ${COREGATE_REQUIRE_AARCH64:-0} == 1 ]]; then
    echo "test-aarch64.sh: cannot run: $*" >&2
    exit 1
  fi
  echo "test-aarch64.sh: SKIPPED: $*"
  exit 0
}
command -v "$gcc" >/dev/null || skip "no $gcc (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
[[ -d $sysroot/lib ]] || skip "no aarch64 libc in $sysroot (apt-get install libc6-dev-arm64-cross)"
command -v qemu-aarch64 >/dev/null || skip "no qemu-aarch64 (apt-get install qemu-user)"
rustup target list --installed 2>/dev/null | grep -qx "$triple" || skip "no Rust target $triple (rustup target add $triple)"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export CC_aarch64_unknown_linux_gnu=$gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

echo "==> cargo test --target $triple --lib --bins (under qemu-aarch64)"
cargo test --workspace --target "$triple" --lib --bins
