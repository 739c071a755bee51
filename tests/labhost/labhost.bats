#!/usr/bin/env bats
# Tier 2: nestvm labhost, the emulated AMD-V host (QEMU TCG). Each boot
# takes several seconds, so each test packs its checks into one boot.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	# Tests run in the repository: the lab host shares it writable.
	cd "$BATS_TEST_DIRNAME/../.."
}

setup() {
	cd "$BATS_TEST_DIRNAME/../.."
	command -v qemu-system-x86_64 > /dev/null || skip "qemu-system-x86_64 not installed (make deps)"
	local avail
	avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
	[ "$avail" -ge 2600 ] || skip "only ${avail} MiB of memory available, the lab host needs 2.5 GiB"
}

@test "the lab host offers /dev/kvm and AMD-V (the issue's acceptance command)" {
	run_labhost 150 -- sh -c 'test -c /dev/kvm && grep -qw svm /proc/cpuinfo && echo ok'
	echo "stderr: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "the watchdog's keepalive reaches the lab host: bytes received on its heartbeat port every 250 ms, none with --keepalive 0" {
	# ttyS3's receive count, 3 s apart (the keepalive starts at the first
	# heartbeat, before the command runs).
	local count='rx() { sed -n "s/^3: .* rx:\([0-9]*\).*/\1/p" /proc/tty/driver/serial; }
		a=$(rx); sleep 3; b=$(rx); echo $((b - a))'
	run_labhost 150 -- sh -c "$count"
	echo "received in 3 s: $output; stderr: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" -ge 6 ]
	run_labhost 150 --keepalive 0 -- sh -c "$count"
	echo "received in 3 s with --keepalive 0: $output; stderr: $stderr"
	[ "$status" -eq 0 ]
	[ "$output" -eq 0 ]
}

@test "the command's exit status is labhost's exit status" {
	run_labhost 150 -- sh -c 'exit 7'
	[ "$status" -eq 7 ]
}

@test "stdout and stderr stay apart; the working directory is shared writable; --env" {
	local dir
	dir=$(mktemp -d "$PWD/build/labhost-share.XXXXXX")
	cd "$dir"
	run_labhost 150 --env GREETING="hello world" -- \
		sh -c 'echo "to stdout: $GREETING"; echo "to stderr" >&2; pwd;
		       echo "written in the lab host" > result.txt;
		       cat /sys/module/kvm_amd/parameters/nested;
		       test -w / && echo "root writable" || echo "root read-only"'
	cd "$OLDPWD"
	echo "output: $output"
	echo "stderr: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "to stdout: hello world" ]
	[ "${lines[1]}" = "$dir" ]
	[ "${lines[2]}" = "1" ]
	[ "${lines[3]}" = "root read-only" ]
	[ "$stderr" = "to stderr" ]
	[ "$(cat "$dir/result.txt")" = "written in the lab host" ]
	rm -rf "$dir"
}

@test "nestvm runs its test guest on the lab host's nested kvm-amd; --nested shows it SVM" {
	run_labhost 150 -- sh -c '
		cat /sys/module/kvm_amd/parameters/nested
		for t in mmio memory; do
			./nestvm run --kernel build/guest/testguest.elf --test-device --cmdline test=$t \
				> /dev/null && echo "$t passed" || echo "$t failed"
		done
		./nestvm run --kernel build/guest/testguest.elf --test-device --cmdline test=smp --cpus 2
		./nestvm run --kernel build/guest/testguest.elf --test-device --cmdline "test=exit status=9"
		echo "exit status $?"
		./nestvm run --kernel build/guest/testguest.elf --test-device --cmdline test=triplefault
		echo "triple fault status $?"
		./nestvm run --kernel build/guest/testguest.elf --test-device --cmdline test=cpuid
		./nestvm run --nested --kernel build/guest/testguest.elf --test-device --cmdline test=cpuid'
	echo "output: $output"
	echo "stderr: $stderr"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "1" ]
	[ "${lines[1]}" = "mmio passed" ]
	[ "${lines[2]}" = "memory passed" ]
	[ "${lines[3]}" = "smp: 2 of 2 vCPUs ran, APIC IDs match" ]
	[ "${lines[4]}" = "exit status 9" ]
	[ "${lines[5]}" = "triple fault status 1" ]
	[ "${lines[6]}" = "cpuid: svm=0 npt=0 vmx=0 hypervisor=1" ]
	[ "${lines[7]}" = "cpuid: svm=1 npt=1 vmx=0 hypervisor=1" ]
	[[ $stderr == *"guest triple fault"* ]]
}

