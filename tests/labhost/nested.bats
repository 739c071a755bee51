#!/usr/bin/env bats
# Tier 2, end to end: three levels of stock Linux. The lab host (L1) runs
# nestvm --nested with Debian's cloud kernel (L2); L2's init loads kvm-amd,
# runs nestvm doctor, and boots L3 with nestvm; L3 reports and powers off.
# And without --nested, L2 sees no SVM and nestvm there says why it cannot
# run VMs. Also nestvm doctor in the lab host.
bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	cd "$BATS_TEST_DIRNAME/../.."
	export RUN_DIR
	RUN_DIR=$(mktemp -d "$PWD/build/nested.XXXXXX")
	tests/labhost/nested-stack.sh "$RUN_DIR"
	local k
	k=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
	labhost_to_files 300 "$RUN_DIR/labhost.out" "$RUN_DIR/labhost.err" -- sh -c "
		./nestvm doctor > $RUN_DIR/doctor.txt; echo \$? > $RUN_DIR/doctor.status
		./nestvm run --nested --kernel $k --initrd $RUN_DIR/l2.cpio --memory 512M --cpus 2 \
			--cmdline 'console=ttyS0 quiet' < /dev/null > $RUN_DIR/nested.out 2>&1
		echo \"L1: L2 exit status=\$?\" >> $RUN_DIR/nested.out
		./nestvm run --kernel $k --initrd $RUN_DIR/l2.cpio --memory 512M \
			--cmdline 'console=ttyS0 quiet' < /dev/null > $RUN_DIR/flat.out 2>&1
		echo \"L1: L2 exit status=\$?\" >> $RUN_DIR/flat.out" || true
}

teardown_file() {
	rm -rf "$RUN_DIR"
}

show() {
	echo "--- $1"
	tr -d '\r' < "$RUN_DIR/$1" 2> /dev/null || echo "(missing)"
	echo "--- lab host"
	cat "$RUN_DIR/labhost.out" "$RUN_DIR/labhost.err" 2> /dev/null || true
}

has_line() { # has_line FILE LINE: an exact line (carriage returns dropped)
	tr -d '\r' < "$RUN_DIR/$1" | grep -qxF -- "$2"
}

@test "L2 with --nested sees AMD-V and loads kvm-amd with nesting" {
	show nested.out
	has_line nested.out "L2: up, nproc=2, svm=2"
	has_line nested.out "L2: kvm_amd loaded, nested=1"
}

@test "nestvm doctor inside L2 says nesting can be exposed (status 0)" {
	show nested.out
	has_line nested.out 'L2: doctor status=0 "can_expose_nesting":true'
}

@test "L3 boots under nestvm inside L2, reports and powers off; every level exits 0" {
	show nested.out
	tr -d '\r' < "$RUN_DIR/nested.out" | grep -q "^NESTVM-INIT nproc=1 .*cmdline=console=ttyS0 quiet panic=-1 level=L3$"
	has_line nested.out "L2: L3 exit status=0"
	has_line nested.out "L1: L2 exit status=0"
}

@test "without --nested, L2 sees no SVM and nestvm there says why it cannot run VMs" {
	show flat.out
	has_line flat.out "L2: up, nproc=1, svm=0"
	has_line flat.out 'L2: doctor status=1 "can_expose_nesting":false'
	tr -d '\r' < "$RUN_DIR/flat.out" | grep -q "^nestvm: /dev/kvm: no such device: KVM is not available"
	has_line flat.out "L2: L3 exit status=1"
	has_line flat.out "L1: L2 exit status=0"
	! tr -d '\r' < "$RUN_DIR/flat.out" | grep -q NESTVM-INIT
}

@test "nestvm doctor in the lab host: all verdicts yes, status 0" {
	show doctor.txt
	[ "$(cat "$RUN_DIR/doctor.status")" = 0 ]
	grep -q "^  can run VMs: *yes$" "$RUN_DIR/doctor.txt"
	grep -q "^  can run stock kernels at full speed: yes$" "$RUN_DIR/doctor.txt"
	grep -q "^  can expose nesting to guests: *yes$" "$RUN_DIR/doctor.txt"
	grep -q "AMD-V (svm) visible" "$RUN_DIR/doctor.txt"
	grep -q "kvm_amd, nested=1" "$RUN_DIR/doctor.txt"
}
