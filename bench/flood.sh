#!/usr/bin/env bash
# Webhook flood (docs/reliability/load.md): `wrk` fires a mix of valid and invalid webhook requests at the
# daemon on loopback for DURATION seconds, as fast as CONNECTIONS connections go (the target is 10,000 requests/s;
# Debian's wrk has no fixed-rate mode, so the achieved rate is what the machine gives), while real
# pushes keep landing:
#
#   - a Debian `docker-registry` with TRACKED images (bench/repo-0001 …, tagged 1.0.0) whose
#     `notifications` endpoint is the daemon's /webhook/distribution; a `git http-backend` remote
#     deploying them; the daemon as deployed (`--log-format json daemon`, generic and distribution
#     webhooks with bearer tokens, interval 1h);
#   - wrk with bench/flood_requests.lua: valid generic and distribution events for tracked and untracked
#     images (202), wrong and missing tokens (401), malformed JSON (400), one body in 1,000 over 1 MiB
#     (413); the script counts the answers by status;
#   - during the flood, a `skopeo copy` of a new tag every PUSH_EVERY seconds to a tracked image; each
#     must become a commit on the remote (the time from skopeo's exit to the commit is printed);
#   - RSS of the daemon every 0.5 s, CPU seconds of each process over the flood, /metrics before and
#     after (webhook events by outcome, registry requests, tag listings per image, commits).
#
#   bench/flood.sh                       # 30 s, 64 connections, 2 wrk threads
#   DURATION=10 bench/flood.sh           # a quick run
#
# Env: WORK (default /tmp/tagwatch-bench-flood), DURATION=30, CONNECTIONS=64, THREADS=2, TRACKED=10,
# UNTRACKED=50, PUSH_EVERY=3, TAGWATCH_BIN (this binary instead of building target/release/tagwatch).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

WORK="${WORK:-/tmp/tagwatch-bench-flood}"
DURATION="${DURATION:-30}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
TRACKED="${TRACKED:-10}"
UNTRACKED="${UNTRACKED:-50}"
PUSH_EVERY="${PUSH_EVERY:-3}"
HOOK_TOKEN="flood-hook-token-2b7e"
GIT_PASSWORD="flood-git-Pa55"
export HOOK_TOKEN GIT_PASSWORD

command -v docker-registry >/dev/null && command -v lighttpd >/dev/null && command -v wrk >/dev/null &&
  command -v skopeo >/dev/null || tests/install-deps.sh

if [ -n "${TAGWATCH_BIN:-}" ]; then
  TAGWATCH="$TAGWATCH_BIN"
else
  cargo build --release --locked --quiet --bin tagwatch
  TAGWATCH="$ROOT/target/release/tagwatch"
fi

rm -rf "$WORK" && mkdir -p "$WORK"
source bench/lib.sh
cpu_seconds() { # PID: utime + stime of the process and its threads
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); printf "%.2f\n", (f[12] + f[13]) / hz }' "/proc/$1/stat"
}

LISTEN="127.0.0.1:$(free_port)"
REGISTRY="127.0.0.1:$(free_port)"
cat >"$WORK/registry.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY
  secret: tagwatch-bench-flood
notifications:
  endpoints:
    - name: tagwatch
      url: http://$LISTEN/webhook/distribution
      headers:
        Authorization: ["Bearer $HOOK_TOKEN"]
      timeout: 5s
      threshold: 3
      backoff: 1s
      ignoredmediatypes: [application/octet-stream]
CONFIG
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
PIDS+=("$REGISTRY_PID")
wait_http "http://$REGISTRY/v2/"
python3 bench/soak_driver.py seed "http://$REGISTRY" bench/repo-0001 "$WORK/manifest.json"
repositories="$WORK/registry/docker/registry/v2/repositories/bench"
for i in $(seq 2 "$TRACKED"); do cp -r "$repositories/repo-0001" "$repositories/$(printf 'repo-%04d' "$i")"; done
# skopeo's source for the pushes during the flood: the seeded image as an OCI layout.
skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/bench/repo-0001:1.0.0" "oci:$WORK/image:base"

