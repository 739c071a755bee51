#!/usr/bin/env bats
# Tier 2: nestvm lab with Linux nodes (Debian's stock cloud kernel and a
# busybox initramfs, tests/guests/lab-init.sh) in the lab host, run as
# nobody. One lab host boot runs every case (tests/labhost/lab-run.sh):
#   - up: a node healthy once its port answers through a NAT forward, the
#     other, a hypervisor, once its console says so and its inner node (the
#     test guest, L3) is up inside it, in dependency order (an inner node
#     with a NIC: tests/labhost/debian.bats, which runs apart);
#   - status: the identities each guest sees (SMBIOS UUID, MAC, hostname
#     from the NoCloud serial, its DHCP lease) are those status reports,
#     the fixed address and the derived one, the forward;
#   - snapshot save and restore: both nodes go on from the save, the
#     forward works again;
#   - the busybox template (nestvm template build busybox): built, cached,
#     a node of it (after hv1) up with its name and DHCP address;
#   - down: in reverse dependency order, each powered off by its ACPI
#     button; no process or socket left.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/lab.XXXXXX")
	chmod 755 "$RUN_DIR" # the guests' files, read by nobody's nestvm
	scripts/mkinitramfs-modules.sh "$RUN_DIR/lab.cpio" tests/guests/lab-init.sh \
		"virtio_pci virtio_net virtio_blk button evdev kvm_amd"
	chmod 644 "$RUN_DIR/lab.cpio"
	labhost_results 900 tests/labhost/lab-run.sh
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

@test "lab up as nobody: jump healthy through its TCP forward, then hv1 by its console line, then bb" {
	local line
	line=$(result up)
	echo "$line"
	[ "$(field "$line" status)" = 0 ]
	[ "$(field "$line" out)" = "jump:_up|hv1:_up|bb:_up|" ]
}

@test "lab status: each node's UUID, MAC, hostname and DHCP address are what the guest sees; fixed and derived addresses; the forward; nobody runs them" {
	local line
	line=$(result status)
	echo "$line"
	[[ $line == *" hv1:state=running,uuid=same,mac=same,lease=169.254.90."* ]]
	[[ $line == *" jump:state=running,uuid=same,mac=same,lease=169.254.90.40,addresses=169.254.90.40,forwards=127.0.0.1:6122->22/tcp,host=jump,uid=65534"* ]]
	# hv1's derived address: leased, reported, not jump's
	[[ $line =~ hv1:state=running,uuid=same,mac=same,lease=([0-9.]+),addresses=([0-9.]+),forwards=none,host=hv1,uid=65534 ]]
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
	[ "${BASH_REMATCH[1]}" != 169.254.90.40 ]
}

@test "an inner node: hv1 runs it from the lab's nestvm-lab disk (L3 under L2), its count is seen; status says it is up" {
	local line
	line=$(result inner)
	echo "$line"
	[[ $line =~ ^RESULT\ inner\ said=inner_hv1-vm_count_([0-9]+)\ status=hv1-vm:up$ ]]
	[ "${BASH_REMATCH[1]}" -ge 2 ]
}

@test "the forward reaches jump's port 22 from the lab host's loopback" {
	local line
	line=$(result forward)
	echo "$line"
	[ "$line" = "RESULT forward got=SSH-2.0-nestvm-lab-jump" ]
}

@test "lab snapshot save, then restore: the nodes go on from the save without booting, the forward works again" {
	local line
	line=$(result snapshot)
	echo "$line"
	[ "$(field "$line" save)" = 0 ]
	[ "$(field "$line" restore)" = 0 ]
	local before after later first now
	before=$(field "$line" before) after=$(field "$line" after) later=$(field "$line" later)
	first=$(field "$line" first) now=$(field "$line" now)
	# the clock went on after the save, and the restored one starts again
	# from the save (not from 0, not from where it was killed)
	[ "$later" -gt "$after" ]
	[ "$first" -gt "$before" ] && [ "$first" -le "$((after + 1))" ]
	[ "$now" -gt "$first" ]
	[ "$(field "$line" boots)" = 1 ]
	[ "$(field "$line" forward-again)" = "SSH-2.0-nestvm-lab-jump" ]
}

@test "nestvm template build busybox: built (and timed), then found up to date; a node of it takes its name and DHCP address and says it is ready" {
	local line
	line=$(result bbtemplate)
	echo "$line"
	[[ $(field "$line" first) =~ ^template:_built_/tmp/busybox-template_in_[0-9.]+_s_\(kernel_.*,_16_modules ]]
	[[ $(field "$line" second) == "template:_/tmp/busybox-template_is_up_to_date_"* ]]
	[ "$(field "$line" files)" = "initrd.img,recipe,template.yaml,vmlinuz," ]
	line=$(result bbnode)
	echo "$line"
	[[ $(field "$line" said) == 169.254.90.*/24 ]]
	[ "$(field "$line" status)" = "running,$(field "$line" said | cut -d/ -f1)" ]
	[ "$(field "$line" ready)" = 1 ]
}

@test "lab down: bb, hv1, then jump, each powered off by its button; nothing left behind" {
	local line
	line=$(result down)
	echo "$line"
	[ "$(field "$line" status)" = 0 ]
	[ "$(field "$line" out)" = "bb:_down_(powered_off)|hv1:_down_(powered_off)|jump:_down_(powered_off)|" ]
	[ "$(field "$line" processes)" = 0 ]
	[ "$(field "$line" sockets)" = 0 ]
}
