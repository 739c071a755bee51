#!/usr/bin/env bats
# Tier 2: a lab from the Debian template (nestvm template build debian):
# real Debian 12 nodes with systemd, openssh-server and cloud-init, in the
# lab host, run as nobody (tests/labhost/debian-run.sh):
#   - up: a jump node and two nested hypervisor nodes on a NAT network, all
#     healthy; ssh with the lab's key through each node's forward works;
#   - identity: hostname, /etc/machine-id, SMBIOS UUID and serial, MAC,
#     DHCP address and ssh host key, all distinct, and what status says;
#     cloud-init took the node's UUID as its instance id;
#   - each hypervisor runs its inner node (the test guest) with the
#     template's own nestvm-lab unit, hv1 also a busybox-template node on
#     the lab's network through its uplink NIC (a lease at the lab's NAT);
#   - down: graceful, nothing left.
# The template is built once here (mmdebstrap) and cached: the Debian base
# system by its recipe, the template again only when nestvm changed.
#
# Not part of make check for its time (14.5 to 18 minutes on the lab host's
# one emulated CPU), so it runs apart, by make check-debian.
# opt-in: make check-debian
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR TEMPLATE
	TEMPLATE=${NESTVM_DEBIAN_TEMPLATE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestvm/templates/debian-bookworm}
	"$NESTVM" template build debian "$TEMPLATE" >&3
	RUN_DIR=$(mktemp -d "$PWD/build/debian.XXXXXX")
	chmod 755 "$RUN_DIR"
	# The template's files where nobody reads them (a link where it can be)
	for f in vmlinuz initrd.img disk.qcow2; do
		ln "$TEMPLATE/$f" "$RUN_DIR/$f" 2> /dev/null || cp "$TEMPLATE/$f" "$RUN_DIR/$f"
	done
	ssh-keygen -q -t ed25519 -N '' -C nestvm-test -f "$RUN_DIR/key"
	labhost_to_files 1500 "$RUN_DIR/results" "$RUN_DIR/labhost.err" --memory 6G -- \
		tests/labhost/debian-run.sh "$RUN_DIR" || true
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

@test "Debian template: built and cached; a second build finds it up to date" {
	run "$NESTVM" template build debian "$TEMPLATE"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"is up to date"* ]]
	[ -s "$TEMPLATE/vmlinuz" ] && [ -s "$TEMPLATE/initrd.img" ]
	[ "$(head -c 4 "$TEMPLATE/disk.qcow2")" = $'QFI\xfb' ]
}

@test "lab up from the Debian template: jump and two nested hypervisors healthy" {
	local line
	line=$(result up)
	echo "$line"
	[ "$(field "$line" status)" = 0 ]
	[[ $(field "$line" out) == *"jump:_up"* ]]
	[[ $(field "$line" out) == *"hv1:_up"* ]]
	[[ $(field "$line" out) == *"hv2:_up"* ]]
}

@test "ssh through each node's forward with the lab's key" {
	local line
	line=$(result ssh)
	echo "$line"
	[[ $line == "RESULT ssh ssh_jump_status=0|ssh_hv1_status=0|ssh_hv2_status=0| "* ]]
}

@test "identities: hostname, machine-id, SMBIOS UUID and serial, MAC, DHCP address and ssh host key distinct, and as status says" {
	local line n
	line=$(result identity)
	echo "$line"
	for n in jump hv1 hv2; do
		[[ $line == *" $n:state=running,host=$n,uuid=same,mac=same,ip=same,instance=same,kvm="*",machine_id=ok,hostkey=ok"* ]]
	done
	[[ $line == *" hv1:"*",kvm=yes,"* ]] && [[ $line == *" hv2:"*",kvm=yes,"* ]]
	[[ $line == *" distinct=hostname+machine_id+uuid+mac+ip+hostkey+serial" ]]
}

@test "each Debian hypervisor runs its inner node with the template's nestvm-lab unit" {
	local line
	line=$(result inner)
	echo "$line"
	result innerlog
	[ "$line" = "RESULT inner hv1:hv1-vm+hv1-web:up hv2:hv2-vm:up" ]
}

@test "hv1's busybox inner node is on the lab's NAT network through hv1's uplink NIC: its DHCP lease, by its hostname" {
	local line
	line=$(result innerweb)
	echo "$line"
	[[ $(field "$line" leases) =~ ^hv1-web:169\.254\.92\.[0-9]+:bound$ ]]
}

@test "lab down: every node powered off by its button, no process or socket left" {
	local line
	line=$(result down)
	echo "$line"
	[ "$(field "$line" status)" = 0 ]
	[[ $(field "$line" out) == *"jump:_down_(powered_off)"* ]]
	[[ $(field "$line" out) == *"hv1:_down_(powered_off)"* ]]
	[[ $(field "$line" out) == *"hv2:_down_(powered_off)"* ]]
	[ "$(field "$line" processes)" = 0 ]
	[ "$(field "$line" sockets)" = 0 ]
}
