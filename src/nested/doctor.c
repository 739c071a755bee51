#include "nested/doctor.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm/kvm.h"

static struct check *add(struct doctor_report *r, const char *id, const char *title,
			 enum check_status status, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static struct check *add(struct doctor_report *r, const char *id, const char *title,
			 enum check_status status, const char *fmt, ...)
{
	struct check *c = &r->checks[r->nchecks < DOCTOR_MAX_CHECKS ? r->nchecks++ : r->nchecks - 1];
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->title = title;
	c->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	return c;
}

/* The signature of the hypervisor this host itself runs under (CPUID leaf
 * 0x40000000), when CPUID says there is one. */
static void read_hypervisor(struct doctor_report *r)
{
	unsigned a, b, c, d;
	r->hypervisor[0] = '\0';
	if (!r->cpu.hypervisor)
		return;
	__cpuid(0x40000000, a, b, c, d);
	char sig[13];
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = '\0';
	static const struct { const char *sig, *name; } known[] = {
		{ "KVMKVMKVM", "KVM" }, { "Microsoft Hv", "Hyper-V" },
		{ "VMwareVMware", "VMware" }, { "XenVMMXenVMM", "Xen" },
		{ "TCGTCGTCGTCG", "QEMU TCG" }, { "VBoxVBoxVBox", "VirtualBox" },
		{ " lrpepyh  vr", "Parallels" }, { "ACRNACRNACRN", "ACRN" },
		{ "bhyve bhyve ", "bhyve" },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(sig, known[i].sig)) {
			snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", known[i].name);
			return;
		}
	snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", sig[0] ? sig : "unknown");
}

static int cap(int fd, long c)
{
	int v = ioctl(fd, KVM_CHECK_EXTENSION, c);
	return v < 0 ? 0 : v;
}

void doctor_run(struct doctor_report *r)
{
	memset(r, 0, sizeof(*r));
	host_cpu_read(&r->cpu);
	read_hypervisor(r);
	snprintf(r->backend, sizeof(r->backend), "%s", kvm_host_backend());
	bool amd = !strcmp(r->cpu.vendor, "AuthenticAMD") || !strcmp(r->cpu.vendor, "HygonGenuine");
	const char *ext = amd ? "AMD-V (svm)" : "VT-x (vmx)";
	const char *vm_hint = r->hypervisor[0]
		? "this host is a VM: ask its hypervisor to expose virtualization (KVM: nested=1 and "
		  "-cpu host; Hyper-V: Set-VMProcessor -ExposeVirtualizationExtensions $true; VMware: "
		  "expose hardware assisted virtualization)"
		: "enable virtualization (SVM/VT-x) in the firmware setup";

	add(r, "cpu", "CPU", CHECK_INFO, "%s, %s", r->cpu.vendor[0] ? r->cpu.vendor : "unknown",
	    r->cpu.model[0] ? r->cpu.model : "unknown model");
	if (r->hypervisor[0])
		add(r, "host_is_vm", "Running in a VM", CHECK_INFO, "yes, under %s", r->hypervisor);
	else
		add(r, "host_is_vm", "Running in a VM", CHECK_INFO, "no (bare metal)");

	bool hw = r->cpu.svm || r->cpu.vmx;
	struct check *c = add(r, "hw_virt", "VT-x / AMD-V", hw ? CHECK_PASS : CHECK_FAIL, "%s",
			      r->cpu.svm ? "AMD-V (svm) visible" : r->cpu.vmx ? "VT-x (vmx) visible"
					 : "neither svm nor vmx in /proc/cpuinfo");
	if (!hw)
		snprintf(c->fix, sizeof(c->fix), "%s", vm_hint);
	bool slat = r->cpu.npt || r->cpu.ept;
	c = add(r, "slat", "Second-level address translation", slat ? CHECK_PASS : CHECK_FAIL, "%s",
		r->cpu.npt ? "NPT (AMD RVI)" : r->cpu.ept ? "EPT" : "neither npt nor ept");
	if (!slat)
		snprintf(c->fix, sizeof(c->fix), "%s; without it guests run on slow shadow paging",
			 hw ? "the CPU or its hypervisor hides SLAT" : vm_hint);
	c = add(r, "nx", "NX / XD (no-execute)", r->cpu.nx ? CHECK_PASS : CHECK_FAIL, "%s",
		r->cpu.nx ? "present" : "missing");
	if (!r->cpu.nx)
		snprintf(c->fix, sizeof(c->fix), "enable NX/XD (execute disable) in the firmware");

	const char *dev = getenv("NESTVM_KVM_DEVICE");
	if (!dev || !*dev)
		dev = "/dev/kvm";
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	int err = errno;
	if (fd < 0) {
		c = add(r, "kvm_device", "/dev/kvm", CHECK_FAIL, "%s: %s", dev, strerror(err));
		if (err == ENOENT)
			snprintf(c->fix, sizeof(c->fix), "modprobe %s (the CPU must offer %s)",
				 amd ? "kvm_amd" : "kvm_intel", ext);
		else if (err == EACCES || err == EPERM)
			snprintf(c->fix, sizeof(c->fix),
				 "add this user to the kvm group (usermod -aG kvm USER) or run as root");
	} else {
		add(r, "kvm_device", "/dev/kvm", CHECK_PASS, "%s present and accessible", dev);
	}

	int nested_param = -1;
	if (!strcmp(r->backend, "kvm_amd") || !strcmp(r->backend, "kvm_intel"))
		nested_param = nested_module_param(r->backend);
	if (!strcmp(r->backend, "kvm_pvm")) {
		c = add(r, "kvm_module", "KVM backend", CHECK_FAIL,
			"kvm_pvm: PVM runs guest user code natively but interprets guest kernel code "
			"(about 1000x slower): small CPL3 guests only");
		snprintf(c->fix, sizeof(c->fix),
			 "for stock kernels and nesting use a host with %s, or nestvm labhost "
			 "(emulated, slow)", ext);
	} else if (!strcmp(r->backend, "unknown")) {
		add(r, "kvm_module", "KVM backend", fd >= 0 ? CHECK_INFO : CHECK_FAIL,
		    "no kvm_intel, kvm_amd or kvm_pvm module found");
	} else {
		add(r, "kvm_module", "KVM backend", CHECK_PASS, "%s, nested=%s", r->backend,
		    nested_param == 1 ? "1" : nested_param == 0 ? "0" : "unknown");
	}

	struct nested_support ns = { .kind = NESTED_NONE };
	if (fd >= 0) {
		int api = ioctl(fd, KVM_GET_API_VERSION, 0);
		c = add(r, "kvm_api", "KVM API version", api == KVM_API_VERSION ? CHECK_PASS : CHECK_FAIL,
			"%d", api);
		if (api != KVM_API_VERSION)
			snprintf(c->fix, sizeof(c->fix), "nestvm needs KVM API %d", KVM_API_VERSION);
		static const struct { const char *id, *title; long cap; const char *why; } caps[] = {
			{ "cap_irqchip", "In-kernel irqchip", KVM_CAP_IRQCHIP, "needed to run VMs" },
			{ "cap_pit", "In-kernel PIT", KVM_CAP_PIT2, "needed to run VMs" },
			{ "cap_immediate_exit", "Immediate exit", KVM_CAP_IMMEDIATE_EXIT,
			  "lets nestvm stop vCPUs without races" },
			{ "cap_ioeventfd", "ioeventfd", KVM_CAP_IOEVENTFD, "fast virtio notifications" },
			{ "cap_irqfd", "irqfd", KVM_CAP_IRQFD, "fast virtio interrupts" },
			{ "cap_nested_state", "Nested state (save/restore)", KVM_CAP_NESTED_STATE,
			  "snapshots of VMs that run their own VMs need KVM_GET/SET_NESTED_STATE" },
		};
		for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
			int v = cap(fd, caps[i].cap);
			c = add(r, caps[i].id, caps[i].title, v ? CHECK_PASS : CHECK_FAIL,
				v ? "supported" : "not supported (%s)", caps[i].why);
			if (!v)
				snprintf(c->fix, sizeof(c->fix), "use a hardware-assisted KVM (kvm_intel or "
					 "kvm_amd) on a recent kernel");
		}
		add(r, "max_vcpus", "vCPUs per VM", CHECK_INFO, "%d", cap(fd, KVM_CAP_MAX_VCPUS));
		r->can_run_vms = api == KVM_API_VERSION && cap(fd, KVM_CAP_IRQCHIP) &&
				 cap(fd, KVM_CAP_PIT2);

		struct kvm_host host = { .fd = fd };
		struct kvm_cpuid2 *supported = kvm_host_supported_cpuid(&host);
		if (supported) {
			nested_probe(supported, r->backend, &ns);
			free(supported);
		}
		close(fd);
	}

	if (ns.kind != NESTED_NONE) {
		add(r, "nesting", "Nesting for guests", CHECK_PASS, "%s%s offered to guests (--nested)",
		    nested_kind_name(ns.kind), ns.npt_or_ept ? " with nested paging" : "");
	} else {
		c = add(r, "nesting", "Nesting for guests", CHECK_FAIL, "%s",
			fd < 0 ? "no usable /dev/kvm" : ns.reason);
		snprintf(c->fix, sizeof(c->fix), "%s",
			 fd < 0 ? "fix /dev/kvm first (above)" : ns.fix);
	}

	bool hw_kvm = !strcmp(r->backend, "kvm_intel") || !strcmp(r->backend, "kvm_amd");
	r->full_speed = r->can_run_vms && hw_kvm && hw;
	if (!r->can_run_vms)
		snprintf(r->why_not_full_speed, sizeof(r->why_not_full_speed), "cannot run VMs");
	else if (!r->full_speed)
		snprintf(r->why_not_full_speed, sizeof(r->why_not_full_speed),
			 "KVM backend %s is not hardware-assisted", r->backend);
	r->can_nest = r->can_run_vms && ns.kind != NESTED_NONE;
	if (!r->can_nest)
		snprintf(r->why_not_nest, sizeof(r->why_not_nest), "%s",
			 !r->can_run_vms ? "cannot run VMs" : ns.reason);
}
