#!/bin/busybox sh
# PID 1 of the lab host: nestvm labhost packs this script into the
# initramfs it builds (src/labhost/initramfs.c). It loads the virtio, 9p and
# KVM modules (and tun and bridge for guest networks), mounts the machine's own root read-only with the shared
# directory writable over it, runs the job, and reports the job's exit
# status through the private control share before powering off.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

# The heartbeat nestvm labhost watches (src/labhost/watchdog.h): a line
# every 2 s that needs this kernel's timers, scheduler and serial interrupts.
[ -c /dev/ttyS3 ] || { echo "nestvm labhost: no /dev/ttyS3 for the heartbeat" > /dev/ttyS1; poweroff -f; }
stty -F /dev/ttyS3 raw -echo
(while :; do echo "hb $(cut -d' ' -f1 /proc/uptime)"; sleep 2; done > /dev/ttyS3) &
heartbeat=$!
# The watchdog's keepalive bytes come in on the same port: only their
# interrupts matter, the bytes are thrown away.
cat /dev/ttyS3 > /dev/null &

fail() {
	echo "nestvm labhost: $*" > /dev/ttyS1
	echo 125 > /ctl/status 2> /dev/null
	sync
	poweroff -f
}

while read -r module args; do
	insmod "/lib/modules/$module.ko" $args || fail "cannot load module $module"
done < /modules.list
# Nesting: the emulated CPU offers AMD-V (svm) or, elsewhere, VT-x (vmx).
if grep -qw svm /proc/cpuinfo; then
	insmod /lib/modules/kvm_amd.ko nested=1 || fail "cannot load kvm_amd"
	# (what the emulated CPU offers for nesting, for freeze reports)
	echo "labhost: svm features: $(grep -m1 -ow 'npt\|vgif\|v_vmsave_vmload\|avic\|nrip_save\|vmcb_clean' /proc/cpuinfo | tr '\n' ' ')" > /dev/kmsg
elif grep -qw vmx /proc/cpuinfo; then
	insmod /lib/modules/kvm_intel.ko nested=1 || fail "cannot load kvm_intel"
fi

nine_p="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$nine_p" ctl /ctl || fail "cannot mount the control share"
. /ctl/job.env
# For tests that freeze the heartbeat on purpose (tests/labhost/labhost.bats).
echo $heartbeat > /ctl/heartbeat.pid
mount -t 9p -o "$nine_p,ro,cache=loose" hostroot /root || fail "cannot mount the host root"
mount -t proc proc /root/proc
mount -t sysfs sys /root/sys
mount -t devtmpfs dev /root/dev
mkdir -p /root/dev/pts /root/dev/shm
# What udev or systemd would add: bash's process substitution needs /dev/fd.
ln -sf /proc/self/fd /root/dev/fd
ln -sf /proc/self/fd/0 /root/dev/stdin
ln -sf /proc/self/fd/1 /root/dev/stdout
ln -sf /proc/self/fd/2 /root/dev/stderr
# What udev and a distribution's network setup do: /dev/kvm for the kvm
# group (0660, as Debian's udev rule has it: an unprivileged user of that
# group runs VMs), and the loopback interface up.
if [ -c /root/dev/kvm ]; then
	kvm_gid=$(grep '^kvm:' /root/etc/group | cut -d: -f3)
	[ -n "$kvm_gid" ] && chgrp "$kvm_gid" /root/dev/kvm
	chmod 0660 /root/dev/kvm
fi
ip link set lo up 2> /dev/null || ifconfig lo 127.0.0.1 up
mount -t devpts devpts /root/dev/pts
mount -t tmpfs shm /root/dev/shm
# The root is read-only: give programs a writable /tmp and /run. This hides
# the host's /tmp, so shared files must live in the shared directory.
mount -t tmpfs tmp /root/tmp
mount -t tmpfs run /root/run
mkdir -p "/root$SHARE" /root/run/nestvm-labhost
mount -t 9p -o "$nine_p" share "/root$SHARE" || fail "cannot mount $SHARE"
mount --bind /ctl /root/run/nestvm-labhost

stty -F /dev/ttyS0 raw -echo
stty -F /dev/ttyS1 raw -echo
chroot /root /bin/sh /run/nestvm-labhost/job.sh < /dev/null > /dev/ttyS0 2> /dev/ttyS1
echo $? > /ctl/status
sync
poweroff -f
