#!/usr/bin/env bats
# nestvm doctor and --nested on this machine. On a PVM host (kvm_pvm) the
# verdicts are known: VMs yes, stock kernels at full speed no, nesting no.
bats_require_minimum_version 1.5.0
load helpers

verdict() { # verdict KEY: true/false from doctor --json
	python3 -c "import json,sys; print(str(json.load(sys.stdin)['verdicts']['$1']).lower())" \
		< "$BATS_TEST_TMPDIR/doctor.json"
}

setup() {
	require_kvm
	run --separate-stderr "$NESTVM" doctor --json
	doctor_status=$status
	printf '%s\n' "$output" > "$BATS_TEST_TMPDIR/doctor.json"
}

@test "doctor --json is valid JSON with checks and verdicts; status follows the nesting verdict" {
	python3 -c "import json,sys; d=json.load(sys.stdin); assert d['checks'] and d['verdicts'] and d['host']" \
		< "$BATS_TEST_TMPDIR/doctor.json"
	[ "$(verdict can_run_vms)" = true ]
	if [ "$(verdict can_expose_nesting)" = true ]; then
		[ "$doctor_status" -eq 0 ]
	else
		[ "$doctor_status" -eq 1 ]
	fi
}

@test "every failed check says how to fix it" {
	python3 - "$BATS_TEST_TMPDIR/doctor.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = [c["id"] for c in d["checks"] if c["status"] == "fail" and not c.get("fix")]
assert not bad, bad
PY
}

@test "on a PVM host: VMs yes, stock kernels no, nesting no (text and JSON agree)" {
	[ -d /sys/module/kvm_pvm ] || skip "not a PVM host"
	[ "$(verdict can_run_vms)" = true ]
	[ "$(verdict can_run_stock_kernels_full_speed)" = false ]
	[ "$(verdict can_expose_nesting)" = false ]
	run "$NESTVM" doctor
	[ "$status" -eq 1 ]
	[[ $output == *"can run VMs:                         yes"* ]]
	[[ $output == *"can run stock kernels at full speed: no"* ]]
	[[ $output == *"can expose nesting to guests:        no"* ]]
	[[ $output == *"kvm_pvm"* ]]
}

@test "--nested is refused with the reason and a fix where nesting cannot be exposed" {
	[ "$(verdict can_expose_nesting)" = false ] || skip "this host can expose nesting"
	run --separate-stderr "$NESTVM" run --nested --kernel "$GUEST" --test-device --cmdline test=hello
	assert_one_line_error "--nested: cannot expose hardware virtualization: "
	[[ $stderr == *"; fix: "* ]]
}

@test "without --nested the guest sees no SVM or VMX" {
	run_guest --cmdline test=cpuid
	[ "$status" -eq 0 ]
	[[ $output == "cpuid: svm=0 npt=0 vmx=0 hypervisor=1" ]]
}
