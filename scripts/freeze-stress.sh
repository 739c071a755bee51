#!/bin/bash
# Boots and ends a 2-vCPU stock Linux guest under nestvm again and again
# inside one lab host, to reproduce the lab host freeze faster than whole
# demo runs do (docs/labhost-freeze.md).
#   scripts/freeze-stress.sh [--load] [--boots N] [--labhost-cpus N] [--l2-cpus N]
#                            [--tcg-thread multi|single] [--out DIR] [--l3]
# --l3: each guest is the demo's L2, which loads kvm-amd and runs an L3.
set -uo pipefail
cd "$(dirname "$0")/.."
boots=20 load=0 lh=1 l2=2 thread=multi out=build/freeze-stress l3=0
while [ $# -gt 0 ]; do
	case $1 in
	--load) load=1 ;;
	--boots) boots=$2; shift ;;
	--labhost-cpus) lh=$2; shift ;;
	--l2-cpus) l2=$2; shift ;;
	--tcg-thread) thread=$2; shift ;;
	--out) out=$2; shift ;;
	--l3) l3=1 ;;
	*) echo "freeze-stress: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ $l3 = 1 ]; then
	[ -f "$out/l2.cpio" ] || tests/labhost/nested-stack.sh "$out"
	initrd=$out/l2.cpio
else
	scripts/mkinitramfs.sh "$out/report.cpio" tests/guests/report-init.sh
	initrd=$out/report.cpio
fi
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
hog=
if [ $load = 1 ]; then
	sh -c 'while :; do :; done' &
	hog=$!
	trap 'kill $hog 2> /dev/null' EXIT
fi
start=$(date +%s)
./nestvm labhost --cpus "$lh" --tcg-thread "$thread" --timeout 3000 \
	--freeze-report "$out/freeze-report" -- bash -c "
	for ((i = 1; i <= $boots; i++)); do
		t0=\$(date +%s.%N)
		./nestvm run --nested --kernel $kernel --initrd $initrd --memory 512M --cpus $l2 \
			--on-reboot exit --cmdline 'console=ttyS0 quiet loglevel=3 panic=-1' \
			< /dev/null > $out/boot.\$i.out 2>&1
		rc=\$?
		echo \"boot \$i status=\$rc \$(awk \"BEGIN { printf \\\"%.1f\\\", \$(date +%s.%N) - \$t0 }\") s\"
	done"
rc=$?
echo "freeze-stress: lab host exit status $rc after $(($(date +%s) - start)) s"
exit $rc
