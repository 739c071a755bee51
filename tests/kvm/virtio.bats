#!/usr/bin/env bats
# virtio devices on this machine's /dev/kvm with the sanitizer build: every
# device is built (PCI, MSI-X irqfds, ioeventfds, worker threads) and torn
# down, the test guest's own virtio-pci driver (guest/virtio.c) drives a
# disk and the RNG through the transport, and bad --disk/--net input is
# refused with one line. Linux's drivers are tier 2.
bats_require_minimum_version 1.5.0
load helpers

@test "disks, a NIC and the RNG are built and torn down cleanly around a guest" {
	require_kvm
	truncate -s 8M "$BATS_TEST_TMPDIR/a.img"
	truncate -s 1M "$BATS_TEST_TMPDIR/b.img"
	chmod 444 "$BATS_TEST_TMPDIR/b.img"
	local nic=()
	# A NIC needs a tap: creating one needs CAP_NET_ADMIN.
	if [ -c /dev/net/tun ] && ip link add nvt-probe type dummy 2> /dev/null; then
		ip link del nvt-probe
		nic=(--net "tap=nvt$$")
	fi
	run_guest --disk "$BATS_TEST_TMPDIR/a.img,serial=A" --disk "$BATS_TEST_TMPDIR/b.img,readonly" \
		"${nic[@]}" --rng --cmdline "test=hello"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	# the image is untouched and unlocked afterwards
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/a.img")" -eq 8388608 ]
	flock -n "$BATS_TEST_TMPDIR/a.img" true
}

@test "the test guest's virtio driver writes, flushes and reads a disk; limits hold" {
	require_kvm
	truncate -s 4M "$BATS_TEST_TMPDIR/a.img"
	run_guest --disk "$BATS_TEST_TMPDIR/a.img,serial=TIER1-DISK" --cmdline "test=virtio-blk"
	echo "$output"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == *"capacity 8192 seg_max 254"* ]]
	[[ $output == *"serial 'TIER1-DISK'"* ]]
	[[ $output == *"ok: a read of seg_max + 1 buffers fails with IOERR"* ]]
	[[ $output == *"virtio-blk: done"* ]]
	[[ $output != *FAILED* ]]
	# What the guest wrote is in the image, at sector 2.
	[ "$(dd if="$BATS_TEST_TMPDIR/a.img" bs=512 skip=2 count=1 2> /dev/null | head -c 34)" = \
		"nestvm tier-1 virtio-blk sector 2 " ]
	[ "$(dd if="$BATS_TEST_TMPDIR/a.img" bs=512 count=2 2> /dev/null | tr -d '\0' | wc -c)" -eq 0 ]
}

