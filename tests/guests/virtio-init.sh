# /init body for the virtio tests (tests/labhost/virtio.bats): loads the
# stock virtio drivers, then runs the case named by case= on the kernel
# command line, reporting with "V:" lines, and powers off.
while read -r module; do
	insmod "/lib/modules/$module.ko" || echo "V: insmod $module failed"
done < /lib/modules/load.order
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
case=$(arg case)
echo "V: start case=$case"
i=0
while [ ! -e /sys/class/net/eth0 ] && [ ! -e /dev/vda ] && [ ! -e /dev/hwrng ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
pattern() { # pattern N: 1 MiB of lines that name their own offset (made once)
	[ -f "/tmp/pattern.$1" ] ||
		awk -v n="$1" 'BEGIN { for (i = 0; i < 40000; i++) printf "nestvm %s line %08d xxxxx\n", n, i }' |
		head -c 1048576 > "/tmp/pattern.$1"
	cat "/tmp/pattern.$1"
}
case $case in
info)
	for d in /sys/bus/pci/devices/*; do
		echo "V: pci $(basename "$d") $(cat "$d/vendor") $(cat "$d/device") driver=$(basename "$(readlink "$d/driver")")"
	done
	echo "V: msix $(grep -c 'PCI-MSIX\|PCI-MSI' /proc/interrupts)"
	echo "V: vda size=$(cat /sys/block/vda/size) ro=$(cat /sys/block/vda/ro) serial=$(cat /sys/block/vda/serial 2> /dev/null)"
	echo "V: mac $(cat /sys/class/net/eth0/address)"
	echo "V: rng $(cat /sys/class/misc/hw_random/rng_current) bytes=$(head -c 4096 /dev/hwrng | wc -c)"
	id=/sys/class/dmi/id
	echo "V: dmi uuid=$(cat $id/product_uuid) serial=$(cat $id/product_serial) chassis=$(cat $id/chassis_serial) vendor=$(cat $id/sys_vendor) product=$(cat $id/product_name) bios=$(cat $id/bios_vendor)"
	;;
blk-write)
	# 1 MiB at 4 MiB and 1 MiB at 40 MiB into the disk, flushed.
	pattern A | dd of=/dev/vda bs=65536 seek=64 conv=fsync 2> /dev/null && echo "V: wrote A"
	pattern B | dd of=/dev/vda bs=65536 seek=640 conv=fsync 2> /dev/null && echo "V: wrote B"
	# Discard 1 MiB: the host should see a hole there.
	blkdiscard -o 8388608 -l 1048576 /dev/vda && echo "V: zeroed ok"
	echo "V: sums $(pattern A | md5sum | cut -c1-32) $(pattern B | md5sum | cut -c1-32)"
	;;
blk-read)
	echo "V: ro $(cat /sys/block/vda/ro)"
	echo "V: read $(dd if=/dev/vda bs=65536 skip=64 count=16 2> /dev/null | md5sum | cut -c1-32) $(dd if=/dev/vda bs=65536 skip=640 count=16 2> /dev/null | md5sum | cut -c1-32)"
	if echo x | dd of=/dev/vda conv=fsync 2> /dev/null; then echo "V: write allowed"; else echo "V: write refused"; fi
	;;
blk-sum)
	# Every disk read whole: its md5, size in sectors and read-only flag.
	for d in /sys/block/vd*; do
		n=${d##*/}
		echo "V: sum $n $(md5sum < "/dev/$n" | cut -c1-32) $(cat "$d/size") ro=$(cat "$d/ro")"
	done
	;;
blk-scribble)
	# On every disk: writes across clusters, write-zeroes, a discard of two
	# whole 64 KiB clusters, flushed; the host makes the same changes to a
	# raw copy (tests/labhost/virtio-run.sh).
	for d in /sys/block/vd*; do
		dev=/dev/${d##*/}
		# 9 MiB flushed at once: a commit of over a hundred new clusters
		for p in F G H I J K L M N; do pattern $p; done |
			dd of=$dev bs=65536 conv=fsync 2> /dev/null || echo "V: scribble $dev F-N failed"
		pattern C | dd of=$dev bs=512 seek=2049 conv=fsync 2> /dev/null || echo "V: scribble $dev C failed"
		blkzero $dev 5242880 102400 || echo "V: scribble $dev zero failed"
		blkdiscard -o 6291456 -l 131072 $dev || echo "V: scribble $dev discard failed"
		pattern D | dd of=$dev bs=65536 seek=112 conv=fsync 2> /dev/null || echo "V: scribble $dev D failed"
		pattern E | dd of=$dev bs=4096 seek=2600 conv=fsync 2> /dev/null || echo "V: scribble $dev E failed"
		echo "V: scribbled $dev"
	done
	;;
blk-crash)
	# Each record goes to its own sector and is flushed; only then is it
	# reported. The host kills nestvm at some point and checks that every
	# reported record is in the image.
	n=$(arg from)
	n=${n:-0}
	while :; do
		printf 'record %08d\n' $n | dd of=/dev/vda bs=512 seek=$n conv=sync,fsync 2> /dev/null || break
		echo "V: synced $n ok" # a line cut short by the kill is not whole
		n=$((n + 1))
	done
	;;
