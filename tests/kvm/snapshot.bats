#!/usr/bin/env bats
# The control API, pause/resume, shutdown and snapshot/restore on this
# machine's /dev/kvm, with the test guest counting on its console
# (test=count). Linux guests and nested state: tests/labhost/snapshot.bats.
bats_require_minimum_version 1.5.0
load helpers

setup() {
	require_kvm
	SOCK=$BATS_TEST_TMPDIR/api.sock
}

teardown() {
	[ -n "${VM:-}" ] && kill -9 "$VM" 2> /dev/null
	true
}

start_counter() { # start_counter CONSOLE [ARGS...]: count in the background
	local out=$1
	shift
	"$NESTVM" run --kernel "$GUEST" --test-device --cmdline "test=count" --api-socket "$SOCK" \
		--console "file:$out" "$@" < /dev/null 2> "$BATS_TEST_TMPDIR/vm.err" &
	VM=$!
	wait_for "$out" "count 3"
}

wait_for() { # wait_for FILE TEXT: up to 30 s
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q "$2" "$1" 2> /dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1"
	return 1
}

last_count() {
	grep '^count [0-9]' "$1" | tail -n 1 | cut -d' ' -f2
}

ctl() {
	run --separate-stderr timeout 60 "$NESTVM" ctl "$SOCK" "$@"
}

@test "snapshot, SIGKILL, restore: the count goes on where it stopped, without a new boot; the UUID stays" {
	local uuid=6a0c1b7e-2f3d-4e5a-9b8c-7d6e5f4a3b2c
	start_counter "$BATS_TEST_TMPDIR/a.out" --uuid $uuid
	ctl status
	[[ $output == *'"uuid":"'$uuid'"'* ]]
	local before at
	before=$(last_count "$BATS_TEST_TMPDIR/a.out")
	ctl snapshot "$BATS_TEST_TMPDIR/snap"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == '{"ok":true,"dir":"'"$BATS_TEST_TMPDIR/snap"'",'* ]]
	at=$(last_count "$BATS_TEST_TMPDIR/a.out")
	kill -9 $VM
	wait $VM || true
	VM=
	# only used memory is stored: a 512 MiB guest, a few pages in use
	[ "$(du -k "$BATS_TEST_TMPDIR/snap/memory.bin" | cut -f1)" -lt 4096 ]
	grep -q '"uuid": *"'$uuid'"' "$BATS_TEST_TMPDIR/snap/manifest.json"
	timeout 60 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console "file:$BATS_TEST_TMPDIR/b.out" \
		--api-socket "$SOCK" < /dev/null &
	VM=$!
	wait_for "$BATS_TEST_TMPDIR/b.out" "count $((at + 3))"
	ctl status
	[[ $output == *'"uuid":"'$uuid'"'* ]]
	kill $VM
	wait $VM || true
	VM=
	head -n 3 "$BATS_TEST_TMPDIR/b.out"
	! grep -q "count start" "$BATS_TEST_TMPDIR/b.out"
	# the first line after the restore follows the count at the snapshot,
	# which lies between the counts seen before and after asking for it (a
	# slow host, such as the lab host, counts on while the reply travels)
	local first
	first=$(head -n 1 "$BATS_TEST_TMPDIR/b.out" | cut -d' ' -f2)
	echo "before=$before at=$at first=$first"
	[ "$first" -ge "$before" ] && [ "$first" -le "$((at + 1))" ]
}

