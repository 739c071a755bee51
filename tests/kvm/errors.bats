#!/usr/bin/env bats
# Bad input to 'nestvm run': one line naming the problem, non-zero status,
# never a crash.
bats_require_minimum_version 1.5.0
load helpers

run_nestvm() {
	run --separate-stderr timeout 30 "$NESTVM" "$@"
}

@test "missing kernel file" {
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/nope"
	assert_one_line_error "--kernel $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "kernel is a directory" {
	run_nestvm run --kernel "$BATS_TEST_TMPDIR"
	assert_one_line_error "not a regular file"
}

@test "kernel is not a kernel" {
	head -c 4096 /dev/urandom > "$BATS_TEST_TMPDIR/junk"
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/junk"
	assert_one_line_error "not a kernel nestvm can boot"
}

@test "kernel is an ordinary ELF program" {
	run_nestvm run --kernel /bin/true
	assert_one_line_error "/bin/true"
}

@test "truncated test guest ELF" {
	require_kvm
	for size in 10 63 100 300; do
		head -c "$size" "$GUEST" > "$BATS_TEST_TMPDIR/trunc"
		run_nestvm run --kernel "$BATS_TEST_TMPDIR/trunc"
		assert_one_line_error "$BATS_TEST_TMPDIR/trunc"
	done
}

@test "--memory 0, malformed, or beyond the host" {
	run_nestvm run --kernel "$GUEST" --memory 0
	assert_one_line_error "--memory 0"
	run_nestvm run --kernel "$GUEST" --memory 12Q
	assert_one_line_error "--memory 12Q"
	run_nestvm run --kernel "$GUEST" --memory 100T
	assert_one_line_error "more than this host's"
}

@test "--cpus 0, malformed, or above KVM's limit" {
	run_nestvm run --kernel "$GUEST" --cpus 0
	assert_one_line_error "--cpus 0"
	run_nestvm run --kernel "$GUEST" --cpus two
	assert_one_line_error "--cpus two"
	run_nestvm run --kernel "$GUEST" --cpus 100000
	assert_one_line_error "--cpus 100000"
}

@test "unknown option, missing --kernel, bad --console or --console-socket, bad --uuid or --serial; nestvm console without a VM" {
	run_nestvm run --frobnicate
	assert_one_line_error "--frobnicate"
	run_nestvm run
	assert_one_line_error "--kernel FILE is required"
	run_nestvm run --kernel "$GUEST" --console tty9
	assert_one_line_error "--console tty9"
	run_nestvm bogus
	assert_one_line_error "unknown command 'bogus'"
	run_nestvm run --kernel "$GUEST" --uuid 6a0c1b7e-2f3d-4e5a-9b8c-7d6e5f4a3b2
	assert_one_line_error "--uuid 6a0c1b7e-2f3d-4e5a-9b8c-7d6e5f4a3b2: expected a UUID"
	run_nestvm run --kernel "$GUEST" --uuid 6a0c1b7e_2f3d-4e5a-9b8c-7d6e5f4a3b2c
	assert_one_line_error "expected a UUID"
	run_nestvm run --kernel "$GUEST" --serial "$(head -c 256 /dev/zero | tr '\0' x)"
	assert_one_line_error "--serial: longer than 255 characters"
	run_nestvm run --kernel "$GUEST" --console-socket "$BATS_TEST_TMPDIR/no/such/dir/c.sock"
	assert_one_line_error "--console-socket $BATS_TEST_TMPDIR/no/such/dir/c.sock"
	touch "$BATS_TEST_TMPDIR/plain"
	run_nestvm run --kernel "$GUEST" --console-socket "$BATS_TEST_TMPDIR/plain"
	assert_one_line_error "--console-socket $BATS_TEST_TMPDIR/plain"
	run_nestvm console "$BATS_TEST_TMPDIR/none.sock"
	assert_one_line_error "cannot connect to the console at $BATS_TEST_TMPDIR/none.sock"
	run_nestvm console
	assert_one_line_error "expected one console socket"
}

@test "no /dev/kvm" {
	NESTVM_KVM_DEVICE=/nonexistent/kvm run_nestvm run --kernel "$GUEST" --test-device
	assert_one_line_error "/nonexistent/kvm: no such device"
}

