#!/bin/sh
# Runs inside the lab host (tests/labhost/network.bats): lab networks on a
# nestvm switch, with Debian's stock cloud kernel in every guest. Prints one
# RESULT line per case.
#   network-run.sh DIR   (DIR holds initrd.cpio and l1.cpio)
set -u
dir=$1
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
initrd=$dir/initrd.cpio
subnet=169.254.50.0/24
gateway=169.254.50.2
client=tests/kvm/switch-client.py

vm() { # vm NAME MEMORY CASE-ARGS NESTVM-ARGS...: one guest, console into NAME.out
	name=$1 mem=$2 args=$3
	shift 3
	timeout 400 $as ./nestvm run --kernel "$kernel" --memory "$mem" --on-reboot exit \
		--cmdline "console=ttyS0 quiet panic=-1 $args" "$@" \
		< /dev/null > "$dir/$name.out" 2> "$dir/$name.err"
}
v() { # v NAME WHAT: the rest of the guest's "V: WHAT ..." line
	grep -a "^V: $2" "$dir/$1.out" | head -n 1 | tr -d '\r' | cut -d' ' -f3-
}
wait_socket() {
	i=0
	while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
json() { # json FILE PYTHON-EXPRESSION: on the switch status in FILE (s)
	python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
port = lambda n: next(p for p in s["ports"] if p["name"] == n)
print(eval(sys.argv[2]))' "$1" "$2"
}

# --- NAT: DHCP, guest to guest, guest to host, host to guest, and QEMU ----
# The switch and the nestvm VMs run as nobody in /dev/kvm's group, as the
# README's two-VM example does: no root, no tap, no capability.
as="setpriv --reuid=65534 --regid=$(stat -c %g /dev/kvm) --clear-groups --inh-caps=-all --"
uid() { awk '/^Uid:/ { print $2 }' "/proc/$1/status" 2> /dev/null; }
mac_a=52:54:00:00:05:0a mac_b=52:54:00:00:05:0b mac_q=52:54:00:00:05:0c
# The addresses these MACs get: derived from the MAC, so a first switch's
# offers say what the second one will hand out (and the forward needs A's).
./nestvm switch --socket /tmp/nvnat --api-socket /tmp/nvnat.api --nat=$subnet 2> "$dir/probe.err" &
sw=$!
wait_socket /tmp/nvnat.api
ip_a=$(python3 $client offer /tmp/nvnat.api /tmp/nvnat $mac_a)
ip_b=$(python3 $client offer /tmp/nvnat.api /tmp/nvnat $mac_b)
ip_q=$(python3 $client offer /tmp/nvnat.api /tmp/nvnat $mac_q)
kill $sw
wait $sw 2> /dev/null
rm -f /tmp/nvnat /tmp/nvnat.api

head -c 1048576 /dev/urandom > /tmp/nat-file
(cd /tmp && exec python3 -m http.server 8000 --bind 127.0.0.1 > /dev/null 2>&1) &
web=$!
$as ./nestvm switch --socket /tmp/nvnat --api-socket /tmp/nvnat.api --nat=$subnet \
	--forward "tcp:127.0.0.1:6022-$ip_a:8022" 2> "$dir/switch.err" &
sw=$!
wait_socket /tmp/nvnat.api
vm nat-a 192M "case=dhcp name=a listen=8022 peer=$ip_b fetch=http://$gateway:8000/nat-file linger=40" \
	--initrd "$initrd" --net switch=/tmp/nvnat,mac=$mac_a &
a=$!
vm nat-b 192M "case=dhcp name=b peer=$ip_a linger=40" --initrd "$initrd" \
	--net switch=/tmp/nvnat,mac=$mac_b &
b=$!
# A QEMU VM on the same switch (QEMU's own -netdev stream), pinging A.
timeout 400 qemu-system-x86_64 -machine accel=kvm:tcg -m 192 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 case=dhcp name=q peer=$ip_a linger=10" \
	-netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/nvnat \
	-device virtio-net-pci,netdev=n0,mac=$mac_q < /dev/null > "$dir/nat-q.out" 2> "$dir/nat-q.err" &
q=$!
# The host forward, once A listens (it has its lease and pinged B by then).
i=0
until [ -n "$(v nat-a fetched)" ] || [ $i -ge 300 ]; do sleep 1; i=$((i + 1)); done
forward=$( (echo "hello from the lab host"; sleep 3) | timeout 20 busybox nc 127.0.0.1 6022 2> /dev/null)
uids="$(uid $sw),$(pgrep -f "^\./nestvm run .*mac=$mac_a" | while read -r p; do uid "$p"; done | sort -u | tr '\n' ' ' | tr -d ' ')"
wait $a
a_status=$?
wait $b
b_status=$?
wait $q
q_status=$?
./nestvm ctl /tmp/nvnat.api status > "$dir/nat.status"
kill $sw $web
wait $sw 2> /dev/null
echo "RESULT nat-dhcp status=$a_status,$b_status uids=$uids offered=$ip_a,$ip_b,$ip_q leased=$(v nat-a lease),$(v nat-b lease),$(v nat-q lease) table=$(json "$dir/nat.status" '",".join(l["ip"] + "@" + l["mac"] for l in sorted(s["nat"]["leases"], key=lambda l: l["mac"]))')"
echo "RESULT nat-peers a=$(v nat-a ping) b=$(v nat-b ping)"
echo "RESULT nat-fetch fetched=$(v nat-a fetched) want=$(md5sum < /tmp/nat-file | cut -c1-32)"
echo "RESULT nat-forward host-got=$(echo "$forward" | tr ' ' _) guest-got=$(v nat-a forwarded | tr ' ' _)"
echo "RESULT qemu-peer status=$q_status ping=$(v nat-q ping) lease=$(v nat-q lease)"

as=
# --- the nested scenario: L1 bridges its L2 onto its own switch port -------
# L1-A (--nested) runs L2 on a tap bridged with its NIC; its port "l1a" is
# learn. L1-B is a plain guest on the switch. L2 pings B: it works while
# l1a is learn; then l1a is made strict (only L1-A's own MAC) through the
# control API, and every ping L2 sends is dropped and counted. L2 goes on
# to its counted pings only once one goes unanswered, and the drops are
# read only once it has said how many it sent: each side waits on the
# other, with bounds of its own (the waits are in the RESULT line). L2
# then lingers: when it is done, L1 powers off and its port, with its
# counters, leaves the switch (CI once read the drops after that: 0).
mac_l1a=52:54:00:00:06:0a mac_l2=52:54:00:00:06:12 mac_l1b=52:54:00:00:06:0b
./nestvm switch --socket /tmp/nvsw --api-socket /tmp/nvsw.api --port l1a,policy=learn \
	2> "$dir/nested-switch.err" &
sw=$!
wait_socket /tmp/nvsw.api
vm l1b 160M "case=net addr=169.254.60.21 peer=169.254.60.12 linger=390" --initrd "$initrd" \
	--net switch=/tmp/nvsw,mac=$mac_l1b &
l1b=$!
count=10
vm l1a 512M "l2mac=$mac_l2 l2.case=ping-phases l2.addr=169.254.60.12 l2.peer=169.254.60.21 l2.count=$count l2.linger=30" \
	--nested --cpus 1 --initrd "$dir/l1.cpio" --net switch=/tmp/nvsw.l1a,mac=$mac_l1a &
l1a=$!
learn_wait=0
until [ -n "$(v l1a ping)" ] || [ $learn_wait -ge 380 ]; do sleep 1; learn_wait=$((learn_wait + 1)); done
./nestvm ctl /tmp/nvsw.api status > "$dir/nested-learn.status"
./nestvm ctl /tmp/nvsw.api set-port l1a policy=strict mac=$mac_l1a > "$dir/set-port.out"
before=$(json "$dir/nested-learn.status" 'port("l1a")["drops"]["spoofed"]')
strict_wait=0
until [ -n "$(v l1a second)" ] || [ $strict_wait -ge 380 ]; do sleep 1; strict_wait=$((strict_wait + 1)); done
./nestvm ctl /tmp/nvsw.api status > "$dir/nested-strict.status"
after=$(json "$dir/nested-strict.status" 'port("l1a")["drops"]["spoofed"]')
case "$before$after" in
*[!0-9]* | "") drops="unreadable(before=$before,after=$after)" ;; # the port gone, say
*) drops=$((after - before)) ;;
esac
[ -n "$(v l1a second)" ] || drops=never-sent
wait $l1a
l1a_status=$?
kill $l1b $sw
wait $l1b 2> /dev/null
wait $sw 2> /dev/null
learned=$(json "$dir/nested-learn.status" '",".join(sorted(m["mac"] for m in s["macs"] if m["port"] == "l1a"))')
ports() { # ports FILE: each port's name, rx frames and drops
	json "$1" '" ".join("%s:rx=%d,%s" % (p["name"], p["rx_frames"], ",".join("%s=%d" % kv for kv in p["drops"].items() if kv[1])) for p in s["ports"])'
}
echo "RESULT nested-diag learn=[$(ports "$dir/nested-learn.status")] strict=[$(ports "$dir/nested-strict.status")] l2=[$(v l1a second)] switch=[$(tr '\n' '|' < "$dir/nested-switch.err" | tail -c 600)] l1tail=[$(tail -n 8 "$dir/l1a.out" | tr -d '\r' | tr '\n' '|')] l1err=[$(tail -n 5 "$dir/l1a.err" | tr '\n' '|')] l1b=[$(grep -a '^V: ' "$dir/l1b.out" | tr -d '\r' | tr '\n' '|')]"
echo "RESULT nested-switch status=$l1a_status bridged=$(grep -a -c '^L1: bridged' "$dir/l1a.out") promisc=$(grep -a '^L1: bridged' "$dir/l1a.out" | tr -d '\r' | sed 's/.*promisc=//') learn-ping=$(v l1a ping) learned=$learned set=$(cat "$dir/set-port.out") strict-received=$(v l1a second | cut -d' ' -f1) sent=$count drops=$drops waits=$learn_wait,$strict_wait"
