#!/usr/bin/env bats
# virtio devices on this machine's /dev/kvm with the sanitizer build: the
# test guest does not drive them, but every device is built (PCI, MSI-X
# irqfds, ioeventfds, worker threads) and torn down, and bad --disk/--net
# input is refused with one line. Guest-driven tests are tier 2.
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
