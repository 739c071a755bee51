#!/usr/bin/env bats
# Tier 2, end to end: the control API with Debian's stock cloud kernel under
# nestvm in the lab host: snapshot/restore of a counting guest and of an L2
# hypervisor running an L3 guest (KVM nested state), pause/resume, graceful
# shutdown through the ACPI power button, hard stop after the timeout. One
# lab host boot runs every case (tests/labhost/snapshot-run.sh).
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/snapshot.XXXXXX")
	scripts/mkinitramfs-modules.sh "$RUN_DIR/plain.cpio" tests/guests/snapshot-init.sh ""
	scripts/mkinitramfs-modules.sh "$RUN_DIR/rng.cpio" tests/guests/snapshot-init.sh \
		"virtio_pci virtio_net virtio_rng"
	scripts/mkinitramfs-modules.sh "$RUN_DIR/button.cpio" tests/guests/snapshot-init.sh \
		"button evdev"
	scripts/mkinitramfs-modules.sh "$RUN_DIR/l2.cpio" tests/guests/snapshot-init.sh "kvm-amd" \
		./nestvm:bin/nestvm build/guest/testguest.elf:l3/testguest.elf
	labhost_results 420 tests/labhost/snapshot-run.sh
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

@test "pause stops a Linux guest's clock of ticks; resume lets it go on" {
	local line
	line=$(result pause)
	echo "$line"
	[[ $line =~ ^RESULT\ pause\ \{\"ok\":true,\"state\":\"paused\"\}\ \{\"ok\":true,\"state\":\"running\"\}\ during=([0-9]+),([0-9]+)\ after=([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
	[ "${BASH_REMATCH[3]}" -gt "${BASH_REMATCH[2]}" ]
}

@test "a counting Linux guest on TSC-deadline timers, snapshotted and killed, goes on counting after restore without booting" {
	local line
	line=$(result count)
	echo "$line"
	[[ $line =~ ^RESULT\ count\ snap=ok\ at=([0-9]+)\ first=([0-9]+)\ last=([0-9]+)\ boots=0\ clockevent=lapic-deadline$ ]]
	local at=${BASH_REMATCH[1]} first=${BASH_REMATCH[2]} last=${BASH_REMATCH[3]}
	[ "$first" -ge "$((at - 1))" ] && [ "$first" -le "$((at + 2))" ]
	[ "$last" -ge "$((at + 10))" ]
}

@test "a guest with a NIC and an RNG is restored with both: its reads from /dev/hwrng go on" {
	local line
	line=$(result rng)
	echo "$line"
	[[ $line =~ ^RESULT\ rng\ snap=ok\ at=([0-9]+)\ last=([0-9]+)\ short=0$ ]]
	[ "${BASH_REMATCH[2]}" -ge "$((BASH_REMATCH[1] + 10))" ]
}

@test "shutdown presses the power button; the guest's init powers off" {
	local line
	line=$(result shutdown)
	echo "$line"
	[[ $line == 'RESULT shutdown {"ok":true,"result":"powered-off"} status=0 '*' init: power button pressed, powering off' ]]
}

@test "shutdown stops a guest that ignores the button once the timeout passes" {
	local line
	line=$(result hardstop)
	echo "$line"
	[[ $line =~ ^RESULT\ hardstop\ \{\"ok\":true,\"result\":\"stopped-after-timeout\"\}\ status=0\ secs=([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 5 ]
}

@test "nested: L2 running an L3 guest is snapshotted at L1 and restored; L3 goes on" {
	local line
	line=$(result nested)
	echo "$line"
	[[ $line =~ ^RESULT\ nested\ snap=ok\ at=([0-9]+)\ last=([0-9]+)\ boots=0\ l3starts=0$ ]]
	[ "${BASH_REMATCH[2]}" -ge "$((BASH_REMATCH[1] + 5))" ]
}
