# Shared by the tier-2 suites.
#
# QEMU's TCG lab host has been seen to stop making progress, rarely, while
# nested guests run in it (README, known limits). A lab host that times out
# is booted once more, and the timeout is reported; any other outcome,
# failures included, is the test's result.

NESTVM=${NESTVM_STATIC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/nestvm}

# run_labhost SECONDS ARGS...: bats' run of `nestvm labhost --timeout SECONDS
# ARGS...`, stdout and stderr apart, retried once after a timeout.
run_labhost() {
	local secs=$1 attempt
	shift
	for attempt in 1 2; do
		run --separate-stderr "$NESTVM" labhost --timeout "$secs" "$@"
		[ "$status" -ne 124 ] && return 0
		echo "lab host timed out after ${secs}s (attempt $attempt of 2)" >&2
	done
}

# labhost_to_files SECONDS OUT ERR ARGS...: the same for suites that keep
# their results in files.
labhost_to_files() {
	local secs=$1 out=$2 err=$3 attempt rc
	shift 3
	for attempt in 1 2; do
		"$NESTVM" labhost --timeout "$secs" "$@" > "$out" 2> "$err"
		rc=$?
		[ $rc -ne 124 ] && return $rc
		echo "lab host timed out after ${secs}s (attempt $attempt of 2)" >> "$err.timeouts"
	done
	return $rc
}
