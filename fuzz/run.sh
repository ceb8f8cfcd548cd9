#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each with cargo-fuzz
# (libFuzzer + AddressSanitizer). Works on a stable toolchain through
# RUSTC_BOOTSTRAP=1. Exits non-zero on the first crash; the crashing input
# is left in fuzz/artifacts/<target>/. New corpus entries go to a scratch
# directory, so the committed seeds in fuzz/corpus/ stay as they are.
#
#   fuzz/run.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=10 fuzz/run.sh form_body json_bodies
set -euo pipefail

cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(refresh_token_decode access_token_verify json_bodies form_body)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "$scratch/$target"
    # First corpus directory receives new inputs; the seeds are read only.
    if ! cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        echo "FUZZ FAILURE in $target; reproducer(s) in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "all fuzz targets ran ${seconds}s without a crash"
