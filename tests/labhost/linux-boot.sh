#!/bin/sh
# Runs inside the lab host (tests/labhost/linux.bats): boots Debian's stock
# cloud kernel under nestvm on the lab host's nested KVM and prints one
# RESULT line per case for the bats file to check.
set -u
dir=$1   # where the test's initramfs is
kernel_dir=.cache/kernels/cloud/boot
bzimage=$(ls $kernel_dir/vmlinuz-*)
vmlinux=$(ls $kernel_dir/vmlinux-*)
initrd=$dir/initrd.cpio

boot() { # boot NAME ARGS...: one VM, its console and status into NAME.*
	name=$1
	shift
	timeout 180 ./nestvm run --initrd "$initrd" --memory 256M --on-reboot exit "$@" \
		< /dev/null > "$dir/$name.out" 2> "$dir/$name.err"
	echo "RESULT $name status=$? $(grep -a NESTVM-INIT "$dir/$name.out" | tr -d '\r')"
}

for cpus in 1 2; do
	boot "bzimage-$cpus" --kernel "$bzimage" --cpus "$cpus" \
		--cmdline "console=ttyS0 quiet panic=-1 case=bzimage-$cpus"
	boot "vmlinux-$cpus" --kernel "$vmlinux" --cpus "$cpus" \
		--cmdline "console=ttyS0 quiet panic=-1 case=vmlinux-$cpus"
done
boot "compat-4" --kernel "$bzimage" --cpus 4 --cores-per-socket 2 --cpu-model compat \
	--cmdline "console=ttyS0 quiet panic=-1 case=compat-4"
boot "reboot-exit" --kernel "$bzimage" \
	--cmdline "console=ttyS0 quiet nestvm_test_reboot"

# Console input: a line sent to nestvm's stdin once the guest runs reaches
# its init through the UART's receive interrupt.
(sleep 20; echo "hello-from-the-host") | timeout 300 ./nestvm run --initrd "$initrd" \
	--memory 256M --kernel "$bzimage" --cmdline "console=ttyS0 quiet nestvm_test_echo" \
	> "$dir/echo.out" 2>&1
echo "RESULT echo status=$? $(grep -a '^ECHO: ' "$dir/echo.out" | tr -d '\r')"

# SIGTERM stops a running Linux guest cleanly.
./nestvm run --initrd "$initrd" --memory 256M --kernel "$bzimage" \
	--cmdline "console=ttyS0 quiet nestvm_test_echo" < /dev/null > "$dir/term.out" 2>&1 &
pid=$!
i=0
while ! grep -aq NESTVM-INIT "$dir/term.out" && [ $i -lt 600 ]; do
	sleep 0.5
	i=$((i + 1))
done
kill -TERM $pid
wait $pid
echo "RESULT sigterm status=$?"

# The default --on-reboot restart boots the guest again: wait for its
# second start, then stop it with SIGTERM.
./nestvm run --initrd "$initrd" --memory 256M --kernel "$bzimage" \
	--cmdline "console=ttyS0 quiet nestvm_test_reboot" < /dev/null > "$dir/restart.out" 2>&1 &
pid=$!
i=0
while [ "$(grep -ac NESTVM-INIT "$dir/restart.out")" -lt 2 ] && [ $i -lt 600 ]; do
	sleep 0.5
	i=$((i + 1))
done
kill -TERM $pid
wait $pid
echo "RESULT restart status=$? boots=$(grep -ac NESTVM-INIT "$dir/restart.out")"