@test "qcow2 linked clone: 20 rounds of SIGKILL while the guest writes and flushes; qemu-img check finds leaks at most, every flushed record is there" {
	require_kvm
	local t=$BATS_TEST_TMPDIR
	head -c 2097152 /dev/urandom > "$t/t.raw"
	qemu-img convert -c -O qcow2 "$t/t.raw" "$t/t.qcow2"
	# 4 KiB clusters: new L2 tables and refcount blocks as it goes
	qemu-img create -q -f qcow2 -o cluster_size=4k -b t.qcow2 -F qcow2 "$t/c.qcow2" 64M
	local from=0 round i pid want last leaks=0 ranges=""
	for round in $(seq 1 20); do
		: > "$t/r.out"
		"$NESTVM" run --kernel "$GUEST" --cmdline "test=virtio-blk-records from=$from" \
			--disk "$t/c.qcow2" --console "file:$t/r.out" < /dev/null 2> "$t/r.err" &
		pid=$!
		want=$((20 + RANDOM % 300))
		for ((i = 0; i < 1000; i++)); do
			[ "$(grep -c '^synced [0-9]* ok$' "$t/r.out")" -ge $want ] && break
			sleep 0.01
		done
		kill -9 $pid || { cat "$t/r.err"; false; }
		wait $pid || true
		last=$(grep '^synced [0-9]* ok$' "$t/r.out" | tail -n 1 | cut -d' ' -f2)
		run --separate-stderr qemu-img check --output=json "$t/c.qcow2"
		echo "round $round: records $from-$last, qemu-img check status $status"
		[ "$status" -eq 0 ] || [ "$status" -eq 3 ] # 3: leaked clusters, no corruption
		leaks=$((leaks + $(echo "$output" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("leaks", 0))')))
		if [ -n "$last" ]; then
			ranges="$ranges $from-$last"
			from=$((last + 1))
		fi
	done
	echo "leaked clusters: $leaks; records: $from"
	[ "$from" -ge 400 ]
	qemu-img convert -O raw "$t/c.qcow2" "$t/c.raw"
	python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
for r in sys.argv[2:]:
    lo, hi = map(int, r.split("-"))
    for n in range(lo, hi + 1):
        assert data[n * 512:n * 512 + 15] == b"record %08d" % n, "record %d is missing" % n
' "$t/c.raw" $ranges
}

@test "qcow2: a flush that commits hundreds of new clusters at once, under seccomp (the commit sorts them off the stack)" {
	require_kvm
	local t=$BATS_TEST_TMPDIR i
	# 4 KiB clusters: 8 records a cluster, a batch of 2048 records is 256
	# new L2 entries, 2 KiB to sort: more than glibc's qsort sorts on the
	# stack, so it asks the machine's memory size first (sysinfo)
	qemu-img create -q -f qcow2 -o cluster_size=4k "$t/b.qcow2" 64M
	: > "$t/b.out"
	"$NESTVM" run --kernel "$GUEST" --cmdline "test=virtio-blk-records batch=2048" \
		--disk "$t/b.qcow2" --console "file:$t/b.out" < /dev/null 2> "$t/b.err" &
	local pid=$!
	for ((i = 0; i < 600; i++)); do
		grep -q '^synced 2047 ok$' "$t/b.out" && break
		kill -0 $pid 2> /dev/null || break
		sleep 0.1
	done
	kill -9 $pid || { cat "$t/b.err"; false; }
	wait $pid || true
	grep -q '^synced 2047 ok$' "$t/b.out"
	run --separate-stderr qemu-img check "$t/b.qcow2"
	[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
	qemu-img convert -O raw "$t/b.qcow2" "$t/b.raw"
	[ "$(dd if="$t/b.raw" bs=512 skip=2047 count=1 2> /dev/null | head -c 15)" = "record 00002047" ]
}

@test "nestvm disk clone: two VMs write clones of one template at once; the template in use cannot be written; bad input" {
	require_kvm
	local t=$BATS_TEST_TMPDIR i
	qemu-img create -q -f qcow2 "$t/tpl.qcow2" 16M
	qemu-io -c 'write -P 0x42 0 4M' "$t/tpl.qcow2" > /dev/null
	local before
	before=$(md5sum < "$t/tpl.qcow2")
	"$NESTVM" disk clone "$t/tpl.qcow2" "$t/c1.qcow2" "$t/c2.qcow2"
	qemu-img info "$t/c1.qcow2" | grep -q "backing file: $t/tpl.qcow2"
	# A writes and flushes records until killed; meanwhile B runs on its own clone
	: > "$t/a.out"
	"$NESTVM" run --kernel "$GUEST" --cmdline "test=virtio-blk-records from=4096" \
		--disk "$t/c1.qcow2" --console "file:$t/a.out" < /dev/null 2> "$t/a.err" &
	local pid=$!
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c '^synced [0-9]* ok$' "$t/a.out")" -ge 20 ] && break
		sleep 0.05
	done
	run_guest --disk "$t/c2.qcow2" --cmdline "test=virtio-blk"
	local b_status=$status b_output=$output
	# the template, in use under both clones, is not written by anyone
	run_guest --disk "$t/tpl.qcow2" --cmdline "test=hello"
	local w_status=$status w_stderr=$stderr
	# a clone may still be made of it while VMs use it
	"$NESTVM" disk clone "$t/tpl.qcow2" "$t/c3.qcow2"
	[ "$(grep -c '^synced [0-9]* ok$' "$t/a.out")" -ge 20 ]
	kill -0 $pid # A is still writing
	kill -9 $pid
	wait $pid || true
	echo "$b_output"
	[ "$b_status" -eq 0 ]
	[[ $b_output == *"virtio-blk: done"* ]]
	status=$w_status stderr=$w_stderr assert_one_line_error "in use by another process"
	[ "$(md5sum < "$t/tpl.qcow2")" = "$before" ]
	for c in c1 c2 c3; do
		run qemu-img check "$t/$c.qcow2"
		[ "$status" -eq 0 ] || [ "$status" -eq 3 ] # a killed writer may leak
	done
	qemu-io -c 'read -P 0x42 1M 4k' "$t/c2.qcow2" | grep -q "read 4096"
	[ "$(qemu-io -c 'read -v 4096 16' "$t/c2.qcow2" | grep -c 'nestvm tier-1')" -eq 0 ]
	qemu-img convert -O raw "$t/c2.qcow2" "$t/c2.raw"
	[ "$(dd if="$t/c2.raw" bs=512 skip=2 count=1 2> /dev/null | head -c 34)" = \
		"nestvm tier-1 virtio-blk sector 2 " ]
	qemu-img convert -O raw "$t/c1.qcow2" "$t/c1.raw"
	[ "$(dd if="$t/c1.raw" bs=512 skip=4096 count=1 2> /dev/null | head -c 15)" = "record 00004096" ]
	# bad input: one line each
	run --separate-stderr "$NESTVM" disk clone "$t/none.qcow2" "$t/x.qcow2"
	assert_one_line_error "disk clone $t/none.qcow2: no such file"
	run --separate-stderr "$NESTVM" disk clone "$t/tpl.qcow2" "$t/c1.qcow2"
	assert_one_line_error "cannot create $t/c1.qcow2: File exists"
	run --separate-stderr "$NESTVM" disk clone "$t/tpl.qcow2"
	assert_one_line_error "expected TEMPLATE and at least one CLONE"
	run --separate-stderr "$NESTVM" disk create "$t/e.qcow2"
	assert_one_line_error "expected --size SIZE"
	run --separate-stderr "$NESTVM" disk create --size 12Q "$t/e.qcow2"
	assert_one_line_error "--size 12Q: expected a size"
	run --separate-stderr "$NESTVM" disk shrink "$t/e.qcow2"
	[ "$status" -eq 2 ]
	[[ $stderr == "nestvm: disk: unknown action 'shrink'"* ]]
	"$NESTVM" disk create --size 3M "$t/e.qcow2"
	qemu-img check "$t/e.qcow2"
	qemu-img info "$t/e.qcow2" | grep -q "virtual size: 3 MiB"
}

@test "the test guest's virtio driver reads entropy from the RNG" {
	require_kvm
	run_guest --rng --cmdline "test=virtio-rng"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"ok: two reads of entropy differ and are not zeros"* ]]
	[[ $output == *"virtio-rng: done"* ]]
}

