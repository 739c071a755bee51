#!/usr/bin/env bats
# nestvm switch with raw frame clients (tests/kvm/switch-client.py speaks
# QEMU's stream framing): flooding, learning, a 9000-byte frame, a strict
# port's spoofing guard, hostile framing, a client that never reads, the
# control API, two switches over VXLAN, an uplink onto a veth device, and
# bad options. No guest and no
# /dev/kvm needed: where tier 1 runs in the lab host, this runs on the
# machine itself, beside it (tests/run-all). Guests on a switch:
# switch-guests.bats.
# runs-without-kvm
bats_require_minimum_version 1.5.0
load helpers

load switch-helpers

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

@test "switch: --capture writes pcap files that tcpdump reads, of all frames or of one port" {
	start_switch --capture "$BATS_TEST_TMPDIR/all.pcap" --capture "$BATS_TEST_TMPDIR/b.pcap,port=port1"
	run timeout 60 python3 "$CLIENT" forwarding "$API" "$SW"
	[ "$status" -eq 0 ]
	kill "$SWITCH"
	wait "$SWITCH" || true
	SWITCH=
	run tcpdump -r "$BATS_TEST_TMPDIR/all.pcap" -nn -e
	echo "$output"
	[ "$status" -eq 0 ]
	# Four frames came in: a's broadcast, b to a, c to b, a's 9000-byte frame.
	[ "$(grep -c '^[0-9]' <<< "$output")" -eq 4 ]
	[[ $output == *"52:54:00:00:00:0a > ff:ff:ff:ff:ff:ff"* ]]
	[[ $output == *"length 9014"* ]]
	# Port 1 (b): what it sent, and the three frames it got.
	run tcpdump -r "$BATS_TEST_TMPDIR/b.pcap" -nn -e
	echo "$output"
	[ "$(grep -c '^[0-9]' <<< "$output")" -eq 4 ]
	[[ $output == *"52:54:00:00:00:0c > 52:54:00:00:00:0b"* ]]
}

@test "switch: a port's policy changes through the control API (learn, strict, learn again)" {
	start_switch --port vm1,policy=learn --port vm2,policy=strict
	run timeout 60 python3 "$CLIENT" set-policy "$API" "$SW" "$SW.vm1" "$SW.vm2"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"learn: nested MAC passed: True"* ]]
	[[ $output == *"set strict: True"* ]]
	[[ $output == *"strict: nested MAC passed: False"* ]]
	[[ $output == *"strict: own MAC passed: True"* ]]
	[[ $output == *"learn again: nested MAC passed: True"* ]]
	[[ $output == *"bad policy: {'ok': False, 'error': 'set-port: \"policy\" is strict, learn or promisc'}"* ]]
	[[ $output == *"no such port: {'ok': False"* ]]
	[[ $output == *"set limit: True"* ]]
	[[ $output == *"pinned: other MAC passed: False"* ]]
	[[ $output == *"pinned: own MAC passed: True"* ]]
	# while strict: every one of the 7 frames from the other MAC was counted
	[ "$(status_field 'port("vm1")["drops"]["spoofed"]')" -eq 7 ]
	[ "$(status_field 'port("vm1")["policy"]')" = strict ]
	# nestvm ctl speaks it too (for vm1's next client: this one has left)
	run "$NESTVM" ctl "$API" set-port vm1 policy=promisc mac-limit=8
	[ "$status" -eq 0 ]
	[ "$output" = '{"ok":true}' ]
	run --separate-stderr "$NESTVM" ctl "$API" set-port vm1 colour=blue
	assert_one_line_error "ctl set-port: bad setting 'colour=blue'"
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

