# Shared by the tier-1 suites: the sanitizer build of nestvm and the test guest.
NESTVM=${NESTVM:-build/asan/nestvm}
GUEST=build/guest/testguest.elf

require_kvm() {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this machine"
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "no permission to use /dev/kvm"
}

# run_guest ARGS...: the test guest with the test device, stdout and stderr
# kept apart in $output and $stderr (bats' --separate-stderr).
run_guest() {
	run --separate-stderr timeout 60 "$NESTVM" run --kernel "$GUEST" --test-device "$@"
}

# Bad input must give exactly one line on stderr and a non-zero status that
# is not a crash (signals and sanitizer aborts give other statuses/lines).
assert_one_line_error() {
	local pattern=$1
	[ "$status" -ne 0 ]
	[ "$status" -lt 124 ]
	[ "$(printf '%s\n' "$stderr" | grep -c .)" -eq 1 ]
	[[ $stderr == "nestvm: "* ]]
	[[ $stderr == *$pattern* ]]
}

# wait_in FILE TEXT: waits (up to 60 s) until TEXT is in FILE.
wait_in() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -aq -- "$2" "$1" 2> /dev/null && return 0
		sleep 0.1
	done
	return 1
}

# on_tty COMMAND: runs COMMAND on a fresh pseudo-terminal (script(1)), its
# output in $output. $input is typed once $ready is on the terminal (the VM
# runs and the terminal is raw: typed earlier, cooked mode would echo it),
# at once without $ready; the terminal stays open until COMMAND ends (at
# most 60 s). Waits on what the terminal shows, not on time: a slow machine
# only makes it slower.
on_tty() {
	local log=$BATS_TEST_TMPDIR/tty.$RANDOM
	: > "$log"
	{
		[ -z "${ready:-}" ] || wait_in "$log" "$ready"
		sleep 0.3
		printf '%b' "${input:-}"
		wait_in "$log" on-tty-done
	} | timeout 60 script -qefc "$1; echo on-tty-done" "$log"
}
