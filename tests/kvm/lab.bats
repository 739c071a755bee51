#!/usr/bin/env bats
# nestvm lab on this machine's /dev/kvm: a two-node lab of test guests
# (test=count) on a NAT network, each node a linked clone of the
# template's disk; up, status, down, up again. Linux nodes: tier 2.
bats_require_minimum_version 1.5.0
load helpers

teardown() {
	# nothing of the lab may outlive its test
	[ -n "${LAB:-}" ] && "$NESTVM" lab down "$LAB" --state-dir "$BATS_TEST_TMPDIR/st" --timeout 1 \
		> /dev/null 2>&1
	pkill -9 -f "$BATS_TEST_TMPDIR/st" 2> /dev/null
	pkill -9 -f "$BATS_TEST_TMPDIR/far" 2> /dev/null
	true
}

write_lab() { # write_lab FILE
	echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2m1kXQ1bY3nY8Yx3i0kTQnW2p9kq2tJQ0w7m1c9Lab lab@test" \
		> "$BATS_TEST_TMPDIR/key.pub"
	cat > "$1" <<YAML
name: pair
ssh_keys: [$BATS_TEST_TMPDIR/key.pub]
templates:
  tiny: {kernel: $PWD/$GUEST, cmdline: "test=count", disk: $BATS_TEST_TMPDIR/tpl.qcow2,
         identity: cloud-init}
networks:
  lan: {nat: 169.254.88.0/24}
nodes:
  a: {template: tiny, memory: 128M, nics: [{network: lan}], health: {console: "count 2"}}
  b: {template: tiny, memory: 128M, depends_on: [a], nics: [{network: lan}],
      health: {console: "count 2"}}
YAML
}

lab() {
	"$NESTVM" lab "$1" "$LAB" --state-dir "$BATS_TEST_TMPDIR/st" "${@:2}"
}

@test "lab up, status, down, up, reset: nodes healthy in order, distinct identities that stay, linked clones, fresh disks after reset, nothing left behind" {
	require_kvm
	local t=$BATS_TEST_TMPDIR
	LAB=$t/lab.yaml
	qemu-img create -q -f qcow2 "$t/tpl.qcow2" 16M
	write_lab "$LAB"
	run --separate-stderr lab up
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'a: up\nb: up')" ]
	lab status --json > "$t/s1.json"
	cat "$t/s1.json"
	python3 - "$t/s1.json" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
nodes = {n["name"]: n for n in s["nodes"]}
assert set(nodes) == {"a", "b"}, nodes
for n in nodes.values():
    assert n["state"] == "running" and n["pid"] > 0, n
    assert len(n["macs"]) == 1 and int(n["macs"][0][:2], 16) & 3 == 2, n
    assert "count 2" in open(n["console_log"]).read(), n
    assert n["uuid"][14] == "5", n
