#!/usr/bin/env bash
# Registry poll cycle (BENCHMARKS.md): one full tag listing of REPOS repositories × TAGS tags through
# tagwatch's registry client, next to the registry's own capacity for the same requests (wrk firing the
# same tags/list URLs with the same number of connections). Prints both and their ratio.
#
#   bench/poll.sh                       # 1,000 × 100, 8 connections, 5 rounds (client run, then 3 s of wrk)
#   REPOS=100 TAGS=10 bench/poll.sh     # a quick smoke run
#   SEED=api bench/poll.sh              # seed every repository over the HTTP API (slow: ~100k PUTs)
#
# Seeding: by default the first repository is pushed over the HTTP API and the others are copies of its
# storage directory (distribution's filesystem layout: the tag and revision links are per repository,
# blobs are global), because 100,000 manifest PUTs take tens of minutes on the shared 2-core VM. The
# registry serves both kinds identically: tags/list reads the same directories.
set -euo pipefail
cd "$(dirname "$0")/.."

REPOS="${REPOS:-1000}"
TAGS="${TAGS:-100}"
CONCURRENCY="${CONCURRENCY:-8}"
ROUNDS="${ROUNDS:-5}"
WRK_SECONDS="${WRK_SECONDS:-3}"
SEED="${SEED:-copy}"
PREFIX="bench/repo"
DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/tagwatch-bench-poll}"

command -v docker-registry >/dev/null && command -v wrk >/dev/null || tests/install-deps.sh

mkdir -p "$DIR/data"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HOST="127.0.0.1:$PORT"
URL="http://$HOST"
cat >"$DIR/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $HOST
  secret: tagwatch-bench
CONFIG
docker-registry serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
trap 'kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "$URL/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# Optimized like a release build (our crate too; dependencies already are in the dev profile), without a
# full release build of every dependency.
cargo build --quiet --example registry_bench --config 'profile.dev.package.tagwatch.opt-level=3' \
  --config 'profile.dev.package.tagwatch.debug-assertions=false' \
  --config 'profile.dev.package.tagwatch.overflow-checks=false'
BENCH=target/debug/examples/registry_bench

MARKER="$DIR/seeded-$REPOS-$TAGS-$SEED"
if [ ! -e "$MARKER" ]; then
  rm -rf "$DIR/data" && mkdir -p "$DIR/data"
  if [ "$SEED" = api ]; then
    "$BENCH" seed "$URL" "$PREFIX" "$REPOS" "$TAGS" 16
  else
    "$BENCH" seed "$URL" "$PREFIX" 1 "$TAGS" 16
    repositories="$DIR/data/docker/registry/v2/repositories/bench"
    for i in $(seq 2 "$REPOS"); do cp -r "$repositories/repo-0001" "$repositories/$(printf 'repo-%04d' "$i")"; done
  fi
  touch "$MARKER"
fi

"$BENCH" urls "" "$PREFIX" "$REPOS" >"$DIR/paths.txt"
cat >"$DIR/round-robin.lua" <<LUA
local paths = {}
for line in io.lines("$DIR/paths.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "application/json"})
end
LUA
threads=2; [ "$CONCURRENCY" -lt 2 ] && threads=1

# The machine is shared and its load shifts: each round measures the client and then the registry's
# capacity back to back, and the ratio is taken per round.
expected=$((REPOS * TAGS))
: >"$DIR/rounds.txt"
for round in $(seq "$ROUNDS"); do
  client="$("$BENCH" poll "$HOST" "$PREFIX" "$REPOS" "$CONCURRENCY" 1)"
  case "$client" in *"tags=$expected "*) ;; *) echo "wrong tag count: $client" >&2; exit 1;; esac
  seconds="${client##*seconds=}"
  wrk -t"$threads" -c"$CONCURRENCY" -d"${WRK_SECONDS}s" -s "$DIR/round-robin.lua" "$URL" >"$DIR/wrk.txt"
  if grep -q 'Non-2xx' "$DIR/wrk.txt"; then cat "$DIR/wrk.txt" >&2; echo "wrk saw non-2xx answers" >&2; exit 1; fi
  rps="$(awk '/Requests\/sec:/ {print $2}' "$DIR/wrk.txt")"
  awk -v r="$round" -v s="$seconds" -v rps="$rps" -v n="$REPOS" 'BEGIN {
    printf "round %d: client %.3f s | wrk %.0f req/s -> %.3f s | ratio %.2f\n", r, s, rps, n / rps, s / (n / rps)
  }' | tee -a "$DIR/rounds.txt"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ for (i = 1; i <= NF; i++) { if ($i == "client") c[NR] = $(i+1); if ($i == "wrk") w[NR] = $(i+1); if ($i == "ratio") q[NR] = $(i+1) } }
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
  END { n = NR; printf "\nmedian client: %.3f s | median registry capacity: %.0f req/s | median ratio: %.2f (target <= 1.5)\n", median(c, n), median(w, n), median(q, n) }' "$DIR/rounds.txt"
