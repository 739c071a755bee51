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
	scripts/mkinitramfs-modules.sh "$RUN_DIR/initrd.cpio" tests/guests/virtio-init.sh \
		"virtio_pci virtio_blk virtio_net virtio_rng"
	labhost_results 420 tests/labhost/virtio-run.sh
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

field() { # field LINE NAME: the value of NAME=VALUE in a RESULT line
	local f
	for f in $1; do
		[[ $f == "$2="* ]] && { echo "${f#*=}"; return 0; }
	done
	return 1
}

@test "stock virtio_pci drives blk, net and rng through MSI-X; serial and default MAC" {
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
