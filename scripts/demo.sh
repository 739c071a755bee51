#!/bin/bash
# make demo: what nestvm can show today, run for real, step by step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
guest=build/guest/testguest.elf

step "This machine"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
if grep -qwE 'svm|vmx' /proc/cpuinfo; then
	echo "hardware virtualization: visible ($(grep -owE 'svm|vmx' /proc/cpuinfo | sort -u | tr '\n' ' '))"
else
	echo "hardware virtualization: not visible (no svm/vmx flag)"
fi
backend=none
for m in kvm_pvm kvm_intel kvm_amd; do [ -d /sys/module/$m ] && backend=$m && break; done
echo "/dev/kvm: $([ -c /dev/kvm ] && echo present || echo absent), backend: $backend"

if [ -c /dev/kvm ]; then
	step "nestvm runs its test guest on this machine's /dev/kvm (2 vCPUs, at CPL3)"
	./nestvm run --kernel "$guest" --test-device --cpus 2 --cmdline "test=hello"
	./nestvm run --kernel "$guest" --test-device --cpus 2 --cmdline "test=smp"
	./nestvm run --kernel "$guest" --test-device --cmdline "test=memory" | tail -n 1
fi

step "nestvm labhost: an emulated AMD-V host (QEMU TCG) with nested KVM, and nestvm inside it"
./nestvm labhost -- sh -c '
	echo "lab host kernel: $(uname -r), CPU flags: $(grep -owE "svm|npt" /proc/cpuinfo | sort -u | tr "\n" " ")"
	echo "kvm_amd nested=$(cat /sys/module/kvm_amd/parameters/nested), /dev/kvm: $(test -c /dev/kvm && echo present)"
	./nestvm run --kernel build/guest/testguest.elf --test-device --cpus 2 --cmdline "test=hello"
	./nestvm run --kernel build/guest/testguest.elf --test-device --cpus 2 --cmdline "test=smp"'

step "Not yet"
echo "Booting stock Linux guests ('nestvm run' with bzImage/vmlinux), --nested, 'nestvm doctor',"
echo "virtio devices and snapshots are open issues: this demo shows only what runs today."
