#!/usr/bin/env bats
# nestvm switch --nat (libslirp) with real network stacks and no guest:
# each client is a Linux network namespace whose tap device is joined to a
# switch port (tests/kvm/tap-relay.py). Its DHCP client is busybox udhcpc,
# its TCP, UDP and DNS the kernel's. Everything stays on this machine: the
# clients live in 169.254.100.0/24, and the switch runs in a network
# namespace of its own ("host"), whose loopback is what the NAT's gateway
# address (169.254.100.2) reaches: the test's servers listen there, apart
# from anything on this machine's own 127.0.0.1. No /dev/kvm needed: where
# tier 1 runs in the lab host, this runs on the machine itself (tests/run-all).
# runs-without-kvm
bats_require_minimum_version 1.5.0
load helpers

RELAY=tests/kvm/tap-relay.py
CLIENT=tests/kvm/switch-client.py
SUBNET=169.254.100.0/24
GATEWAY=169.254.100.2

setup() {
	if [ "$(id -u)" -ne 0 ] || ! [ -c /dev/net/tun ] || ! command -v ip > /dev/null ||
		! command -v unshare > /dev/null || ! busybox udhcpc --help > /dev/null 2>&1; then
		skip "needs root, /dev/net/tun, ip, unshare and busybox (network namespaces with taps)"
	fi
	D=$BATS_TEST_TMPDIR
	SW=$D/sw API=$D/api
	NAMESPACES=() PIDS=()
	HOSTNS=nestvm-nat-$$-host
	ip netns add "$HOSTNS"
	NAMESPACES+=("$HOSTNS")
	ip netns exec "$HOSTNS" ip link set lo up
	# ports on the loopback, apart for each test (and from other runs)
	BASE=$((20000 + (RANDOM % 400) * 100))
	# The DHCP client's script: the lease into the interface, and a line
	# LEASE IP ROUTER DNS.
	cat > "$D/udhcpc.sh" <<- 'EOF'
		#!/bin/sh
		case $1 in
		bound|renew)
			ip addr flush dev "$interface"
			ip addr add "$ip/$mask" dev "$interface"
			ip route replace default via "$router"
			echo "LEASE $ip $router $dns" ;;
		esac
	EOF
	chmod +x "$D/udhcpc.sh"
}

teardown() {
	for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2> /dev/null; done
	for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2> /dev/null; done
	true
}

forget_pid() { # forget_pid PID: no longer one teardown stops (it has ended)
	local p kept=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
	PIDS=("${kept[@]}")
}

in_host() { # in_host COMMAND...: in the switch's network namespace
	ip netns exec "$HOSTNS" "$@"
}

# start_nat_switch [OPTIONS]: the switch with a NAT on $SUBNET, in the
# "host" network namespace, and in a mount namespace whose
# /etc/resolv.conf names a DNS server on that namespace's 127.0.0.1 (the
# DNS test's), so that nothing asks a real resolver.
start_nat_switch() {
	echo "nameserver 127.0.0.1" > "$D/resolv.conf"
	rm -f "$SW" "$API"
	ip netns exec "$HOSTNS" unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$D/resolv.conf" \
		"$NESTVM" switch --socket "$SW" --api-socket "$API" --nat="$SUBNET" "$@" 2>> "$D/switch.err" &
	SWITCH=$!
	PIDS+=("$SWITCH")
	for _ in $(seq 50); do [ -S "$API" ] && return 0; sleep 0.1; done
	cat "$D/switch.err"
	return 1
}

stop_switch() {
	kill "$SWITCH"
	wait "$SWITCH" || true
	forget_pid "$SWITCH"
}

# rejoin NAME MAC: NAME's relay ended with the old switch; a new
# namespace of that name joins the new one.
rejoin() {
	forget_pid "${RELAY_PID[$1]}"
	ip netns del "nestvm-nat-$$-$1"
	join "$1" "$2"
}

declare -A RELAY_PID

wait_listen() { # wait_listen NAMESPACE-COMMAND... PORT: until something listens there
	local port=${*: -1} i
	for i in $(seq 100); do
		"${@:1:$#-1}" ss -ltnu | grep -q ":$port " && return 0
		sleep 0.1
	done
	return 1
}