@test "switch: two switches joined over VXLAN on loopback form one segment" {
	# Switch A here, switch B beside it; their uplinks point at each other.
	local pa=$((40000 + RANDOM % 10000)) pb
	pb=$((pa + 1))
	"$NESTVM" switch --socket "$BATS_TEST_TMPDIR/swb" \
		--vxlan "127.0.0.1:$pa,vni=42,local=127.0.0.1:$pb" 2> "$BATS_TEST_TMPDIR/swb.err" &
	local b=$!
	start_switch --vxlan "127.0.0.1:$pb,vni=42,local=127.0.0.1:$pa"
	for _ in $(seq 50); do [ -S "$BATS_TEST_TMPDIR/swb" ] && break; sleep 0.1; done
	run timeout 60 python3 "$CLIENT" vxlan "$API" "$SW" "$BATS_TEST_TMPDIR/swb" "$pb"
	kill $b
	wait $b || true
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"broadcast crossed: True"* ]]
	[[ $output == *"unicast came back: True"* ]]
	[[ $output == *"other VNI delivered: False"* ]]
	# Switch A learned B's client behind its uplink.
	[ "$(status_field '[m["port"] for m in s["macs"] if m["mac"] == "52:54:00:00:00:0b"]')" = "['vxlan0']" ]
}

@test "switch: an uplink onto a network interface (a veth pair between two network namespaces): the Linux host at its other end answers ARP and ping; tagged frames are dropped" {
	[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces and a packet socket"
	local na=nestvm-upa-$$ nb=nestvm-upb-$$ peer_mac
	ip netns add $na || skip "cannot create a network namespace here"
	UPLINK_NETNS="$na $nb"
	ip netns add $nb
	ip link add upa0 netns $na type veth peer name upb0 netns $nb
	ip -n $nb addr add 169.254.77.1/24 dev upb0
	ip -n $nb link set upb0 up
	# found by its MAC; down until the switch brings it up
	peer_mac=$(ip -n $na -o link show upa0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
	SW=$BATS_TEST_TMPDIR/sw API=$BATS_TEST_TMPDIR/api
	ip netns exec $na "$NESTVM" switch --socket "$SW" --api-socket "$API" --uplink "$peer_mac" \
		2> "$BATS_TEST_TMPDIR/switch.err" &
	SWITCH=$!
	for _ in $(seq 50); do [ -S "$API" ] && break; sleep 0.1; done
	run timeout 60 python3 "$CLIENT" uplink "$API" "$SW" 169.254.77.1 169.254.77.2
	echo "$output"
	cat "$BATS_TEST_TMPDIR/switch.err"
	[ "$status" -eq 0 ]
	[[ $output == *"arp reply: True"* ]]
	[[ $output == *"ping reply: True"* ]]
	[ "$(status_field 'port("uplink0")["interface"]')" = upa0 ]
	[ "$(status_field 'port("uplink0")["rx_frames"] >= 2 and port("uplink0")["tx_frames"] >= 2')" = True ]
	ip -n $na -d link show upa0 | grep -q 'promiscuity 1'
	# up, without ARP or IPv6 of the switch's machine on that segment
	ip -n $na -o link show upa0 | grep -q 'NOARP,UP'
	[ "$(ip netns exec $na cat /proc/sys/net/ipv6/conf/upa0/disable_ipv6)" = 1 ]
	# the veth's MAC behind the uplink in the switch's table
	[ "$(status_field '[m["port"] for m in s["macs"] if m["mac"] != "52:54:00:00:00:0a"]')" = "['uplink0']" ]
	# a VLAN's tagged frames (VLAN 5, sent raw at the far end) are dropped
	# and counted, not passed on untagged
	ip netns exec $nb python3 -c '
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("upb0", 0))
for _ in range(3):
    s.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x05" + b"\x81\x00\x00\x05\x08\x00" + b"tagged".ljust(46, b"\0"))'
	sleep 0.5
	run "$NESTVM" ctl "$API" status
	echo "$output"
	[ "$(printf '%s' "$output" | python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["ports"] if p["name"] == "uplink0"][0]["uplink_tagged_dropped"] >= 1)')" = True ]
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
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --vxlan 127.0.0.1:4789
	assert_one_line_error "--vxlan 127.0.0.1:4789: vni=N is required"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --vxlan host.example:4789,vni=1
	assert_one_line_error "expected REMOTE:PORT,vni=N"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --uplink nosuch-if0
	assert_one_line_error "--uplink nosuch-if0: no such network interface (give its name or its MAC)"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --uplink 02:00:00:00:be:ef
	assert_one_line_error "--uplink 02:00:00:00:be:ef: no network interface has that MAC address"
	run --separate-stderr "$NESTVM" switch --socket "$BATS_TEST_TMPDIR/s" --bogus 1
	assert_one_line_error "switch: unknown option '--bogus'"
}
