#!/bin/bash
# make demo: nestvm running a nested stack, for real, step by step. Where
# this machine cannot nest in hardware, the stack runs inside the emulated
# lab host (nestvm labhost); where it can, directly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
guest=build/guest/testguest.elf

step "This machine: nestvm doctor"
direct=0
if ./nestvm doctor; then direct=1; fi

if [ -c /dev/kvm ]; then
	step "nestvm runs its test guest on this machine's /dev/kvm (2 vCPUs)"
	./nestvm run --kernel "$guest" --test-device --cpus 2 --cmdline "test=smp"
fi

dir=$(mktemp -d "$PWD/build/demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
tests/labhost/nested-stack.sh "$dir"
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
stack="./nestvm run --nested --kernel $kernel --initrd $dir/l2.cpio --memory 512M --cpus 2 \
	--cmdline 'console=ttyS0 quiet loglevel=3' < /dev/null; echo \"L1: L2 exited with status \$?\""

if [ $direct = 1 ]; then
	step "Three levels, directly: this machine (L1) runs L2 with --nested, L2 runs L3"
	sh -c "$stack"
else
	step "Three levels in the lab host (emulated AMD-V, slow): L1 lab host, L2 and L3 under nestvm"
	echo "L2's init loads kvm-amd, runs nestvm doctor, and boots L3 with nestvm; each level reports."
	./nestvm labhost --timeout 1200 -- sh -c "
		echo \"L1: lab host \$(uname -r), \$(grep -cw svm /proc/cpuinfo) CPUs with svm, kvm_amd nested=\$(cat /sys/module/kvm_amd/parameters/nested)\"
		$stack"
fi

step "Not yet"
echo "virtio disks and network, and snapshots, are open issues: this demo shows only what runs today."
