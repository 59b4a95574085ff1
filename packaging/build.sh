#!/usr/bin/env bash
# Builds the release binaries and the .deb and .rpm packages.
#
#   packaging/build.sh [--arch x86_64|aarch64|all] [--no-build] [--no-rpm]
#
# x86_64 is built natively; aarch64 is cross-compiled with Debian's cross gcc
# (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross) and the Rust target
# (rustup target add aarch64-unknown-linux-gnu). Without them aarch64 is skipped with a message
# (exit 0), unless --arch aarch64 asked for it alone. Packages land in
# ${CARGO_TARGET_DIR:-target}/packages/. The tools: packaging/install-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=all
build=1
rpm=1
while (($#)); do
  case $1 in
    --arch) arch=${2:?--arch needs x86_64, aarch64 or all} && shift ;;
    --arch=*) arch=${1#--arch=} ;;
    --no-build) build=0 ;;
    --no-rpm) rpm=0 ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build.sh: unknown argument $1" >&2
      exit 2
      ;;
  esac
  shift
done

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=$target_dir/packages
mkdir -p "$out"
host=$(uname -m)

command -v cargo-deb >/dev/null || PATH="$(bash packaging/install-tools.sh):$PATH"

step() { printf '\n==> %s\n' "$*"; }

# build_one ARCH: 0 built, 3 skipped (toolchain missing).
build_one() {
  local a=$1 triple="" strip=strip
  local -a tflag=() variant=()
  if [[ $a != "$host" ]]; then
    triple=$a-unknown-linux-gnu
    tflag=(--target "$triple")
    variant=(--variant cross)
    local gcc=$a-linux-gnu-gcc
    if ! command -v "$gcc" >/dev/null; then
      echo "build.sh: skipping $a: no cross compiler $gcc (apt-get install gcc-${a//_/-}-linux-gnu)" >&2
      return 3
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
      echo "build.sh: skipping $a: no Rust target $triple (rustup target add $triple)" >&2
      return 3
    fi
    local T=${triple^^}
    T=${T//-/_}
    export "CARGO_TARGET_${T}_LINKER=$gcc" "CC_${triple//-/_}=$gcc" "AR_${triple//-/_}=$a-linux-gnu-ar"
    strip=$a-linux-gnu-strip
  fi
  local bindir=$target_dir/${triple:+$triple/}release
  if ((build)); then
    step "$a: cargo build --release ${tflag[*]}"
    cargo build --release "${tflag[@]}"
  fi
  # Both packages take stripped copies from a staging tree laid out like the target directory
  # (cargo-generate-rpm does not strip; cargo-deb would need a per-target strip in
  # .cargo/config for cross builds).
  local stage=$target_dir/pkg-stage
  local sdir=$stage/${triple:+$triple/}release
  mkdir -p "$sdir"
  "$strip" -o "$sdir/coregate" "$bindir/coregate"
  "$strip" -o "$sdir/coregate-bench" "$bindir/coregate-bench"
  step "$a: .deb"
  CARGO_TARGET_DIR=$stage cargo deb --no-build --no-strip "${tflag[@]}" "${variant[@]}" -o "$out/"
  if ((rpm)); then
    step "$a: .rpm"
    # The shared-library requirements, as rpmbuild would list them (cargo-generate-rpm 0.10's
    # own detection finds none); only Cargo.toml's list where rpm's tools are missing.
    local reqs='"procps-ng" = "*", "shadow-utils" = "*"' r
    if [[ -x /usr/lib/rpm/find-requires ]]; then
      while IFS= read -r r; do
        [[ -n $r ]] && reqs+=", \"$r\" = \"*\""
      done < <(printf '%s\n' "$sdir/coregate" "$sdir/coregate-bench" | /usr/lib/rpm/find-requires | sort -u)
    else
      echo "build.sh: /usr/lib/rpm/find-requires missing (apt-get install rpm): the .rpm lists no library requirements" >&2
    fi
    cargo generate-rpm --target-dir "$stage" "${tflag[@]}" -s "requires = { $reqs }" -o "$out/"
  fi
}

case $arch in
  all) archs=(x86_64 aarch64) ;;
  x86_64 | aarch64) archs=("$arch") ;;
  *)
    echo "build.sh: --arch must be x86_64, aarch64 or all" >&2
    exit 2
    ;;
esac
status=0
for a in "${archs[@]}"; do
  set +e
  (
    set -e
    build_one "$a"
  )
  rc=$?
  set -e
  if ((rc == 3)) && [[ $arch == all ]]; then continue; fi
  ((rc == 0)) || status=$rc
done
step "packages in $out"
ls -l "$out"
exit "$status"
