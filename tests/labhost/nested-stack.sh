#!/bin/bash
# Builds the guests of the three-level stack (run on the machine, before the
# lab host boots): L3's initramfs reports and powers off; L2's carries KVM
# modules, a static nestvm, L3's kernel and initramfs.
#   nested-stack.sh DIR
set -euo pipefail
dir=$1
cd "$(dirname "$0")/../.."
kdir=.cache/kernels/cloud
bzimage=$(ls $kdir/boot/vmlinuz-*)
modules=$(ls -d $kdir/lib/modules/*/kernel)

scripts/mkinitramfs.sh "$dir/l3.cpio" tests/guests/report-init.sh

# kvm-amd's dependencies, deepest first, from each module's .modinfo.
order=()
add_deps() {
	local f deps d
	f=$(find "$modules" -name "$1.ko" | head -n 1)
	[ -n "$f" ] || { echo "nested-stack: module $1 not found" >&2; exit 1; }
	deps=$(grep -a -o 'depends=[^[:cntrl:]]*' "$f" | head -n 1 | cut -d= -f2 | tr ',' ' ')
	for d in $deps; do add_deps "$d"; done
	[[ " ${order[*]} " == *" $1 "* ]] || order+=("$1")
}
add_deps kvm-amd
specs=()
for m in "${order[@]}"; do
	specs+=("$(find "$modules" -name "$m.ko" | head -n 1):lib/modules/$m.ko")
done
printf '%s\n' "${order[@]}" | grep -v '^kvm-amd$' > "$dir/load.order"
scripts/mkinitramfs.sh "$dir/l2.cpio" tests/guests/l2-init.sh "${specs[@]}" \
	"$dir/load.order:lib/modules/load.order" ./nestvm:bin/nestvm \
	"$bzimage:l3/vmlinuz" "$dir/l3.cpio:l3/initrd.cpio"
