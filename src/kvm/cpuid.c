#include "kvm/cpuid.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* Leaf 1 feature bits. */
#define ECX_SSE3      (1u << 0)
#define ECX_PCLMUL    (1u << 1)
#define ECX_SSSE3     (1u << 9)
#define ECX_CX16      (1u << 13)
#define ECX_SSE41     (1u << 19)
#define ECX_SSE42     (1u << 20)
#define ECX_X2APIC    (1u << 21)
#define ECX_POPCNT    (1u << 23)
#define ECX_TSC_DEADLINE (1u << 24)
#define ECX_XSAVE     (1u << 26)
#define ECX_OSXSAVE   (1u << 27)
#define ECX_AVX       (1u << 28)
#define ECX_HYPERVISOR (1u << 31)
#define EDX_HTT       (1u << 28)
/* Leaf 0x80000001 ECX. */
#define EXT_ECX_CMP_LEGACY (1u << 1)
#define EXT_ECX_LAHF  (1u << 0)
#define EXT_ECX_ABM   (1u << 5)

/* The compat model: x86-64-v2 (SSE3..SSE4.2, SSSE3, POPCNT, CX16, LAHF) plus
 * what KVM itself provides (x2APIC, TSC deadline, the hypervisor bit, the
 * KVM paravirtual leaves), all of leaf 1 EDX that every x86-64 CPU has, and
 * nothing from leaf 7 or XSAVE: those differ most between CPU generations. */
static const uint32_t compat_leaf1_ecx = ECX_SSE3 | ECX_PCLMUL | ECX_SSSE3 | ECX_CX16 |
					 ECX_SSE41 | ECX_SSE42 | ECX_X2APIC | ECX_POPCNT |
					 ECX_TSC_DEADLINE | ECX_HYPERVISOR;
static const uint32_t compat_leaf1_edx = 0x178bfbff; /* fpu..sse2 as on any x86-64 */
static const uint32_t compat_ext_ecx = EXT_ECX_LAHF | EXT_ECX_ABM;

void cpu_topology_init(struct cpu_topology *topo, int ncpus, int cores_per_socket)
{
	topo->ncpus = ncpus;
	topo->cores_per_socket = cores_per_socket > 0 ? cores_per_socket : ncpus;
	topo->core_bits = 0;
	while ((1 << topo->core_bits) < topo->cores_per_socket)
		topo->core_bits++;
}

uint32_t cpu_apic_id(const struct cpu_topology *topo, int index)
{
	int socket = index / topo->cores_per_socket, core = index % topo->cores_per_socket;
	return ((uint32_t)socket << topo->core_bits) | (uint32_t)core;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	return NULL;
}

struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, enum cpu_model model,
			       const struct cpu_topology *topo, const char *backend)
{
	/* Room for the extended-topology subleaves we add. */
	size_t n = supported->nent + 4;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c) {
		log_error("out of memory for CPUID table");
		return NULL;
	}
	/* Copy, dropping the extended topology leaves: they are rebuilt below. */
	for (uint32_t i = 0; i < supported->nent; i++) {
		uint32_t fn = supported->entries[i].function;
		if (fn != 0xb && fn != 0x1f)
			c->entries[c->nent++] = supported->entries[i];
	}
	uint32_t package_ids = 1u << topo->core_bits;
	bool multi = topo->cores_per_socket > 1;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 0x1:
			/* Logical processors per package; the APIC ID is per vCPU. */
			e->ebx = (e->ebx & 0x0000ffff) | (package_ids << 16);
			e->edx = multi ? e->edx | EDX_HTT : e->edx & ~EDX_HTT;
			/* KVM leaves the hypervisor bit to the VMM; without it a guest
			 * never looks at the KVM leaves, so no kvmclock and no TSC
			 * frequency, and Linux falls back to slow calibration. */
			e->ecx |= ECX_HYPERVISOR;
			break;
		case 0x4:
			if ((e->eax & 0x1f) == 0)
				break; /* no more cache levels */
			/* Cores per package; caches per core, L3 per package. */
			e->eax &= 0x00003fff;
			e->eax |= (package_ids - 1) << 26;
			if (((e->eax >> 5) & 7) == 3)
				e->eax |= (package_ids - 1) << 14;
			break;
		case 0x80000001:
			e->ecx = multi ? e->ecx | EXT_ECX_CMP_LEGACY : e->ecx & ~EXT_ECX_CMP_LEGACY;
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | ((uint32_t)topo->core_bits << 12) |
				 (uint32_t)(topo->cores_per_socket - 1);
			break;
		}
	}
	/* Leaf 0xB: level 0 is SMT (one thread per core), level 1 the cores. */
	if (find(c, 0, 0) && find(c, 0, 0)->eax >= 0xb) {
		struct kvm_cpuid_entry2 base = { .function = 0xb,
						 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
		struct kvm_cpuid_entry2 e = base;
		e.index = 0, e.eax = 0, e.ebx = 1, e.ecx = (1u << 8) | 0;
		c->entries[c->nent++] = e;
		e = base;
		e.index = 1, e.eax = (uint32_t)topo->core_bits;
		e.ebx = (uint32_t)topo->cores_per_socket, e.ecx = (2u << 8) | 1;
		c->entries[c->nent++] = e;
		e = base;
		e.index = 2, e.ecx = 2;
		c->entries[c->nent++] = e;
	}

	if (model == CPU_MODEL_COMPAT) {
		struct kvm_cpuid_entry2 *e;
		if ((e = find(c, 1, 0))) {
			e->ecx &= compat_leaf1_ecx;
			e->edx &= compat_leaf1_edx;
		}
		if ((e = find(c, 0x80000001, 0)))
			e->ecx &= compat_ext_ecx | EXT_ECX_CMP_LEGACY;
		for (uint32_t i = 0; i < c->nent; i++) {
			e = &c->entries[i];
			if (e->function == 7 || e->function == 0xd || e->function == 0x14)
				e->eax = e->ebx = e->ecx = e->edx = 0;
		}
	}
	if (!strcmp(backend, "kvm_pvm")) {
		/* PVM interprets guest kernel code with its own instruction
		 * emulator, which has no lock cmpxchg16b and no xrstor: a guest
		 * told it may use them dies on its first use in kernel mode. */
		struct kvm_cpuid_entry2 *e = find(c, 1, 0);
		if (e)
			e->ecx &= ~(ECX_CX16 | ECX_XSAVE | ECX_OSXSAVE | ECX_AVX);
	}
	return c;
}

void cpuid_offer_tsc_deadline(struct kvm_cpuid2 *table)
{
	struct kvm_cpuid_entry2 *e = find(table, 1, 0);
	if (e)
		e->ecx |= ECX_TSC_DEADLINE;
}

int cpuid_apply(const struct kvm_cpuid2 *table, const struct cpu_topology *topo,
		struct kvm_cpu *cpu)
{
	size_t size = sizeof(*table) + table->nent * sizeof(table->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c) {
		log_error("out of memory for CPUID table");
		return -1;
	}
	memcpy(c, table, size);
	uint32_t apic_id = cpu_apic_id(topo, cpu->index);
	uint32_t core = apic_id & ((1u << topo->core_bits) - 1);
	uint32_t socket = apic_id >> topo->core_bits;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 0x1:
			e->ebx = (e->ebx & 0x00ffffff) | (apic_id << 24);
			break;
		case 0xb:
			e->edx = apic_id;
			break;
		case 0x8000001e: /* AMD: extended APIC ID, core and node */
			e->eax = apic_id;
			e->ebx = core;
			e->ecx = socket;
			break;
		}
	}
	int r = kvm_cpu_set_cpuid(cpu, c);
	free(c);
	return r;
}
