# /init body of the L2 guest in bench/nested: loads kvm-amd, then runs the
# test guest (L3) under this stack's VMM (vmm=nestvm or vmm=qemu on the
# command line) and prints one "RESULT L3 VMM TEST CYCLES" line per run.
arg() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
vmm=$(arg vmm)
rounds=$(arg rounds)
loop_n=$(arg loop)
pio_n=$(arg pio)
while read -r module; do insmod "/lib/modules/$module.ko"; done < /lib/modules/load.order
insmod /lib/modules/kvm-amd.ko nested=1
mkdir -p /tmp /dev/shm
run_guest() { # run_guest CMDLINE: prints the guest's output
	if [ "$vmm" = nestvm ]; then
		nestvm run --kernel /bench/testguest.elf --test-device --memory 64M --cmdline "$1" < /dev/null
	else
		qemu-system-x86_64 -L /usr/share/qemu -M pc -accel kvm -cpu host -m 64M -nodefaults \
			-display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=1 \
			-kernel /bench/testguest.elf -append "$1" < /dev/null
	fi
}
i=0
while [ $i -lt "$rounds" ]; do
	echo "RESULT L3 $vmm loop $(run_guest "test=loop iterations=$loop_n" | tr -d '\r' | sed -n 's/^loop tsc=//p')"
	echo "RESULT L3 $vmm pio $(run_guest "test=pio iterations=$pio_n" | tr -d '\r' | sed -n 's/^pio tsc=//p')"
	i=$((i + 1))
done
poweroff -f