GIT_ROOT="$WORK/git"
mkdir -p "$WORK/tree/apps" "$WORK/policies"
start_git_http "$GIT_ROOT" "$GIT_PASSWORD" "$WORK/lighttpd.log"

for i in $(seq 1 "$TRACKED"); do
  name="$(printf 'repo-%04d' "$i")"
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: "%s/bench/%s:1.0.0"\n' \
    "$name" "$REGISTRY" "$name" >"$WORK/tree/apps/$name.yaml"
  printf -- '---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: %s }\nspec:\n  image: %s/bench/%s\n  semver: { range: "^1" }\n' \
    "$name" "$REGISTRY" "$name"
done >"$WORK/policies/apps.yaml"
BARE="$GIT_ROOT/repos/flood.git"
git init -q --bare -b main "$BARE"
git -C "$WORK/tree" init -q -b main
git -C "$WORK/tree" add -A
git -C "$WORK/tree" -c user.name=seed -c user.email=seed@localhost commit -q -m seed
git -C "$WORK/tree" push -q "$BARE" main
cat >"$WORK/tagwatch.yaml" <<CONFIG
registries:
  - host: $REGISTRY
    insecure: true
repositories:
  - name: flood
    url: http://127.0.0.1:$GIT_PORT/git/flood.git
    paths: [apps]
    auth: { username: bot, passwordEnv: GIT_PASSWORD }
    writeBack: { mode: push, author: { name: tagwatch-bot, email: bot@example.com } }
policies: [policies/]
daemon:
  listen: $LISTEN
  stateDir: state
  interval: 1h
  repositoryInterval: 1h
  webhooks:
    generic: { tokenEnv: HOOK_TOKEN }
    distribution: { tokenEnv: HOOK_TOKEN }
CONFIG

echo "== $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $TAGWATCH, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$TAGWATCH" --config "$WORK/tagwatch.yaml" --log-format json daemon 2>"$WORK/daemon.log" &
DAEMON_PID=$!
PIDS+=("$DAEMON_PID")
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$LISTEN/readyz")" = 200 ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
  sleep 0.1
done

# --- during the flood: pushes that must land, RSS samples ---------------------------------------------
deployed() { git --git-dir "$BARE" show "main:apps/$1.yaml" 2>/dev/null | sed -n 's/.*:\(1\.0\.[0-9]*\)".*/\1/p'; }
pusher() {
  local n=0 i name tag pushed landed
  while [ ! -e "$WORK/stop" ]; do
    n=$((n + 1)); i=$(( (n - 1) % TRACKED + 1 )); name="$(printf 'repo-%04d' "$i")"; tag="1.0.$n"
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/image:base" "docker://$REGISTRY/bench/$name:$tag"
    pushed="$(date +%s.%N)"
    landed=""
    for _ in $(seq 600); do
      if [ "$(deployed "$name")" = "$tag" ]; then landed="$(date +%s.%N)"; break; fi
      sleep 0.05
    done
    if [ -n "$landed" ]; then
      echo "$name:$tag landed $(awk -v a="$pushed" -v b="$landed" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms after skopeo"
    else
      echo "$name:$tag NOT LANDED within 30 s"
    fi
    sleep "$PUSH_EVERY"
  done >"$WORK/pushes.txt"
}
sampler() {
  while [ ! -e "$WORK/stop" ]; do
    awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$DAEMON_PID/status"
    sleep 0.5
  done >"$WORK/rss.txt"
}

curl -s "http://$LISTEN/metrics" >"$WORK/metrics-before.txt"
before_daemon="$(cpu_seconds "$DAEMON_PID")" before_registry="$(cpu_seconds "$REGISTRY_PID")"
read -r _ user_a nice_a system_a idle_a iowait_a irq_a softirq_a _ </proc/stat
log_before="$(stat -c %s "$WORK/daemon.log")"
sampler & SAMPLER=$!
pusher & PUSHER=$!
FLOOD_HOOK_TOKEN="$HOOK_TOKEN" FLOOD_REGISTRY="$REGISTRY" FLOOD_TRACKED="$TRACKED" FLOOD_UNTRACKED="$UNTRACKED" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency -s bench/flood_requests.lua \
  "http://$LISTEN" >"$WORK/wrk.txt" 2>&1 &