@test "while a guest runs, every nestvm thread is confined by seccomp (Seccomp: 2)" {
	truncate -s 1M "$BATS_TEST_TMPDIR/d.img"
	start_counter "$BATS_TEST_TMPDIR/a.out" --cpus 2 --disk "$BATS_TEST_TMPDIR/d.img"
	local t n=0 modes=""
	for t in /proc/$VM/task/*; do
		modes+="$(basename "$t"):$(awk '/^Seccomp:/ { print $2 }' "$t/status") "
		n=$((n + 1))
	done
	echo "threads: $modes"
	# main, two vCPUs and the disk's worker at least
	[ "$n" -ge 4 ]
	[[ $modes != *":0 "* ]] && [[ $modes != *":1 "* ]]
	# ... and the guest still counts, and the API still answers
	wait_for "$BATS_TEST_TMPDIR/a.out" "count 8"
	ctl snapshot "$BATS_TEST_TMPDIR/snap"
	echo "$output"
	[ "$status" -eq 0 ]
	ctl shutdown --timeout 1
	[ "$status" -eq 0 ]
	wait $VM
	VM=
	! grep -q seccomp "$BATS_TEST_TMPDIR/vm.err"
}

@test "pause stops the guest, resume lets it go on; status reports it" {
	start_counter "$BATS_TEST_TMPDIR/a.out"
	ctl pause
	[ "$output" = '{"ok":true,"state":"paused"}' ]
	local at
	at=$(last_count "$BATS_TEST_TMPDIR/a.out")
	sleep 1
	[ "$(last_count "$BATS_TEST_TMPDIR/a.out")" = "$at" ]
	ctl status
	[[ $output == '{"ok":true,"state":"paused","vcpus":1,'* ]]
	ctl resume
	[ "$output" = '{"ok":true,"state":"running"}' ]
	wait_for "$BATS_TEST_TMPDIR/a.out" "count $((at + 3))"
}

@test "shutdown: a guest that ignores the power button is stopped after the timeout" {
	start_counter "$BATS_TEST_TMPDIR/a.out"
	ctl shutdown --timeout 1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = '{"ok":true,"result":"stopped-after-timeout"}' ]
	wait $VM
	VM=
}

@test "a control client that never reads its replies is dropped; shutdown still works" {
	start_counter "$BATS_TEST_TMPDIR/a.out"
	# Thousands of requests, no reads: once its socket is full, the old
	# main loop blocked in send() for ever (no signals, no API, no exit).
	python3 - "$SOCK" > "$BATS_TEST_TMPDIR/hog.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(20)
sent = 0
try:
    for _ in range(40000):
        s.sendall(b'{"command":"status"}\n')
        sent += 1
except OSError as e:
    print("hog: stopped after", sent, "requests:", e)
time.sleep(30)
PY
	local hog=$!
	sleep 3
	ctl shutdown --timeout 1
	echo "$output"
	kill $hog 2> /dev/null || true
	wait $hog || true
	cat "$BATS_TEST_TMPDIR/hog.out"
	[ "$status" -eq 0 ]
	[ "$output" = '{"ok":true,"result":"stopped-after-timeout"}' ]
	wait $VM
	VM=
	grep -q "a client that does not read its replies was dropped" "$BATS_TEST_TMPDIR/vm.err"
}

@test "bad requests get a JSON error; a dead socket a one-line error" {
	start_counter "$BATS_TEST_TMPDIR/a.out"
	ctl reboot-now
	[ "$status" -eq 1 ]
	[[ $output == '{"ok":false,"error":"unknown command \"reboot-now\"'* ]]
	run bash -c "printf '{not json\n' | timeout 5 socat - UNIX-CONNECT:$SOCK 2>/dev/null || printf '{not json\n' | timeout 5 python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read()); print(s.recv(4096).decode().strip())' $SOCK"
	echo "$output"
	[[ $output == '{"ok":false,"error":"the request is not valid JSON"}' ]]
	ctl snapshot
	[ "$status" -eq 2 ]
	kill $VM
	wait $VM || true
	VM=
	ctl status
	[ "$status" -eq 1 ]
	[[ $stderr == "nestvm: ctl $SOCK: cannot connect: "* ]]
}

@test "a save that dies midway leaves the earlier snapshot whole; a foreign directory is refused" {
	start_counter "$BATS_TEST_TMPDIR/a.out"
	ctl snapshot "$BATS_TEST_TMPDIR/snap"
	[ "$status" -eq 0 ]
	kill -9 $VM
	wait $VM || true
	VM=
	# A second VM whose file size limit kills it (SIGXFSZ) while it writes
	# its memory file: a crash in the middle of replacing the snapshot.
	(
		ulimit -f 64
		start_counter "$BATS_TEST_TMPDIR/b.out"
		timeout 60 "$NESTVM" ctl "$SOCK" snapshot "$BATS_TEST_TMPDIR/snap" || true
		wait $VM || true
	)
	ls -la "$BATS_TEST_TMPDIR/snap"
	timeout 60 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console "file:$BATS_TEST_TMPDIR/c.out" \
		< /dev/null 2> "$BATS_TEST_TMPDIR/c.err" &
	VM=$!
	wait_for "$BATS_TEST_TMPDIR/c.out" "count 5" || { cat "$BATS_TEST_TMPDIR/c.err"; false; }
	kill $VM # timeout passes SIGTERM on to nestvm (SIGKILL would orphan it)
	wait $VM || true
	VM=
	# A directory that holds anything else is never written into.
	mkdir "$BATS_TEST_TMPDIR/mine"
	echo keep > "$BATS_TEST_TMPDIR/mine/notes.txt"
	start_counter "$BATS_TEST_TMPDIR/d.out"
	ctl snapshot "$BATS_TEST_TMPDIR/mine"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"holds files that are not a nestvm snapshot's"* ]]
	[ "$(cat "$BATS_TEST_TMPDIR/mine/notes.txt")" = keep ]
	[ ! -e "$BATS_TEST_TMPDIR/mine/state.bin" ]
	# the refused save left nothing beside it (the killed one left its
	# work directory, DIR.partial-PID, which the README mentions)
	[ -z "$(ls -d "$BATS_TEST_TMPDIR"/mine.partial-* 2> /dev/null)" ]
	ls -d "$BATS_TEST_TMPDIR"/snap.partial-*
}

@test "a snapshot someone else made opens no disk without --trust" {
	truncate -s 4M "$BATS_TEST_TMPDIR/d.img"
	start_counter "$BATS_TEST_TMPDIR/a.out" --disk "$BATS_TEST_TMPDIR/d.img"
	ctl snapshot "$BATS_TEST_TMPDIR/snap"
	kill -9 $VM
	wait $VM || true
	VM=
	[ -s "$BATS_TEST_TMPDIR/snap/manifest.sig" ]
	# A crafted manifest names another file of the user's (same size and
	# content, so the fingerprint matches): restore must not hand it to
	# the guest read-write.
	cp "$BATS_TEST_TMPDIR/d.img" "$BATS_TEST_TMPDIR/victim.img"
	cp -r "$BATS_TEST_TMPDIR/snap" "$BATS_TEST_TMPDIR/evil"
	sed -i "s|$BATS_TEST_TMPDIR/d.img|$BATS_TEST_TMPDIR/victim.img|" "$BATS_TEST_TMPDIR/evil/manifest.json"
	run --separate-stderr timeout 30 "$NESTVM" restore "$BATS_TEST_TMPDIR/evil" --console none
	assert_one_line_error "snapshot $BATS_TEST_TMPDIR/evil: it was not made by this user's nestvm (no valid signature with"
	[[ $stderr == *"first $BATS_TEST_TMPDIR/victim.img; check them, then restore with --trust" ]]
	# Another user's key: the genuine snapshot is foreign too.
	run --separate-stderr env XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/other-user" \
		timeout 30 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console none
	[[ $stderr == *"it was not made by this user's nestvm"* ]]
	# The user vouches for it: it runs (until timeout stops it).
	run --separate-stderr timeout 5 "$NESTVM" restore "$BATS_TEST_TMPDIR/evil" --console none --trust
	[ "$status" -eq 124 ]
	# Our own snapshot restores as before.
	run --separate-stderr timeout 5 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console none
	[ "$status" -eq 124 ]
}

@test "corrupted, truncated or wrong-version snapshots are refused with one line" {
	start_counter "$BATS_TEST_TMPDIR/a.out" --rng
	ctl snapshot "$BATS_TEST_TMPDIR/good"
	kill -9 $VM
	wait $VM || true
	VM=
	local s=$BATS_TEST_TMPDIR/bad
	restore() {
		run --separate-stderr timeout 30 "$NESTVM" restore "$s" --console none
	}
	cp -r "$BATS_TEST_TMPDIR/good" "$s"
	printf '\xff' | dd of="$s/state.bin" bs=1 seek=200 conv=notrunc 2> /dev/null
	restore
	assert_one_line_error "state.bin is corrupted or truncated (checksum mismatch)"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	truncate -s 4096 "$s/state.bin"
	restore
	assert_one_line_error "state.bin is corrupted or truncated"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	truncate -s 1M "$s/memory.bin"
	restore
	assert_one_line_error "memory.bin is truncated or the wrong size"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# Crafted snapshots, checksums made to match: each device record is its
	# kind, then its fields; each device's load refuses what its own code
	# could not have produced.
	craft() { # KIND OFFSET BYTE: sets the byte at OFFSET in KIND's fields
		python3 - "$s" "$@" <<'PY'
import json, struct, sys
d, kind, at, value = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3], 0), int(sys.argv[4], 0)
data = bytearray(open(d + "/state.bin", "rb").read())
off = 16  # the file header
while off + 16 <= len(data):
    tag, index, length = struct.unpack_from("<IIQ", data, off)
    body = off + 16
    if tag == 40 and data[body] == len(kind) and data[body + 1:body + 1 + len(kind)] == kind:
        data[body + 1 + len(kind) + at] = value
    off += 16 + length
h = 0xcbf29ce484222325
for b in data:
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
open(d + "/state.bin", "wb").write(data)
m = json.load(open(d + "/manifest.json"))
m["files"]["state.bin"]["fnv1a64"] = "%016x" % h
json.dump(m, open(d + "/manifest.json", "w"))
PY
	}
	# An RTC index past the CMOS array (the guest's next access would
	# write outside it).
	craft rtc 0 255
	restore
	assert_one_line_error "state.bin is corrupted (RTC: index 255 out of range)"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# A flag (the UART's THR interrupt) that is neither 0 nor 1.
	craft serial 9 2
	restore
	assert_one_line_error "state.bin is corrupted (COM1: a flag holds 2 (not 0 or 1))"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# The receive FIFO's head past its end (9 registers, a flag, 64 bytes).
	craft serial 74 200
	restore
	assert_one_line_error "state.bin is corrupted (COM1: receive FIFO at 200"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# The RNG's PCI vendor ID changed: not this machine's device.
	craft pci-bus 5 0x12
	restore
	assert_one_line_error "configuration space a guest could not have written"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# A virtio status bit the transport does not know.
	craft virtio-rng 20 0x20
	restore
	assert_one_line_error "state.bin is corrupted (--rng: unknown status bits 0x20)"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	# The RNG's MSI-X enable bit set in its configuration space but not in
	# its transport state.
	craft pci-bus 0x48 0x80
	restore
	assert_one_line_error "state.bin is corrupted (--rng: MSI-X state differs from the configuration space's)"
	rm -rf "$s" && cp -r "$BATS_TEST_TMPDIR/good" "$s"
	sed -i 's/"version":2/"version":99/' "$s/manifest.json"
	restore
	assert_one_line_error "format version 99; this nestvm reads version 2"
	echo '{"format":' > "$s/manifest.json"
	restore
	assert_one_line_error "manifest.json is corrupted"
	rm -rf "$s"
	restore
	assert_one_line_error "not a nestvm snapshot (no manifest.json)"
}

@test "a snapshot belongs to its disks: a changed or missing disk is refused unless --force" {
	truncate -s 4M "$BATS_TEST_TMPDIR/d.img"
	echo "disk data" | dd of="$BATS_TEST_TMPDIR/d.img" conv=notrunc 2> /dev/null
	start_counter "$BATS_TEST_TMPDIR/a.out" --disk "$BATS_TEST_TMPDIR/d.img"
	ctl snapshot "$BATS_TEST_TMPDIR/snap"
	kill -9 $VM
	wait $VM || true
	VM=
	grep -q '"fingerprint"' "$BATS_TEST_TMPDIR/snap/manifest.json"
	echo "changed" | dd of="$BATS_TEST_TMPDIR/d.img" bs=1 seek=8192 conv=notrunc 2> /dev/null
	run --separate-stderr timeout 30 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console none
	assert_one_line_error "disk $BATS_TEST_TMPDIR/d.img changed since the snapshot (content); restore with --force"
	run --separate-stderr timeout 5 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console none --force
	[ "$status" -eq 124 ] # it runs (the guest counts) until timeout stops it
	[[ $stderr == *"changed since the snapshot; restoring anyway (--force)"* ]]
	mv "$BATS_TEST_TMPDIR/d.img" "$BATS_TEST_TMPDIR/moved.img"
	run --separate-stderr timeout 30 "$NESTVM" restore "$BATS_TEST_TMPDIR/snap" --console none
	assert_one_line_error "disk $BATS_TEST_TMPDIR/d.img is missing or unreadable"
}

@test "a linked clone's snapshot belongs to its template too: a template modified since is refused unless --force" {
	local t=$BATS_TEST_TMPDIR
	qemu-img create -q -f qcow2 "$t/t.qcow2" 4M
	qemu-io -c 'write -P 0x11 0 1M' "$t/t.qcow2" > /dev/null
	qemu-img create -q -f qcow2 -b t.qcow2 -F qcow2 "$t/clone.qcow2"
	start_counter "$t/a.out" --disk "$t/clone.qcow2"
	ctl snapshot "$t/snap"
	kill -9 $VM
	wait $VM || true
	VM=
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["machine"]["disks"][0]; assert [b["path"] for b in d["backing"]] == [sys.argv[2]], d' \
		"$t/snap/manifest.json" "$t/t.qcow2"
	# the chain as it was: it runs (the guest counts) until timeout stops it
	run --separate-stderr timeout 5 "$NESTVM" restore "$t/snap" --console none
	[ "$status" -eq 124 ]
	# a copy in its place, the same bytes and time: another file
	cp -p "$t/t.qcow2" "$t/t.copy"
	mv "$t/t.qcow2" "$t/t.orig"
	mv "$t/t.copy" "$t/t.qcow2"
	run --separate-stderr timeout 30 "$NESTVM" restore "$t/snap" --console none
	assert_one_line_error "disk $t/clone.qcow2: backing file $t/t.qcow2 was replaced by another file since the snapshot"
	mv "$t/t.orig" "$t/t.qcow2"
	qemu-io -c 'write -P 0x22 0 4k' "$t/t.qcow2" > /dev/null
	run --separate-stderr timeout 30 "$NESTVM" restore "$t/snap" --console none
	assert_one_line_error "disk $t/clone.qcow2: backing file $t/t.qcow2 was modified since the snapshot; restore with --force"
	run --separate-stderr timeout 5 "$NESTVM" restore "$t/snap" --console none --force
	[ "$status" -eq 124 ]
	[[ $stderr == *"backing file $t/t.qcow2 was modified since the snapshot; restoring anyway (--force)"* ]]
}
