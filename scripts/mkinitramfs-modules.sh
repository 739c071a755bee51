#!/bin/bash
# A test-guest initramfs that carries kernel modules of the cached cloud
# kernel, with their dependencies, and the order to load them in:
#   mkinitramfs-modules.sh OUT.cpio INIT_SCRIPT "MODULE..." [SOURCE:DEST ...]
# The modules land in /lib/modules, the order (dependencies first) in
# /lib/modules/load.order; INIT_SCRIPT loads them (see tests/guests).
set -euo pipefail
out=$1 init=$2 wanted=$3
shift 3
cd "$(dirname "$0")/.."
modules=$(ls -d .cache/kernels/cloud/lib/modules/*/kernel 2> /dev/null | head -n 1)
[ -n "$modules" ] || { echo "mkinitramfs-modules: no cached cloud kernel (scripts/fetch-kernel.sh cloud)" >&2; exit 1; }
order=()
add_deps() { # depth first: a module after everything it depends on
	local f deps d
	f=$(find "$modules" -name "$1.ko" | head -n 1)
	[ -n "$f" ] || f=$(find "$modules" -name "${1//_/-}.ko" | head -n 1)
	[ -n "$f" ] || { echo "mkinitramfs-modules: module $1 not found" >&2; exit 1; }
	deps=$(grep -a -o 'depends=[^[:cntrl:]]*' "$f" | head -n 1 | cut -d= -f2 | tr ',' ' ')
	for d in $deps; do add_deps "$d"; done
	local name
	name=$(basename "$f" .ko)
	[[ " ${order[*]} " == *" $name "* ]] || order+=("$name")
}
for m in $wanted; do add_deps "$m"; done
list=$(mktemp)
trap 'rm -f "$list"' EXIT
[ ${#order[@]} -eq 0 ] || printf '%s\n' "${order[@]}" > "$list"
specs=()
for m in "${order[@]}"; do
	specs+=("$(find "$modules" -name "$m.ko" | head -n 1):lib/modules/$m.ko")
done
scripts/mkinitramfs.sh "$out" "$init" "${specs[@]}" "$list:lib/modules/load.order" "$@"
