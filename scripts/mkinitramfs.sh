#!/bin/bash
# Builds a busybox initramfs for test guests:
#   mkinitramfs.sh OUT.cpio INIT_SCRIPT [SOURCE:DEST ...]
# INIT_SCRIPT becomes /init; each SOURCE file is copied to DEST inside.
# /init starts with devtmpfs, proc and sysfs mounted and the console on
# stdio (see the prologue below), so scripts need not repeat that.
set -euo pipefail
out=${1:?usage: mkinitramfs.sh OUT.cpio INIT_SCRIPT [SOURCE:DEST ...]}
init=${2:?usage: mkinitramfs.sh OUT.cpio INIT_SCRIPT [SOURCE:DEST ...]}
shift 2

busybox=/bin/busybox
if ! [ -x $busybox ] || readelf -l $busybox 2>/dev/null | grep -q "program interpreter"; then
	echo "mkinitramfs: a static busybox is needed: apt-get install busybox-static" >&2
	exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,mnt,lib/modules}
cp "$busybox" "$stage/bin/busybox"
{
	cat <<'PROLOGUE'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
PROLOGUE
	cat "$init"
} > "$stage/init"
chmod 755 "$stage/init"
for spec in "$@"; do
	src=${spec%%:*} dest=${spec#*:}
	mkdir -p "$stage/$(dirname "$dest")"
	cp "$src" "$stage/$dest"
done
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out"