assert nodes["a"]["uuid"] != nodes["b"]["uuid"]
assert nodes["a"]["macs"] != nodes["b"]["macs"]
assert [x["state"] for x in s["networks"]] == ["running"]
PY
	# each node is a linked clone of the template, and says its UUID itself
	qemu-img info -U "$t/st/pair/a.qcow2" | grep -q "backing file: $t/tpl.qcow2"
	local uuid_a pid_a
	uuid_a=$(python3 -c 'import json,sys; print([n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]=="a"][0]["uuid"])' "$t/s1.json")
	pid_a=$(python3 -c 'import json,sys; print([n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]=="a"][0]["pid"])' "$t/s1.json")
	"$NESTVM" ctl "$t/st/pair/a.api" status | grep -q "\"uuid\":\"$uuid_a\""
	# a's cloud-init seed disk (read by isoinfo, not by nestvm): its UUID as
	# the instance id, its name, the lab's key, its NIC by MAC with DHCP
	local mac_a seed=$t/st/pair/a.cidata.iso
	mac_a=$(python3 -c 'import json,sys; print([n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]=="a"][0]["macs"][0])' "$t/s1.json")
	isoinfo -d -i "$seed" | grep -q "Volume id: CIDATA"
	[ "$(isoinfo -R -i "$seed" -x /meta-data)" = "$(printf 'instance-id: %s\nlocal-hostname: a' "$uuid_a")" ]
	isoinfo -R -i "$seed" -x /user-data | grep -qx '  - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2m1kXQ1bY3nY8Yx3i0kTQnW2p9kq2tJQ0w7m1c9Lab lab@test"'
	isoinfo -R -i "$seed" -x /network-config | grep -qx "    mac_address: \"$mac_a\""
	isoinfo -R -i "$seed" -x /network-config | grep -qx "    subnets: \[{type: dhcp}\]"
	"$NESTVM" ctl "$t/st/pair/a.api" status | grep -q 'a.cidata.iso'
	# up again: nothing restarts
	run --separate-stderr lab up
	[ "$status" -eq 0 ]
	lab status --json | grep -q "\"name\":\"a\",\"state\":\"running\",\"pid\":$pid_a,"
	# down: the test guest ignores the power button, so after 1 s it is
	# stopped; b depends on a, so b goes first
	run --separate-stderr lab down --timeout 1
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'b: down (stopped after the timeout)\na: down (stopped after the timeout)')" ]
	[[ $stderr == *"2 of 2 nodes did not power off within 1 s and were stopped"* ]]
	! pgrep -f "$t/st/pair" > /dev/null
	[ -z "$(find "$t/st" -type s)" ]
	lab status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert all(n["state"] == "stopped" for n in s["nodes"] + s["networks"]), s'
	# up again: the same identities, the disks kept
	lab up
	lab status --json > "$t/s2.json"
	python3 - "$t/s1.json" "$t/s2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
ids = lambda s: {n["name"]: (n["uuid"], n["macs"]) for n in s["nodes"]}
assert ids(a) == ids(b), (ids(a), ids(b))
PY
	# reset: a's disk goes back to its template's, its identity stays
	lab down --timeout 1 2> /dev/null
	qemu-io -c 'write -P 0x77 0 64k' "$t/st/pair/a.qcow2" > /dev/null
	lab up > /dev/null
	qemu-io -U -r -c 'read -P 0x77 0 64k' "$t/st/pair/a.qcow2" | grep -q "^read 65536/65536"
	run --separate-stderr lab reset a
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "a: reset, up" ]
	run qemu-io -U -r -c 'read -P 0 0 64k' "$t/st/pair/a.qcow2"
	echo "$output"
	[[ $output == *"read 65536/65536"* ]] && [[ $output != *"verification failed"* ]]
	lab status --json > "$t/s3.json"
	python3 - "$t/s1.json" "$t/s3.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
ids = lambda s: {n["name"]: (n["uuid"], n["macs"]) for n in s["nodes"]}
assert ids(a) == ids(b), (ids(a), ids(b))
assert all(n["state"] == "running" for n in b["nodes"]), b
PY
	run --separate-stderr lab reset nosuch
	assert_one_line_error "no node nosuch in $LAB"
	lab down --timeout 1 2> /dev/null
	! pgrep -f "$t/st/pair" > /dev/null
}

# last_count FILE: the last "count N" line's N in a console log.
last_count() {
	grep -a '^count [0-9]*$' "$1" | tail -n 1 | cut -d' ' -f2
}

