# /init body for the tier-2 lab suite (tests/labhost/lab.bats): a lab node
# as a cloud image would be one. It loads its modules, takes an address by
# DHCP, says who it is (SMBIOS UUID and serial, MAC, lease), serves a
# greeting on port 22 for as long as it runs (what a TCP health check and a
# forward reach, as they would reach sshd's banner), counts on its console,
# and powers off when its ACPI power button is pressed.
while read -r module args; do
	[ -n "$module" ] || continue
	insmod "/lib/modules/$module.ko" $args || echo "init: insmod $module failed"
done < /lib/modules/load.order
id=/sys/class/dmi/id
serial=$(cat $id/product_serial)
# cloud-init's NoCloud reading of the serial: ds=nocloud;h=HOST;i=ID
host=$(echo "$serial" | tr ';' '\n' | sed -n 's/^h=//p')
hostname "$host"
ip link set lo up
ip link set eth0 up
cat > /tmp/udhcpc.sh <<- 'SH'
	#!/bin/sh
	case $1 in
	bound|renew)
		ip addr flush dev "$interface"
		ip addr add "$ip/$mask" dev "$interface"
		ip route replace default via "$router" ;;
	esac
SH
chmod +x /tmp/udhcpc.sh
udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh > /dev/null 2>&1
disks=$(for b in /sys/block/vd*; do [ -e "$b" ] && printf '%s:%s,' "${b##*/}" "$(cat "$b/size")"; done)
echo "V: host=$(hostname) uuid=$(cat $id/product_uuid) mac=$(cat /sys/class/net/eth0/address) lease=$(ip -4 -o addr show eth0 | awk '{ print $4 }') disks=$disks"
# (busybox nc -ll -e: one listener for every connection, never a moment
# without one; each connection gets the banner from a script)
printf '#!/bin/sh\necho SSH-2.0-nestvm-lab-%s\n' "$(hostname)" > /tmp/banner
chmod +x /tmp/banner
nc -ll -p 22 -e /tmp/banner > /dev/null 2>&1 &
# Inner nodes: the lab's disk for them (serial nestvm-lab) is unpacked in
# /run/nestvm-lab and its up.sh run, as the README says a node's system
# does; up.sh says "nestvm-lab: inner up" once they are healthy.
for b in /sys/block/vd*; do
	[ "$(cat "$b/serial" 2> /dev/null)" = nestvm-lab ] || continue
	mkdir -p /run/nestvm-lab
	(cd /run/nestvm-lab && cpio -id < "/dev/${b##*/}" 2> /dev/null)
	sh /run/nestvm-lab/up.sh
	for c in /run/nestvm-lab/state/*/*.console; do
		[ -f "$c" ] || continue
		n=$(basename "$c" .console)
		grep -aq '^count ' "$c" && echo "V: inner $n $(grep -a '^count ' "$c" | tail -n 1)"
	done
done
(
	i=0
	while :; do
		echo "tick $i"
		i=$((i + 1))
		usleep 200000
	done
) &
# The power button is the only input device: any event from it.
dev=$(ls /dev/input/event* 2> /dev/null | head -n 1)
echo "V: ready button=${dev:-none}"
dd if="$dev" bs=24 count=1 > /dev/null 2>&1
echo "init: power button pressed, powering off"
[ -f /run/nestvm-lab/down.sh ] && sh /run/nestvm-lab/down.sh
poweroff -f
