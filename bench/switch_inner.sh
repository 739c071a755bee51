#!/bin/bash
# Runs inside the lab host for bench/switch (see there). Each setup is two
# guests, a sender and a receiver, or one sender to the lab host; every
# round runs every setup once, in the same order.
#   switch_inner.sh DIR ROUNDS
set -u
dir=$1 rounds=$2
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
initrd=$dir/initrd.cpio
results=$dir/results
: > "$results"
net=169.254.70
# 4 MiB a transfer: guests inside the emulated lab host move a fraction of
# a MB/s whatever joins them (measured: switch, bridge and QEMU alike).
args="console=ttyS0 quiet panic=-1 mib=${BENCH_MIB:-4}"

ip link add nvbr0 type bridge
ip link set nvbr0 up
for t in nvb0 nvb1; do
	ip tuntap add $t mode tap
	ip link set $t master nvbr0
	ip link set $t up
done

nestvm() { # nestvm CMDLINE NET-OPTION
	timeout 600 ./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 256M \
		--on-reboot exit --cmdline "$args $1" --net "$2" < /dev/null 2>&1 | tr -d '\r'
}
qemu() { # qemu CMDLINE NETDEV MAC
	timeout 600 qemu-system-x86_64 -M pc -accel kvm -cpu host -m 256M -nodefaults \
		-display none -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" \
		-append "$args $1" -netdev "$2" -device "virtio-net-pci,netdev=n0,mac=$3" \
		< /dev/null 2>&1 | tr -d '\r'
}
recv="case=g2g-recv addr=$net.11"
send="case=g2g-send addr=$net.10 peer=$net.11 port=5001"

# The receiver's busybox nc never ends on its own (it waits for its stdin
# as well as the connection); once the sender has measured, it is stopped.
stop_receiver() {
	pkill -f "addr=$net.11" 2> /dev/null
}

# guest to guest: one setup, one line of results per metric
pair() { # pair NAME: runs the receiver in the background, the sender here
	local name=$1 log=$dir/$1-$r.log
	case $name in
	switch)
		./nestvm switch --socket /tmp/bsw 2> /dev/null &
		local sw=$!
		sleep 0.5
		nestvm "$recv" switch=/tmp/bsw,mac=52:54:00:00:07:11 > /dev/null &
		local rv=$!
		sleep 2
		nestvm "$send" switch=/tmp/bsw,mac=52:54:00:00:07:10 > "$log"
		stop_receiver
		wait $rv
		kill $sw
		wait $sw 2> /dev/null ;;
	bridge)
		nestvm "$recv" tap=nvb1,mac=52:54:00:00:07:11 > /dev/null &
		sleep 2
		nestvm "$send" tap=nvb0,mac=52:54:00:00:07:10 > "$log"
		stop_receiver
		wait ;;
	qemu-socket)
		rm -f /tmp/bq.sock
		qemu "$recv" stream,id=n0,server=on,addr.type=unix,addr.path=/tmp/bq.sock 52:54:00:00:07:11 \
			> /dev/null &
		sleep 2
		qemu "$send" stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/bq.sock 52:54:00:00:07:10 \
			> "$log"
		stop_receiver
		wait ;;
	esac
	echo "bench: round $r $name: $(grep '^BENCH' "$log" | tr '\n' ' ')" >&2
	sed -n "s/^BENCH /RESULT $name /p" "$log" >> "$results"
	grep -q '^BENCH g2g_tcp' "$log" || { echo "$name gave no result; its console ended:"; tail -n 15 "$log"; }
}

# guest to the lab host's loopback through a NAT
nat() { # nat nestvm|qemu
	local log=$dir/nat-$1-$r.log
	python3 tests/labhost/tcp-sink.py 5000 /dev/null &
	local sink=$!
	local cmd="case=nat-send addr=$net.15 peer=$net.2 port=5000"
	if [ "$1" = nestvm ]; then
		./nestvm switch --socket /tmp/bnat --nat=$net.0/24 2> /dev/null &
		local sw=$!
		sleep 0.5
		nestvm "$cmd" switch=/tmp/bnat,mac=52:54:00:00:07:15 > "$log"
		kill $sw
		wait $sw 2> /dev/null
	else
		qemu "$cmd" user,id=n0,net=$net.0/24 52:54:00:00:07:15 > "$log"
	fi
	kill $sink 2> /dev/null
	wait $sink 2> /dev/null
	echo "bench: round $r nat-$1: $(grep '^BENCH' "$log" | tr '\n' ' ')" >&2
	sed -n "s/^BENCH /RESULT nat-$1 /p" "$log" >> "$results"
	grep -q '^BENCH nat_tcp' "$log" || { echo "nat-$1 gave no result; its console ended:"; tail -n 15 "$log"; }
}

for ((r = 0; r < rounds; r++)); do
	for setup in ${BENCH_SETUPS:-switch bridge qemu-socket nat-nestvm nat-qemu}; do
		case $setup in
		nat-*) nat "${setup#nat-}" ;;
		*) pair "$setup" ;;
		esac
	done
done

python3 - "$results" <<'PY'
import statistics, sys
data = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 5:
        data.setdefault((f[1], f[2]), []).append(float(f[3]))
med = lambda k: statistics.median(data[k]) if k in data else float("nan")
n = max((len(v) for v in data.values()), default=0)
print(f"medians of {n} rounds")
print(f"  {'guest to guest':24s} {'nestvm switch':>14s} {'Linux bridge':>13s} {'QEMU socket':>12s} {'switch/bridge':>14s} {'switch/QEMU':>12s}")
for metric, unit in (("g2g_tcp", "MB/s"), ("rtt_ms", "ms")):
    a, b, c = med(("switch", metric)), med(("bridge", metric)), med(("qemu-socket", metric))
    print(f"  {metric + ' (' + unit + ')':24s} {a:14.3f} {b:13.3f} {c:12.3f} {a / b:14.2f} {a / c:12.2f}")
a, b = med(("nat-nestvm", "nat_tcp")), med(("nat-qemu", "nat_tcp"))
print(f"  {'guest to host, NAT':24s} {'nestvm --nat':>14s} {'QEMU user':>13s} {'':>12s} {'nestvm/QEMU':>14s}")
print(f"  {'nat_tcp (MB/s)':24s} {a:14.3f} {b:13.3f} {'':>12s} {a / b:14.2f}")
print("(throughput: higher is better; rtt: lower is better, so a ratio below 1 favours nestvm)")
PY
