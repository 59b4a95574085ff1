#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 20); CI calls it. Usage: fuzz/smoke.sh [N]
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=...); this lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    seeds=()
    if [ -d "seeds/$target" ]; then
        seeds=("seeds/$target")
    fi
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$secs" -dict=h1.dict
done
