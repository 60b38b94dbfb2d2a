#!/usr/bin/env bash
# The daemon's figures (issue 9, BENCHMARKS.md "Daemon: push to commit, idle, poll cycle"), in one run:
#
#   push   PUSHES rounds; each pushes a new tag with `skopeo copy` to two Debian `docker-registry`s whose
#          `notifications` endpoints point at (a) the daemon's `/webhook/distribution` and (b) the glue
#          (bench/daemon_bench.py listener: `tagwatch run --once` per event, warm cache clone), one after
#          the other, and times skopeo's exit -> the commit on the remote (a `git http-backend` behind
#          lighttpd with Basic auth; its post-receive hook writes the time). Targets: daemon median
#          < 120 ms, worst < 500 ms, >= 2x faster than the glue.
#   idle   a daemon with IMAGES policies (IMAGES images x TAGS tags on a local registry, interval 1m, one
#          repository deploying every image at its newest tag, deployed flags `--log-format json
#          daemon`): CPU and RSS sampled every 10 s for IDLE_SECONDS. Targets: < 30 MB, < 0.5 %, flat.
#   cycle  CYCLES rounds of one poll cycle of the IMAGES images through the daemon (one distribution
#          envelope naming all of them; first event in -> last listing done, from the daemon's log),
#          each next to wrk's capacity for the same tags/list URLs with the daemon's connections.
#          Target: <= 1.2x the capacity-limited time.
#
#   bench/daemon.sh                               # everything, 10-minute idle window
#   IDLE_SECONDS=3600 PARTS=idle bench/daemon.sh  # the hour
#   PUSHES=10 IDLE_SECONDS=120 CYCLES=2 bench/daemon.sh   # a quick smoke run
#
# Env: WORK (default /tmp/tagwatch-bench-daemon; the seeded 1,000 x 100 registry storage is kept between
# runs), PARTS ("push idle cycle"), PUSHES=100, IMAGES=1000, TAGS=100, IDLE_SECONDS=600, CYCLES=5,
# WRK_SECONDS=3, TAGWATCH_BIN (measure this binary instead of building target/release/tagwatch),
# REGISTRY_BENCH (the seeder binary, instead of building examples/registry_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

WORK="${WORK:-/tmp/tagwatch-bench-daemon}"
PARTS="${PARTS:-push idle cycle}"
PUSHES="${PUSHES:-100}"
IMAGES="${IMAGES:-1000}"
TAGS="${TAGS:-100}"
IDLE_SECONDS="${IDLE_SECONDS:-600}"
CYCLES="${CYCLES:-5}"
WRK_SECONDS="${WRK_SECONDS:-3}"
HOOK_TOKEN="bench-hook-token-3c9a"
GIT_PASSWORD="bench-git-Pa55"
export HOOK_TOKEN GIT_PASSWORD

command -v docker-registry >/dev/null && command -v wrk >/dev/null && command -v skopeo >/dev/null &&
  command -v lighttpd >/dev/null || tests/install-deps.sh

mkdir -p "$WORK"
RESULTS="$WORK/results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
source bench/lib.sh

# --- binaries -----------------------------------------------------------------------------------------
if [ -n "${TAGWATCH_BIN:-}" ]; then
  TAGWATCH="$TAGWATCH_BIN"
else
  cargo build --release --locked --quiet --bin tagwatch
  TAGWATCH="$ROOT/target/release/tagwatch"
fi
# The seeder (examples/registry_bench.rs, built as bench/poll.sh builds it).
if [ -n "${REGISTRY_BENCH:-}" ]; then
  BENCH="$REGISTRY_BENCH"
else
  cargo build --quiet --example registry_bench --config 'profile.dev.package.tagwatch.opt-level=3' \
    --config 'profile.dev.package.tagwatch.debug-assertions=false' \
    --config 'profile.dev.package.tagwatch.overflow-checks=false'
  BENCH="$ROOT/target/debug/examples/registry_bench"
fi

