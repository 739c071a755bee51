#!/usr/bin/env bats
# Tier 2, end to end: virtio-blk, virtio-net and virtio-rng under Debian's
# stock cloud kernel and its stock drivers, nestvm running in the lab host.
# One lab host boot runs every case (tests/labhost/virtio-run.sh); each test
# checks one RESULT line.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/virtio.XXXXXX")
	gcc -O2 -static -Wall -Wextra -Werror -o "$RUN_DIR/blkzero" tests/guests/blkzero.c
	scripts/mkinitramfs-modules.sh "$RUN_DIR/initrd.cpio" tests/guests/virtio-init.sh \
		"virtio_pci virtio_blk virtio_net virtio_rng" "$RUN_DIR/blkzero:bin/blkzero"
	make_qcow2_images > "$RUN_DIR/qcow2.log" 2>&1 || { cat "$RUN_DIR/qcow2.log"; return 1; }
	labhost_results 600 tests/labhost/virtio-run.sh
}

# qcow2 images made by QEMU's tools, and what `qemu-img convert -O raw`
# reads from each (NAME MD5 SECTORS in qcow2.sums): a linked clone with
# 4 KiB clusters over a qcow2 overlay over a raw base shorter than both,
# with data and zero clusters at each level; a compressed version-2 image;
# an image with 2 MiB clusters.
make_qcow2_images() (
	set -e
	cd "$RUN_DIR"
	head -c 6291456 /dev/urandom > base.raw
	qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 8M
	qemu-io -c 'write -P 0x5a 1M 192k' -c 'write -z 3M 64k' -c 'write -P 0x77 7M 64k' mid.qcow2
	qemu-img create -q -f qcow2 -o cluster_size=4k -b mid.qcow2 -F qcow2 chain.qcow2 10M
	qemu-io -c 'write -P 0xa5 1036k 12k' -c 'write -z 2M 4k' -c 'write -P 0x33 9M 4k' chain.qcow2
	awk 'BEGIN { for (i = 0; i < 200000; i++) printf "compressible line %08d\n", i }' > comp.raw
	qemu-img convert -c -f raw -O qcow2 -o compat=0.10,cluster_size=4k comp.raw comp.qcow2
	qemu-img convert -f raw -O qcow2 -o cluster_size=2M base.raw big.qcow2
	# linked clones for the guest to write: over a compressed v3 template
	# (64 KiB clusters), and v2 over a raw base
	qemu-img convert -c -f raw -O qcow2 base.raw wbase.qcow2
	head -c 6291456 base.raw > wbase.raw
	qemu-img create -q -f qcow2 -b wbase.qcow2 -F qcow2 wc3.qcow2 12M
	qemu-img create -q -f qcow2 -o compat=0.10 -b wbase.raw -F raw wc2.qcow2 12M
	for name in chain comp big; do
		qemu-img convert -O raw "$name.qcow2" "$name.expected"
		echo "$name $(md5sum < "$name.expected" | cut -c1-32) $(($(stat -c %s "$name.expected") / 512))"
		rm "$name.expected"
	done > qcow2.sums
)

teardown_file() {
	rm -rf "$RUN_DIR"
}

@test "stock virtio_pci drives blk, net and rng through MSI-X; serial and default MAC; SMBIOS identity in /sys/class/dmi/id" {
	local line
	line=$(result info)
	echo "$line"
	[[ $line == "RESULT info status=0 "* ]]
	[[ $line == *"0x1af4 0x1042 driver=virtio-pci"* ]]
	[[ $line == *"0x1af4 0x1041 driver=virtio-pci"* ]]
	[[ $line == *"0x1af4 0x1044 driver=virtio-pci"* ]]
	# one vector per queue plus one for configuration, per device: 2 + 3 + 2
	[[ $line == *"V: msix 7|"* ]]
	[[ $line == *"V: vda size=131072 ro=0 serial=NESTVM-DISK-1|"* ]]
	# locally administered, unicast
	[[ $line =~ "V: mac 02:"[0-9a-f:]{14}"|" ]]
	[[ $line == *"V: rng virtio_rng.0 bytes=4096|"* ]]
	# SMBIOS: the identity given, as Linux shows it in /sys/class/dmi/id
	[[ $line == *"V: dmi uuid=0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0 serial=ds=nocloud;h=hv1;i=lab-hv1 chassis=ds=nocloud;h=hv1;i=lab-hv1 vendor=nestvm product=nestvm VM bios=nestvm|"* ]]
}

