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

@test "unknown option, missing --kernel, bad --console" {
	run_nestvm run --frobnicate
	assert_one_line_error "--frobnicate"
	run_nestvm run
	assert_one_line_error "--kernel FILE is required"
	run_nestvm run --kernel "$GUEST" --console tty9
	assert_one_line_error "--console tty9"
	run_nestvm bogus
	assert_one_line_error "unknown command 'bogus'"
}

@test "no /dev/kvm" {
	NESTVM_KVM_DEVICE=/nonexistent/kvm run_nestvm run --kernel "$GUEST" --test-device
	assert_one_line_error "/nonexistent/kvm: no such device"
}
