/* The /dev/kvm layer: the only code that issues KVM ioctls for the system,
 * VM and vCPU file descriptors. Functions print one-line errors and return
 * -1; they never exit. */
#ifndef NESTVM_KVM_KVM_H
#define NESTVM_KVM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_host {
	int fd;               /* /dev/kvm */
	int vcpu_mmap_size;   /* size of each vCPU's shared kvm_run area */
	int max_vcpus;        /* KVM_CAP_MAX_VCPUS (or NR_VCPUS on old kernels) */
};

/* GSIs from 24 up carry MSIs: each device vector gets one, routed to the
 * address and data the guest programmed. */
#define KVM_FIRST_MSI_GSI  24
#define KVM_MAX_MSI_ROUTES 256

struct kvm_msi_route {
	bool valid;
	uint64_t address;
	uint32_t data;
};

struct kvm_guest {
	int fd;
	struct kvm_host *host;
	pthread_mutex_t route_lock; /* MSI routes change from vCPU threads */
	uint32_t msi_count;
	struct kvm_msi_route msi[KVM_MAX_MSI_ROUTES];
};

struct kvm_cpu {
	int fd;
	int index;
	struct kvm_run *run;
	size_t run_size;
};

/* Opens /dev/kvm (or $NESTVM_KVM_DEVICE) and checks the API version. */
int kvm_host_open(struct kvm_host *host);
void kvm_host_close(struct kvm_host *host);
/* KVM_CHECK_EXTENSION on the system fd: 0 when absent. */
int kvm_host_cap(struct kvm_host *host, long cap);
/* Name of the kernel module that provides /dev/kvm's backend (kvm_intel,
 * kvm_amd, kvm_pvm), or "unknown". */
const char *kvm_host_backend(void);
/* KVM_GET_SUPPORTED_CPUID; the caller frees the result. */
struct kvm_cpuid2 *kvm_host_supported_cpuid(struct kvm_host *host);

int kvm_guest_create(struct kvm_host *host, struct kvm_guest *guest);
void kvm_guest_close(struct kvm_guest *guest);
int kvm_guest_set_memory(struct kvm_guest *guest, uint32_t slot, uint64_t gpa,
			 uint64_t size, void *hva);
int kvm_guest_create_irqchip(struct kvm_guest *guest);
int kvm_guest_create_pit(struct kvm_guest *guest);
/* Routes GSIs as on a PC: 0-15 to the 8259 PICs, 0-23 to the IOAPIC, with
 * the PIT's GSI 0 on IOAPIC pin 2 (the MADT's override says so). */
int kvm_guest_set_pc_irq_routing(struct kvm_guest *guest);
/* A GSI for one MSI vector, and its route (valid false: not routed, the
 * vector is masked or unprogrammed). */
int kvm_guest_alloc_msi_gsi(struct kvm_guest *guest);
int kvm_guest_set_msi_route(struct kvm_guest *guest, int gsi, bool valid, uint64_t address,
			    uint32_t data);
/* Binds (or unbinds) an eventfd: a write to it raises the GSI in KVM. */
int kvm_guest_irqfd(struct kvm_guest *guest, int gsi, int fd, bool assign);
/* Binds (or unbinds) an eventfd that KVM signals, without an exit to us,
 * when the guest writes to the MMIO address. */
int kvm_guest_mmio_eventfd(struct kvm_guest *guest, uint64_t addr, int fd, bool assign);
/* Drives an interrupt line of the in-kernel PIC and IOAPIC. */
int kvm_guest_irq_line(struct kvm_guest *guest, uint32_t irq, int level);

/* KVM_GET_MSR_INDEX_LIST: the MSRs to save and restore; caller frees. */
struct kvm_msr_list *kvm_host_msr_index_list(struct kvm_host *host);
/* Reads one MSR; -1 (silently) if this vCPU cannot. */
int kvm_cpu_get_msr(struct kvm_cpu *cpu, uint32_t index, uint64_t *value);

/* Any other ioctl, for state save and restore: what names it in the error
 * message; returns the ioctl's non-negative result or -1. */
int kvm_host_ioctl(struct kvm_host *host, unsigned long req, void *arg, const char *what);
int kvm_guest_ioctl(struct kvm_guest *guest, unsigned long req, void *arg, const char *what);
int kvm_cpu_ioctl(struct kvm_cpu *cpu, unsigned long req, void *arg, const char *what);

/* index: nestvm's vCPU number; id: KVM's vCPU ID, which is the APIC ID. */
int kvm_cpu_create(struct kvm_guest *guest, int index, uint32_t id, struct kvm_cpu *cpu);
void kvm_cpu_close(struct kvm_cpu *cpu);
/* One KVM_RUN. Returns 0 after a VM exit; 1 if interrupted by a signal
 * (EINTR/EAGAIN), -1 on error. */
int kvm_cpu_run(struct kvm_cpu *cpu);
int kvm_cpu_get_regs(struct kvm_cpu *cpu, struct kvm_regs *regs);
int kvm_cpu_set_regs(struct kvm_cpu *cpu, const struct kvm_regs *regs);
int kvm_cpu_get_sregs(struct kvm_cpu *cpu, struct kvm_sregs *sregs);
int kvm_cpu_set_sregs(struct kvm_cpu *cpu, const struct kvm_sregs *sregs);
int kvm_cpu_set_cpuid(struct kvm_cpu *cpu, const struct kvm_cpuid2 *cpuid);
int kvm_cpu_set_mp_state(struct kvm_cpu *cpu, const struct kvm_mp_state *state);

#endif
