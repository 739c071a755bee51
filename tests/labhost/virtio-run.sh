#!/bin/sh
# Runs inside the lab host (tests/labhost/virtio.bats): Debian's stock cloud
# kernel under nestvm with virtio-blk, virtio-net and virtio-rng, driven by
# tests/guests/virtio-init.sh. Prints one RESULT line per case.
set -u
dir=$1
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
initrd=$dir/initrd.cpio
img=/tmp/disk.img   # tmpfs in the lab host: sparse files and hole punching

vm() { # vm NAME CASE-ARGS NESTVM-ARGS...: one guest, console into NAME.out
	name=$1 args=$2
	shift 2
	timeout 240 ./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 256M \
		--on-reboot exit --cmdline "console=ttyS0 quiet panic=-1 $args" "$@" \
		< /dev/null > "$dir/$name.out" 2> "$dir/$name.err"
}
v() { # v NAME WHAT: the rest of the guest's "V: WHAT ..." line
	grep -a "^V: $2" "$dir/$1.out" | head -n 1 | tr -d '\r' | cut -d' ' -f3-
}
sum_at() { # sum_at MIB: md5 of 1 MiB of the image at MIB
	dd if=$img bs=1048576 skip="$1" count=1 2> /dev/null | md5sum | cut -c1-32
}
allocated_kib() {
	du -k "$img" | cut -f1
}

# --- disks --------------------------------------------------------------
truncate -s 64M $img
# 1 MiB of data where the guest will discard, so the hole must be punched.
head -c 1048576 /dev/urandom | dd of=$img bs=1048576 seek=8 conv=notrunc 2> /dev/null
vm info "case=info" --disk $img,serial=NESTVM-DISK-1 --net tap=nvtap0 --rng \
	--uuid 0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0 --serial 'ds=nocloud;h=hv1;i=lab-hv1'
echo "RESULT info status=$? $(grep -a '^V: ' "$dir/info.out" | tr -d '\r' | tr '\n' '|')"

vm write "case=blk-write" --disk $img
echo "RESULT blk-write status=$? guest=$(v write sums | tr ' ' ,) host=$(sum_at 4),$(sum_at 40) zeroed=$(v write zeroed) hole=$(sum_at 8) zero=$(head -c 1048576 /dev/zero | md5sum | cut -c1-32) kib=$(allocated_kib) size=$(stat -c %s $img)"

vm read "case=blk-read" --disk $img,readonly
echo "RESULT blk-read status=$? ro=$(v read ro) read=$(v read read | tr ' ' ,) $(grep -a '^V: write' "$dir/read.out" | tr -d '\r' | cut -d' ' -f2-) kib=$(allocated_kib)"

# qcow2 images that qemu-img made on the host (virtio.bats), read whole.
vm qcow2 "case=blk-sum" --disk "$dir/chain.qcow2,readonly" --disk "$dir/comp.qcow2,readonly" \
	--disk "$dir/big.qcow2,readonly"
echo "RESULT blk-qcow2 status=$? $(grep -a '^V: sum' "$dir/qcow2.out" | tr -d '\r' | tr '\n' '|')"

# qcow2 written by the guest: linked clones, over a compressed version-3
# template and (version 2) over a raw base, made by qemu-img on the host
# (virtio.bats). The same changes go to raw copies; then qemu-img check
# and qemu-img compare give their verdicts. A discard on the version-2
# clone changes nothing (it has no zero flag, and the base must not show
# through); on version 3 it reads as zeros.
pattern() { # as the guest's (made once)
	[ -f "/tmp/pattern.$1" ] ||
		awk -v n="$1" 'BEGIN { for (i = 0; i < 40000; i++) printf "nestvm %s line %08d xxxxx\n", n, i }' |
		head -c 1048576 > "/tmp/pattern.$1"
	cat "/tmp/pattern.$1"
}
mirror() { # mirror RAW DISCARD-ZEROES
	for p in F G H I J K L M N; do pattern $p; done | dd of=$1 bs=65536 conv=notrunc 2> /dev/null
	pattern C | dd of=$1 bs=512 seek=2049 conv=notrunc 2> /dev/null
	dd if=/dev/zero of=$1 bs=1024 seek=5120 count=100 conv=notrunc 2> /dev/null
	[ "$2" = yes ] && dd if=/dev/zero of=$1 bs=65536 seek=96 count=2 conv=notrunc 2> /dev/null
	pattern D | dd of=$1 bs=65536 seek=112 conv=notrunc 2> /dev/null
	pattern E | dd of=$1 bs=4096 seek=2600 conv=notrunc 2> /dev/null
}
q=/tmp/q   # tmpfs, as for the raw disk
mkdir -p $q
cp "$dir/wbase.qcow2" "$dir/wbase.raw" "$dir/wc3.qcow2" "$dir/wc2.qcow2" $q/
for c in wc3 wc2; do qemu-img convert -O raw $q/$c.qcow2 $q/$c.raw; done
vm qwrite "case=blk-scribble" --disk $q/wc3.qcow2 --disk $q/wc2.qcow2
status=$?
mirror $q/wc3.raw yes
mirror $q/wc2.raw no
checks= compares=
for c in wc3 wc2; do
	qemu-img check $q/$c.qcow2 > "$dir/$c.check" 2>&1
	checks=$checks${checks:+,}$?
	qemu-img compare -f raw -F qcow2 $q/$c.raw $q/$c.qcow2 > "$dir/$c.compare" 2>&1
	compares=$compares${compares:+,}$?
done
echo "RESULT blk-qcow2-write status=$status scribbled=$(grep -ac '^V: scribbled' "$dir/qwrite.out") failed=$(grep -ac '^V: scribble .* failed' "$dir/qwrite.out") check=$checks compare=$compares"

