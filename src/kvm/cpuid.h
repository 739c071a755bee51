/* CPUID policy: what each vCPU is told about the processor and the machine's
 * topology. The APIC ID scheme here is also what the MADT and
 * KVM_CREATE_VCPU use, so all three agree. */
#ifndef NESTVM_KVM_CPUID_H
#define NESTVM_KVM_CPUID_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm.h"

enum cpu_model {
	CPU_MODEL_HOST,   /* everything KVM supports on this host */
	CPU_MODEL_COMPAT, /* a fixed baseline so a guest can move between hosts */
};

struct cpu_topology {
	int ncpus;
	int cores_per_socket; /* one thread per core */
	int core_bits;        /* APIC ID bits for the core within a socket */
};

void cpu_topology_init(struct cpu_topology *topo, int ncpus, int cores_per_socket);
/* APIC ID of vCPU index: socket in the high bits, core in the low ones. */
uint32_t cpu_apic_id(const struct cpu_topology *topo, int index);

/* Builds the table every vCPU starts from: the host's supported CPUID
 * filtered by the model and by what the KVM backend can run. The caller
 * frees it. */
struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, enum cpu_model model,
			       const struct cpu_topology *topo, const char *backend);

/* Offers the local APIC's TSC-deadline timer mode (leaf 1 ECX bit 24). KVM
 * emulates it whenever it has KVM_CAP_TSC_DEADLINE_TIMER and the irqchip
 * is in the kernel, but before Linux 6.14 KVM_GET_SUPPORTED_CPUID leaves
 * the bit clear and it is the VMM's to set, as QEMU does. */
void cpuid_offer_tsc_deadline(struct kvm_cpuid2 *table);

/* Sets vCPU cpu's CPUID from the table, with its own APIC ID filled in. */
int cpuid_apply(const struct kvm_cpuid2 *table, const struct cpu_topology *topo,
		struct kvm_cpu *cpu);

#endif
