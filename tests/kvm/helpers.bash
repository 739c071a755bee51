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
