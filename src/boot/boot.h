/* Boot layer: recognises the kernel file, places it and its boot data in
 * guest memory, and gives each vCPU its initial state. */
#ifndef NESTVM_BOOT_BOOT_H
#define NESTVM_BOOT_BOOT_H

#include <stdint.h>

#include "kvm/kvm.h"
#include "vmm/guest_mem.h"

enum boot_protocol {
	BOOT_DIRECT64, /* nestvm's own 64-bit CPL3 entry (boot/direct64_abi.h) */
};

struct boot_config {
	const char *kernel_path;
	const char *initrd_path;
	const char *cmdline;
	int ncpus;
};

struct boot_entry {
	enum boot_protocol protocol;
	uint64_t entry;
};

int boot_load(struct guest_mem *mem, const struct boot_config *config,
	      struct boot_entry *entry);
int boot_setup_cpu(const struct boot_entry *entry, struct kvm_cpu *cpu, int ncpus);

/* Direct 64-bit entry (boot/direct64.c). */
int direct64_setup_memory(struct guest_mem *mem, const char *cmdline, int ncpus);
int direct64_setup_cpu(struct kvm_cpu *cpu, uint64_t entry);

#endif
