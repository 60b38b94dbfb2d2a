#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 20) from the committed seed corpus
# (corpus/<target>/); exits non-zero on the first crash, assertion failure, leak or slow input (over
# 10 s), leaving the input in artifacts/<target>/. What libFuzzer finds meanwhile goes to work/<target>/
# (not committed). Long runs (>= 1,000,000 executions per target) are in docs/reliability/fuzzing.md.
#
# Needs: cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer is built from
# source by libfuzzer-sys). Runs on the stable toolchain: `-s none` (no sanitizer, which would need
# nightly's -Zsanitizer; cargo-fuzz then passes only stable flags). RUSTC_BOOTSTRAP=1 is what the
# figures were measured with.
# A fixed seed (-seed=1): the same corpus and seed give the same inputs in the same order, so a slower
# machine runs a prefix of what this one ran, and CI fails only on a crash it can reproduce.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
# A release build of tagwatch asks git for the commit (build.rs), so every commit would rebuild it.
export TAGWATCH_COMMIT="${TAGWATCH_COMMIT:-fuzz}"
if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz/ci.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
# CI builds without optimization (`--dev`): a cold build of the instrumented crate graph takes about a
# third of the CPU time of the release one (6 against ≈ 18 minutes measured here), which matters more
# for a bounded 10 s run than the executions per second it costs. FUZZ_PROFILE=release for speed.
profile=()
[ "${FUZZ_PROFILE:-dev}" = dev ] && profile=(--dev)
cargo fuzz build -s none "${profile[@]}"
for target in $(cargo fuzz list); do
    mkdir -p "work/$target"
    echo "== $target: ${seconds}s from corpus/$target"
    status=0
    cargo fuzz run -s none "${profile[@]}" "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"work/$target.log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "work/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "work/$target.log" >&2
        echo "fuzz/ci.sh: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
