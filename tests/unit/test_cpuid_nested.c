/* Unit tests: the CPUID policy (topology, compat model, PVM hiding) and the
 * nesting decision and exposure, on crafted KVM_GET_SUPPORTED_CPUID tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/cpuid.h"
#include "nested/nested.h"

#define SVM_BIT (1u << 2)
#define VMX_BIT (1u << 5)

static struct kvm_cpuid2 *table(int amd_svm, int intel_vmx)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 16 * sizeof(c->entries[0]));
	struct kvm_cpuid_entry2 e[] = {
		{ .function = 0, .eax = 0x1f, .ebx = 0x68747541 },
		{ .function = 1, .ebx = 0x00010800, .ecx = 0x7ed8320b | (intel_vmx ? VMX_BIT : 0) |
			(1u << 13) | (1u << 26) | (1u << 28), .edx = 0x178bfbff },
		{ .function = 4, .eax = 0x121 }, /* L1 data cache */
		{ .function = 4, .index = 1, .eax = 0x163 }, /* L3 */
		{ .function = 7, .ebx = 0xffffffff },
		{ .function = 0xb, .index = 0, .ecx = 0x100 },
		{ .function = 0x80000001, .ecx = 0x1 | (amd_svm ? SVM_BIT : 0) },
		{ .function = 0x80000008, .ecx = 0x3 },
		{ .function = 0x8000000a, .eax = 1, .ebx = 0x8000, .edx = amd_svm ? 0x1 : 0 },
		{ .function = 0x8000001e },
	};
	memcpy(c->entries, e, sizeof(e));
	c->nent = sizeof(e) / sizeof(e[0]);
	return c;
}

static struct kvm_cpuid_entry2 *get(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	return NULL;
}

static void topology_and_apic_ids(void **state)
{
	(void)state;
	struct cpu_topology t;
	cpu_topology_init(&t, 6, 3);
	assert_int_equal(t.core_bits, 2);
	const uint32_t ids[] = { 0, 1, 2, 4, 5, 6 };
	for (int i = 0; i < 6; i++)
		assert_int_equal(cpu_apic_id(&t, i), ids[i]);
	cpu_topology_init(&t, 4, 0); /* default: one socket */
	assert_int_equal(t.cores_per_socket, 4);
	assert_int_equal(cpu_apic_id(&t, 3), 3);

	struct kvm_cpuid2 *s = table(1, 0);
	cpu_topology_init(&t, 6, 3);
	struct kvm_cpuid2 *c = cpuid_build(s, CPU_MODEL_HOST, &t, "kvm_amd");
	assert_int_equal((get(c, 1, 0)->ebx >> 16) & 0xff, 4);    /* IDs per package */
	assert_true(get(c, 1, 0)->edx & (1u << 28));              /* HTT */
	assert_true(get(c, 1, 0)->ecx & (1u << 31));              /* hypervisor */
	assert_int_equal(get(c, 0xb, 1)->eax, 2);                 /* core bits */
	assert_int_equal(get(c, 0xb, 1)->ebx, 3);                 /* cores per socket */
	assert_int_equal(get(c, 0xb, 0)->ebx, 1);                 /* one thread per core */
	assert_int_equal(get(c, 0x80000008, 0)->ecx & 0xff, 2);   /* cores - 1 */
	assert_int_equal(get(c, 4, 1)->eax >> 26, 3);             /* cores per package - 1 */
	assert_int_equal((get(c, 4, 1)->eax >> 14) & 0xfff, 3);   /* L3 shared by the package */
	free(c);
	free(s);
}

static void compat_model_and_pvm(void **state)
{
	(void)state;
	struct kvm_cpuid2 *s = table(0, 0);
	struct cpu_topology t;
	cpu_topology_init(&t, 1, 0);
	struct kvm_cpuid2 *c = cpuid_build(s, CPU_MODEL_COMPAT, &t, "kvm_intel");
	assert_int_equal(get(c, 7, 0)->ebx, 0);          /* no leaf-7 features */
	assert_false(get(c, 1, 0)->ecx & (1u << 28));    /* no AVX */
	assert_false(get(c, 1, 0)->ecx & (1u << 26));    /* no XSAVE */
	assert_true(get(c, 1, 0)->ecx & (1u << 13));     /* CX16 kept */
	free(c);
	c = cpuid_build(s, CPU_MODEL_HOST, &t, "kvm_pvm");
	assert_false(get(c, 1, 0)->ecx & (1u << 13));    /* PVM: no CX16 */
	assert_false(get(c, 1, 0)->ecx & (1u << 26));    /* PVM: no XSAVE */
	free(c);
	free(s);
}

static void nesting_decision(void **state)
{
	(void)state;
	struct nested_support ns;
	struct kvm_cpuid2 *s = table(1, 0);
	nested_probe(s, "kvm_amd", &ns);
	assert_int_equal(ns.kind, NESTED_SVM);
	assert_true(ns.npt_or_ept);
	free(s);
	s = table(0, 1);
	nested_probe(s, "kvm_intel", &ns);
	assert_int_equal(ns.kind, NESTED_VMX);
	free(s);
	s = table(0, 0);
	nested_probe(s, "kvm_pvm", &ns);
	assert_int_equal(ns.kind, NESTED_NONE);
	assert_non_null(strstr(ns.reason, "PVM"));
	assert_true(ns.fix[0]);
	nested_probe(s, "unknown", &ns);
	assert_int_equal(ns.kind, NESTED_NONE);
	assert_true(ns.reason[0] && ns.fix[0]);
	free(s);
}

static void exposure_follows_the_flag(void **state)
{
	(void)state;
	struct kvm_cpuid2 *s = table(1, 0);
	struct cpu_topology t;
	cpu_topology_init(&t, 1, 0);
	/* compat filters SVM out; --nested must bring it back with its leaf. */
	struct kvm_cpuid2 *c = cpuid_build(s, CPU_MODEL_COMPAT, &t, "kvm_amd");
	nested_apply(c, s, true);
	assert_true(get(c, 0x80000001, 0)->ecx & SVM_BIT);
	assert_int_equal(get(c, 0x8000000a, 0)->edx, 1);
	assert_int_equal(get(c, 0x8000000a, 0)->ebx, 0x8000);
	nested_apply(c, s, false);
	assert_false(get(c, 0x80000001, 0)->ecx & SVM_BIT);
	assert_int_equal(get(c, 0x8000000a, 0)->edx, 0);
	assert_false(get(c, 1, 0)->ecx & VMX_BIT);
	free(c);
	free(s);
	s = table(0, 1);
	c = cpuid_build(s, CPU_MODEL_HOST, &t, "kvm_intel");
	nested_apply(c, s, false);
	assert_false(get(c, 1, 0)->ecx & VMX_BIT);
	nested_apply(c, s, true);
	assert_true(get(c, 1, 0)->ecx & VMX_BIT);
	free(c);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(topology_and_apic_ids),
		cmocka_unit_test(compat_model_and_pvm),
		cmocka_unit_test(nesting_decision),
		cmocka_unit_test(exposure_follows_the_flag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