@test "--timeout stops a command that runs too long (status 124)" {
	run --separate-stderr timeout 300 "$NESTVM" labhost --timeout 12 -- sleep 600
	[ "$status" -eq 124 ]
	[[ $stderr == *"--timeout 12"* ]]
}

@test "a frozen lab host (its heartbeat stopped) is stopped within the --freeze-timeout and 30 s: status 123, the freeze named, evidence kept" {
	local dir report pid stopped_at ended_at status
	dir=$(mktemp -d "$PWD/build/labhost-freeze.XXXXXX")
	report=$dir/report
	# The job stops init's heartbeat loop, as a frozen lab host would.
	# (--freeze-timeout 10: the default's 30 s, less waiting)
	timeout 300 "$NESTVM" labhost --timeout 280 --freeze-timeout 10 --freeze-report "$report" -- sh -c '
		kill -STOP $(cat /run/nestvm-labhost/heartbeat.pid); echo heartbeat-stopped; sleep 600' \
		> "$dir/out" 2> "$dir/err" &
	pid=$!
	while ! grep -q heartbeat-stopped "$dir/out" && kill -0 $pid 2> /dev/null; do
		sleep 0.2
	done
	stopped_at=$SECONDS
	status=0
	wait $pid || status=$?
	ended_at=$SECONDS
	cat "$dir/err"
	echo "stopped after $((ended_at - stopped_at)) s"
	[ "$status" -eq 123 ]
	grep -q heartbeat-stopped "$dir/out"
	[ $((ended_at - stopped_at)) -le 40 ]
	grep -q "labhost: the lab host froze: no heartbeat for 1[0-9] s; it had run [0-9]* s" "$dir/err"
	grep -q "last lines of the lab host's kernel log" "$dir/err"
	# The evidence: every vCPU's registers and code, from QEMU's monitor.
	grep -q "^RIP=" "$report"
	grep -q "^=== sample 3 of 3" "$report"
	grep -q "^x/12i \$pc" "$report"
	rm -rf "$dir"
}

@test "clear errors: QEMU missing, kernel missing, too little memory, no command" {
	run --separate-stderr "$NESTVM" labhost --qemu /nonexistent/qemu -- true
	[ "$status" -eq 125 ]
	[[ $stderr == *"--qemu /nonexistent/qemu: not an executable file"* ]]

	run --separate-stderr env PATH=/nonexistent "$NESTVM" labhost -- true
	[ "$status" -eq 125 ]
	[[ $stderr == *"apt-get install qemu-system-x86"* ]]

	run --separate-stderr "$NESTVM" labhost --kernel-dir /nonexistent -- true
	[ "$status" -eq 125 ]
	[[ $stderr == *"no lab host kernel in /nonexistent"*"make kernels"* ]]

	run --separate-stderr "$NESTVM" labhost --kernel-dir .cache/kernels/cloud-missing -- true
	[ "$status" -eq 125 ]

	run --separate-stderr "$NESTVM" labhost --memory 4000G -- true
	[ "$status" -eq 125 ]
	[[ $stderr == *"labhost: --memory "*" needs about "*" available"* ]]

	run --separate-stderr "$NESTVM" labhost
	[ "$status" -eq 2 ]
	[[ $stderr == *"no command given"* ]]

	run --separate-stderr "$NESTVM" labhost --freeze-timeout 2 -- true
	[ "$status" -eq 2 ]
	[[ $stderr == *"--freeze-timeout 2: expected seconds, 0 or from 6 to 86400"* ]]

	run --separate-stderr "$NESTVM" labhost --keepalive 5 -- true
	[ "$status" -eq 2 ]
	[[ $stderr == *"--keepalive 5: expected milliseconds, 0 or from 10 to 60000"* ]]

	run --separate-stderr "$NESTVM" labhost --tcg-thread many -- true
	[ "$status" -eq 2 ]
	[[ $stderr == *"--tcg-thread many: expected multi or single"* ]]

	run --separate-stderr "$NESTVM" labhost --share /nonexistent -- true
	[ "$status" -eq 125 ]
	[[ $stderr == *"--share /nonexistent: not a directory"* ]]
}