demo)
	# make demo: 1 MiB written and flushed to the disk, then the lab host
	# reached over the NIC.
	pattern A | dd of=/dev/vda bs=65536 seek=64 conv=fsync 2> /dev/null &&
		echo "V: wrote $(pattern A | md5sum | cut -c1-32)"
	ip link set eth0 up
	ip addr add "$(arg addr)/16" dev eth0
	i=0
	until ping -c 1 -W 2 "$(arg peer)" > /dev/null 2>&1 || [ $i -ge 30 ]; do i=$((i + 1)); done
	echo "V: ping $(ping -c 3 -W 2 "$(arg peer)" | grep -o '[0-9]* packets received.*')"
	;;
net)
	ip link set eth0 up
	ip addr add "$(arg addr)/16" dev eth0
	echo "V: mac $(cat /sys/class/net/eth0/address)"
	peer=$(arg peer)
	ok=failed
	i=0
	while [ $i -lt 60 ]; do # the peer may still be booting
		if ping -c 1 -W 2 "$peer" > /dev/null 2>&1; then ok=ok; break; fi
		i=$((i + 1))
	done
	echo "V: ping $ok"
	[ $ok = ok ] || { ip addr; ip link; cat /proc/interrupts; }
	if [ -n "$(arg port)" ]; then
		# 8 MiB of random bytes to the peer, which checks what it gets.
		head -c 8388608 /dev/urandom > /tmp/data
		echo "V: sum $(md5sum < /tmp/data | cut -c1-32)"
		nc "$peer" "$(arg port)" < /tmp/data && echo "V: sent"
		[ -n "$(arg snmp)" ] && grep -A1 '^Tcp:' /proc/net/snmp
	fi
	# Stay reachable for a peer guest that is still pinging us.
	[ -n "$(arg linger)" ] && sleep "$(arg linger)"
	;;
dhcp)
	# An address from the switch's NAT by DHCP; then, as asked: a listener
	# that greets whoever connects (for a host forward), pings to a peer, a
	# file fetched through the NAT.
	ip link set eth0 up
	cat > /tmp/udhcpc.sh <<- 'EOF'
		#!/bin/sh
		case $1 in
		bound|renew)
			ip addr flush dev "$interface"
			ip addr add "$ip/$mask" dev "$interface"
			ip route replace default via "$router" ;;
		esac
	EOF
	chmod +x /tmp/udhcpc.sh
	udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh > /dev/null 2>&1
	echo "V: lease $(ip -4 -o addr show eth0 | awk '{ print $4 }')"
	if [ -n "$(arg listen)" ]; then
		# (busybox nc -l ends the connection when its stdin ends: it stays
		# open a while after the greeting, for the other side's line)
		( (echo "hello from $(arg name)"; sleep 5) | nc -l -p "$(arg listen)" > /tmp/forwarded &)
	fi
	if [ -n "$(arg peer)" ]; then
		ok=failed
		i=0
		while [ $i -lt 60 ]; do # the peer may still be booting
			if ping -c 1 -W 2 "$(arg peer)" > /dev/null 2>&1; then ok=ok; break; fi
			i=$((i + 1))
		done
		echo "V: ping $ok"
	fi
	if [ -n "$(arg fetch)" ]; then
		wget -q -O /tmp/fetched "$(arg fetch)" && echo "V: fetched $(md5sum < /tmp/fetched | cut -c1-32)"
	fi
	[ -n "$(arg linger)" ] && sleep "$(arg linger)"
	[ -s /tmp/forwarded ] && echo "V: forwarded $(cat /tmp/forwarded)"
	;;
ping-phases)
	# L2 of the nested switch test: pings its peer until it answers; then
	# pings on, once a second, until a ping goes unanswered (the host has
	# made L1's port strict: a handshake, not a pause the host must beat);
	# then sends count pings more and says how many were answered.
	ip link set eth0 up
	ip addr add "$(arg addr)/16" dev eth0
	ok=failed
	i=0
	while [ $i -lt 90 ]; do
		if ping -c 1 -W 2 "$(arg peer)" > /dev/null 2>&1; then ok=ok; break; fi
		i=$((i + 1))
	done
	echo "V: ping $ok"
	i=0
	while [ $i -lt 240 ] && ping -c 1 -W 1 "$(arg peer)" > /dev/null 2>&1; do
		sleep 1
		i=$((i + 1))
	done
	echo "V: second $(ping -c "$(arg count)" -W 1 "$(arg peer)" | grep -o '[0-9]* packets received') answered-before=$i"
	# L1's port on the switch goes when L1 powers off after us: the host
	# reads its counters first
	[ -n "$(arg linger)" ] && sleep "$(arg linger)"
	;;
esac
echo "V: done"
poweroff -f
