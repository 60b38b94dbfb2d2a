#!/usr/bin/env bash
# Soak (docs/reliability/load.md): the daemon with IMAGES policies for DURATION seconds under a steady
# trickle of work, checking that nothing leaks and nothing is lost.
#
#   - a Debian `docker-registry` with IMAGES images (bench/repo-0001 … each tagged 1.0.0; the first pushed
#     over the HTTP API, the others copies of its storage directory, as bench/poll.sh seeds), whose
#     `notifications` endpoint is the daemon's /webhook/distribution;
#   - REPOS config repositories (cfg-1 …) on a `git http-backend` behind lighttpd with bcrypt Basic auth,
#     each deploying its share of the images (apps/repo-NNNN.yaml), one TagPolicy per image;
#   - the daemon (interval 5m, repositoryInterval 2m), driven by bench/soak_driver.py: a push every
#     PUSH_EVERY seconds (one in ten a burst of three tags of one image), a human commit every HUMAN_EVERY
#     seconds (a note; every REVERT_EVERY-th a revert of a field tagwatch bumped), and RSS, open fds and
#     threads sampled every SAMPLE_EVERY seconds. At the end: every push accounted for, no human commit
#     lost, every revert held; the figures are printed (first/last/min/max after WARMUP seconds).
#
#   bench/soak.sh                                   # one hour, 1,000 policies
#   DURATION=300 IMAGES=200 bench/soak.sh           # five minutes
#   nice -n 10 bench/soak.sh >soak.txt 2>&1 &       # in the background
#
# Env: WORK (default /tmp/tagwatch-bench-soak), DURATION=3600, IMAGES=1000, REPOS=4, HISTORY=1200 (older
# commits in each config repository before the soak starts), PUSH_EVERY=3,
# HUMAN_EVERY=60, REVERT_EVERY=5, SAMPLE_EVERY=10, WARMUP=120, SETTLE=300, TAGWATCH_BIN (this binary
# instead of building target/release/tagwatch).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

WORK="${WORK:-/tmp/tagwatch-bench-soak}"
DURATION="${DURATION:-3600}"
IMAGES="${IMAGES:-1000}"
REPOS="${REPOS:-4}"
HISTORY="${HISTORY:-1200}"
PUSH_EVERY="${PUSH_EVERY:-3}"
HUMAN_EVERY="${HUMAN_EVERY:-60}"
REVERT_EVERY="${REVERT_EVERY:-5}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}"
WARMUP="${WARMUP:-120}"
SETTLE="${SETTLE:-300}"
HOOK_TOKEN="soak-hook-token-81f2"
GIT_PASSWORD="soak-git-Pa55"
export HOOK_TOKEN GIT_PASSWORD

command -v docker-registry >/dev/null && command -v lighttpd >/dev/null || tests/install-deps.sh

if [ -n "${TAGWATCH_BIN:-}" ]; then
  TAGWATCH="$TAGWATCH_BIN"
else
  cargo build --release --locked --quiet --bin tagwatch
  TAGWATCH="$ROOT/target/release/tagwatch"
fi

rm -rf "$WORK" && mkdir -p "$WORK"
source bench/lib.sh

LISTEN="127.0.0.1:$(free_port)"

# --- the registry -------------------------------------------------------------------------------------
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
  secret: tagwatch-bench-soak
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
PIDS+=($!)
wait_http "http://$REGISTRY/v2/"
python3 bench/soak_driver.py seed "http://$REGISTRY" bench/repo-0001 "$WORK/manifest.json"
repositories="$WORK/registry/docker/registry/v2/repositories/bench"
for i in $(seq 2 "$IMAGES"); do cp -r "$repositories/repo-0001" "$repositories/$(printf 'repo-%04d' "$i")"; done

# --- git over smart HTTP ------------------------------------------------------------------------------
GIT_ROOT="$WORK/git"
start_git_http "$GIT_ROOT" "$GIT_PASSWORD" "$WORK/lighttpd.log"

# --- the config repositories, policies and config -----------------------------------------------------
mkdir -p "$WORK/policies"
for r in $(seq 1 "$REPOS"); do mkdir -p "$WORK/tree/cfg-$r/apps"; done
for i in $(seq 1 "$IMAGES"); do
  name="$(printf 'repo-%04d' "$i")"
  r=$(( (i - 1) % REPOS + 1 ))
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: "%s/bench/%s:1.0.0"\n' \
    "$name" "$REGISTRY" "$name" >"$WORK/tree/cfg-$r/apps/$name.yaml"
  printf -- '---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: %s }\nspec:\n  image: %s/bench/%s\n  semver: { range: "^1" }\n' \
    "$name" "$REGISTRY" "$name"
