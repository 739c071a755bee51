#!/bin/bash
# Runs inside the lab host for bench/blk and bench/net: the same guest
# (Debian's cloud kernel, stock virtio drivers) under nestvm and under QEMU
# with virtio-blk-pci / virtio-net-pci, interleaved, then the table.
#   virtio_inner.sh blk|net DIR ROUNDS
set -u
what=$1 dir=$2 rounds=$3
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
initrd=$dir/initrd.cpio
results=$dir/results
: > "$results"
img=/tmp/bench.img
cmdline="console=ttyS0 quiet panic=-1 case=$what seconds=5 mib=64"

if [ "$what" = net ]; then
	ip link add nvbr0 type bridge
	ip addr add 169.254.0.1/16 dev nvbr0
	ip link set nvbr0 up
	for t in nvbench0 nvbench1; do
		ip tuntap add $t mode tap
		ip link set $t master nvbr0
		ip link set $t up
	done
fi

guest() { # guest nestvm|qemu FORMAT: one measurement, BENCH lines on stdout
	local dev=()
	if [ "$what" = blk ]; then
		rm -f $img
		if [ "$2" = qcow2 ]; then
			qemu-img create -q -f qcow2 $img 512M
		else
			truncate -s 512M $img
		fi
		[ "$1" = nestvm ] && dev=(--disk $img) ||
			dev=(-drive file=$img,format=$2,if=none,id=d0,cache=writeback,aio=threads
			     -device virtio-blk-pci,drive=d0)
	else
		python3 tests/labhost/tcp-sink.py 5000 /dev/null &
		[ "$1" = nestvm ] && dev=(--net tap=nvbench0) ||
			dev=(-netdev tap,id=n0,ifname=nvbench1,script=no,downscript=no
			     -device virtio-net-pci,netdev=n0)
	fi
	if [ "$1" = nestvm ]; then
		timeout 600 ./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 512M \
			--on-reboot exit --cmdline "$cmdline" "${dev[@]}" < /dev/null
	else
		timeout 600 qemu-system-x86_64 -M pc -accel kvm -cpu host -m 512M -nodefaults \
			-display none -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" \
			-append "$cmdline" "${dev[@]}" < /dev/null
	fi
	wait
}
formats=-
[ "$what" = blk ] && formats="raw qcow2"
for ((r = 0; r < rounds; r++)); do
	for fmt in $formats; do
		for vmm in nestvm qemu; do
			log=$dir/$vmm-$fmt-$r.log
			guest $vmm $fmt 2>&1 | tr -d '\r' > "$log"
			if [ "$fmt" = - ]; then
				sed -n "s/^BENCH /RESULT $vmm /p" "$log" >> "$results"
			else
				sed -n "s/^BENCH /RESULT $vmm $fmt:/p" "$log" >> "$results"
			fi
			grep -q '^BENCH ' "$log" || { echo "$vmm gave no result; its console ended:"; tail -n 15 "$log"; }
		done
	done
done
rm -f $img

python3 - "$results" <<'PY'
import statistics, sys
data, units = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 5:
        data.setdefault((f[1], f[2]), []).append(float(f[3]))
        units[f[2]] = f[4]
names = sorted({k[1] for k in data}, key=lambda n: list(units).index(n))
print(f"medians of {len(data.get(('nestvm', names[0]), [])) if names else 0} runs per VMM (higher is better)")
print(f"  {'test':26s} {'nestvm':>10s} {'QEMU':>10s} {'unit':>6s} {'nestvm/QEMU':>12s}")
for n in names:
    a = statistics.median(data.get(("nestvm", n), [float("nan")]))
    b = statistics.median(data.get(("qemu", n), [float("nan")]))
    print(f"  {n:26s} {a:10.1f} {b:10.1f} {units[n]:>6s} {a / b:12.2f}")
PY