@test "--disk: missing image, read-only image, image in use, bad options" {
	require_kvm
	run_guest --disk "$BATS_TEST_TMPDIR/none.img" --cmdline "test=hello"
	assert_one_line_error "--disk $BATS_TEST_TMPDIR/none.img: no such file"
	truncate -s 1M "$BATS_TEST_TMPDIR/ro.img"
	chmod 444 "$BATS_TEST_TMPDIR/ro.img"
	run_guest --disk "$BATS_TEST_TMPDIR/ro.img" --cmdline "test=hello"
	assert_one_line_error "the image is read-only; add ,readonly"
	run_guest --disk "$BATS_TEST_TMPDIR" --cmdline "test=hello"
	assert_one_line_error "not a regular file or block device"
	truncate -s 1M "$BATS_TEST_TMPDIR/busy.img"
	flock -x "$BATS_TEST_TMPDIR/busy.img" sleep 30 &
	local holder=$!
	sleep 0.5
	run_guest --disk "$BATS_TEST_TMPDIR/busy.img" --cmdline "test=hello"
	kill $holder
	assert_one_line_error "in use by another process"
	run_guest --disk "$BATS_TEST_TMPDIR/busy.img,cache=none"
	assert_one_line_error "unknown option 'cache=none'"
	run_guest --disk "x.img,serial=123456789012345678901"
	assert_one_line_error "serial is longer than 20 characters"
}

@test "--net: bad specs are refused" {
	run_guest --net "bridge=br0"
	assert_one_line_error "--net bridge=br0: unknown option"
	run_guest --net "tap=x,mac=01:00:5e:00:00:01"
	assert_one_line_error "is a multicast address"
	run_guest --net "tap=x,mac=zz"
	assert_one_line_error "mac must look like"
	run_guest --net "tap=a-name-much-too-long-for-linux"
	assert_one_line_error "tap name must be 1 to 15 characters"
	run_guest --net "mac=52:54:00:00:00:01"
	assert_one_line_error "expected tap=IFNAME"
}
