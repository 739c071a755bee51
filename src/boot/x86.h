/* x86 machine state shared by the boot protocols: the low-memory layout
 * nestvm owns, a GDT, identity page tables, initial segment state, and the
 * guest's physical memory map. */
#ifndef NESTVM_BOOT_X86_H
#define NESTVM_BOOT_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "mem/guest_mem.h"
#include "mem/pc_layout.h"

/* Low memory (below 1 MiB). The direct-entry ABI fixes 0x8000 and 0x9000. */
#define X86_GDT_GPA       0x1000
#define X86_PML4_GPA      0x2000
#define X86_PDPT_GPA      0x3000
#define X86_TSS_GPA       0x4000  /* to 0x606a: TSS plus an open I/O bitmap */
#define X86_ZERO_PAGE_GPA 0x7000  /* Linux boot_params, or PVH start_info */
#define X86_PD_GPA        0x10000 /* one page directory per GiB mapped */
#define X86_PD_MAX        0x60    /* to 0x70000: at most 96 GiB mapped */
#define X86_CMDLINE_GPA   0x80000 /* Linux command line, up to 64 KiB */
#define X86_CMDLINE_MAX   0xffff
#define X86_EBDA_GPA      0x9fc00 /* reserved from here to 640 KiB */
#define X86_BIOS_GPA      PC_BIOS_AREA_GPA /* reserved to 1 MiB: ACPI tables live here */
#define X86_BIOS_END      0x100000

/* GDT selectors. */
#define X86_SEL_CODE32    0x08
#define X86_SEL_CODE64    0x10 /* Linux's __BOOT_CS */
#define X86_SEL_DATA      0x18 /* Linux's __BOOT_DS */
#define X86_SEL_USER_CODE 0x23
#define X86_SEL_USER_DATA 0x2b
#define X86_SEL_TSS       0x30

/* Writes the GDT and TSS. */
void x86_write_gdt(struct guest_mem *mem);
/* Identity-maps max(4 GiB, top of RAM) with 2 MiB pages; user makes the
 * pages user-accessible. Returns -1 if RAM is beyond what it can map. */
int x86_write_identity_map(struct guest_mem *mem, bool user);

enum x86_entry_mode {
	X86_PROTECTED32,  /* flat 32-bit, paging off (PVH) */
	X86_LONG64,       /* 64-bit, CPL0, identity paging (Linux 64-bit boot) */
	X86_LONG64_USER,  /* 64-bit, CPL3, identity paging (direct entry) */
};
/* Sets segments, control registers and EFER for the mode. */
int x86_set_entry_sregs(struct kvm_cpu *cpu, enum x86_entry_mode mode);

/* Copies the kernel command line to X86_CMDLINE_GPA, refusing one longer
 * than max bytes (the kernel's limit, at most X86_CMDLINE_MAX). */
int x86_write_cmdline(struct guest_mem *mem, const char *cmdline, size_t max);

/* The guest-physical memory map, e820 style. */
#define E820_RAM      1
#define E820_RESERVED 2
struct x86_memmap_entry {
	uint64_t addr, size;
	uint32_t type;
};
#define X86_MEMMAP_MAX 8
int x86_memory_map(const struct guest_mem *mem, struct x86_memmap_entry *map);

#endif
