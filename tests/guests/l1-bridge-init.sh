# /init body of L1 in the nested switch test (tests/labhost/network.bats):
# a hypervisor host on a nestvm switch port. It loads KVM, virtio-net and
# the bridge, boots L2 with nestvm on a tap, and bridges the tap with its
# own NIC, as a lab's nested ESXi or KVM host would: L2's frames leave
# through L1's port with L2's MAC. Reports with "L1:" lines; L2's console
# follows on this one.
while read -r module; do
	insmod "/lib/modules/$module.ko" || echo "L1: insmod $module failed"
done < /lib/modules/load.order
echo "L1: kvm_amd nested=$(cat /sys/module/kvm_amd/parameters/nested 2> /dev/null)"
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
timeout 400 nestvm run --kernel /l2/vmlinuz --initrd /l2/initrd.cpio --memory 160M \
	--on-reboot exit --net "tap=tap0,mac=$(arg l2mac)" \
	--cmdline "console=ttyS0 quiet panic=-1 $(tr ' ' '\n' < /proc/cmdline | sed -n 's/^l2\.//p' | tr '\n' ' ')" \
	< /dev/null &
l2=$!
i=0
while [ ! -e /sys/class/net/tap0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link add br0 type bridge
ip link set eth0 master br0
ip link set tap0 master br0
ip link set br0 up
echo "L1: bridged eth0 and tap0, promisc=$(($(cat /sys/class/net/eth0/flags) >> 8 & 1))"
wait $l2
echo "L1: L2 exit status=$?"
poweroff -f
