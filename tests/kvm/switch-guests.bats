#!/usr/bin/env bats
# Guests on nestvm switch: a guest's NIC on a switch port exchanging frames
# with a raw client (tests/kvm/switch-client.py), reconnecting to a switch
# that restarted, an unprivileged user's switch and guests, bad --net
# switch= specs.
bats_require_minimum_version 1.5.0
load helpers
load switch-helpers

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

@test "a NIC whose switch was restarted connects to it again, and frames flow" {
	require_kvm
	start_switch
	"$NESTVM" run --kernel "$GUEST" --test-device --net "switch=$SW" --cmdline "test=virtio-net" \
		> "$BATS_TEST_TMPDIR/vm.out" 2> "$BATS_TEST_TMPDIR/vm.err" &
	local vm=$!
	sleep 1
	kill "$SWITCH"
	wait "$SWITCH" || true
	sleep 2 # the guest's hellos meanwhile are lost
	start_switch
	timeout 90 python3 "$CLIENT" reply "$API" "$SW" > "$BATS_TEST_TMPDIR/client.out"
	local st=0
	wait $vm || st=$?
	cat "$BATS_TEST_TMPDIR/vm.out" "$BATS_TEST_TMPDIR/vm.err" "$BATS_TEST_TMPDIR/client.out"
	[ "$st" -eq 0 ]
	grep -q "received 'nestvm tier-1 reply'" "$BATS_TEST_TMPDIR/vm.out"
	grep -q "the switch went away; connecting again every second" "$BATS_TEST_TMPDIR/vm.err"
	grep -q "connected to the switch again" "$BATS_TEST_TMPDIR/vm.err"
}

@test "an unprivileged user runs a switch and two guests on it, which exchange frames" {
	require_kvm
	command -v setpriv > /dev/null || skip "no setpriv (util-linux) to drop privileges"
	# Run as nobody, in /dev/kvm's group: no root, no tap, no capability.
	local gid as=()
	gid=$(stat -c %g /dev/kvm)
	as=(setpriv --reuid=65534 --regid="$gid" --clear-groups --inh-caps=-all --)
	"${as[@]}" test -r /dev/kvm -a -w /dev/kvm || skip "/dev/kvm is not read-write for its group here"
	local dir
	dir=$(mktemp -d /tmp/nestvm-nobody.XXXXXX)
	chmod 777 "$dir"
	"${as[@]}" "$NESTVM" switch --socket "$dir/sw" --api-socket "$dir/api" 2> "$dir/switch.err" &
	SWITCH=$!
	for _ in $(seq 50); do [ -S "$dir/api" ] && break; sleep 0.1; done
	"${as[@]}" "$NESTVM" run --kernel "$GUEST" --test-device --net "switch=$dir/sw" \
		--cmdline "test=virtio-net answer=1" > "$dir/b.out" 2>&1 &
	local b=$!
	sleep 0.5
	run "${as[@]}" timeout 60 "$NESTVM" run --kernel "$GUEST" --test-device --net "switch=$dir/sw" \
		--cmdline "test=virtio-net"
	local st=0
	wait $b || st=$?
	echo "$output"
	cat "$dir/b.out"
	[ "$status" -eq 0 ]
	[ "$st" -eq 0 ]
	[[ $output == *"received 'nestvm tier-1 reply'"* ]]
	grep -q "virtio-net: done" "$dir/b.out"
	[ "$(stat -c %u "$dir/sw")" -eq 65534 ] # the switch's socket is nobody's
	rm -rf "$dir"
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
