#!/usr/bin/env bats
# Tier 2: lab networks on nestvm switch, end to end, Debian's stock cloud
# kernel in every guest and nestvm in the lab host. One lab host boot runs
# every case (tests/labhost/network-run.sh); each test checks one RESULT
# line:
#   - two guests get DHCP leases from the switch's NAT and ping each other;
#   - a guest fetches a file from a server on the lab host's loopback;
#   - a host forward reaches a guest's listener;
#   - a QEMU VM on the same switch (-netdev stream) pings a nestvm VM;
#   - nested: an L1 guest bridges its L2 onto its switch port; L2 reaches a
#     second L1 while the port is learn, and not once it is strict, where
#     every ping it sends is counted as a spoofed drop.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/network.XXXXXX")
	chmod 755 "$RUN_DIR" # the guests' files, read by nobody's nestvm
	scripts/mkinitramfs-modules.sh "$RUN_DIR/initrd.cpio" tests/guests/virtio-init.sh \
		"virtio_pci virtio_net"
	# L1: KVM (kvm-amd nests by default), virtio-net, the bridge and tun;
	# nestvm, and L2's kernel and initramfs.
	scripts/mkinitramfs-modules.sh "$RUN_DIR/l1.cpio" tests/guests/l1-bridge-init.sh \
		"kvm_amd virtio_pci virtio_net bridge tun" ./nestvm:bin/nestvm \
		"$(ls .cache/kernels/cloud/boot/vmlinuz-*):l2/vmlinuz" "$RUN_DIR/initrd.cpio:l2/initrd.cpio"
	labhost_results 900 tests/labhost/network-run.sh
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

@test "two guests get leases from the switch's DHCP (derived from their MACs) and ping each other" {
	local line offered leased
	line=$(result nat-dhcp)
	echo "$line"
	[[ $line == "RESULT nat-dhcp status=0,0 "* ]]
	# the switch and the VMs ran as nobody (the README's example, unprivileged)
	[ "$(field "$line" uids)" = 65534,65534 ]
	offered=$(field "$line" offered)
	leased=$(field "$line" leased)
	# what a first switch offered is what the second one leased: A, B, QEMU
	[[ $offered =~ ^169\.254\.50\.[0-9]+,169\.254\.50\.[0-9]+,169\.254\.50\.[0-9]+$ ]]
	[ "$leased" = "$(echo "$offered" | sed 's|\([0-9.]*\)|\1/24|g')" ]
	# the switch's lease table holds all three, by MAC
	[ "$(field "$line" table)" = "$(echo "$offered" | awk -F, '{ print $1 "@52:54:00:00:05:0a," $2 "@52:54:00:00:05:0b," $3 "@52:54:00:00:05:0c" }')" ]
	line=$(result nat-peers)
	echo "$line"
	[ "$line" = "RESULT nat-peers a=ok b=ok" ]
}

@test "a guest fetches a file from a server on the lab host's loopback through the NAT" {
	local line
	line=$(result nat-fetch)
	echo "$line"
	[[ $(field "$line" fetched) =~ ^[0-9a-f]{32}$ ]]
	[ "$(field "$line" fetched)" = "$(field "$line" want)" ]
}

@test "a host forward (127.0.0.1:6022) reaches a guest's listener, both ways" {
	local line
	line=$(result nat-forward)
	echo "$line"
	[ "$line" = "RESULT nat-forward host-got=hello_from_a guest-got=hello_from_the_lab_host" ]
}

@test "a QEMU VM on the same switch (-netdev stream) gets a lease and pings a nestvm VM" {
	local line
	line=$(result qemu-peer)
	echo "$line"
	[[ $line == "RESULT qemu-peer status=0 ping=ok lease=169.254.50."* ]]
}

@test "nested: L2 bridged by L1 reaches another L1 while L1's port is learn; strict drops every ping, counted" {
	local line
	line=$(result nested-switch)
	echo "$line"
	result nested-diag
	[[ $line == "RESULT nested-switch status=0 bridged=1 promisc=1 learn-ping=ok "* ]]
	# while learn, the port held L1's MAC and L2's
	[[ $(field "$line" learned) == *"52:54:00:00:06:12"* ]]
	[ "$(field "$line" set)" = '{"ok":true}' ]
	# strict: no answer, and the drops rose by at least the pings sent (L2's
	# ARP refreshes, from the same foreign MAC, are dropped too)
	[ "$(field "$line" strict-received)" = 0 ]
	[ "$(field "$line" drops)" -ge "$(field "$line" sent)" ]
}
