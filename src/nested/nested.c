#include "nested/nested.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/log.h"

#define CPUID_1_ECX_VMX        (1u << 5)
#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_8000000A_EDX_NPT (1u << 0)
#define MSR_IA32_VMX_BASIC     0x480
#define MSR_IA32_VMX_LAST      0x491 /* VMX_VMFUNC */

const char *nested_kind_name(enum nested_kind kind)
{
	switch (kind) {
	case NESTED_SVM: return "AMD-V (SVM)";
	case NESTED_VMX: return "VT-x (VMX)";
	default: return "none";
	}
}

static bool has_flag(const char *flags, const char *flag)
{
	size_t n = strlen(flag);
	for (const char *p = flags; (p = strstr(p, flag)); p += n)
		if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

void host_cpu_read(struct host_cpu *cpu)
{
	memset(cpu, 0, sizeof(*cpu));
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return;
	char line[8192];
	bool have_flags = false;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		char *value = colon + 2 <= line + strlen(line) ? colon + 2 : colon + 1;
		value[strcspn(value, "\n")] = '\0';
		if (!strncmp(line, "vendor_id", 9) && !cpu->vendor[0])
			snprintf(cpu->vendor, sizeof(cpu->vendor), "%s", value);
		else if (!strncmp(line, "model name", 10) && !cpu->model[0])
			snprintf(cpu->model, sizeof(cpu->model), "%s", value);
		else if ((!strncmp(line, "flags", 5) && !have_flags) || !strncmp(line, "vmx flags", 9)) {
			have_flags |= !strncmp(line, "flags", 5);
			cpu->svm |= has_flag(value, "svm");
			cpu->vmx |= has_flag(value, "vmx");
			cpu->npt |= has_flag(value, "npt");
			cpu->ept |= has_flag(value, "ept");
			cpu->nx |= has_flag(value, "nx");
			cpu->hypervisor |= has_flag(value, "hypervisor");
		}
	}
	fclose(f);
}

int nested_module_param(const char *module)
{
	char path[128], v[8] = "";
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/nested", module);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int ok = fgets(v, sizeof(v), f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == 0)
			return &c->entries[i];
	return NULL;
}

void nested_probe(const struct kvm_cpuid2 *supported, const char *backend,
		  struct nested_support *out)
{
	memset(out, 0, sizeof(*out));
	const struct kvm_cpuid_entry2 *ext = find(supported, 0x80000001);
	const struct kvm_cpuid_entry2 *basic = find(supported, 1);
	const struct kvm_cpuid_entry2 *svm = find(supported, 0x8000000a);
	if (ext && (ext->ecx & CPUID_80000001_ECX_SVM)) {
		out->kind = NESTED_SVM;
		out->npt_or_ept = svm && (svm->edx & CPUID_8000000A_EDX_NPT);
	} else if (basic && (basic->ecx & CPUID_1_ECX_VMX)) {
		out->kind = NESTED_VMX;
		out->npt_or_ept = true; /* refined per vCPU from the VMX MSRs */
	}
	if (out->kind != NESTED_NONE)
		return;

	if (!strcmp(backend, "kvm_pvm")) {
		snprintf(out->reason, sizeof(out->reason),
			 "/dev/kvm is PVM (kvm_pvm), which runs guests without VT-x/AMD-V and "
			 "has none to expose");
		snprintf(out->fix, sizeof(out->fix),
			 "use a host with VT-x or AMD-V, or try nesting in the emulated lab host: "
			 "nestvm labhost -- nestvm run --nested ...");
	} else if (!strcmp(backend, "kvm_amd") || !strcmp(backend, "kvm_intel")) {
		if (nested_module_param(backend) == 0) {
			snprintf(out->reason, sizeof(out->reason), "%s is loaded with nested=0", backend);
			snprintf(out->fix, sizeof(out->fix),
				 "stop all VMs, then: modprobe -r %s && modprobe %s nested=1 "
				 "(persist it in /etc/modprobe.d/)", backend, backend);
		} else {
			snprintf(out->reason, sizeof(out->reason),
				 "%s does not offer %s to guests", backend,
				 strcmp(backend, "kvm_amd") ? "VMX" : "SVM");
			snprintf(out->fix, sizeof(out->fix),
				 "check that nested virtualization is enabled in the firmware and, on a "
				 "cloud VM, that the provider exposes it");
		}
	} else {
		snprintf(out->reason, sizeof(out->reason),
			 "KVM offers neither SVM nor VMX to guests (backend: %s)", backend);
		snprintf(out->fix, sizeof(out->fix),
			 "load kvm_amd or kvm_intel with nested=1 on a CPU with AMD-V or VT-x");
	}
}

void nested_apply(struct kvm_cpuid2 *cpuid, const struct kvm_cpuid2 *supported, bool expose)
{
	const struct kvm_cpuid_entry2 *s1 = find(supported, 1);
	const struct kvm_cpuid_entry2 *s81 = find(supported, 0x80000001);
	const struct kvm_cpuid_entry2 *s8a = find(supported, 0x8000000a);
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		if (e->function == 1) {
			e->ecx &= ~CPUID_1_ECX_VMX;
			if (expose && s1)
				e->ecx |= s1->ecx & CPUID_1_ECX_VMX;
		} else if (e->function == 0x80000001) {
			e->ecx &= ~CPUID_80000001_ECX_SVM;
			if (expose && s81)
				e->ecx |= s81->ecx & CPUID_80000001_ECX_SVM;
		} else if (e->function == 0x8000000a) {
			/* SVM revision, ASIDs and features (NPT among them) */
			if (expose && s8a)
				*e = *s8a;
			else
				e->eax = e->ebx = e->ecx = e->edx = 0;
		}
	}
}

int nested_setup_vcpu(struct kvm_host *host, struct kvm_cpu *cpu, enum nested_kind kind)
{
	if (kind != NESTED_VMX)
		return 0;
	/* The feature MSR list names what KVM can report; take the VMX ones. */
	struct kvm_msr_list probe = { .nmsrs = 0 };
	if (ioctl(host->fd, KVM_GET_MSR_FEATURE_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		log_error("KVM_GET_MSR_FEATURE_INDEX_LIST: %s", strerror(errno));
		return -1;
	}
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + probe.nmsrs * sizeof(struct kvm_msr_entry));
	int r = -1;
	if (!list || !msrs) {
		log_error("out of memory for VMX MSRs");
		goto out;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(host->fd, KVM_GET_MSR_FEATURE_INDEX_LIST, list) < 0) {
		log_error("KVM_GET_MSR_FEATURE_INDEX_LIST: %s", strerror(errno));
		goto out;
	}
	for (uint32_t i = 0; i < list->nmsrs; i++)
		if (list->indices[i] >= MSR_IA32_VMX_BASIC && list->indices[i] <= MSR_IA32_VMX_LAST)
			msrs->entries[msrs->nmsrs++].index = list->indices[i];
	if (msrs->nmsrs == 0) {
		log_error("--nested: KVM reports no VMX capability MSRs");
		goto out;
	}
	/* Values from the system fd: what KVM supports for nested guests. */
	if (ioctl(host->fd, KVM_GET_MSRS, msrs) != (int)msrs->nmsrs) {
		log_error("KVM_GET_MSRS (VMX features): %s", strerror(errno));
		goto out;
	}
	if (ioctl(cpu->fd, KVM_SET_MSRS, msrs) != (int)msrs->nmsrs) {
		log_error("vCPU %d: KVM_SET_MSRS (VMX capabilities) failed", cpu->index);
		goto out;
	}
	r = 0;
out:
	free(list);
	free(msrs);
	return r;
}
