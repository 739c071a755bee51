/* PVH boot: an uncompressed ELF vmlinux entered in 32-bit protected mode at
 * the address of its XEN_ELFNOTE_PHYS32_ENTRY note, with %ebx pointing to
 * an hvm_start_info structure (the layout of Xen's public start_info.h). */
#include <string.h>

#include "boot/boot.h"
#include "boot/elf.h"
#include "boot/x86.h"
#include "util/log.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;   /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

#define MODLIST_GPA (X86_ZERO_PAGE_GPA + 0x100)
#define MEMMAP_GPA  (X86_ZERO_PAGE_GPA + 0x200)
#define LINUX_MIN_RAM (32ULL << 20)

int pvh_load(struct guest_mem *mem, const struct boot_config *config,
	     const struct image *kernel, const struct elf_info *info, const struct image *initrd,
	     uint64_t rsdp, struct boot_entry *entry)
{
	const char *name = kernel->name;
	if (mem->ram_size < LINUX_MIN_RAM) {
		log_error("--memory: a Linux guest needs at least 32 MiB");
		return -1;
	}
	if (info->pvh_entry >= 0x100000000ULL || !guest_mem_ptr(mem, info->pvh_entry, 1)) {
		log_error("%s: PVH entry point 0x%llx is not in guest RAM", name,
			  (unsigned long long)info->pvh_entry);
		return -1;
	}
	if (elf_load(kernel, mem, X86_BIOS_END) < 0)
		return -1;

	if (x86_write_cmdline(mem, config->cmdline, X86_CMDLINE_MAX) < 0)
		return -1;

	struct hvm_start_info *si = guest_mem_ptr(mem, X86_ZERO_PAGE_GPA, sizeof(*si));
	memset(si, 0, 0x1000);
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = X86_CMDLINE_GPA;
	si->rsdp_paddr = rsdp;

	if (initrd) {
		/* As high in low RAM as it fits, above the kernel image. */
		uint64_t addr;
		if (linux_load_initrd(mem, initrd, 0xffffffffULL, info->load_high, &addr) < 0)
			return -1;
		struct hvm_modlist_entry *mod = guest_mem_ptr(mem, MODLIST_GPA, sizeof(*mod));
		*mod = (struct hvm_modlist_entry){ .paddr = addr, .size = initrd->size };
		si->nr_modules = 1;
		si->modlist_paddr = MODLIST_GPA;
	}

	struct x86_memmap_entry map[X86_MEMMAP_MAX];
	int n = x86_memory_map(mem, map);
	struct hvm_memmap_entry *mm = guest_mem_ptr(mem, MEMMAP_GPA, (size_t)n * sizeof(*mm));
	for (int i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){ map[i].addr, map[i].size, map[i].type, 0 };
	si->memmap_paddr = MEMMAP_GPA;
	si->memmap_entries = (uint32_t)n;

	x86_write_gdt(mem);
	entry->protocol = BOOT_PVH;
	entry->entry = info->pvh_entry;
	return 0;
}

int pvh_setup_cpu(struct kvm_cpu *cpu, uint64_t entry)
{
	if (cpu->index != 0)
		return 0; /* the others wait for INIT/SIPI */
	if (x86_set_entry_sregs(cpu, X86_PROTECTED32) < 0)
		return -1;
	struct kvm_regs regs = {
		.rip = entry,
		.rbx = X86_ZERO_PAGE_GPA,
		.rflags = 0x2,
	};
	return kvm_cpu_set_regs(cpu, &regs);
}
