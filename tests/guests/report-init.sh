# /init body for Linux boot tests (scripts/mkinitramfs.sh adds the prologue):
# report what the guest sees, then power off, or reboot when asked to.
echo "NESTVM-INIT nproc=$(nproc) memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo) cmdline=$(cat /proc/cmdline)"
if grep -qw nestvm_test_echo /proc/cmdline; then
	# Console input: a line typed into nestvm's stdin comes back.
	if read -r -t 240 line; then echo "ECHO: $line"; else echo "ECHO: nothing read"; fi
fi
if grep -qw nestvm_test_reboot /proc/cmdline; then
	reboot -f
fi
poweroff -f