# --- registries ---------------------------------------------------------------------------------------
start_registry() { # NAME DATA_DIR [NOTIFY_URL]: starts it; REGISTRY=host:port
  local name="$1" data="$2" notify="${3:-}" port
  port="$(free_port)"
  mkdir -p "$data"
  {
    cat <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: tagwatch-bench-daemon
CONFIG
    if [ -n "$notify" ]; then
      cat <<CONFIG
notifications:
  endpoints:
    - name: consumer
      url: $notify
      headers:
        Authorization: ["Bearer $HOOK_TOKEN"]
      timeout: 2s
      threshold: 3
      backoff: 200ms
      ignoredmediatypes: [application/octet-stream]
CONFIG
    fi
  } >"$WORK/registry-$name.yml"
  docker-registry serve "$WORK/registry-$name.yml" >"$RESULTS/registry-$name.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/v2/"
  REGISTRY="127.0.0.1:$port"
}

# --- git over smart HTTP: lighttpd + git http-backend, bcrypt Basic auth (as tests/it/support) ---------
GIT_ROOT="$WORK/git"
rm -rf "$GIT_ROOT"
start_git_http "$GIT_ROOT" "$GIT_PASSWORD" "$RESULTS/lighttpd.log"

# A bare repository NAME on the server whose working tree is the directory TREE; a post-receive hook
# appends `WALLCLOCK NEW_COMMIT REF` to $RESULTS/NAME.hook for every ref a push updates.
create_remote() { # NAME TREE
  local bare="$GIT_ROOT/repos/$1.git"
  git init -q --bare -b main "$bare"
  git -C "$2" init -q -b main
  git -C "$2" add -A
  git -C "$2" -c user.name=bench -c user.email=bench@localhost commit -q -m seed
  git -C "$2" push -q "$bare" main
  cat >"$bare/hooks/post-receive" <<HOOK
#!/bin/sh
while read old new ref; do echo "\$(date +%s.%N) \$new \$ref" >>"$RESULTS/$1.hook"; done
HOOK
  chmod +x "$bare/hooks/post-receive"
  : >"$RESULTS/$1.hook"
}

deployment() { # NAME IMAGE
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: "%s"\n' "$1" "$2"
}

# tagwatch.yaml for one repository: NAME REGISTRY POLICIES STATE LISTEN INTERVAL REPOSITORY_INTERVAL
write_config() {
  cat >"$WORK/$1.yaml" <<CONFIG
registries:
  - host: $2
    insecure: true
repositories:
  - name: $1
    url: $GIT_URL/$1.git
    paths: [apps]
    auth: { username: bot, passwordEnv: GIT_PASSWORD }
    writeBack: { mode: push, author: { name: tagwatch-bot, email: bot@example.com } }
policies: [$3/]
daemon:
  listen: $5
  stateDir: $4
  interval: $6
  repositoryInterval: $7
  webhooks:
    distribution: { tokenEnv: HOOK_TOKEN }
CONFIG
}

