#!/usr/bin/env bats
# The console on a terminal: raw mode while the VM runs, the terminal's
# settings restored on every exit path, Ctrl-A x to quit. script(1) gives
# nestvm a pseudo-terminal.
bats_require_minimum_version 1.5.0
load helpers

setup() {
	require_kvm
	command -v script > /dev/null || skip "script(1) not installed (bsdutils)"
}


@test "terminal settings are restored after the guest exits" {
	run on_tty "stty -g > $BATS_TEST_TMPDIR/before; $NESTVM run --kernel $GUEST --test-device --cmdline test=hello; stty -g > $BATS_TEST_TMPDIR/after"
	[[ $output == *"hello from the nestvm test guest"* ]]
	[ -s "$BATS_TEST_TMPDIR/before" ]
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
}

@test "terminal settings are restored after a triple fault" {
	run on_tty "stty -g > $BATS_TEST_TMPDIR/before; $NESTVM run --kernel $GUEST --test-device --cmdline test=triplefault; echo status=\$?; stty -g > $BATS_TEST_TMPDIR/after"
	[[ $output == *"status=1"* ]]
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
}

@test "Ctrl-A x stops a running VM and restores the terminal" {
	input='\001x' ready=spinning
	run on_tty "stty -g > $BATS_TEST_TMPDIR/before; $NESTVM run --kernel $GUEST --test-device --cpus 2 --cmdline test=spin; echo status=\$?; stty -g > $BATS_TEST_TMPDIR/after"
	echo "$output"
	[[ $output == *"spinning"* ]]
	[[ $output == *"status=0"* ]]
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
}

@test "bytes typed on the terminal reach the guest's UART (loopback-free echo)" {
	# The test guest does not read input; what matters is that input goes
	# to the UART and not to nestvm: Ctrl-C is a byte for the guest in raw
	# mode, so the VM keeps running until Ctrl-A x.
	input='\003\003\001x' ready=spinning
	run on_tty "$NESTVM run --kernel $GUEST --test-device --cmdline test=spin; echo status=\$?"
	echo "$output"
	[[ $output == *"status=0"* ]]
}
