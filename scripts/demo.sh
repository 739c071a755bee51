#!/bin/bash
# make demo: what nestvm does today, for real, step by step, with a summary
# line per step (its time and verdict) at the end. Where this machine cannot
# run or nest VMs itself, the steps run inside the emulated lab host
# (nestvm labhost); where it can, directly.
set -uo pipefail
cd "$(dirname "$0")/.."

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
guest=build/guest/testguest.elf
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
dir=$(mktemp -d "$PWD/build/demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
summary=()
failed=0

# step TITLE COMMAND...: runs one step, timed, and records its verdict.
step() {
	local title=$1 start rc
	shift
	bold "$title"
	start=$(date +%s.%N)
	"$@"
	rc=$?
	local secs
	secs=$(awk "BEGIN { printf \"%.0f\", $(date +%s.%N) - $start }")
	if [ $rc -eq 0 ]; then
		summary+=("$(printf '  ok      %4s s  %s' "$secs" "$title")")
	else
		summary+=("$(printf '  FAILED  %4s s  %s (status %d)' "$secs" "$title" $rc)")
		failed=1
	fi
}

# labhost COMMAND...: COMMAND inside the lab host; a frozen lab host (exit
# status 123, a fault of QEMU's emulation that nestvm detects and names:
# docs/labhost-freeze.md) is booted once more, and that is said.
labhost() {
	local rc
	./nestvm labhost --timeout 600 -- "$@" 2> >(tee "$dir/labhost.err" >&2)
	rc=$?
	wait # for tee
	if [ $rc -eq 123 ] && grep -q "labhost: the lab host froze:" "$dir/labhost.err"; then
		echo "demo: the lab host froze (see above); booting it once more"
		./nestvm labhost --timeout 600 -- "$@"
		rc=$?
	fi
	return $rc
}

# Where the steps run: here if this machine can nest, else in the lab host.
direct=0
in_vm() {
	if [ $direct = 1 ]; then "$@"; else labhost "$@"; fi
}

doctor() {
	./nestvm doctor && direct=1
	[ $direct = 1 ] && echo "demo: this machine can nest: every step runs directly on it" ||
		echo "demo: this machine cannot nest: the next steps run in the lab host (QEMU TCG, emulated AMD-V, slow)"
	return 0
}
step "This machine: nestvm doctor" doctor

test_guest() {
	if [ -c /dev/kvm ]; then
		echo "(on this machine's /dev/kvm)"
		./nestvm run --kernel "$guest" --test-device --cpus 2 --cmdline "test=smp"
		return
	fi
	echo "(this machine has no /dev/kvm: in the lab host)"
	labhost ./nestvm run --kernel "$guest" --test-device --cpus 2 --cmdline "test=smp"
}
step "nestvm's test guest: 2 vCPUs started directly in 64-bit mode" test_guest

three_levels() {
	tests/labhost/nested-stack.sh "$dir" || return 1
	echo "L2's init loads kvm-amd, runs nestvm doctor, and boots L3 with nestvm; each level reports."
	in_vm sh -c "
		echo \"L1: \$(uname -r), \$(grep -cw svm /proc/cpuinfo) CPUs with svm, kvm_amd nested=\$(cat /sys/module/kvm_amd/parameters/nested 2> /dev/null)\"
		timeout 450 ./nestvm run --nested --kernel $kernel --initrd $dir/l2.cpio --memory 512M --cpus 2 \
			--on-reboot exit --cmdline 'console=ttyS0 quiet loglevel=3 panic=-1' < /dev/null
		rc=\$?
		echo \"L1: L2 exited with status \$rc\"
		exit \$rc" | tee "$dir/stack.out"
	# The last report counts: a frozen first attempt may have printed one.
	[ "${PIPESTATUS[0]}" -eq 0 ] &&
		[ "$(tr -d '\r' < "$dir/stack.out" | grep "^L2: L3 exit status=" | tail -n 1)" = \
			"L2: L3 exit status=0" ]
}
step "Three levels: L1 runs L2 (stock Linux, --nested), L2 runs L3 with nestvm" three_levels

virtio() {
	scripts/mkinitramfs-modules.sh "$dir/virtio.cpio" tests/guests/virtio-init.sh \
		"virtio_pci virtio_blk virtio_net" || return 1
	in_vm scripts/demo/in-labhost.sh virtio "$dir"
}
step "A stock Linux guest writes to a virtio disk and reaches its host over a virtio NIC" virtio

snapshot() {
	scripts/mkinitramfs-modules.sh "$dir/count.cpio" tests/guests/snapshot-init.sh "" || return 1
	in_vm scripts/demo/in-labhost.sh snapshot "$dir"
}
step "Snapshot a counting Linux guest, kill it, restore it: it goes on counting" snapshot

bold "Summary"
printf '%s\n' "${summary[@]}"
exit $failed
