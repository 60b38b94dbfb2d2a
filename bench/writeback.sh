#!/usr/bin/env bash
# Write-back (BENCHMARKS.md, docs/design/reconcile.md): `tagwatch run --once` on a config repository with
# TARGETS application folders that all reference one image needing a bump (1.0.0 -> 1.0.1). Prints, per
# round, the wall time of `run --once` and the commits and pushes it made; the first round clones into
# the cache, the others fetch into it (the branch is reset to the seed commit between rounds).
#
#   bench/writeback.sh                  # 500 targets, 5 rounds
#   TARGETS=50 ROUNDS=2 bench/writeback.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS="${TARGETS:-500}"
ROUNDS="${ROUNDS:-5}"
DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/tagwatch-bench-writeback}"

command -v docker-registry >/dev/null || tests/install-deps.sh

rm -rf "$DIR" && mkdir -p "$DIR/data"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HOST="127.0.0.1:$PORT"
URL="http://$HOST"
cat >"$DIR/registry.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
http:
  addr: $HOST
  secret: tagwatch-bench
CONFIG
docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
trap 'kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "$URL/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# Optimized like a release build, without a full release build of every dependency (as bench/poll.sh).
OPT=(--config 'profile.dev.package.tagwatch.opt-level=3'
  --config 'profile.dev.package.tagwatch.debug-assertions=false'
  --config 'profile.dev.package.tagwatch.overflow-checks=false')
cargo build --quiet --bin tagwatch --example registry_bench "${OPT[@]}"
TAGWATCH="$PWD/target/debug/tagwatch"
# One repository `bench/repo-0001` tagged 1.0.0 and 1.0.1.
target/debug/examples/registry_bench seed "$URL" bench/repo 1 2 2 >/dev/null

# The config repository: TARGETS folders, one Deployment each, all on 1.0.0.
git init -q --bare -b main "$DIR/config.git"
git init -q -b main "$DIR/work"
for i in $(seq -f '%04g' 1 "$TARGETS"); do
  mkdir -p "$DIR/work/apps/app-$i"
  cat >"$DIR/work/apps/app-$i/deployment.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-$i
spec:
  template:
    spec:
      containers:
        - name: app
          image: $HOST/bench/repo-0001:1.0.0
YAML
done
git -C "$DIR/work" add -A
git -C "$DIR/work" -c user.name=bench -c user.email=bench@localhost commit -q -m seed
git -C "$DIR/work" push -q "$DIR/config.git" main
SEED="$(git --git-dir "$DIR/config.git" rev-parse main)"

mkdir -p "$DIR/policies"
cat >"$DIR/policies/app.yaml" <<POLICY
apiVersion: tagwatch.dev/v1alpha1
kind: TagPolicy
metadata: { name: app }
spec:
  image: $HOST/bench/repo-0001
  semver: { range: "^1" }
POLICY
cat >"$DIR/tagwatch.yaml" <<CONFIG
registries:
  - host: $HOST
    insecure: true
repositories:
  - name: bench
    url: file://$DIR/config.git
    paths: [apps]
    writeBack: { mode: push }
policies: [policies/]
daemon: { stateDir: state }
CONFIG

echo "targets=$TARGETS"
for round in $(seq "$ROUNDS"); do
  git --git-dir "$DIR/config.git" update-ref refs/heads/main "$SEED"
  start="$(date +%s.%N)"
  "$TAGWATCH" --config "$DIR/tagwatch.yaml" run --once >"$DIR/run.out"
  end="$(date +%s.%N)"
  commits="$(git --git-dir "$DIR/config.git" rev-list --count "$SEED..main")"
  changed="$(git --git-dir "$DIR/config.git" diff --name-only "$SEED" main | wc -l)"
  summary="$(tail -n 1 "$DIR/run.out")"
  printf 'round=%s seconds=%.3f commits=%s files_changed=%s summary="%s"\n' \
    "$round" "$(echo "$end - $start" | bc)" "$commits" "$changed" "$summary"
done
git --git-dir "$DIR/config.git" update-ref refs/heads/main "$SEED"
start="$(date +%s.%N)"
"$TAGWATCH" --config "$DIR/tagwatch.yaml" plan --output json | wc -l | xargs printf 'plan_lines=%s '
end="$(date +%s.%N)"
printf 'plan_seconds=%.3f\n' "$(echo "$end - $start" | bc)"
