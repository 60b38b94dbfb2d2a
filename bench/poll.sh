#!/usr/bin/env bash
# Registry poll cycle (SPEC §10): one full tag listing of REPOS repositories × TAGS tags through
# tagwatch's registry client, next to the registry's own capacity for the same requests (wrk firing the
# same tags/list URLs with the same number of connections). Prints both and their ratio.
#
#   bench/poll.sh                       # 1,000 × 100, 8 connections, 5 client runs, 10 s of wrk
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
RUNS="${RUNS:-5}"
WRK_SECONDS="${WRK_SECONDS:-10}"
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

cargo build --quiet --example registry_bench
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

echo "== tagwatch registry client: $REPOS × $TAGS, max_concurrency=$CONCURRENCY, $RUNS runs"
"$BENCH" poll "$HOST" "$PREFIX" "$REPOS" "$CONCURRENCY" "$RUNS" | tee "$DIR/client.txt"
expected=$((REPOS * TAGS))
if grep -v "tags=$expected " "$DIR/client.txt"; then echo "a run listed the wrong number of tags" >&2; exit 1; fi
client_median="$(sed -n 's/.*seconds=//p' "$DIR/client.txt" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')"

echo "== registry capacity: wrk, $CONCURRENCY connections, ${WRK_SECONDS}s over the same $REPOS URLs"
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
wrk -t"$threads" -c"$CONCURRENCY" -d"${WRK_SECONDS}s" -s "$DIR/round-robin.lua" "$URL" | tee "$DIR/wrk.txt"
rps="$(awk '/Requests\/sec:/ {print $2}' "$DIR/wrk.txt")"
if grep -q 'Non-2xx' "$DIR/wrk.txt"; then echo "wrk saw non-2xx answers" >&2; exit 1; fi

awk -v repos="$REPOS" -v rps="$rps" -v client="$client_median" 'BEGIN {
  capacity = repos / rps
  printf "\nclient median: %.3f s (%.0f listings/s)\n", client, repos / client
  printf "registry capacity: %.0f req/s -> %.3f s for %d listings\n", rps, capacity, repos
  printf "ratio client / capacity: %.2f (target <= 1.5)\n", client / capacity
}'