@test "lab console and snapshot: keys reach a node and its answer comes back, one client at a time; save and restore bring every node back going on from the save, disks too" {
	require_kvm
	local t=$BATS_TEST_TMPDIR
	LAB=$t/lab.yaml
	qemu-img create -q -f qcow2 "$t/tpl.qcow2" 16M
	cat > "$LAB" <<YAML
name: cons
templates:
  counter: {kernel: $PWD/$GUEST, cmdline: "test=count", disk: $t/tpl.qcow2}
  echo: {kernel: $PWD/$GUEST, cmdline: "test=echo"}
networks:
  lan: {}
nodes:
  c: {template: counter, memory: 64M, nics: [{network: lan}], health: {console: "count 1"}}
  e: {template: echo, memory: 64M, health: {console: "echo ready"}}
YAML
	lab up
	# the console: a line typed reaches the guest, its answer comes back
	# (and is in the console log too)
	run --separate-stderr bash -c "{ printf 'hello lab\n'; source tests/kvm/helpers.bash; wait_in '$t/st/cons/e.console' 'echo: hello lab'; sleep 0.5; } | '$NESTVM' lab console '$LAB' e --state-dir '$t/st'"
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == *"echo: hello lab"* ]]
	grep -q "echo: hello lab" "$t/st/cons/e.console"
	# a second client while one is attached is turned away
	{ printf 'first\n'; sleep 5; } | "$NESTVM" lab console "$LAB" e --state-dir "$t/st" > "$t/first.out" 2>&1 &
	wait_in "$t/first.out" "echo: first" # attached
	run --separate-stderr bash -c "sleep 1 | '$NESTVM' lab console '$LAB' e --state-dir '$t/st'"
	assert_one_line_error "the console is in use by another client"
	[ -z "$output" ] # the refusal is not shown as the guest's output
	wait
	run --separate-stderr lab console nosuch
	assert_one_line_error "lab cons: no node nosuch has run"
	# Ctrl-A x on a terminal (script(1) gives one) leaves; the node runs on
	local log=$t/tty.log
	: > "$log"
	{
		wait_in "$log" "connected; Ctrl-A x leaves"
		printf 'typed\r'
		wait_in "$log" "echo: typed"
		printf '\001x'
		wait_in "$log" on-tty-done
	} | timeout 60 script -qefc "$NESTVM lab console $LAB e --state-dir $t/st; echo status=\$?; echo on-tty-done" "$log" > /dev/null
	cat "$log"
	grep -aq "echo: typed" "$log"
	grep -aq "left the console; the VM goes on" "$log"
	grep -aq "status=0" "$log"
	lab status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert all(n["state"] == "running" for n in s["nodes"]), s'

	# a snapshot of the whole lab, then c's disk written behind its back
	# (as a lab exercise would) and counting on
	local before after first
	before=$(last_count "$t/st/cons/c.console")
	run --separate-stderr lab snapshot save s1
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == "saved 2 nodes into $t/st/cons/snapshots/s1 in "* ]]
	after=$(last_count "$t/st/cons/c.console")
	[ -f "$t/st/cons/snapshots/s1/c.qcow2" ]
	run --separate-stderr lab snapshot save s1
	assert_one_line_error "this snapshot exists"
	[ "$(lab snapshot list)" = "s1" ]
	sleep 3
	[ "$(last_count "$t/st/cons/c.console")" -gt "$((after + 3))" ]
	local pid_c
	pid_c=$(python3 -c 'import json,sys; print([n for n in json.load(sys.stdin)["nodes"] if n["name"]=="c"][0]["pid"])' < <(lab status --json))
	# restore: every node comes back running, counting on from the save
	run --separate-stderr lab snapshot restore s1
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == *"c: restored"* ]] && [[ $output == *"e: restored"* ]]
	! kill -0 "$pid_c" 2> /dev/null
	sleep 2
	# (the restored node's first count: where the count steps back, since
	# the node ran on after the save until the restore stopped it)
	first=$(awk '/^count [0-9]+$/ { v = $2 + 0; if (seen && v <= prev) { print v; exit } prev = v; seen = 1 }' "$t/st/cons/c.console")
	echo "before=$before after=$after first-after-restore=$first"
	[ "$first" -gt "$before" ] && [ "$first" -le "$((after + 1))" ]
	# the disk is the one saved with it: byte for byte
	cmp "$t/st/cons/c.qcow2" "$t/st/cons/snapshots/s1/c.qcow2"
	lab status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert all(n["state"] == "running" for n in s["nodes"]), s'
	# the echo node answers on its console after the restore too
	run --separate-stderr bash -c "{ printf 'again\n'; source tests/kvm/helpers.bash; wait_in '$t/st/cons/e.console' 'echo: again'; sleep 0.5; } | '$NESTVM' lab console '$LAB' e --state-dir '$t/st'"
	[[ $output == *"echo: again"* ]]
	run --separate-stderr lab snapshot restore nosuch
	assert_one_line_error "no snapshot nosuch"
	run --separate-stderr lab snapshot save ../x
	assert_one_line_error "expected a snapshot name"
	lab snapshot delete s1
	[ -z "$(lab snapshot list)" ]
	lab down --timeout 1 2> /dev/null
	! pgrep -f "$t/st/cons" > /dev/null
	[ -z "$(find "$t/st" -type s)" ]
}