# (Crash consistency of a qcow2 clone under SIGKILL: tier 1's test guest
# does twenty rounds in seconds, tests/kvm/virtio.bats; a boot of the stock
# kernel per round cost minutes here.)
rm -rf $q

# Crash: kill nestvm while the guest writes and flushes in a loop.
rm -f $img
truncate -s 16M $img
./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 256M --on-reboot exit \
	--cmdline "console=ttyS0 quiet panic=-1 case=blk-crash" --disk $img \
	< /dev/null > "$dir/crash.out" 2> "$dir/crash.err" &
pid=$!
i=0
while [ "$(grep -ac '^V: synced' "$dir/crash.out")" -lt 40 ] && [ $i -lt 600 ]; do
	sleep 0.2
	i=$((i + 1))
done
kill -KILL $pid
wait $pid
status=$?
last=$(grep -a '^V: synced [0-9]* ok' "$dir/crash.out" | tail -n 1 | tr -d '\r' | cut -d' ' -f3)
missing=0
n=0
while [ -n "$last" ] && [ $n -le "$last" ]; do
	rec=$(dd if=$img bs=512 skip=$n count=1 2> /dev/null | head -c 15)
	[ "$rec" = "$(printf 'record %08d' $n)" ] || missing=$((missing + 1))
	n=$((n + 1))
done
echo "RESULT blk-crash status=$status last=${last:-none} missing=$missing"

# Bad disks are refused with a clear message before the guest starts.
chmod 444 $img
vm rofile "case=info" --disk $img
echo "RESULT blk-rofile status=$? $(head -n 1 "$dir/rofile.err")"
vm missing "case=info" --disk /tmp/no-such.img
echo "RESULT blk-missing status=$? $(head -n 1 "$dir/missing.err")"
chmod 644 $img
./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 256M \
	--cmdline "console=ttyS0 quiet panic=-1 case=blk-crash" --disk $img \
	< /dev/null > "$dir/holder.out" 2> "$dir/holder.err" &
holder=$!
sleep 1
vm locked "case=info" --disk $img
echo "RESULT blk-locked status=$? $(head -n 1 "$dir/locked.err")"
kill -KILL $holder
wait $holder 2> /dev/null
rm -f $img

# --- network --------------------------------------------------------------
# A bridge in the lab host with a link-local address; two taps on it.
ip link add nvbr0 type bridge
ip addr add 169.254.0.1/16 dev nvbr0
ip link set nvbr0 up
for t in nvtap1 nvtap2 nvtap4; do
	ip tuntap add $t mode tap
	ip link set $t master nvbr0
	ip link set $t up
done
# One guest reaches the lab host: ping, then 8 MiB over TCP.
timeout 200 python3 tests/labhost/tcp-sink.py 5000 /tmp/received &
listener=$!
started=$(date +%s)
vm net-host "case=net addr=169.254.0.4 peer=169.254.0.1 port=5000" \
	--net tap=nvtap4,mac=52:54:00:00:00:04
host_status=$?
wait $listener
listener_status=$? # 124: the listener's 200 s ran out
# (seconds, whether the guest's nc finished, the listener's status: what a
# short transfer needs to be told apart, slow from cut)
echo "RESULT net-host status=$host_status ping=$(v net-host ping) mac=$(v net-host mac) sum=$(v net-host sum) got=$(md5sum < /tmp/received | cut -c1-32) bytes=$(wc -c < /tmp/received) seconds=$(($(date +%s) - started)) sent=$(grep -ac '^V: sent' "$dir/net-host.out") listener=$listener_status"

# Two guests on the bridge reach each other; each also has a second NIC on a
# tap nestvm creates.
vm net-a "case=net addr=169.254.0.2 peer=169.254.0.3 linger=15" --net tap=nvtap1 \
	--net tap=nvtap0 &
a=$!
vm net-b "case=net addr=169.254.0.3 peer=169.254.0.2 linger=15" --net tap=nvtap2 \
	--net tap=nvtap3 &
b=$!
wait $a
a_status=$?
wait $b
b_status=$?
echo "RESULT net-peers status=$a_status,$b_status a=$(v net-a ping) b=$(v net-b ping)"

# Two guests on a nestvm switch (no tap, no bridge): they ping each other;
# while they run, the switch has learned both MACs, one per port.
./nestvm switch --socket /tmp/nvsw --api-socket /tmp/nvsw.api 2> "$dir/switch.err" &
sw=$!
sleep 1
vm sw-a "case=net addr=169.254.2.2 peer=169.254.2.3 linger=15" \
	--net switch=/tmp/nvsw,mac=52:54:00:00:02:02 &
a=$!
vm sw-b "case=net addr=169.254.2.3 peer=169.254.2.2 linger=15" \
	--net switch=/tmp/nvsw,mac=52:54:00:00:02:03 &
b=$!
i=0
until [ "$(v sw-a ping)" = ok ] && [ "$(v sw-b ping)" = ok ] || [ $i -ge 200 ]; do
	sleep 1
	i=$((i + 1))
done
./nestvm ctl /tmp/nvsw.api status > "$dir/switch.status"
wait $a
a_status=$?
wait $b
b_status=$?
kill $sw
wait $sw 2> /dev/null
macs=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(",".join(sorted(m["mac"] + "@" + m["port"] for m in s["macs"] if m["mac"].startswith("52:54:00:00:02"))))' "$dir/switch.status")
echo "RESULT switch-peers status=$a_status,$b_status a=$(v sw-a ping) b=$(v sw-b ping) macs=$macs"
