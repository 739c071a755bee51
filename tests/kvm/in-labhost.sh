#!/bin/bash
# Runs inside the lab host (tests/run-all, on a machine without /dev/kvm):
# every tier-1 suite, its TAP output, stderr and exit status into LOGDIR as
# run-all's own runs would leave them.
#   in-labhost.sh LOGDIR [NESTVM]   (NESTVM: the binary under test, as in helpers.bash)
cd "$(dirname "$0")/../.."
log_dir=$1
[ -n "${2:-}" ] && export NESTVM=$2
# A ThreadSanitizer build stops at its first report (make tsan): the
# environment does not cross into the lab host, so it is set here.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1}
for f in tests/kvm/*.bats; do
	# (suites marked runs-without-kvm run on the machine itself, beside this)
	grep -q '^# runs-without-kvm$' "$f" && continue
	base=kvm-$(basename "$f" .bats)
	start=$(cut -d. -f1 /proc/uptime) # (the lab host's clock may be set meanwhile)
	bats --tap "$f" > "$log_dir/$base.tap" 2> "$log_dir/$base.stderr"
	echo $? > "$log_dir/$base.rc"
	echo $(($(cut -d. -f1 /proc/uptime) - start)) > "$log_dir/$base.seconds"
done
