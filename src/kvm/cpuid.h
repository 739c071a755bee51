/* CPUID policy: what each vCPU is told about the processor. */
#ifndef NESTVM_KVM_CPUID_H
#define NESTVM_KVM_CPUID_H

#include "kvm/kvm.h"

/* Sets vCPU cpu's CPUID from the host's supported table, with its own APIC
 * ID filled in. The table is not modified. */
int cpuid_apply(const struct kvm_cpuid2 *supported, struct kvm_cpu *cpu);

#endif