# Linux kernels are rejected before any vCPU runs when they are damaged, so
# these run on any /dev/kvm (the guest itself never starts).
cloud_kernel() {
	ls .cache/kernels/cloud/boot/vmlinuz-* 2> /dev/null | head -n 1
}

@test "truncated or corrupted bzImage headers" {
	require_kvm
	local k
	k=$(cloud_kernel)
	[ -n "$k" ] || skip "Debian cloud kernel not fetched (scripts/fetch-kernel.sh cloud)"
	head -c 1000 "$k" > "$BATS_TEST_TMPDIR/short"
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/short"
	assert_one_line_error "bzImage is truncated"
	head -c 100000 "$k" > "$BATS_TEST_TMPDIR/cut"
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/cut"
	assert_one_line_error "bzImage is truncated"
	cp "$k" "$BATS_TEST_TMPDIR/bad-setup"
	printf '\xff' | dd of="$BATS_TEST_TMPDIR/bad-setup" bs=1 seek=$((0x1f1)) conv=notrunc status=none
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/bad-setup"
	assert_one_line_error "bzImage is truncated"
	cp "$k" "$BATS_TEST_TMPDIR/bad-flag"
	printf '\x00\x00' | dd of="$BATS_TEST_TMPDIR/bad-flag" bs=1 seek=$((0x1fe)) conv=notrunc status=none
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/bad-flag"
	assert_one_line_error "setup header is corrupted"
	cp "$k" "$BATS_TEST_TMPDIR/old"
	printf '\x00\x02' | dd of="$BATS_TEST_TMPDIR/old" bs=1 seek=$((0x206)) conv=notrunc status=none
	run_nestvm run --kernel "$BATS_TEST_TMPDIR/old"
	assert_one_line_error "boot protocol 2.00 is too old"
}

@test "initrd missing, or larger than guest memory" {
	require_kvm
	local k
	k=$(cloud_kernel)
	[ -n "$k" ] || skip "Debian cloud kernel not fetched (scripts/fetch-kernel.sh cloud)"
	run_nestvm run --kernel "$k" --initrd "$BATS_TEST_TMPDIR/none"
	assert_one_line_error "--initrd $BATS_TEST_TMPDIR/none: No such file or directory"
	truncate -s 100M "$BATS_TEST_TMPDIR/huge"
	run_nestvm run --kernel "$k" --initrd "$BATS_TEST_TMPDIR/huge" --memory 64M
	assert_one_line_error "--initrd $BATS_TEST_TMPDIR/huge: file is 100 MiB, larger than the 64 MiB"
	truncate -s 100M "$BATS_TEST_TMPDIR/big"
	run_nestvm run --kernel "$k" --initrd "$BATS_TEST_TMPDIR/big" --memory 128M
	assert_one_line_error "do not fit in guest memory"
}

@test "Linux guest below 32 MiB, and option values out of range" {
	require_kvm
	local k
	k=$(cloud_kernel)
	[ -n "$k" ] || skip "Debian cloud kernel not fetched (scripts/fetch-kernel.sh cloud)"
	run_nestvm run --kernel "$k" --memory 16M
	assert_one_line_error "at least 32 MiB"
	run_nestvm run --kernel "$k" --cpus 2 --cores-per-socket 3
	assert_one_line_error "--cores-per-socket 3"
	run_nestvm run --kernel "$k" --cpu-model fast
	assert_one_line_error "--cpu-model fast"
	run_nestvm run --kernel "$k" --on-reboot sometimes
	assert_one_line_error "--on-reboot sometimes"
}

@test "no permission to use /dev/kvm" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to drop to another user"
	command -v setpriv > /dev/null || skip "setpriv(1) not installed (util-linux)"
	[ -c /dev/kvm ] || skip "no /dev/kvm on this machine"
	# A user outside /dev/kvm's owner and group, as most users are.
	local mode
	mode=$(stat -c %a /dev/kvm)
	[ "${mode: -1}" -lt 6 ] || skip "/dev/kvm is open to every user (mode $mode)"
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$NESTVM" ||
		skip "user 65534 cannot reach $NESTVM in this checkout"
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$NESTVM" run --kernel "$GUEST" --test-device
	assert_one_line_error "/dev/kvm: permission denied: add this user to the 'kvm' group"
}
