#!/usr/bin/env bash
# tagwatch quickstart: installs what is missing, builds tagwatch, starts a private registry on a free
# loopback port, pushes an example image under a handful of tags, then shows the main job end to end:
#   validate the example config and policy → resolve the policy against the live registry →
#   `set --dry-run` (the one-line, byte-exact diff) → `plan` and `run --once` against a git config repo
#   (a bare repository served over file://): one commit, pushed; a second run changes nothing.
# Everything lives in a temporary directory that is removed (and the registry stopped) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tests/install-deps.sh
cargo build --quiet --bin tagwatch
tagwatch="$root/target/debug/tagwatch"

work=$(mktemp -d)
registry_pid=""
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/data } }
http: { addr: "127.0.0.1:$port" }
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== registry (Debian docker-registry) on 127.0.0.1:$port"

python3 deploy/seed-registry.py "http://127.0.0.1:$port" demo/podinfo \
  6.4.0 6.4.1 6.5.0 6.5.3 6.6.0-rc.1 7.0.0 latest

mkdir -p "$work/policies" "$work/seed/apps/podinfo"
cat >"$work/tagwatch.yaml" <<YAML
registries:
  - host: 127.0.0.1:$port
    insecure: true
repositories:
  - name: demo
    url: file://$work/config.git
    branch: main
    paths: [apps]
    writeBack:
      mode: push
      author: { name: tagwatch, email: tagwatch@localhost }
      message: "chore(images): {summary}"
policies: [policies/]
daemon: { stateDir: state }
YAML
cat >"$work/policies/podinfo.yaml" <<YAML
apiVersion: tagwatch.dev/v1alpha1
kind: TagPolicy
metadata: { name: podinfo }
spec:
  image: 127.0.0.1:$port/demo/podinfo
  semver: { range: "^6.4", prerelease: false }
  exclude: ["*-debug"]
YAML
cat >"$work/seed/apps/podinfo/deployment.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo # the demo app
spec:
  template:
    spec:
      containers:
        - name: podinfo
          image: "127.0.0.1:$port/demo/podinfo:6.4.0"   # keep the quotes and this comment
          ports: [{ containerPort: 9898 }]
YAML
# The config repository: a bare repository with one commit, as a GitOps repo would be.
git init -q --bare -b main "$work/config.git"
git -C "$work/seed" init -q -b main
git -C "$work/seed" add -A
git -C "$work/seed" -c user.name=you -c user.email=you@localhost commit -qm "podinfo 6.4.0"
git -C "$work/seed" push -q "$work/config.git" main

cd "$work"
echo "== tagwatch validate"
"$tagwatch" validate
echo "== tagwatch resolve podinfo   (^6.4, stable only, against the live registry)"
chosen=$("$tagwatch" resolve podinfo)
echo "$chosen"
echo "== tagwatch set --dry-run   (on a local copy)"
"$tagwatch" set "127.0.0.1:$port/demo/podinfo=$chosen" seed --dry-run
echo "== tagwatch plan"
"$tagwatch" plan
echo "== tagwatch run --once"
"$tagwatch" run --once
echo "== the commit tagwatch pushed"
git -C "$work/config.git" log -1 -p --format='%an <%ae>%n%n%B' main
echo "== tagwatch run --once, again (nothing to do)"
"$tagwatch" run --once
test "$(git -C "$work/config.git" rev-list --count main)" = 2
echo "quickstart done: one commit, pushed; the second run changed nothing"
