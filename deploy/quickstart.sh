#!/usr/bin/env bash
# tagwatch quickstart: a registry push becoming a commit, through the daemon.
#
#   deploy/quickstart.sh [DEMO_DIR]        (default: ./tagwatch-demo)
#
# 1. installs what the demo needs and is missing (Debian's docker-registry and lighttpd, git, curl);
# 2. builds and installs tagwatch with `cargo install` (release build, progress shown; ~/.cargo/bin);
# 3. starts, in DEMO_DIR, a private registry, a git config repository served over HTTP by
#    `git http-backend`, and `tagwatch daemon` with the registry's push notifications pointed at it;
# 4. pushes a new image tag and shows the commit arriving on the remote, with the measured delay.
# Everything keeps running afterwards: DEMO_DIR/push.sh TAG pushes another tag, DEMO_DIR/stop.sh stops
# it all, `rm -rf DEMO_DIR` removes it. Running the quickstart again stops the old demo and starts over.
#
# TAGWATCH_BINARY=PATH skips the build and uses that binary (the project's test of this script does).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$(realpath -m "${1:-tagwatch-demo}")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now_ms() { date +%s%3N; }

step "1/4 what the demo needs"
packages=(docker-registry lighttpd git curl ca-certificates)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} (apt-get; their own services are not started)"
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
else
  echo "all there: ${packages[*]}"
fi

step "2/4 tagwatch"
if [ -n "${TAGWATCH_BINARY:-}" ]; then
  tagwatch=$(realpath "$TAGWATCH_BINARY")
else
  echo "building and installing the release binary: about 4 to 8 minutes on 2 cores the first time,"
  echo "seconds afterwards (cargo's progress below)"
  cargo install --path . --locked --target-dir "$root/target"
  tagwatch="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/tagwatch"
fi
"$tagwatch" --version

step "3/4 a registry, a git remote over HTTP and the daemon, in $demo"
[ ! -x "$demo/stop.sh" ] || "$demo/stop.sh" >/dev/null 2>&1 || true
rm -rf "$demo"
mkdir -p "$demo"/{registry,git,seed/apps/podinfo,policies,logs}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
registry_port=$(free_port)
git_port=$(free_port)
daemon_port=$(free_port)
hook_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
registry="127.0.0.1:$registry_port"

cat >"$demo/stop.sh" <<EOF
#!/usr/bin/env bash
# Stops the demo's daemon, git server and registry (the files stay; rm -rf $demo removes them).
for name in daemon git registry; do
  pid_file="$demo/logs/\$name.pid"
  [ -f "\$pid_file" ] && kill "\$(cat "\$pid_file")" 2>/dev/null && echo "stopped \$name"
  rm -f "\$pid_file"
done
exit 0
EOF
chmod +x "$demo/stop.sh"
cleanup_on_error() { echo "the quickstart failed; logs in $demo/logs" >&2; "$demo/stop.sh" >/dev/null; }
trap cleanup_on_error ERR

# The registry sends a notification for every push to the daemon's distribution endpoint.
cat >"$demo/registry/config.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $demo/registry/data }, delete: { enabled: true } }
http: { addr: "$registry" }
notifications:
  endpoints:
    - name: tagwatch
      url: http://127.0.0.1:$daemon_port/webhook/distribution
      headers: { Authorization: ["Bearer $hook_token"] }
      timeout: 2s
      threshold: 3
      backoff: 1s
EOF
setsid docker-registry serve "$demo/registry/config.yml" >"$demo/logs/registry.log" 2>&1 </dev/null &
echo $! >"$demo/logs/registry.pid"

# The config repository: a bare repository served by git http-backend (lighttpd CGI), pushes allowed.
git init -q --bare -b main "$demo/git/config.git"
git -C "$demo/git/config.git" config http.receivepack true
cat >"$demo/git/config.git/hooks/post-receive" <<'EOF'
#!/bin/sh
# When each push arrived (the quickstart measures the push-to-commit delay with it).
date +%s%3N >> "$GIT_DIR/../arrivals"
EOF
chmod +x "$demo/git/config.git/hooks/post-receive"
cat >"$demo/git/lighttpd.conf" <<EOF
server.modules = ( "mod_alias", "mod_cgi", "mod_setenv" )
server.bind = "127.0.0.1"
server.port = $git_port
server.document-root = "$demo/git"
server.errorlog = "$demo/logs/git-error.log"
alias.url = ( "/git" => "$(git --exec-path)/git-http-backend" )
\$HTTP["url"] =~ "^/git" {
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "$demo/git", "GIT_HTTP_EXPORT_ALL" => "" )
}
EOF
setsid lighttpd -D -f "$demo/git/lighttpd.conf" >"$demo/logs/git.log" 2>&1 </dev/null &
echo $! >"$demo/logs/git.pid"
remote="http://127.0.0.1:$git_port/git/config.git"

