# /init body for the snapshot and shutdown tests (tests/labhost/snapshot.bats):
# loads its modules, then runs the role named by role= on the command line:
#   count     prints "tick N" five times a second, forever
#   button    waits for the ACPI power button, says so, powers off
#   ignore    ignores the power button (no driver loaded): counts
#   rng       prints "rng N bytes=B" five times a second, B being what 16
#             bytes asked of /dev/hwrng (virtio-rng) gave
#   l2        loads kvm-amd and runs the test guest counting as L3
while read -r module args; do
	[ -n "$module" ] || continue
	insmod "/lib/modules/$module.ko" $args || echo "init: insmod $module failed"
done < /lib/modules/load.order
role=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^role=//p')
echo "init: start role=$role clockevent=$(cat /sys/devices/system/clockevents/clockevent0/current_device 2> /dev/null)"
count() {
	i=0
	while :; do
		echo "tick $i"
		i=$((i + 1))
		usleep 200000
	done
}
case $role in
count|ignore)
	count
	;;
rng)
	i=0
	while :; do
		echo "rng $i bytes=$(head -c 16 /dev/hwrng | wc -c)"
		i=$((i + 1))
		usleep 200000
	done
	;;
button)
	# The power button is the only input device: any event from it.
	dev=$(ls /dev/input/event* 2> /dev/null | head -n 1)
	echo "init: waiting on ${dev:-nothing}"
	dd if="$dev" bs=24 count=1 > /dev/null 2>&1
	echo "init: power button pressed, powering off"
	poweroff -f
	;;
l2)
	# kvm-amd (in load.order) has nested=1 by default.
	nestvm run --kernel /l3/testguest.elf --test-device --memory 64M --cmdline "test=count" \
		< /dev/null
	echo "init: L3 ended with status $?"
	;;
esac
poweroff -f
