#!/usr/bin/env bash
# Installs what tagwatch's tests, quickstart and benchmarks need on a fresh Debian machine, and nothing
# that is already there. Idempotent. Needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the real services the tests start (registry, git remotes, sshd) and the tools that feed
# them. `command -v` / dpkg checks keep a second run instant.
# buildah and umoci build and unpack the container image (deploy/image/build.sh, tests/it/ship.rs).
packages=(docker-registry skopeo buildah umoci apache2-utils openssh-server openssh-client lighttpd lighttpd-mod-openssl git curl jq openssl gnupg wrk ca-certificates)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # apt must not start the packages' own services (docker-registry on :5000, sshd on :22, lighttpd on :80):
  # the tests start private instances on free ports.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# node-semver is the oracle for semver policies (resolve must agree with maxSatisfying).
if ! command -v node >/dev/null; then
  echo "node is required for the node-semver oracle (apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -d tests/oracle/node_modules/semver ]; then
  (cd tests/oracle && npm install --silent --no-audit --no-fund >/dev/null)
fi
