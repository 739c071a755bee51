#!/bin/bash
# Runs inside the lab host for bench/nested; prints the table.
set -u
dir=$1 rounds=$2 loop_n=$3 pio_n=$4
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
guest=build/guest/testguest.elf
results=$dir/results
: > "$results"

l2_guest() { # l2_guest VMM CMDLINE
	if [ "$1" = nestvm ]; then
		./nestvm run --kernel "$guest" --test-device --memory 64M --cmdline "$2" < /dev/null
	else
		qemu-system-x86_64 -M pc -accel kvm -cpu host -m 64M -nodefaults -display none \
			-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=1 -kernel "$guest" \
			-append "$2" < /dev/null
	fi
}
for ((r = 0; r < rounds; r++)); do
	for vmm in nestvm qemu; do
		echo "RESULT L2 $vmm loop $(l2_guest $vmm "test=loop iterations=$loop_n" | tr -d '\r' | sed -n 's/^loop tsc=//p')" >> "$results"
		echo "RESULT L2 $vmm pio $(l2_guest $vmm "test=pio iterations=$pio_n" | tr -d '\r' | sed -n 's/^pio tsc=//p')" >> "$results"
	done
done
cmdline="console=ttyS0 quiet rounds=$rounds loop=$loop_n pio=$pio_n"
./nestvm run --nested --kernel "$kernel" --initrd "$dir/l2.cpio" --memory 1G \
	--cmdline "$cmdline vmm=nestvm" < /dev/null | tr -d '\r' | grep '^RESULT' >> "$results"
qemu-system-x86_64 -M pc -accel kvm -cpu host -m 1G -nodefaults -display none -serial stdio \
	-no-reboot -kernel "$kernel" -initrd "$dir/l2.cpio" -append "$cmdline vmm=qemu" < /dev/null \
	| tr -d '\r' | grep '^RESULT' >> "$results"

mhz=$(awk -F: '/^cpu MHz/ { print $2; exit }' /proc/cpuinfo)
python3 - "$results" "$loop_n" "$pio_n" "$mhz" <<'PY'
import statistics, sys
path, loop_n, pio_n, mhz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = {}
for line in open(path):
    f = line.split()
    if len(f) == 5 and f[4].isdigit():
        data.setdefault((f[1], f[2], f[3]), []).append(int(f[4]))
def per(level, vmm, test):
    v = data.get((level, vmm, test))
    return statistics.median(v) / (loop_n if test == "loop" else pio_n) if v else float("nan")
print(f"TSC {mhz:.0f} MHz (the lab host's); medians of {len(data.get(('L2','nestvm','loop'), []))} runs\n")
for test, unit, scale in (("loop", "ns/iteration", 1.0), ("pio", "us/exit", 1000.0)):
    print(f"{test}: {'CPU-bound 2-instruction loop' if test == 'loop' else 'port-I/O exit round trip'} ({unit})")
    print(f"  {'level':6s} {'nestvm':>10s} {'QEMU':>10s} {'nestvm/QEMU':>12s}")
    for level in ("L2", "L3"):
        n = per(level, "nestvm", test) / mhz * 1000 / scale
        q = per(level, "qemu", test) / mhz * 1000 / scale
        print(f"  {level:6s} {n:10.3f} {q:10.3f} {n / q:12.2f}")
    for vmm in ("nestvm", "qemu"):
        r = per("L3", vmm, test) / per("L2", vmm, test)
        print(f"  {vmm}: L3/L2 = {r:.2f}")
    print()
PY
