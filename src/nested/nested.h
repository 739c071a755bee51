/* Hardware-assisted nesting: whether this host's KVM can expose AMD-V or
 * VT-x to a guest, why not and how to fix it, and the CPUID and MSR state
 * that exposes it (or hides it). */
#ifndef NESTVM_NESTED_NESTED_H
#define NESTVM_NESTED_NESTED_H

#include <stdbool.h>

#include "kvm/kvm.h"

enum nested_kind { NESTED_NONE, NESTED_SVM, NESTED_VMX };

struct nested_support {
	enum nested_kind kind;   /* what KVM offers guests, if anything */
	bool npt_or_ept;         /* second-level translation offered to guests */
	char reason[256];        /* why nesting cannot be exposed */
	char fix[256];           /* what to do about it */
};

/* What the host CPU itself shows in /proc/cpuinfo. */
struct host_cpu {
	char vendor[32];
	char model[128];
	bool svm, vmx, npt, ept, nx, hypervisor;
};
void host_cpu_read(struct host_cpu *cpu);

/* Reads the module parameter /sys/module/MODULE/parameters/nested:
 * 1 on, 0 off, -1 not loaded or not readable. */
int nested_module_param(const char *module);

/* Decides from KVM's supported CPUID and the backend module. */
void nested_probe(const struct kvm_cpuid2 *supported, const char *backend,
		  struct nested_support *out);

/* Shows (expose) or hides SVM/VMX and the SVM feature leaf in a vCPU CPUID
 * table, taking what is shown from KVM's supported table, whatever CPU
 * model filtered the rest. */
void nested_apply(struct kvm_cpuid2 *cpuid, const struct kvm_cpuid2 *supported, bool expose);

/* Gives a vCPU the VMX capability MSRs KVM reports as features, so the
 * guest's hypervisor sees the host's VT-x capabilities. No-op for SVM. */
int nested_setup_vcpu(struct kvm_host *host, struct kvm_cpu *cpu, enum nested_kind kind);

const char *nested_kind_name(enum nested_kind kind);

#endif
