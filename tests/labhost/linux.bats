#!/usr/bin/env bats
# Tier 2, end to end: Debian's stock cloud kernel (bzImage and vmlinux)
# boots under nestvm inside the lab host, reaches a busybox init that
# reports what it sees, and powers off or reboots. One lab host boot runs
# every case (tests/labhost/linux-boot.sh); each test checks one.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/linux-boot.XXXXXX")
	scripts/mkinitramfs.sh "$RUN_DIR/initrd.cpio" tests/guests/report-init.sh
	labhost_results 360 tests/labhost/linux-boot.sh
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

check_boot() { # check_boot NAME CPUS
	local line
	line=$(result "$1")
	echo "$line"
	[[ $line == "RESULT $1 status=0 NESTVM-INIT nproc=$2 "* ]]
	[[ $line == *"cmdline=console=ttyS0 quiet panic=-1 case=$1"* ]]
	# 256 MiB guest: the kernel reports most of it
	local kb=${line#*memtotal_kb=}
	kb=${kb%% *}
	[ "$kb" -gt 180000 ] && [ "$kb" -le 262144 ]
}

@test "bzImage, 1 vCPU: boots to init, reports, powers off, nestvm exits 0" {
	check_boot bzimage-1 1
}

@test "bzImage, 2 vCPUs: both brought up" {
	check_boot bzimage-2 2
}

@test "vmlinux through PVH, 1 vCPU" {
	check_boot vmlinux-1 1
}

@test "vmlinux through PVH, 2 vCPUs" {
	check_boot vmlinux-2 2
}

@test "4 vCPUs in two sockets with --cpu-model compat" {
	check_boot compat-4 4
}

@test "guest reboot with --on-reboot exit ends nestvm with status 0" {
	local line
	line=$(result reboot-exit)
	echo "$line"
	[[ $line == "RESULT reboot-exit status=0 NESTVM-INIT "*"nestvm_test_reboot"* ]]
}

@test "guest reboot with the default --on-reboot restart boots it again" {
	local line
	line=$(result restart)
	echo "$line"
	[[ $line =~ ^RESULT\ restart\ status=143\ boots=([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 2 ]
}

@test "a line written to nestvm's stdin reaches the guest's console (UART receive)" {
	local line
	line=$(result echo)
	echo "$line"
	[ "$line" = "RESULT echo status=0 ECHO: hello-from-the-host" ]
}

@test "SIGTERM stops a running Linux guest (status 143)" {
	local line
	line=$(result sigterm)
	echo "$line"
	[ "$line" = "RESULT sigterm status=143" ]
}
