#!/usr/bin/env bats
# nestvm switch with raw frame clients (tests/kvm/switch-client.py speaks
# QEMU's stream framing): flooding, learning, a 9000-byte frame, a strict
# port's spoofing guard, hostile framing, a client that never reads, the
# control API, and bad options. No guest and no /dev/kvm needed.
bats_require_minimum_version 1.5.0
load helpers

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

@test "switch: broadcasts flood, unicast goes to the learned port only, 9000-byte frames pass" {
	start_switch
	run timeout 60 python3 "$CLIENT" forwarding "$API" "$SW"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"broadcast reached b: True c: True"* ]]
	[[ $output == *"unicast reached a: True"* ]]
	[[ $output == *"unicast reached c: False"* ]]
	[[ $output == *"unicast reached b: True"* ]]
	[[ $output == *"jumbo frame bytes: 9014"* ]]
	# The MAC table names three MACs on three ports; nothing was dropped.
	[ "$(status_field 'len({m["port"] for m in s["macs"]})')" -eq 3 ]
	[ "$(status_field 'sorted(m["mac"][-2:] for m in s["macs"])')" = "['0a', '0b', '0c']" ]
	[ "$(status_field 'sum(sum(p["drops"].values()) for p in s["ports"])')" -eq 0 ]
	# The switch parses frames from anyone: it runs confined by seccomp.
	grep -q "^Seccomp:[[:space:]]*2" "/proc/$SWITCH/status"
	# nestvm ctl speaks to a switch too; the clients are gone by now.
	run "$NESTVM" ctl "$API" status
	[ "$status" -eq 0 ]
	[[ $output == '{"ok":true,"kind":"switch","ports":[],'* ]]
}

@test "switch: a strict port sends only from its own MAC; the spoofed frames are counted" {
	start_switch --port vm1,policy=strict,mac=52:54:00:00:00:0a
	run timeout 60 python3 "$CLIENT" strict "$API" "$SW" "$SW.vm1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"own MAC passed: True"* ]]
	[[ $output == *"spoofed passed: False"* ]]
	[ "$(status_field 'port("vm1")["drops"]["spoofed"]')" -eq 5 ]
	[ "$(status_field 'port("vm1")["policy"]')" = strict ]
}

@test "switch: garbage framing disconnects its client; one that never reads does not slow the others" {
	start_switch
	run timeout 120 python3 "$CLIENT" hostile "$API" "$SW"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"garbage framing disconnected: True"* ]]
	[[ $output == *"reader got: 4000"* ]]
	# The deaf client's frames were dropped and counted, not queued without end.
	[ "$(status_field 'max(p["drops"]["egress_full"] for p in s["ports"])')" -gt 0 ]
	grep -q "a frame length no frame can have; disconnected" "$BATS_TEST_TMPDIR/switch.err"
	kill -0 "$SWITCH"
}

@test "a guest's NIC on a switch port: the guest's frame reaches a client, the client's reaches the guest" {
	require_kvm
	start_switch
	python3 "$CLIENT" reply "$API" "$SW" > "$BATS_TEST_TMPDIR/client.out" &
	local client=$!
	sleep 0.5
	run_guest --net "switch=$SW,mac=52:54:00:12:34:56" --cmdline "test=virtio-net"
	echo "$output"
	echo "$stderr"
	wait $client
	cat "$BATS_TEST_TMPDIR/client.out"
	[ "$status" -eq 0 ]
	[[ $output == *"mac 52:54:00:12:34:56"* ]]
	[[ $output == *"received 'nestvm tier-1 reply'"* ]]
	grep -q "client got 'nestvm tier-1 hello' from 52:54:00:12:34:56" "$BATS_TEST_TMPDIR/client.out"
}

@test "--net switch=: no switch listening, port without switch, bad names" {
	require_kvm
	run_guest --net "switch=$BATS_TEST_TMPDIR/none" --cmdline "test=hello"
	assert_one_line_error "--net switch=$BATS_TEST_TMPDIR/none: no switch is listening there"
	run_guest --net "tap=t0,port=a" --cmdline "test=hello"
	assert_one_line_error "port= names a switch's port; it needs switch=PATH"
	run_guest --net "switch=$BATS_TEST_TMPDIR/s,tap=t0" --cmdline "test=hello"
	assert_one_line_error "] or switch=PATH"
	run_guest --net "switch=$BATS_TEST_TMPDIR/s,port=a/b" --cmdline "test=hello"
	assert_one_line_error "port name must be 1 to 31 characters without '/'"
}

@test "switch: bad options are refused with one line" {
	run --separate-stderr "$NESTVM" switch
	assert_one_line_error "switch: --socket PATH is required"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --policy open
	assert_one_line_error "--policy open: expected learn, strict or promisc"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --port a,mac=01:00:00:00:00:01
	assert_one_line_error "--port a,mac=01:00:00:00:00:01: bad option 'mac=01:00:00:00:00:01'"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --port a --port a
	assert_one_line_error "--port a: the name is already used"
	run --separate-stderr "$NESTVM" switch --socket /nonexistent/dir/s
	assert_one_line_error "--socket /nonexistent/dir/s: No such file or directory"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --bogus 1
	assert_one_line_error "switch: unknown option '--bogus'"
}
