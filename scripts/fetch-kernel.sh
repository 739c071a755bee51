#!/bin/bash
# Fetches one of Debian's stock kernels as a package and unpacks it (never
# installs it) into .cache/kernels/FLAVOR:
#   generic  linux-image-*-amd64: the lab host's kernel (has 9p and KVM modules)
#   cloud    linux-image-*-cloud-amd64: a small kernel for guests
# Idempotent: does nothing when the unpacked kernel is already there.
set -euo pipefail

flavor=${1:?usage: fetch-kernel.sh generic|cloud}
case $flavor in
	generic) meta=linux-image-amd64 ;;
	cloud) meta=linux-image-cloud-amd64 ;;
	*) echo "fetch-kernel: unknown flavor '$flavor' (generic or cloud)" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cache=$top/.cache
dest=$cache/kernels/$flavor
if [ -f "$dest/.package" ]; then
	exit 0
fi

# The versioned package the metapackage points at, e.g. linux-image-6.1.0-56-amd64.
find_package() {
	apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(find_package)
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(find_package)
fi
if [ -z "$pkg" ]; then
	echo "fetch-kernel: apt does not know $meta; check /etc/apt/sources.list" >&2
	exit 1
fi

# The package itself is kept in a per-user cache outside the tree too, so a
# fresh clone (every CI run) unpacks it again without downloading it.
# A package is downloaded into a scratch directory and moved in whole, so an
# interrupted download never leaves a truncated one to reuse.
debs=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/nestvm/debs
mkdir -p "$debs"
deb=$(ls -t "$debs/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -n "$deb" ] && ! dpkg-deb --info "$deb" > /dev/null 2>&1; then
	echo "fetch-kernel: $deb is damaged; downloading it again"
	rm -f "$deb"
	deb=
fi
if [ -z "$deb" ]; then
	echo "fetch-kernel: downloading $pkg into $debs"
	part=$(mktemp -d "$debs/.download.XXXXXX")
	(cd "$part" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
	mv "$part"/*.deb "$debs/"
	rmdir "$part"
	deb=$(ls -t "$debs/${pkg}_"*.deb | head -n 1)
fi
echo "fetch-kernel: $pkg -> ${dest#$top/}"
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/kernels.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg -x "$deb" "$tmp"
# The uncompressed vmlinux (an ELF with a PVH entry note) beside the
# bzImage: its payload, at the offset the setup header gives, is LZ4 (cloud)
# or XZ (generic).
vmlinuz=$(ls "$tmp"/boot/vmlinuz-*)
read -r payload_off payload_len < <(python3 - "$vmlinuz" <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb').read(0x250)
setup_sects = f[0x1f1] or 4
off, length = struct.unpack_from('<II', f, 0x248)
print((setup_sects + 1) * 512 + off, length)
PY
)
vmlinux=${vmlinuz/vmlinuz-/vmlinux-}
dd if="$vmlinuz" of="$tmp/payload" bs=64K iflag=skip_bytes,count_bytes skip="$payload_off" count="$payload_len" status=none
case $(od -An -tx1 -N4 "$tmp/payload" | tr -d ' ') in
	02214c18) lz4 -dc "$tmp/payload" > "$vmlinux" 2>/dev/null || true ;;
	fd377a58) xz -dc "$tmp/payload" > "$vmlinux" 2>/dev/null || true ;;
esac
rm -f "$tmp/payload"
if [ "$(od -An -c -N4 "$vmlinux" 2>/dev/null | tr -d ' ')" != "177ELF" ]; then
	echo "fetch-kernel: could not extract vmlinux from $(basename "$vmlinuz")" >&2
	exit 1
fi
echo "$pkg $(basename "$deb")" > "$tmp/.package"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
trap - EXIT