for _ in $(seq 100); do
  curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && curl -fsS "$remote/info/refs?service=git-upload-pack" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "registry      http://$registry (Debian's docker-registry)"
echo "git remote    $remote (git http-backend)"

python3 "$root/deploy/seed-registry.py" "http://$registry" demo/podinfo 6.4.0 >/dev/null
cat >"$demo/seed/apps/podinfo/deployment.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo # the demo app
spec:
  template:
    spec:
      containers:
        - name: podinfo
          image: "$registry/demo/podinfo:6.4.0"   # keep the quotes and this comment
          ports: [{ containerPort: 9898 }]
EOF
git -C "$demo/seed" init -q -b main
git -C "$demo/seed" add -A
git -C "$demo/seed" -c user.name=you -c user.email=you@localhost commit -qm "podinfo 6.4.0"
git -C "$demo/seed" push -q "$remote" main

cat >"$demo/tagwatch.yaml" <<EOF
# The demo's config: one registry, one config repository over HTTP (push mode), the policies in
# policies/, and the daemon: polls every hour, so what you see below is the webhook's doing.
registries:
  - host: $registry
    insecure: true
repositories:
  - name: demo
    url: $remote
    branch: main
    paths: [apps]
    writeBack:
      mode: push
      author: { name: tagwatch, email: tagwatch@localhost }
      message: "chore(images): {summary}"
policies: [policies/]
daemon:
  listen: 127.0.0.1:$daemon_port
  stateDir: state
  interval: 1h
  repositoryInterval: 1h
  webhooks:
    distribution: { tokenEnv: REGISTRY_HOOK_TOKEN }
EOF
cat >"$demo/policies/podinfo.yaml" <<EOF
apiVersion: tagwatch.dev/v1alpha1
kind: TagPolicy
metadata: { name: podinfo }
spec:
  image: $registry/demo/podinfo
  semver: { range: "^6.4", prerelease: false }
EOF
REGISTRY_HOOK_TOKEN="$hook_token" "$tagwatch" --config "$demo/tagwatch.yaml" validate
# The token is the daemon's environment, not its config (the config names the variable).
REGISTRY_HOOK_TOKEN="$hook_token" setsid "$tagwatch" --config "$demo/tagwatch.yaml" -v daemon \
  >"$demo/logs/daemon.log" 2>&1 </dev/null &
echo $! >"$demo/logs/daemon.pid"
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$daemon_port/readyz")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$daemon_port/readyz")" = 200 ]
echo "tagwatch      http://127.0.0.1:$daemon_port (daemon; log: $demo/logs/daemon.log)"
echo "first cycle:  the repository deploys podinfo $(git -C "$demo/git/config.git" show main:apps/podinfo/deployment.yaml | grep -o '6\.[0-9.]*')"
commits=$(git -C "$demo/git/config.git" rev-list --count main)

cat >"$demo/push.sh" <<EOF
#!/usr/bin/env bash
# Pushes demo/podinfo:TAG to the demo registry, as CI would.
set -euo pipefail
python3 "$root/deploy/seed-registry.py" "http://$registry" demo/podinfo "\$1" >/dev/null
echo "pushed $registry/demo/podinfo:\$1"
EOF
chmod +x "$demo/push.sh"

step "4/4 push a new image: $registry/demo/podinfo:6.5.1"
rm -f "$demo/git/arrivals"
"$demo/push.sh" 6.5.1
pushed=$(now_ms)
for _ in $(seq 300); do
  [ -s "$demo/git/arrivals" ] && break
  sleep 0.05
done
if [ ! -s "$demo/git/arrivals" ]; then
  echo "no commit after 15 s; the daemon's log:" >&2
  tail -20 "$demo/logs/daemon.log" >&2
  false
fi
arrived=$(head -1 "$demo/git/arrivals")
echo "the commit reached the remote $((arrived - pushed)) ms after the push finished:"
echo
git -C "$demo/git/config.git" log -1 -p --format='commit %H%nAuthor: %an <%ae>%n%n%B' main
test "$(git -C "$demo/git/config.git" rev-list --count main)" = $((commits + 1))
trap - ERR

cat <<EOF

The demo keeps running in $demo:
  $demo/push.sh 6.6.0                     push another tag (a commit follows)
  git clone $remote                       the config repository
  curl -s http://127.0.0.1:$daemon_port/api/v1/status    what the daemon knows (also: tagwatch --config $demo/tagwatch.yaml status)
  curl -s http://127.0.0.1:$daemon_port/metrics          its metrics
  tail -f $demo/logs/daemon.log           its log
  $demo/stop.sh && rm -rf $demo           stop it and remove it
Next: docs/README.md (configuration, policies, webhooks for your registry, Kubernetes).
EOF