# join NAME MAC: a network namespace NAME whose tap0 (with MAC) is a port.
join() {
	local ns=nestvm-nat-$$-$1
	ip netns add "$ns"
	NAMESPACES+=("$ns")
	ip netns exec "$ns" python3 "$RELAY" tap0 "$SW" > "$D/relay-$1.out" 2>&1 &
	PIDS+=($!)
	RELAY_PID[$1]=$!
	for _ in $(seq 100); do grep -q READY "$D/relay-$1.out" && break; sleep 0.1; done
	grep -q READY "$D/relay-$1.out" || { cat "$D/relay-$1.out"; return 1; }
	ip netns exec "$ns" ip link set lo up
	if ! ip netns exec "$ns" ip link set tap0 address "$2" ||
		! ip netns exec "$ns" ip link set tap0 up; then
		cat "$D/relay-$1.out" # why the relay (and with it tap0) ended
		return 1
	fi
}

in_ns() { # in_ns NAME COMMAND...
	local ns=nestvm-nat-$$-$1
	shift
	ip netns exec "$ns" "$@"
}

# lease NAME: DHCP in namespace NAME; prints the address it got.
lease() {
	in_ns "$1" timeout 30 busybox udhcpc -i tap0 -n -q -t 5 -T 2 -s "$D/udhcpc.sh" 2> /dev/null |
		awk '/^LEASE/ { print $2 }'
}

status_json() { # status_json PYTHON-EXPRESSION on the switch's status (s)
	"$NESTVM" ctl "$API" status | python3 -c '
import json, sys
s = json.load(sys.stdin)
port = lambda n: next(p for p in s["ports"] if p["name"] == n)
print(eval(sys.argv[1]))' "$1"
}

@test "nat: DHCP by MAC, TCP and UDP to 127.0.0.1 through the gateway, DNS forwarded" {
	start_nat_switch
	join a 02:00:00:00:01:0a
	join b 02:00:00:00:01:0b
	ip_a=$(lease a)
	ip_b=$(lease b)
	echo "a: $ip_a b: $ip_b"
	[[ $ip_a == 169.254.100.* ]] && [[ $ip_b == 169.254.100.* ]] && [ "$ip_a" != "$ip_b" ]
	# the switch's lease table says the same
	[ "$(status_json '[l["ip"] for l in s["nat"]["leases"] if l["mac"] == "02:00:00:00:01:0a"][0]')" = "$ip_a" ]
	[ "$(status_json '[l["state"] for l in s["nat"]["leases"]]')" = "['bound', 'bound']" ]
	# the two clients reach each other through the switch
	in_ns a busybox ping -c 1 -W 5 "$ip_b"

	# TCP: a file from a web server on 127.0.0.1, fetched at the gateway
	echo "through the NAT" > "$D/file.txt"
	(cd "$D" && exec ip netns exec "$HOSTNS" python3 -m http.server $((BASE + 1)) --bind 127.0.0.1 \
		> /dev/null 2>&1) &
	PIDS+=($!)
	wait_listen in_host $((BASE + 1))
	run in_ns a timeout 20 busybox wget -q -O - "http://$GATEWAY:$((BASE + 1))/file.txt"
	[ "$status" -eq 0 ]
	[ "$output" = "through the NAT" ]

	# UDP: an echo server on 127.0.0.1
	ip netns exec "$HOSTNS" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
d, a = s.recvfrom(100)
s.sendto(b"echo " + d, a)' $((BASE + 2)) &
	PIDS+=($!)
	wait_listen in_host $((BASE + 2))
	run in_ns b timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"over udp", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(100)[0].decode())' "$GATEWAY" $((BASE + 2))
	[ "$status" -eq 0 ]
	[ "$output" = "echo over udp" ]

	# DNS: asked at .3, answered by the server resolv.conf names
	ip netns exec "$HOSTNS" python3 tests/kvm/dns-responder.py 127.0.0.1 53 169.254.77.77 > "$D/dns.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do grep -q READY "$D/dns.out" && break; sleep 0.1; done
	run in_ns a timeout 20 busybox nslookup lab-node.test 169.254.100.3
	echo "$output"
	[[ $output == *"169.254.77.77"* ]]
	grep -q "QUERY lab-node.test 1" "$D/dns.out"
	# the NAT runs confined too
	grep -q "^Seccomp:[[:space:]]*2" "/proc/$SWITCH/status"
}

