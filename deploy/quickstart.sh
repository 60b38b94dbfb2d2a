#!/usr/bin/env bash
# tagwatch quickstart: installs what is missing, builds tagwatch, starts a private registry on a free
# loopback port, pushes an example image under a handful of tags, then shows the main job end to end:
#   validate the example config and policy → resolve the policy against the live registry →
#   bump a Kubernetes manifest byte-exactly (`set --dry-run` prints the one-line diff, then `set` writes it).
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

mkdir -p "$work/policies" "$work/repo/apps/podinfo"
cat >"$work/tagwatch.yaml" <<YAML
registries:
  - host: 127.0.0.1:$port
    insecure: true
policies: [policies/]
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
cat >"$work/repo/apps/podinfo/deployment.yaml" <<YAML
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

cd "$work"
echo "== tagwatch validate"
"$tagwatch" validate && echo "config and policies are valid"
echo "== tagwatch resolve podinfo   (^6.4, stable only, against the live registry)"
chosen=$("$tagwatch" resolve podinfo)
echo "$chosen"
echo "== tagwatch set --dry-run"
"$tagwatch" set "127.0.0.1:$port/demo/podinfo=$chosen" repo --dry-run
"$tagwatch" set "127.0.0.1:$port/demo/podinfo=$chosen" repo
echo "== the manifest now"
cat repo/apps/podinfo/deployment.yaml
