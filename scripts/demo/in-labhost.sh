#!/bin/sh
# The steps of `make demo` that run inside the lab host (scripts/demo.sh):
#   in-labhost.sh virtio|snapshot DIR
# Each prints what it shows and ends with a line "VERDICT ok" or
# "VERDICT failed: why".
set -u
step=$1 dir=$2
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)

verdict() { # verdict CONDITION-TEXT: prints the verdict, exits with it
	if [ -z "$1" ]; then echo "VERDICT ok"; exit 0; fi
	echo "VERDICT failed: $1"
	exit 1
}
wait_for() { # wait_for FILE PATTERN SECONDS
	i=0
	while [ $i -lt $(($3 * 5)) ]; do
		grep -aq "$2" "$1" 2> /dev/null && return 0
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}
last_tick() {
	grep -a "^tick [0-9]" "$1" | tail -n 1 | tr -d '\r' | cut -d' ' -f2
}

case $step in
virtio)
	# A bridge in the lab host at 169.254.0.1 with a tap for the guest,
	# removed at the end (the demo may run directly on a machine).
	trap 'ip link del nvdemo1 2> /dev/null; ip link del nvdemo0 2> /dev/null; rm -f /tmp/demo-disk.img' EXIT
	ip link add nvdemo0 type bridge
	ip addr add 169.254.0.1/16 dev nvdemo0
	ip link set nvdemo0 up
	ip tuntap add nvdemo1 mode tap
	ip link set nvdemo1 master nvdemo0
	ip link set nvdemo1 up
	img=/tmp/demo-disk.img
	truncate -s 64M $img
	echo "\$ nestvm run --kernel $(basename "$kernel") --disk demo-disk.img --net tap=nvdemo1 ..."
	timeout 240 ./nestvm run --kernel "$kernel" --initrd "$dir/virtio.cpio" --memory 256M \
		--disk $img --net tap=nvdemo1 --on-reboot exit \
		--cmdline "console=ttyS0 quiet panic=-1 case=demo addr=169.254.0.2 peer=169.254.0.1" \
		< /dev/null > "$dir/virtio.out" 2> "$dir/virtio.err"
	status=$?
	tr -d '\r' < "$dir/virtio.out" | grep -a '^V: \(wrote\|ping\)' | sed 's/^V: /guest: /'
	guest=$(tr -d '\r' < "$dir/virtio.out" | sed -n 's/^V: wrote //p')
	host=$(dd if=$img bs=65536 skip=64 count=16 2> /dev/null | md5sum | cut -c1-32)
	echo "lab host: the image holds $host at 4 MiB, $(du -k $img | cut -f1) KiB allocated of 64 MiB"
	[ $status = 0 ] || { cat "$dir/virtio.err"; verdict "nestvm exited with status $status"; }
	[ -n "$guest" ] && [ "$guest" = "$host" ] || verdict "the disk does not hold what the guest wrote"
	grep -aq '^V: ping 3 packets received' "$dir/virtio.out" || verdict "the guest did not reach the lab host"
	verdict ""
	;;
snapshot)
	sock=/tmp/demo-api.sock
	echo "\$ nestvm run --api-socket $sock ...   (a Linux guest printing tick N five times a second)"
	./nestvm run --kernel "$kernel" --initrd "$dir/count.cpio" --memory 256M --api-socket $sock \
		--on-reboot exit --cmdline "console=ttyS0 quiet panic=-1 role=count" \
		< /dev/null > "$dir/count.out" 2> "$dir/count.err" &
	vm=$!
	wait_for "$dir/count.out" "^tick 10" 240 || { kill -9 $vm; verdict "the guest did not start counting"; }
	echo "\$ nestvm ctl $sock snapshot snap"
	./nestvm ctl $sock snapshot "$dir/snap"
	snap=$?
	at=$(last_tick "$dir/count.out")
	kill -9 $vm
	wait $vm 2> /dev/null
	[ $snap = 0 ] || verdict "the snapshot failed"
	echo "guest was killed after tick $at; snapshot: $(du -sh "$dir/snap" | cut -f1) on disk"
	echo "\$ nestvm restore snap"
	./nestvm restore "$dir/snap" --api-socket $sock < /dev/null > "$dir/restored.out" \
		2> "$dir/restored.err" &
	vm=$!
	ok=0
	wait_for "$dir/restored.out" "^tick $((at + 10))" 120 && ok=1
	first=$(grep -a "^tick [0-9]" "$dir/restored.out" | head -n 1 | tr -d '\r' | cut -d' ' -f2)
	echo "restored guest went on counting: tick ${first:-none} to tick $(last_tick "$dir/restored.out"), no new boot"
	./nestvm ctl $sock shutdown --timeout 2 > /dev/null || kill -9 $vm
	wait $vm 2> /dev/null
	[ $ok = 1 ] || { cat "$dir/restored.err"; verdict "the restored guest did not go on counting"; }
	[ "$first" -gt 0 ] && [ "$first" -le $((at + 1)) ] || verdict "restored at tick $first, not after $at"
	! grep -aq 'init: start' "$dir/restored.out" || verdict "the restored guest booted again"
	verdict ""
	;;
esac
