#!/bin/bash
# Runs the demo's three-level stack (L1 lab host, L2 hypervisor, L3 guest)
# again and again, in the cells given, interleaved, each run bounded, and
# counts the lab host freezes per cell (docs/labhost-freeze.md).
#   scripts/freeze-matrix.sh [--load|--load=build] [--runs N] [--out DIR]
#                            [--qemu PATH] CELL...
# A cell is VMM:L2CPUS:LABHOSTCPUS:CPUMODEL:TCGTHREAD, for example
# nestvm:2:1:host:multi or qemu:2:1:host:single (qemu: QEMU-KVM at L2 with
# -cpu host, the same kernel and initramfs). --load keeps a CPU-bound
# process running beside the lab host, as on a busy machine; --load=build
# rebuilds nestvm with make -j2 in a scratch copy again and again (both
# cores, processes, files: a developer's machine). --qemu runs the lab host
# under another QEMU build (an older Debian package unpacked with dpkg -x,
# say), to tell a QEMU defect from ours.
# One line per run; a frozen run leaves its freeze report (registers and
# code of the lab host, through QEMU's monitor) in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20 load=0 out=build/freeze-matrix qemu_opt=()
cells=()
while [ $# -gt 0 ]; do
	case $1 in
	--load) load=1 ;;
	--load=build) load=build ;;
	--runs) runs=$2; shift ;;
	--out) out=$2; shift ;;
	--qemu) qemu_opt=(--qemu "$2"); shift ;;
	-*) echo "freeze-matrix: unknown option $1" >&2; exit 2 ;;
	*) cells+=("$1") ;;
	esac
	shift
done
[ ${#cells[@]} -gt 0 ] || { echo "usage: freeze-matrix.sh [--load] [--runs N] [--out DIR] CELL..." >&2; exit 2; }
for c in "${cells[@]}"; do
	[[ $c =~ ^(nestvm|qemu):[12]:[12]:(host|compat):(multi|single)$ ]] ||
		{ echo "freeze-matrix: bad cell '$c' (VMM:L2CPUS:LABHOSTCPUS:host|compat:multi|single)" >&2; exit 2; }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
# The binary is copied: a rebuild in the work tree while the matrix runs
# must not change what it measures.
cp nestvm "$out/nestvm"
vmm_bin=$out/nestvm
stack=$out/stack
mkdir -p "$stack"
tests/labhost/nested-stack.sh "$stack" # with this nestvm at L2
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)

# The L1 side of one run: L2 under the chosen VMM, which runs L3 with nestvm.
cat > "$stack/l1.sh" <<'EOF'
#!/bin/sh
# l1.sh VMM L2CPUS CPUMODEL KERNEL STACKDIR
vmm=$1 cpus=$2 model=$3 kernel=$4 dir=$5
cmdline="console=ttyS0 quiet loglevel=3 panic=-1"
if [ "$vmm" = qemu ]; then
	cpu=host
	[ "$model" = compat ] && cpu=EPYC,+svm
	qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
		-accel kvm -cpu $cpu -M pc -m 512M -smp "$cpus" -serial stdio \
		-kernel "$kernel" -initrd "$dir/l2.cpio" -append "$cmdline" < /dev/null
else
	"$dir/../nestvm" run --nested --cpu-model "$model" --kernel "$kernel" --initrd "$dir/l2.cpio" \
		--memory 512M --cpus "$cpus" --on-reboot exit --cmdline "$cmdline" < /dev/null
fi
echo "L1: L2 exited with status $?"
EOF

hog=
if [ $load = 1 ]; then
	sh -c 'while :; do :; done' &
	hog=$!
elif [ $load = build ]; then
	rm -rf "$out/scratch"
	mkdir -p "$out/scratch"
	cp -r Makefile src guest "$out/scratch/"
	sh -c "while :; do make -s -C '$out/scratch' clean; make -s -C '$out/scratch' -j2 VERSION=x nestvm > /dev/null 2>&1; done" &
	hog=$!
fi
[ -n "$hog" ] && trap 'kill $hog 2> /dev/null; pkill -f "$out/scratch" 2> /dev/null' EXIT

declare -A ok frozen other
for c in "${cells[@]}"; do ok[$c]=0 frozen[$c]=0 other[$c]=0; done
echo "freeze-matrix: ${#cells[@]} cells x $runs runs, load=$load, results in $out"
[ ${#qemu_opt[@]} = 0 ] || echo "freeze-matrix: lab host QEMU: $("${qemu_opt[1]}" --version | head -1)"
for ((r = 1; r <= runs; r++)); do
	for c in "${cells[@]}"; do
		IFS=: read -r vmm l2 lh model thread <<< "$c"
		tag="${c//:/-}.$r"
		start=$(date +%s.%N)
		rc=0
		"$vmm_bin" labhost "${qemu_opt[@]}" --cpus "$lh" --tcg-thread "$thread" --timeout 600 \
			--freeze-report "$out/$tag.freeze" \
			-- sh "$stack/l1.sh" "$vmm" "$l2" "$model" "$kernel" "$stack" \
			> "$out/$tag.out" 2> "$out/$tag.err" || rc=$?
		secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")
		if [ $rc = 0 ] && grep -q "L2: L3 exit status=0" "$out/$tag.out" &&
			grep -q "L1: L2 exited with status 0" "$out/$tag.out"; then
			verdict=ok; ok[$c]=$((ok[$c] + 1))
		elif [ $rc = 123 ] && grep -q "labhost: the lab host froze:" "$out/$tag.err"; then
			verdict=FROZEN; frozen[$c]=$((frozen[$c] + 1))
		else
			verdict="FAILED(status $rc)"; other[$c]=$((other[$c] + 1))
		fi
		printf 'run %3d %-28s %-18s %6.1f s\n' "$r" "$c" "$verdict" "$secs"
	done
done
echo "cell                           runs  ok  frozen  other"
for c in "${cells[@]}"; do
	printf '%-30s %4d %3d %7d %6d\n' "$c" "$runs" "${ok[$c]}" "${frozen[$c]}" "${other[$c]}"
done
