#!/usr/bin/env bash
# The long run recorded in docs/reliability/fuzzing.md: every target (or the ones named) for RUNS
# executions (default 1,000,000), niced, from the committed seed corpus plus what earlier runs found
# (work/<target>/). Prints libFuzzer's final line and stats per target; a target that finds something
# stops there (its input is left in artifacts/<target>/), the others still run, and the script fails at
# the end. Same toolchain notes as ci.sh.
set -euo pipefail
cd "$(dirname "$0")"
runs="${RUNS:-1000000}"
export RUSTC_BOOTSTRAP=1
# A release build of tagwatch asks git for the commit (build.rs), so every commit would rebuild it.
export TAGWATCH_COMMIT="${TAGWATCH_COMMIT:-fuzz}"
cargo fuzz build -s none
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
failed=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    echo "== $target: $runs executions"
    status=0
    nice cargo fuzz run -s none "$target" "work/$target" "corpus/$target" -- \
        -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"work/$target.long.log" 2>&1 || status=$?
    grep -E '^(Done |stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
        "work/$target.long.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "work/$target.long.log" >&2
        echo "fuzz/long.sh: $target failed; the input is in fuzz/artifacts/$target/" >&2
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/long.sh: findings in: ${failed[*]}" >&2
    exit 1
fi
