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

# labhost_results SECONDS SCRIPT [timed-out-cases]: runs SCRIPT "$RUN_DIR"
# in the lab host with its RESULT lines in $RUN_DIR/results. A guest kernel
# that panics or stalls under the emulated lab host (README, known limits)
# gets the whole run once more; so does a case that timed out, when asked.
# A repeat is noted in $RUN_DIR/labhost.err.timeouts.
labhost_results() {
	local secs=$1 script=$2 retry_timed_out=${3:-}
	labhost_to_files "$secs" "$RUN_DIR/results" "$RUN_DIR/labhost.err" \
		-- "$script" "$RUN_DIR" || true
	if grep -l "Kernel panic\|rcu_preempt detected stalls" "$RUN_DIR"/*.out \
		> "$RUN_DIR/panics" 2> /dev/null ||
		{ [ -n "$retry_timed_out" ] && grep -q " status=124" "$RUN_DIR/results"; }; then
		echo "guest panic, stall or timed-out case in: $(tr '\n' ' ' < "$RUN_DIR/panics"); running again" \
			>> "$RUN_DIR/labhost.err.timeouts"
		labhost_to_files "$secs" "$RUN_DIR/results" "$RUN_DIR/labhost.err" \
			-- "$script" "$RUN_DIR" || true
	fi
}

# result NAME: the RESULT line for one case of a labhost_results run.
result() {
	grep "^RESULT $1 " "$RUN_DIR/results" || {
		echo "no result for $1; lab host said:"
		cat "$RUN_DIR/results" "$RUN_DIR/labhost.err" "$RUN_DIR"/*.timeouts 2> /dev/null
		return 1
	}
}
