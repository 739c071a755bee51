# Shared by the tier-2 suites.
#
# A lab host whose heartbeat stops is frozen (docs/labhost-freeze.md):
# `nestvm labhost` stops it, says "the lab host froze" and exits 123. That
# alone (the status and the line: a command may exit 123 itself), a cause
# outside nestvm that is detected and named, gets the lab host booted once
# more; the retry is printed and counted in $LABHOST_RETRIES, which
# tests/run-all reports. Anything else, a timeout, a guest panic or a stall
# included, is the test's result.

NESTVM=${NESTVM_STATIC:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/nestvm}
LABHOST_RETRIES=${LABHOST_RETRIES:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/build/test-logs/labhost-retries}
LABHOST_FROZEN=123

# froze STATUS STDERR-TEXT: did nestvm labhost stop a frozen lab host?
froze() {
	[ "$1" -eq $LABHOST_FROZEN ] && [[ $2 == *"labhost: the lab host froze:"* ]]
}

# note_freeze ATTEMPT WHAT: says that a lab host froze; after the first
# attempt it is booted once more, and that retry is counted.
note_freeze() {
	local msg="lab host froze in $BATS_TEST_FILENAME ($2)"
	if [ "$1" -eq 1 ]; then
		msg="$msg; booting it once more"
		mkdir -p "$(dirname "$LABHOST_RETRIES")"
		echo "$msg" >> "$LABHOST_RETRIES"
	else
		msg="$msg again; not retried"
	fi
	echo "# $msg" >&3
}

# freeze_report: where a frozen lab host's registers go, kept with the logs
# (written only if it freezes).
freeze_report() {
	mkdir -p "$(dirname "$LABHOST_RETRIES")"
	echo "$(dirname "$LABHOST_RETRIES")/freeze-report.$$.$RANDOM"
}

# run_labhost SECONDS ARGS...: bats' run of `nestvm labhost --timeout SECONDS
# ARGS...`, stdout and stderr apart, run once more only if it froze.
run_labhost() {
	local secs=$1 attempt
	shift
	for attempt in 1 2; do
		run --separate-stderr "$NESTVM" labhost --timeout "$secs" \
			--freeze-report "$(freeze_report)" "$@"
		froze "$status" "$stderr" || return 0
		note_freeze $attempt "$BATS_TEST_DESCRIPTION"
	done
}

# labhost_to_files SECONDS OUT ERR ARGS...: the same for suites that keep
# their results in files.
labhost_to_files() {
	local secs=$1 out=$2 err=$3 attempt rc
	shift 3
	for attempt in 1 2; do
		"$NESTVM" labhost --timeout "$secs" --freeze-report "$(freeze_report)" "$@" \
			> "$out" 2> "$err"
		rc=$?
		froze $rc "$(cat "$err")" || return $rc
		note_freeze $attempt "setup"
	done
	return $rc
}

# labhost_results SECONDS SCRIPT: runs SCRIPT "$RUN_DIR" in the lab host with
# its RESULT lines in $RUN_DIR/results.
labhost_results() {
	labhost_to_files "$1" "$RUN_DIR/results" "$RUN_DIR/labhost.err" -- "$2" "$RUN_DIR" || true
}

# result NAME: the RESULT line for one case of a labhost_results run.
result() {
	grep "^RESULT $1 " "$RUN_DIR/results" || {
		echo "no result for $1; lab host said:"
		cat "$RUN_DIR/results" "$RUN_DIR/labhost.err" 2> /dev/null
		return 1
	}
}

# field LINE NAME: the value of NAME=VALUE in a RESULT line
field() {
	local f
	for f in $1; do
		[[ $f == "$2="* ]] && { echo "${f#*=}"; return 0; }
	done
	return 1
}
