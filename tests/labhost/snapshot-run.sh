#!/bin/bash
# Runs inside the lab host (tests/labhost/snapshot.bats): Linux guests under
# nestvm with the control API: snapshot and restore of a counting guest and
# of an L2 hypervisor running an L3 guest, pause/resume, graceful shutdown
# through the ACPI power button, and the hard stop after the timeout.
# Prints one RESULT line per case.
set -u
dir=$1
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
sock=/tmp/api.sock

start() { # start NAME INITRD ROLE [ARGS...]: a guest in the background as $vm
	local name=$1 initrd=$2 role=$3
	shift 3
	./nestvm run --kernel "$kernel" --initrd "$initrd" --memory 256M --api-socket $sock \
		--on-reboot exit --cmdline "console=ttyS0 quiet panic=-1 role=$role" "$@" \
		< /dev/null > "$dir/$name.out" 2> "$dir/$name.err" &
	vm=$!
}
wait_for() { # wait_for FILE PATTERN [SECONDS]
	local i
	for ((i = 0; i < ${3:-240} * 5; i++)); do
		grep -aq "$2" "$1" 2> /dev/null && return 0
		sleep 0.2
	done
	return 1
}
verdict() { # verdict ANSWER: ok, or the answer itself
	case $1 in '{"ok":true,'*) echo ok ;; *) echo "failed:$1" | tr ' ' _ ;; esac
}
last() { # last FILE WORD: the last number printed after WORD
	grep -a "^$2 [0-9]" "$1" | tail -n 1 | tr -d '\r' | cut -d' ' -f2
}

# --- a counting Linux guest: snapshot, kill, restore ---------------------
start count "$dir/plain.cpio" count
wait_for "$dir/count.out" "^tick 10"
p1=$(./nestvm ctl $sock pause)
a=$(last "$dir/count.out" tick)
sleep 2
b=$(last "$dir/count.out" tick)
r1=$(./nestvm ctl $sock resume)
wait_for "$dir/count.out" "^tick $((b + 5))" 60
echo "RESULT pause $p1 $r1 during=$a,$b after=$(last "$dir/count.out" tick)"
snap=$(./nestvm ctl $sock snapshot "$dir/snap-count")
at=$(last "$dir/count.out" tick)
kill -9 $vm
wait $vm 2> /dev/null
./nestvm restore "$dir/snap-count" --api-socket $sock < /dev/null > "$dir/restored.out" \
	2> "$dir/restored.err" &
vm=$!
wait_for "$dir/restored.out" "^tick $((at + 10))" 120
first=$(grep -a "^tick" "$dir/restored.out" | head -n 1 | tr -d '\r' | cut -d' ' -f2)
# The guest's timer (lapic-deadline where nestvm offers TSC deadline): a
# restore that lost the armed deadline leaves the guest without ticks.
clockevent=$(grep -ao 'clockevent=[a-z-]*' "$dir/count.out" | head -n 1)
echo "RESULT count snap=$(verdict "$snap") at=$at first=$first last=$(last "$dir/restored.out" tick) boots=$(grep -ac 'init: start' "$dir/restored.out") $clockevent"
./nestvm ctl $sock shutdown --timeout 2 > /dev/null
wait $vm 2> /dev/null

# --- a guest with a NIC and an RNG: the RNG's queue survives too ----------
# (a NIC once made the snapshot skip the RNG: after restore the guest's
# reads from /dev/hwrng waited for ever)
start rng "$dir/rng.cpio" rng --net tap=nvsnap0 --rng
wait_for "$dir/rng.out" "^rng 5 "
snap=$(./nestvm ctl $sock snapshot "$dir/snap-rng")
at=$(last "$dir/rng.out" rng)
kill -9 $vm
wait $vm 2> /dev/null
./nestvm restore "$dir/snap-rng" --api-socket $sock < /dev/null > "$dir/rng-restored.out" \
	2> "$dir/rng-restored.err" &
vm=$!
wait_for "$dir/rng-restored.out" "^rng $((at + 10)) " 60
echo "RESULT rng snap=$(verdict "$snap") at=$at last=$(last "$dir/rng-restored.out" rng) short=$(grep -a '^rng ' "$dir/rng-restored.out" | grep -vc 'bytes=16')"
./nestvm ctl $sock shutdown --timeout 2 > /dev/null
wait $vm 2> /dev/null

# --- graceful shutdown and the hard stop ---------------------------------
start button "$dir/button.cpio" button
wait_for "$dir/button.out" "init: waiting on /dev/input"
t0=$(date +%s)
res=$(./nestvm ctl $sock shutdown --timeout 120)
wait $vm
st=$?
echo "RESULT shutdown $res status=$st secs=$(($(date +%s) - t0)) $(grep -a 'init: power button' "$dir/button.out" | tr -d '\r')"
start ignore "$dir/plain.cpio" ignore
wait_for "$dir/ignore.out" "^tick 3"
t0=$(date +%s)
res=$(./nestvm ctl $sock shutdown --timeout 5)
wait $vm
st=$?
echo "RESULT hardstop $res status=$st secs=$(($(date +%s) - t0))"

# --- nested: L2 runs L3; snapshot L2, kill it, restore it -----------------
start l2 "$dir/l2.cpio" l2 --nested --memory 512M
wait_for "$dir/l2.out" "^count 5" 400
snap=$(./nestvm ctl $sock snapshot "$dir/snap-l2")
at=$(last "$dir/l2.out" count)
kill -9 $vm
wait $vm 2> /dev/null
grep -o '"memory_bytes":[0-9]*' "$dir/snap-l2/manifest.json" > /dev/null
./nestvm restore "$dir/snap-l2" --api-socket $sock < /dev/null > "$dir/l2-restored.out" \
	2> "$dir/l2-restored.err" &
vm=$!
wait_for "$dir/l2-restored.out" "^count $((at + 5))" 240
echo "RESULT nested snap=$(verdict "$snap") at=$at last=$(last "$dir/l2-restored.out" count) boots=$(grep -ac 'init: start' "$dir/l2-restored.out") l3starts=$(grep -ac 'count start' "$dir/l2-restored.out")"
kill -9 $vm
wait $vm 2> /dev/null
cat "$dir/l2-restored.err" >&2
