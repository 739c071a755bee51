# /init body for bench/boot-profile: the marker, then the kernel's own log.
echo "NESTVM-INIT"
dmesg
echo "NESTVM-DMESG-END"
poweroff -f
