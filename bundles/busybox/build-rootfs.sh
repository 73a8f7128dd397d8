#!/usr/bin/env bash
# Build bundles/busybox/rootfs from Debian's busybox-static: one static binary
# plus a link per applet, so the bundle runs with no network and no image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs="$here/rootfs"
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "build-rootfs: $busybox not found; apt-get install busybox-static" >&2; exit 1; }
[ -d "$rootfs/mnt" ] && [ -x "$rootfs/bin/busybox" ] && cmp -s "$busybox" "$rootfs/bin/busybox" && exit 0

tmp=$(mktemp -d "$here/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var,run,mnt}
# mktemp made it 0700: a container running as a non-root user must reach its files.
chmod 755 "$tmp"
chmod 1777 "$tmp/tmp"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$tmp/etc/group" <<'GR'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
GR
echo "ocirun" > "$tmp/etc/hostname"
rm -rf "$rootfs"
mv "$tmp" "$rootfs"
trap - EXIT
echo "build-rootfs: $rootfs ready ($("$busybox" --list | wc -l) applets)"
