#!/usr/bin/env bash
# deploy/image/rootfs.sh BINARY DIR — lays out the root filesystem of tagwatch's image in DIR: exactly
# what BINARY needs to run, and nothing else (no shell, no git, no package manager):
#
#   /usr/local/bin/tagwatch                the binary
#   the shared libraries `ldd` names       glibc, libgcc_s, and OpenSSL + zlib for libgit2 (libgit2 and
#   and the dynamic loader                 libssh2 are vendored: linked in statically)
#   /etc/ssl/certs/ca-certificates.crt     Debian's CA bundle (registries, git over HTTPS, forges)
#   /etc/passwd, /etc/group                root and the non-root user tagwatch (65532:65532)
#   /etc/nsswitch.conf                     host names from /etc/hosts, then DNS
#   /etc/tagwatch/                         empty: where the config is mounted
#   /var/lib/tagwatch/                     the state directory, tagwatch's own (mode 0700)
#
# Run as root (the state directory is chowned). build.sh and the Containerfile both use it, so the two
# images hold the same files.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY DIR" >&2
  exit 2
fi
binary=$1
rootfs=$2
readonly uid=65532 gid=65532
readonly ca_bundle=/etc/ssl/certs/ca-certificates.crt

if [ ! -x "$binary" ]; then
  echo "rootfs.sh: $binary is not an executable" >&2
  exit 2
fi
if [ ! -s "$ca_bundle" ]; then
  echo "rootfs.sh: $ca_bundle is missing (apt-get install ca-certificates)" >&2
  exit 2
fi

mkdir -p "$rootfs"
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/tagwatch"

# Every library the dynamic loader resolves, and the loader itself, at the path it was found at (the
# binary asks for the loader by that path; the others are found through the loader's default paths).
# `ldd` lines: `libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)`, `/lib64/ld-linux-x86-64.so.2
# (0x…)`, and `linux-vdso.so.1 (0x…)`, which the kernel provides.
ldd_output=$(ldd "$binary")
if grep -q "not found" <<<"$ldd_output"; then
  echo "rootfs.sh: unresolved libraries:" >&2
  grep "not found" <<<"$ldd_output" >&2
  exit 1
fi
while read -r library; do
  install -D -m 0755 "$(readlink -f "$library")" "$rootfs$library"
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_output" | sort -u)

install -D -m 0644 "$ca_bundle" "$rootfs$ca_bundle"

install -d -m 0755 "$rootfs/etc"
cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
tagwatch:x:$uid:$gid:tagwatch:/var/lib/tagwatch:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
tagwatch:x:$gid:
EOF
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"

install -d -m 0755 "$rootfs/etc/tagwatch"
install -d -m 0700 -o "$uid" -g "$gid" "$rootfs/var/lib/tagwatch"