@test "lab wiring: a NIC's VLAN, trunk and MAC policy on a port of its own, a VXLAN uplink to another switch, extra disks kept until reset" {
	require_kvm
	local t=$BATS_TEST_TMPDIR pa pb
	pa=$((47000 + RANDOM % 900)) pb=$((pa + 1000))
	LAB=$t/lab.yaml
	qemu-img create -q -f qcow2 "$t/data.qcow2" 8M
	# Across the VXLAN uplink: a switch of its own with a raw client that
	# answers the first untagged hello it gets
	"$NESTVM" switch --socket "$t/far" --api-socket "$t/far.api" \
		--vxlan "127.0.0.1:$pa,vni=77,local=127.0.0.1:$pb" 2> "$t/far.err" &
	local far=$!
	for _ in $(seq 50); do [ -S "$t/far.api" ] && break; sleep 0.1; done
	python3 tests/kvm/switch-client.py reply "$t/far.api" "$t/far" > "$t/client.out" &
	local client=$!
	# a says hello on VLAN 10, b answers there; c listens on VLAN 20 and
	# hears nothing; d says hello untagged, which only the far client answers
	cat > "$LAB" <<YAML
name: wires
templates:
  hello: {kernel: $PWD/$GUEST, cmdline: "test=virtio-net"}
  answer: {kernel: $PWD/$GUEST, cmdline: "test=virtio-net answer=1"}
networks:
  lan: {vxlan: {remote: "127.0.0.1:$pb", vni: 77, local: "127.0.0.1:$pa"}}
nodes:
  b: {template: answer, memory: 64M, nics: [{network: lan, vlan: 10}], health: {console: "mac "}}
  c: {template: answer, memory: 64M, nics: [{network: lan, vlan: 20, policy: strict}, {network: lan, trunk: 30-39}],
      disks: [{size: 64M}, {image: $t/data.qcow2}], health: {console: "mac "}}
  a: {template: hello, memory: 64M, depends_on: [b, c], nics: [{network: lan, vlan: 10}],
      health: {console: "mac "}}
  d: {template: hello, memory: 64M, depends_on: [b, c], nics: [{network: lan}], health: {console: "mac "}}
YAML
	run --separate-stderr lab up
	echo "$output"; echo "$stderr"
	[ "$status" -eq 0 ]
	local st=$t/st/wires
	wait_in "$st/a.console" "virtio-net: done"
	wait_in "$st/b.console" "virtio-net: done"
	wait_in "$st/d.console" "virtio-net: done"
	sleep 1
	cat "$st"/[abcd].console "$t/client.out"
	grep -q "received 'nestvm tier-1 reply'" "$st/a.console"
	grep -q "received 'nestvm tier-1 reply'" "$st/d.console"
	! grep -q "virtio-net: done" "$st/c.console" # VLAN 20 heard no hello
	wait "$client"
	grep -q "client got 'nestvm tier-1 hello' from $(grep -o 'mac [0-9a-f:]*' "$st/d.console" | cut -d' ' -f2)" \
		"$t/client.out"
	# the ports, as the lab's switch reports them
	run "$NESTVM" ctl "$st/lan.switch-api" status
	echo "$output"
	printf '%s\n' "$output" | python3 -c '
import json, sys
s = json.load(sys.stdin)
p = {x["name"]: x for x in s["ports"]}
assert p["a.eth0"]["vlan"] == 10 and p["b.eth0"]["vlan"] == 10, p
assert p["c.eth0"]["vlan"] == 20 and p["c.eth0"]["policy"] == "strict", p
assert p["c.eth1"]["trunk"] and p["c.eth1"]["vlan"] == 1 and not p["c.eth0"]["trunk"], p
assert "d.eth0" not in p, p
'
	# c's extra disks: a new empty one of 64 MiB, a linked clone of the image
	run lab status --json
	local d1 d2
	d1=$(printf '%s' "$output" | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin)["nodes"] if n["name"]=="c"][0]["disks"][0])')
	d2=$(printf '%s' "$output" | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin)["nodes"] if n["name"]=="c"][0]["disks"][1])')
	[ "$d1" = "$st/c.disk1.qcow2" ] && [ "$d2" = "$st/c.disk2.qcow2" ]
	qemu-img info -U --output=json "$d1" | grep -q '"virtual-size": 67108864'
	qemu-img info -U --output=json "$d2" | grep -q "\"backing-filename\": \"$t/data.qcow2\""
	# kept across down and up; thrown away by reset
	kill "$far"; wait "$far" || true
	lab down --timeout 1
	qemu-io -c 'write -P 0x5a 0 64k' "$d1"
	run --separate-stderr lab up
	[ "$status" -eq 0 ]
	lab down --timeout 1
	qemu-io -c 'read -P 0x5a 0 64k' "$d1" | grep -q "read 65536/65536"
	run lab reset c
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -e "$d1" ] && [ ! -e "$d2" ]
}