@test "qcow2 from qemu-img (a 3-deep chain over raw, compressed v2, 2 MiB clusters) reads as qemu-img reads it" {
	local line name sum sectors dev=(vda vdb vdc) i=0
	line=$(result blk-qcow2)
	echo "$line"
	[[ $line == "RESULT blk-qcow2 status=0 "* ]]
	while read -r name sum sectors; do
		echo "$name: expect ${dev[$i]} $sum $sectors"
		[[ $line == *"V: sum ${dev[$i]} $sum $sectors ro=1|"* ]]
		i=$((i + 1))
	done < "$RUN_DIR/qcow2.sums"
	[ $i -eq 3 ]
}

@test "qcow2 linked clones written by the guest: qemu-img check clean, qemu-img compare equal to raw copies given the same writes" {
	local line
	line=$(result blk-qcow2-write)
	echo "$line"
	[ "$line" = "RESULT blk-qcow2-write status=0 scribbled=2 failed=0 check=0,0 compare=0,0" ]
}

@test "a pattern written and flushed by the guest is in the image; discard punches a hole; the image stays thin" {
	local line
	line=$(result blk-write)
	echo "$line"
	[[ $line == "RESULT blk-write status=0 "* ]]
	[ "$(field "$line" guest)" = "$(field "$line" host)" ]
	[ "$(field "$line" zeroed)" = ok ]
	[ "$(field "$line" hole)" = "$(field "$line" zero)" ]
	# 64 MiB disk, 2 MiB written: a few MiB allocated at most
	[ "$(field "$line" size)" -eq 67108864 ]
	[ "$(field "$line" kib)" -lt 4096 ]
}

@test "a second boot with the disk readonly reads the same bytes and cannot write" {
	local w r
	w=$(result blk-write)
	r=$(result blk-read)
	echo "$w"
	echo "$r"
	[[ $r == "RESULT blk-read status=0 ro=1 "* ]]
	[ "$(field "$r" read)" = "$(field "$w" host)" ]
	[[ $r == *" write refused "* ]]
	[ "$(field "$r" kib)" -lt 4096 ]
}

@test "SIGKILL while the guest writes and flushes: every write it saw complete is in the image" {
	local line
	line=$(result blk-crash)
	echo "$line"
	[[ $line =~ ^RESULT\ blk-crash\ status=137\ last=([0-9]+)\ missing=0$ ]]
	[ "${BASH_REMATCH[1]}" -ge 39 ]
}

@test "bad disks: read-only file without readonly, missing file, image in use" {
	local line
	line=$(result blk-rofile)
	echo "$line"
	[ "$line" = "RESULT blk-rofile status=1 nestvm: --disk /tmp/disk.img: the image is read-only; add ,readonly to attach it so" ]
	line=$(result blk-missing)
	echo "$line"
	[ "$line" = "RESULT blk-missing status=1 nestvm: --disk /tmp/no-such.img: no such file" ]
	line=$(result blk-locked)
	echo "$line"
	[[ $line == "RESULT blk-locked status=1 nestvm: --disk /tmp/disk.img: the image is in use by another process"* ]]
}

@test "a guest on a tap reaches the lab host: ping and 8 MiB over TCP, intact; mac= is used" {
	local line
	line=$(result net-host)
	echo "$line"
	[[ $line == "RESULT net-host status=0 ping=ok mac=52:54:00:00:00:04 "* ]]
	[ "$(field "$line" bytes)" -eq 8388608 ]
	[ "$(field "$line" sum)" = "$(field "$line" got)" ]
}

@test "two guests on a bridge reach each other" {
	local line
	line=$(result net-peers)
	echo "$line"
	[ "$line" = "RESULT net-peers status=0,0 a=ok b=ok" ]
}

@test "two guests on a nestvm switch reach each other; the switch learned both MACs" {
	local line
	line=$(result switch-peers)
	echo "$line"
	[[ $line =~ ^RESULT\ switch-peers\ status=0,0\ a=ok\ b=ok\ macs=52:54:00:00:02:02@(port[0-9]+),52:54:00:00:02:03@(port[0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" != "${BASH_REMATCH[2]}" ]
}
