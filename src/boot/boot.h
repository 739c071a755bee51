/* Boot layer: recognises the kernel file, places it and its boot data in
 * guest memory, and gives each vCPU its initial state. */
#ifndef NESTVM_BOOT_BOOT_H
#define NESTVM_BOOT_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct smbios_identity;
#include "kvm/cpuid.h"
#include "kvm/kvm.h"
#include "util/image.h"
#include "mem/guest_mem.h"

enum boot_protocol {
	BOOT_DIRECT64, /* nestvm's own 64-bit CPL3 entry (boot/direct64_abi.h) */
	BOOT_LINUX64,  /* Linux bzImage, 64-bit boot protocol (boot/linux.c) */
	BOOT_PVH,      /* ELF vmlinux through its PVH entry note (boot/pvh.c) */
};

struct boot_config {
	const char *kernel_path;
	const char *initrd_path;
	const char *cmdline;
	int ncpus;
	const struct cpu_topology *topo;
	const struct smbios_identity *identity; /* SMBIOS tables for Linux; NULL: none */
};

struct boot_entry {
	enum boot_protocol protocol;
	uint64_t entry;
};

int boot_load(struct guest_mem *mem, const struct boot_config *config,
	      struct boot_entry *entry);
int boot_setup_cpu(const struct boot_entry *entry, struct kvm_cpu *cpu);

struct elf_info;
struct setup_header;

/* Linux bzImage (boot/linux.c). */
int linux_parse_bzimage(const struct image *img, struct setup_header *hdr,
			size_t *kernel_offset);
int linux_load_bzimage(struct guest_mem *mem, const struct boot_config *config,
		       const struct image *kernel, const struct image *initrd, uint64_t rsdp,
		       struct boot_entry *entry);
int linux_setup_cpu(struct kvm_cpu *cpu, uint64_t entry);
/* Reads the initrd to the highest page-aligned address below max_addr and
 * the end of low RAM that stays above kernel_end. */
int linux_load_initrd(struct guest_mem *mem, const struct image *initrd, uint64_t max_addr,
		      uint64_t kernel_end, uint64_t *addr_out);

/* PVH (boot/pvh.c). */
int pvh_load(struct guest_mem *mem, const struct boot_config *config,
	     const struct image *kernel, const struct elf_info *info, const struct image *initrd,
	     uint64_t rsdp, struct boot_entry *entry);
int pvh_setup_cpu(struct kvm_cpu *cpu, uint64_t entry);

/* Direct 64-bit entry (boot/direct64.c). */
int direct64_setup_memory(struct guest_mem *mem, const char *cmdline, int ncpus);
int direct64_setup_cpu(struct kvm_cpu *cpu, uint64_t entry);

#endif