@test "lab: bad manifest, unknown action, a lab that is not up" {
	local t=$BATS_TEST_TMPDIR
	printf 'name: x\ntemplates: {t: {kernel: /k}}\nnodes:\n  a: {template: t, colour: red}\n' > "$t/bad.yaml"
	run --separate-stderr "$NESTVM" lab up "$t/bad.yaml" --state-dir "$t/st"
	assert_one_line_error "$t/bad.yaml:4:20: unknown key 'colour' in node a"
	run --separate-stderr "$NESTVM" lab status "$t/bad.yaml" --state-dir "$t/st"
	assert_one_line_error "lab x: not up"
	run --separate-stderr "$NESTVM" lab reboot "$t/bad.yaml"
	assert_one_line_error "unknown action 'reboot'"
	run --separate-stderr "$NESTVM" lab up "$t/none.yaml" --state-dir "$t/st"
	assert_one_line_error "$t/none.yaml: No such file or directory"
	# nestvm template: bad options, before anything is built
	run --separate-stderr "$NESTVM" template build debian
	assert_one_line_error "template: give the directory to build into"
	run --separate-stderr "$NESTVM" template build debian --size 10M "$t/tpl"
	assert_one_line_error "--size 10M: expected a size from 1G to 1T"
	run --separate-stderr "$NESTVM" template build debian --suite 'x;y' "$t/tpl"
	assert_one_line_error "--suite x;y: expected a Debian release name"
	run --separate-stderr "$NESTVM" template build debian --include 'a b' "$t/tpl"
	assert_one_line_error "--include a b: expected package names"
	run --separate-stderr "$NESTVM" template build fedora "$t/tpl"
	assert_one_line_error "template: expected 'build debian|busybox "
	run --separate-stderr "$NESTVM" template build debian --colour "$t/tpl"
	assert_one_line_error "template: unknown option --colour"
	run --separate-stderr "$NESTVM" template build busybox --kernel-dir "$t/nokernel" "$t/tpl"
	assert_one_line_error "template: --kernel-dir $t/nokernel: expected one boot/vmlinuz-*"
	mkdir -p "$t/k/boot" && : > "$t/k/boot/vmlinuz-6.1.0-test"
	run --separate-stderr "$NESTVM" template build busybox --kernel-dir "$t/k" --busybox /nonexistent/busybox "$t/tpl"
	assert_one_line_error "template: --busybox /nonexistent/busybox: No such file or directory"
	printf '#!/bin/sh\n' > "$t/script"
	run --separate-stderr "$NESTVM" template build busybox --kernel-dir "$t/k" --busybox "$t/script" "$t/tpl"
	assert_one_line_error "template: --busybox $t/script: not a static busybox"
	run --separate-stderr "$NESTVM" template build busybox --kernel-dir "$t/k" "$t/tpl"
	assert_one_line_error "template: module virtio_pci not found under $t/k/lib/modules/6.1.0-test/kernel"
	run --separate-stderr "$NESTVM" template build busybox
	assert_one_line_error "template: give the directory to build into"
	[ ! -e "$t/tpl" ]
}
