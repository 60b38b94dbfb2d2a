#!/usr/bin/env bash
# The test command (README): installs what is missing, then runs every test. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-deps.sh
# Property tests run a bounded number of cases in CI; raise PROPTEST_CASES locally to search harder.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
export GIT_TERMINAL_PROMPT=0
cargo test --all-targets --locked 2>&1
