#!/usr/bin/env bash
# deploy/image/build.sh REF — builds tagwatch's container image from the release binary with Debian's
# buildah and pushes it to REF (docs/deploy.md).
#
#   REF   registry/name:tag. Pushed over verified HTTPS; plain HTTP only when the registry is on
#         loopback (localhost, 127.0.0.0/8, [::1]). A containers-transports destination is used as
#         given: oci-archive:FILE, oci:DIR:TAG, docker-archive:FILE, dir:DIR, docker://…
#
# The image is `FROM scratch` plus deploy/image/rootfs.sh's files (the binary, the libraries `ldd`
# names, CA certificates, /etc/passwd and /etc/group with the user tagwatch, 65532), runs as that user,
# has the entrypoint `tagwatch` and the command `daemon`, and carries the OCI labels `source`,
# `revision` (git HEAD) and `version` (the crate's).
#
# Environment:
#   TAGWATCH_SOURCE_URL   the org.opencontainers.image.source label (default: the `origin` remote's URL,
#                         credentials removed)
#
# Needs root: buildah runs with `--storage-driver vfs --isolation chroot` on a storage of its own under
# a temporary directory, removed afterwards (nothing is left in /var/lib/containers). Needs cargo, git,
# jq, buildah and ca-certificates (tests/install-deps.sh installs them).
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 REF   (e.g. $0 registry.example.com/platform/tagwatch:0.1.0)" >&2
  exit 2
fi
ref=$1
if [ "$(id -u)" -ne 0 ]; then
  echo "build.sh: run as root (buildah's vfs storage, and the state directory's owner)" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
root=$PWD

# The destination, and whether it may be plain HTTP.
transport_ref=""
case "$ref" in
  docker://*) transport_ref=$ref; registry_ref=${ref#docker://} ;;
  oci:* | oci-archive:* | docker-archive:* | dir:* | containers-storage:* | docker-daemon:*)
    transport_ref=$ref; registry_ref="" ;;
  *) transport_ref="docker://$ref"; registry_ref=$ref ;;
esac
tls_verify=true
if [ -n "$registry_ref" ]; then
  host=${registry_ref%%/*}
  case "$host" in
    localhost | localhost:* | 127.*.*.* | "[::1]" | "[::1]:"*) tls_verify=false ;;
  esac
fi

revision=$(git rev-parse HEAD)
# The commit `tagwatch --version` names is the one the labels name (an inherited TAGWATCH_COMMIT, as
# `cargo test` sets it for its children, must not win).
TAGWATCH_COMMIT=$revision cargo build --release --locked --bin tagwatch
binary="${CARGO_TARGET_DIR:-$root/target}/release/tagwatch"

version=$(cargo metadata --no-deps --format-version 1 --locked |
  jq -r '.packages[] | select(.name == "tagwatch") | .version')
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "build.sh: warning: uncommitted changes; the revision label names HEAD ($revision)" >&2
fi
source_url=${TAGWATCH_SOURCE_URL:-$(git remote get-url origin 2>/dev/null | sed -E 's#^([a-z+]+://)[^/@]*@#\1#' || true)}
if [ -z "$source_url" ]; then
  echo "build.sh: no 'origin' remote to name as the image's source; set TAGWATCH_SOURCE_URL" >&2
  exit 2
fi
# The commit's time as the image's creation time: the same commit gives the same image config.
created=$(git log -1 --format=%ct HEAD)

work=$(mktemp -d)
buildah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot
container=""
cleanup() {
  if [ -n "$container" ]; then
    "${buildah[@]}" umount "$container" >/dev/null 2>&1 || true
    "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true
  fi
  "${buildah[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

deploy/image/rootfs.sh "$binary" "$work/rootfs"

container=$("${buildah[@]}" from scratch)
mountpoint=$("${buildah[@]}" mount "$container")
# `cp -a` keeps owners and modes (the state directory belongs to tagwatch).
cp -a "$work/rootfs/." "$mountpoint/"
"${buildah[@]}" umount "$container" >/dev/null

"${buildah[@]}" config \
  --entrypoint '["tagwatch"]' \
  --cmd '["daemon"]' \
  --user 65532:65532 \
  --workingdir /etc/tagwatch \
  --env PATH=/usr/local/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --env HOME=/var/lib/tagwatch \
  --port 8080/tcp \
  --stop-signal SIGTERM \
  --created-by "deploy/image/build.sh" \
  --label org.opencontainers.image.title=tagwatch \
  --label "org.opencontainers.image.description=Moves image references forward in GitOps repositories" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.source=$source_url" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.version=$version" \
  "$container"

"${buildah[@]}" commit --quiet --format oci --timestamp "$created" --rm "$container" localhost/tagwatch:build >/dev/null
container=""
"${buildah[@]}" push --quiet --tls-verify="$tls_verify" --digestfile "$work/digest" \
  localhost/tagwatch:build "$transport_ref"
echo "pushed $ref@$(cat "$work/digest") (tagwatch $version, commit $revision)"
