#!/bin/sh
# rootfs.sh BINARY CA_BUNDLE OUT: lays out what the image holds, for both
# Dockerfiles (the builder stage of Dockerfile, and `make image` for
# Dockerfile.prebuilt), so the two final stages copy the same tree:
#   OUT/rootfs/usr/local/bin/opsbot          the static binary, 0755
#   OUT/rootfs/etc/ssl/certs/ca-certificates.crt   for Slack, Mattermost, PostgreSQL TLS
#   OUT/rootfs/etc/passwd, OUT/rootfs/etc/group    nonroot 65532, no shell
#   OUT/rootfs/var/lib/                       so that /var/lib belongs to root
#   OUT/state/                                an empty directory: /var/lib/opsbot, 65532's
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BINARY CA_BUNDLE OUT" >&2; exit 2; }
bin=$1 ca=$2 out=$3
[ -f "$ca" ] || { echo "$0: no CA bundle at $ca (Debian: apt-get install ca-certificates)" >&2; exit 1; }
rm -rf "$out/rootfs" "$out/state"
mkdir -p "$out/rootfs/usr/local/bin" "$out/rootfs/etc/ssl/certs" "$out/rootfs/var/lib" "$out/state"
cp "$bin" "$out/rootfs/usr/local/bin/opsbot"
chmod 0755 "$out/rootfs/usr/local/bin/opsbot"
cp "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:opsbot:/var/lib/opsbot:/sbin/nologin\n' >"$out/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/rootfs/etc/group"
chmod 0644 "$out/rootfs/etc/ssl/certs/ca-certificates.crt" "$out/rootfs/etc/passwd" "$out/rootfs/etc/group"
chmod 0755 "$out/rootfs/var" "$out/rootfs/var/lib" "$out/state"
