# Shared by switch.bats and switch-guests.bats.

CLIENT=tests/kvm/switch-client.py

start_switch() { # start_switch [OPTIONS]: a switch on $SW, API on $API
	SW=$BATS_TEST_TMPDIR/sw API=$BATS_TEST_TMPDIR/api
	"$NESTVM" switch --socket "$SW" --api-socket "$API" "$@" 2> "$BATS_TEST_TMPDIR/switch.err" &
	SWITCH=$!
	for _ in $(seq 50); do [ -S "$API" ] && return 0; sleep 0.1; done
	cat "$BATS_TEST_TMPDIR/switch.err"
	return 1
}

teardown() {
	if [ -n "${SWITCH:-}" ]; then
		kill "$SWITCH" 2> /dev/null
		wait "$SWITCH" || true
	fi
	local ns
	for ns in ${UPLINK_NETNS:-}; do
		ip netns del "$ns" 2> /dev/null || true
	done
}

# status_field PYTHON-EXPRESSION: evaluates it on the STATUS line of $output
# (s: the status object; port(name) finds a port).
status_field() {
	printf '%s\n' "$output" | grep '^STATUS ' | cut -d' ' -f2- | python3 -c '
import json, sys
s = json.load(sys.stdin)
port = lambda n: next(p for p in s["ports"] if p["name"] == n)
print(eval(sys.argv[1]))' "$1"
}