@test "nat: leases are derived from the MAC: the same address after a restart; a forward reaches the client" {
	start_nat_switch
	join a 02:00:00:00:02:0a
	first=$(lease a)
	[[ $first == 169.254.100.* ]]
	stop_switch
	# a new switch, with a forward to the address that MAC gets
	start_nat_switch --forward "tcp:127.0.0.1:$((BASE + 3))-$first:8080"
	rejoin a 02:00:00:00:02:0a
	second=$(lease a)
	echo "first: $first second: $second"
	[ "$first" = "$second" ]
	ip netns exec "nestvm-nat-$$-a" sh -c '(echo "from the client"; sleep 3) | timeout 20 busybox nc -l -p 8080' \
		> "$D/client.got" &
	PIDS+=($!)
	wait_listen in_ns a 8080
	run in_host sh -c "(echo 'from the host'; sleep 2) | timeout 10 busybox nc 127.0.0.1 $((BASE + 3))"
	[ "$status" -eq 0 ]
	[ "$output" = "from the client" ]
	for _ in $(seq 20); do [ -s "$D/client.got" ] && break; sleep 0.1; done
	[ "$(cat "$D/client.got")" = "from the host" ]
	[ "$(status_json 's["nat"]["forwards"][0]["guest_addr"]')" = "$first" ]
}

@test "nat: --nat-restricted passes nothing out, but its forwards work" {
	# the address this MAC gets, from a switch of its own first
	start_nat_switch
	join a 02:00:00:00:03:0a
	addr=$(lease a)
	stop_switch
	start_nat_switch --nat-restricted --forward "tcp:127.0.0.1:$((BASE + 4))-$addr:8080"
	rejoin a 02:00:00:00:03:0a
	[ "$(lease a)" = "$addr" ]
	(cd "$D" && exec ip netns exec "$HOSTNS" python3 -m http.server $((BASE + 5)) --bind 127.0.0.1 \
		> /dev/null 2>&1) &
	PIDS+=($!)
	wait_listen in_host $((BASE + 5))
	# the same fetch that works without restriction fails here
	run in_ns a timeout 10 busybox wget -q -T 5 -O - "http://$GATEWAY:$((BASE + 5))/"
	[ "$status" -ne 0 ]
	ip netns exec "nestvm-nat-$$-a" sh -c '(echo "inside"; sleep 3) | timeout 20 busybox nc -l -p 8080' > /dev/null &
	PIDS+=($!)
	wait_listen in_ns a 8080
	run in_host sh -c "(echo hi; sleep 2) | timeout 10 busybox nc 127.0.0.1 $((BASE + 4))"
	[ "$output" = "inside" ]
	[ "$(status_json 's["nat"]["restricted"]')" = "True" ]
}

@test "nat: unicast flooded to the NAT port for another client is not taken by the NAT" {
	# With MACs aging after 1 s, a ping between two idle clients is
	# flooded, the NAT port included; libslirp must not see it (it would
	# answer in the other client's name, or ping that address from here).
	start_nat_switch --aging 1
	join a 02:00:00:00:04:0a
	join b 02:00:00:00:04:0b
	lease a > /dev/null
	ip_b=$(lease b)
	in_ns a busybox ping -c 1 -W 5 "$ip_b"
	sleep 3
	[ "$(status_json 'len(s["macs"])')" -eq 0 ] # both aged out
	run in_ns a busybox ping -c 3 -W 5 "$ip_b"
	[ "$status" -eq 0 ]
	[[ $output == *"3 packets received"* ]]
	[ "$(status_json 's["nat"]["not_for_nat"]')" -gt 0 ]
}

@test "nat: more than libslirp's 16 clients get leases, each its own, stable when asked again" {
	start_nat_switch --mac-limit 64
	run timeout 60 python3 "$CLIENT" dhcp "$API" "$SW" 40
	echo "$output" | cut -c 1-300
	[ "$status" -eq 0 ]
	[[ $output == *"leases: 40 distinct: 40"* ]]
	[[ $output != *"address changed"* ]]
	[[ $output == *"request for another address: 6"* ]] # a NAK
}

@test "nat: bad options get one-line errors" {
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --nat=10.0.2.0
	assert_one_line_error "--nat=10.0.2.0: expected an IPv4 subnet"
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --nat=10.0.2.1/24
	assert_one_line_error "host bits are set"
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --nat=10.0.2.0/30
	assert_one_line_error "N from 8 to 27"
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --nat --forward tcp:1.2.3.4:22
	assert_one_line_error "--forward tcp:1.2.3.4:22: expected"
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --forward tcp:127.0.0.1:2222-10.0.2.15:22
	assert_one_line_error "--forward: needs --nat"
	# a forward whose host port is taken
	python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(5)' \
		$((BASE + 6)) &
	PIDS+=($!)
	wait_listen $((BASE + 6))
	run --separate-stderr "$NESTVM" switch --socket "$D/s" --nat --forward "tcp:127.0.0.1:$((BASE + 6))-10.0.2.15:22"
	assert_one_line_error "--forward tcp:127.0.0.1:$((BASE + 6))*cannot listen"
}