start_daemon() { # CONFIG_NAME LISTEN LOG [tagwatch flags...]: starts it, waits for /readyz
  local config="$1" listen="$2" log="$3"
  shift 3
  "$TAGWATCH" --config "$WORK/$config.yaml" --log-format json "$@" daemon 2>"$log" &
  DAEMON_PID=$!
  PIDS+=("$DAEMON_PID")
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$listen/readyz")" = 200 ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "the daemon never became ready" >&2
  return 1
}
stop_daemon() {
  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || true
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

# --- push: the daemon and the glue, interleaved --------------------------------------------------------
if [[ " $PARTS " == *" push "* ]]; then
  rm -rf "$WORK/push" && mkdir -p "$WORK/push"
  DAEMON_LISTEN="127.0.0.1:$(free_port)"
  GLUE_PORT="$(free_port)"
  start_registry daemon "$WORK/push/data-daemon" "http://$DAEMON_LISTEN/webhook/distribution"
  REG_DAEMON="$REGISTRY"
  start_registry glue "$WORK/push/data-glue" "http://127.0.0.1:$GLUE_PORT/"
  REG_GLUE="$REGISTRY"
  "$BENCH" seed "http://$REG_DAEMON" bench/app 1 1 1 2>/dev/null
  "$BENCH" seed "http://$REG_GLUE" bench/app 1 1 1 2>/dev/null
  # The image every round pushes under a new tag, kept as an OCI layout (skopeo's source).
  skopeo copy -q --src-tls-verify=false "docker://$REG_DAEMON/bench/app-0001:1.0.0" "oci:$WORK/push/image:base"
  for name in daemon glue; do
    registry="$REG_DAEMON"; [ "$name" = glue ] && registry="$REG_GLUE"
    mkdir -p "$WORK/push/tree-$name/apps" "$WORK/push/policies-$name"
    deployment app "$registry/bench/app-0001:1.0.0" >"$WORK/push/tree-$name/apps/app.yaml"
    create_remote "$name" "$WORK/push/tree-$name"
    printf 'apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: app }\nspec:\n  image: %s/bench/app-0001\n  semver: { range: "^1" }\n' \
      "$registry" >"$WORK/push/policies-$name/app.yaml"
    listen="$DAEMON_LISTEN"; [ "$name" = glue ] && listen="127.0.0.1:$(free_port)"
    write_config "$name" "$registry" "push/policies-$name" "push/state-$name" "$listen" 1h 1h
  done
  # The glue: its cache clone made once (the best case for it: each run fetches, not clones).
  "$TAGWATCH" --config "$WORK/glue.yaml" run --once >/dev/null
  python3 bench/daemon_bench.py listener "$GLUE_PORT" "$HOOK_TOKEN" "$RESULTS/listener.log" -- \
    "$TAGWATCH" --config "$WORK/glue.yaml" run --once &
  PIDS+=($!)
  start_daemon daemon "$DAEMON_LISTEN" "$RESULTS/daemon-push.log" -v
  echo "== push -> commit: $PUSHES rounds (daemon, then glue, each round); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 bench/daemon_bench.py pushes "$PUSHES" "$RESULTS/push.csv" "oci:$WORK/push/image:base" \
    "daemon=$REG_DAEMON/bench/app-0001,$RESULTS/daemon.hook,$GIT_ROOT/repos/daemon.git,apps/app.yaml,daemon:$RESULTS/daemon-push.log" \
    "glue=$REG_GLUE/bench/app-0001,$RESULTS/glue.hook,$GIT_ROOT/repos/glue.git,apps/app.yaml,listener:$RESULTS/listener.log" \
    >"$RESULTS/push.rows"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 bench/daemon_bench.py summary "$RESULTS/push.csv" | tee "$RESULTS/push.summary"
  commits="$(git --git-dir "$GIT_ROOT/repos/daemon.git" rev-list --count main)"
  echo "daemon remote: $commits commits (seed + $((commits - 1)) bumps); glue runs: $(grep -c '^run ' "$RESULTS/listener.log") for $(grep -c '^event ' "$RESULTS/listener.log") events"
  curl -s "http://$DAEMON_LISTEN/metrics" | grep -E '^tagwatch_push_to_commit_seconds_(sum|count)' | tr '\n' ' '
  echo
  stop_daemon
fi

# --- the 1,000 x 100 registry, the policies and the repository for idle and cycle -----------------------
if [[ " $PARTS " == *" idle "* || " $PARTS " == *" cycle "* ]]; then
  LARGE="$WORK/large"
  start_registry large "$LARGE/data"
  REG_LARGE="$REGISTRY"
  marker="$LARGE/seeded-$IMAGES-$TAGS"
  if [ ! -e "$marker" ]; then
    # One repository over the HTTP API, the others as storage-level copies (bench/poll.sh says why).
    "$BENCH" seed "http://$REG_LARGE" bench/repo 1 "$TAGS" 16
    repositories="$LARGE/data/docker/registry/v2/repositories/bench"
    for i in $(seq 2 "$IMAGES"); do cp -r "$repositories/repo-0001" "$repositories/$(printf 'repo-%04d' "$i")"; done
    touch "$marker"
  fi
  NEWEST="1.0.$((TAGS - 1))"
  rm -rf "$LARGE/tree" "$LARGE/policies" && mkdir -p "$LARGE/tree/apps" "$LARGE/policies"
  for i in $(seq -f '%04g' 1 "$IMAGES"); do
    deployment "app-$i" "$REG_LARGE/bench/repo-$i:$NEWEST" >"$LARGE/tree/apps/app-$i.yaml"
    printf -- '---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: app-%s }\nspec:\n  image: %s/bench/repo-%s\n  semver: { range: "^1" }\n' \
      "$i" "$REG_LARGE" "$i"
  done >"$LARGE/policies/apps.yaml"
  create_remote large "$LARGE/tree"
fi

# --- idle ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" idle "* ]]; then
  rm -rf "$LARGE/state-idle"
  LISTEN="127.0.0.1:$(free_port)"
  write_config large "$REG_LARGE" large/policies large/state-idle "$LISTEN" 1m 5m
  echo "== idle: $IMAGES policies, interval 1m, repositoryInterval 5m, ${IDLE_SECONDS} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  start_daemon large "$LISTEN" "$RESULTS/daemon-idle.log"
  python3 bench/daemon_bench.py sample "$DAEMON_PID" "$IDLE_SECONDS" 10 "$RESULTS/idle.csv" | tee "$RESULTS/idle.summary"
  curl -s "http://$LISTEN/metrics" >"$RESULTS/idle.metrics"
  awk '/^tagwatch_tag_listings_total/ { split($1, a, "outcome=\""); split(a[2], b, "\""); n[b[1]] += $2 }
       END { printf "listings during the window:"; for (k in n) printf " %s=%d", k, n[k]; print "" }' "$RESULTS/idle.metrics"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); warnings or errors logged: $(grep -c '"level":"\(WARN\|ERROR\)"' "$RESULTS/daemon-idle.log" || true)"
  stop_daemon
fi

# --- cycle --------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" cycle "* ]]; then
  LISTEN="127.0.0.1:$(free_port)"
  # interval 1h: no poll of the daemon's own falls into a measured cycle (the first polls after the
  # start are spread over the hour).
  write_config large "$REG_LARGE" large/policies large/state-cycle "$LISTEN" 1h 1h
  rm -rf "$LARGE/state-cycle"
  LOG="$RESULTS/daemon-cycle.log"
  # tagwatch's info events (`-v`), no per-listing line: the end of a burst is its one `webhook events
  # settled` line.
  TAGWATCH_LOG="warn,tagwatch=info" start_daemon large "$LISTEN" "$LOG"
  # The same 1,000 paths the daemon lists (written here, so a run with REGISTRY_BENCH=/bin/true over a
  # seeded storage measures them too).
  for i in $(seq -f '%04g' 1 "$IMAGES"); do echo "/v2/bench/repo-$i/tags/list"; done >"$WORK/paths.txt"
  cat >"$WORK/round-robin.lua" <<LUA
local paths = {}
for line in io.lines("$WORK/paths.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "application/json"})
end
LUA
  burst() { python3 bench/daemon_bench.py burst "http://$LISTEN" "$HOOK_TOKEN" "$REG_LARGE" bench/repo "$IMAGES" "$NEWEST" "$LOG"; }
  # Round 0 fills the daemon's tag cache (each listing is new: the repository is re-planned once).
  echo "== cycle: warm-up $(burst)"
  sleep 5
  echo "== cycle: $CYCLES rounds of $IMAGES listings (daemon, then wrk -c8 for ${WRK_SECONDS} s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$RESULTS/cycle.txt"
  for round in $(seq "$CYCLES"); do
    line="$(burst)"
    seconds="${line#seconds=}"; seconds="${seconds%% *}"
    wrk -t2 -c8 -d"${WRK_SECONDS}s" -s "$WORK/round-robin.lua" "http://$REG_LARGE" >"$RESULTS/wrk.txt"
    if grep -q 'Non-2xx' "$RESULTS/wrk.txt"; then cat "$RESULTS/wrk.txt" >&2; exit 1; fi
    rps="$(awk '/Requests\/sec:/ {print $2}' "$RESULTS/wrk.txt")"
    awk -v r="$round" -v s="$seconds" -v rps="$rps" -v n="$IMAGES" -v l="$line" 'BEGIN {
      printf "round %d: daemon %.3f s | wrk %.0f req/s -> %.3f s | ratio %.2f   (%s)\n", r, s, rps, n / rps, s / (n / rps), l
    }' | tee -a "$RESULTS/cycle.txt"
    sleep 2
  done
  awk '{ for (i = 1; i <= NF; i++) { if ($i == "daemon") c[NR] = $(i+1); if ($i == "wrk") w[NR] = $(i+1); if ($i == "ratio") q[NR] = $(i+1) } }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
    END { n = NR; printf "median daemon cycle: %.3f s | median registry capacity: %.0f req/s | median ratio: %.2f (target <= 1.2)\n", median(c, n), median(w, n), median(q, n) }' "$RESULTS/cycle.txt"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  stop_daemon
fi
echo "artefacts: $RESULTS"
