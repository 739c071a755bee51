#!/bin/bash
# Runs `make demo` on N fresh clones of this repository's HEAD, one after the
# other, as a new user would, and prints each run's exit status and time.
#   scripts/demo-clones.sh [N]        (default 10)
# Exits non-zero if any run failed. Each clone's output is kept in
# build/demo-clones/run-I.log; the clones themselves are removed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "demo-clones: N must be a positive number, not '$n'" >&2; exit 2; }
logs=$top/build/demo-clones
mkdir -p "$logs"
commit=$(git -C "$top" rev-parse --short HEAD)
echo "demo-clones: make demo on $n fresh clones of $commit"
failed=0
for ((i = 1; i <= n; i++)); do
	clone=$(mktemp -d /tmp/nestvm-demo-clone.XXXXXX)
	git clone -q "$top" "$clone"
	start=$(date +%s.%N)
	(cd "$clone" && make demo) > "$logs/run-$i.log" 2>&1
	rc=$?
	secs=$(awk "BEGIN { printf \"%.0f\", $(date +%s.%N) - $start }")
	printf 'run %2d: exit status %d in %4s s\n' "$i" "$rc" "$secs"
	[ $rc -eq 0 ] || { failed=$((failed + 1)); tail -n 15 "$logs/run-$i.log" | sed 's/^/    /'; }
	rm -rf "$clone"
done
echo "demo-clones: $((n - failed)) of $n runs exited with status 0"
[ $failed -eq 0 ]
