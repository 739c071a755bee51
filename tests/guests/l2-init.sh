# /init body of the L2 guest in the three-level test: a hypervisor host that
# loads KVM, checks itself with nestvm doctor, boots L3 with nestvm, and
# reports each step with an "L2:" line.
echo "L2: up, nproc=$(nproc), svm=$(grep -cw svm /proc/cpuinfo)"
while read -r module; do
	insmod "/lib/modules/$module.ko" || echo "L2: insmod $module failed"
done < /lib/modules/load.order
if grep -qw svm /proc/cpuinfo; then
	insmod /lib/modules/kvm-amd.ko nested=1 || echo "L2: insmod kvm-amd failed"
	echo "L2: kvm_amd loaded, nested=$(cat /sys/module/kvm_amd/parameters/nested)"
fi
nestvm doctor --json > /tmp/doctor.json
echo "L2: doctor status=$? $(grep -o '"can_expose_nesting":[a-z]*' /tmp/doctor.json)"
# Bounded: a hang at L3 ends as status 124 here instead of hanging the stack.
timeout 300 nestvm run --kernel /l3/vmlinuz --initrd /l3/initrd.cpio --memory 160M \
	--on-reboot exit --cmdline "console=ttyS0 quiet panic=-1 level=L3" < /dev/null
echo "L2: L3 exit status=$?"
poweroff -f