done >"$WORK/policies/apps.yaml"
{
  printf 'registries:\n  - host: %s\n    insecure: true\nrepositories:\n' "$REGISTRY"
  for r in $(seq 1 "$REPOS"); do
    tree="$WORK/tree/cfg-$r" bare="$GIT_ROOT/repos/cfg-$r.git"
    git init -q --bare -b main "$bare"
    git -C "$tree" init -q -b main
    # HISTORY older commits first (a file of their own), as a config repository in use has: the daemon's
    # history reads are bounded by tagwatch's HISTORY_LIMIT commits, so memory is only steady once a
    # repository has more than that.
    if [ "$HISTORY" -gt 0 ]; then
      for n in $(seq 1 "$HISTORY"); do
        printf 'commit refs/heads/main\ncommitter seed <seed@localhost> %d +0000\ndata <<EOM\nhistory %d\nEOM\nM 644 inline HISTORY\ndata <<EOM\n%d\nEOM\n\n' \
          $((1600000000 + n * 60)) "$n" "$n"
      done | git -C "$tree" fast-import --quiet
      git -C "$tree" reset -q
    fi
    git -C "$tree" add apps
    git -C "$tree" -c user.name=seed -c user.email=seed@localhost commit -q -m seed
    git -C "$tree" push -q "$bare" main
    printf '  - name: cfg-%s\n    url: http://127.0.0.1:%s/git/cfg-%s.git\n    paths: [apps]\n    auth: { username: bot, passwordEnv: GIT_PASSWORD }\n    writeBack: { mode: push, author: { name: tagwatch-bot, email: bot@example.com } }\n' \
      "$r" "$GIT_PORT" "$r"
  done
  printf 'policies: [policies/]\ndaemon:\n  listen: %s\n  stateDir: state\n  interval: 5m\n  repositoryInterval: 2m\n  webhooks:\n    distribution: { tokenEnv: HOOK_TOKEN }\n' "$LISTEN"
} >"$WORK/tagwatch.yaml"

# --- the daemon ---------------------------------------------------------------------------------------
echo "== $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $TAGWATCH, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== soak: $IMAGES policies in $REPOS repositories ($HISTORY older commits each), ${DURATION} s, a push every ${PUSH_EVERY} s, a human commit every ${HUMAN_EVERY} s (every ${REVERT_EVERY}th a revert)"
"$TAGWATCH" --config "$WORK/tagwatch.yaml" --log-format json daemon 2>"$WORK/daemon.log" &
DAEMON_PID=$!
PIDS+=("$DAEMON_PID")
for _ in $(seq 3000); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$LISTEN/readyz")" = 200 ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$WORK/daemon.log" >&2; exit 1; }
  sleep 0.1
done
echo "ready after the first cycle; load average $(cut -d' ' -f1-3 /proc/loadavg)"

cat >"$WORK/settings.json" <<JSON
{"registry": "$REGISTRY", "prefix": "bench/repo", "images": $IMAGES, "repos": $REPOS,
 "manifest": "$WORK/manifest.json", "git_root": "$GIT_ROOT/repos", "work": "$WORK", "pid": $DAEMON_PID,
 "cache": "$WORK/state/git",
 "duration": $DURATION, "push_every": $PUSH_EVERY, "human_every": $HUMAN_EVERY, "revert_every": $REVERT_EVERY,
 "sample_every": $SAMPLE_EVERY, "warmup": $WARMUP, "settle": $SETTLE, "seed": 1}
JSON
status=0
python3 bench/soak_driver.py run "$WORK/settings.json" || status=$?
curl -s "http://$LISTEN/metrics" >"$WORK/metrics.txt"
echo "daemon: $(grep -E '^tagwatch_commits_total' "$WORK/metrics.txt" | awk '{s += $2} END {print s}') commits," \
  "$(grep -E '^tagwatch_webhook_events_total' "$WORK/metrics.txt" | awk '{s += $2} END {print s}') webhook requests," \
  "$(grep -E '^tagwatch_tag_listings_total' "$WORK/metrics.txt" | awk '{s += $2} END {print s}') tag listings;" \
  "warnings/errors logged: $(grep -c '"level":"\(WARN\|ERROR\)"' "$WORK/daemon.log" || true)"
echo "git cache of the daemon: $(find "$WORK/state/git" -name '*.pack' | wc -l) pack files, $(du -sk "$WORK/state/git" | cut -f1) KiB"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); artefacts: $WORK"
exit "$status"
