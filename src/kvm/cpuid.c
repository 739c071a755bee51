#include "kvm/cpuid.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

int cpuid_apply(const struct kvm_cpuid2 *supported, struct kvm_cpu *cpu)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c) {
		log_error("out of memory for CPUID table");
		return -1;
	}
	memcpy(c, supported, size);
	uint32_t apic_id = (uint32_t)cpu->index;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 0x1: /* initial APIC ID in EBX[31:24] */
			e->ebx = (e->ebx & 0x00ffffff) | (apic_id << 24);
			break;
		case 0xb:
		case 0x1f: /* x2APIC ID of this logical processor */
			e->edx = apic_id;
			break;
		}
	}
	int r = kvm_cpu_set_cpuid(cpu, c);
	free(c);
	return r;
}