WRK=$!
wrk_cpu=0
while kill -0 "$WRK" 2>/dev/null; do wrk_cpu="$(cpu_seconds "$WRK" 2>/dev/null || echo "$wrk_cpu")"; sleep 0.2; done
wait "$WRK"
read -r _ user_b nice_b system_b idle_b iowait_b irq_b softirq_b _ </proc/stat
after_daemon="$(cpu_seconds "$DAEMON_PID")" after_registry="$(cpu_seconds "$REGISTRY_PID")"
curl -s "http://$LISTEN/metrics" >"$WORK/metrics-after.txt"
log_after="$(stat -c %s "$WORK/daemon.log")"
# The last push started during the flood still has to land.
touch "$WORK/stop"
wait "$PUSHER" "$SAMPLER"

cat "$WORK/wrk.txt"
hz="$(getconf CLK_TCK)"
awk -v d0="$before_daemon" -v d1="$after_daemon" -v r0="$before_registry" -v r1="$after_registry" -v w="$wrk_cpu" \
  -v busy="$(( (user_b + nice_b + system_b + irq_b + softirq_b) - (user_a + nice_a + system_a + irq_a + softirq_a) ))" \
  -v all="$(( (user_b + nice_b + system_b + idle_b + iowait_b + irq_b + softirq_b) - (user_a + nice_a + system_a + idle_a + iowait_a + irq_a + softirq_a) ))" \
  -v hz="$hz" -v s="$DURATION" 'BEGIN {
  printf "CPU over the flood (core-seconds of %d cores x %d s): machine busy %.1f of %.1f; daemon %.1f, wrk %.1f, registry %.1f, everything else %.1f\n",
    all / hz / s, s, busy / hz, all / hz, d1 - d0, w, r1 - r0, busy / hz - (d1 - d0) - w - (r1 - r0)
}'
sort -n "$WORK/rss.txt" | awk '{ v[NR] = $1 } END { printf "daemon RSS during the flood: min %.1f MB, max %.1f MB (%d samples)\n", v[1], v[NR], NR }'
echo "daemon log written during the flood: $(( (log_after - log_before) / 1024 )) KiB"
# /metrics after minus before, per series (a series missing before counts from 0).
metric_delta() { # PATTERN
  awk -v pattern="$1" 'FNR == 1 { file++ } $0 ~ "^" pattern { if (file == 1) was[$1] = $NF; else now[$1] = $NF }
    END { for (series in now) printf "%s %d\n", series, now[series] - was[series] }' \
    "$WORK/metrics-before.txt" "$WORK/metrics-after.txt" | sort
}
metric_total() { metric_delta "$1" | awk '{ s += $2 } END { printf "%d", s }'; }
echo "webhook requests counted by the daemon during the flood (tagwatch_webhook_events_total):"
metric_delta tagwatch_webhook_events_total | sed -E 's/.*endpoint="([a-z]+)",outcome="([a-z-]+)"\} /  \1 \2 /'
echo "registry requests during the flood: $(metric_total tagwatch_registry_requests_total); tag listings: $(metric_total tagwatch_tag_listings_total); commits: $(metric_total tagwatch_commits_total)"
echo "tag listings per tracked image during the flood (tagwatch_tag_listings_total):"
metric_delta tagwatch_tag_listings_total | sed -E 's/.*image="[^"]*\/(bench\/[a-z0-9-]+)".* ([0-9]+)$/\1 \2/' |
  awk '{ n[$1] += $2 } END { for (i in n) printf "  %s %d\n", i, n[i] }' | sort
echo "pushes during the flood:"
sed 's/^/  /' "$WORK/pushes.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); artefacts: $WORK"
if grep -q 'NOT LANDED' "$WORK/pushes.txt"; then exit 1; fi
