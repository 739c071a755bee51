#!/bin/bash
# Runs every libFuzzer harness (build/fuzz/fuzz_*) on its corpus from
# fuzz/corpus/NAME for SECONDS each, or for RUNS executions if given, and
# prints a line per harness: executions, new corpus entries, crashes. A
# crash leaves its input in build/fuzz/crashes and fails the run.
#   scripts/fuzz.sh SECONDS [RUNS] [HARNESS]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60} runs=${2:-} only=${3:-}
mkdir -p build/fuzz/crashes
failed=0
printf '%-22s %12s %8s %8s %8s\n' harness executions seconds corpus crashes
for bin in build/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=${bin##*/fuzz_}
	[ -z "$only" ] || [ "$only" = "$name" ] || continue
	work=build/fuzz/corpus-$name # new finds stay out of the repo's corpus
	mkdir -p "$work"
	limit=(-max_total_time="$secs")
	[ -n "$runs" ] && limit=(-runs="$runs")
	start=$(date +%s)
	"$bin" "${limit[@]}" -print_final_stats=1 -artifact_prefix=build/fuzz/crashes/"$name"- \
		-close_fd_mask=1 "$work" "fuzz/corpus/$name" > "build/fuzz/$name.log" 2>&1
	st=$?
	execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "build/fuzz/$name.log" | grep -o '[0-9]*$')
	crashes=0
	if [ $st -ne 0 ]; then
		crashes=1
		failed=1
		grep -a -m1 -E 'ERROR|runtime error|SUMMARY' "build/fuzz/$name.log" >&2
	fi
	printf '%-22s %12s %8s %8s %8s\n' "$name" "${execs:-?}" "$(($(date +%s) - start))" \
		"$(ls "$work" | wc -l)" "$crashes"
done
exit $failed
