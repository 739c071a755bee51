#include "boot/x86.h"

#include <string.h>

#include "util/log.h"

#define PTE_P  0x001ULL
#define PTE_RW 0x002ULL
#define PTE_US 0x004ULL
#define PTE_PS 0x080ULL

#define TSS_IOMAP_OFFSET 0x68
#define TSS_LIMIT        (TSS_IOMAP_OFFSET + 8192) /* bitmap for 65536 ports + 1 */

#define CR0_PE 0x1ULL
#define CR0_MP 0x2ULL
#define CR0_ET 0x10ULL
#define CR0_NE 0x20ULL
#define CR0_WP 0x10000ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define CR4_OSFXSR 0x200ULL
#define CR4_OSXMMEXCPT 0x400ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

void x86_write_gdt(struct guest_mem *mem)
{
	uint64_t *gdt = guest_mem_ptr(mem, X86_GDT_GPA, 8 * 8);
	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL; /* 0x08: code, 32-bit, flat */
	gdt[2] = 0x00af9b000000ffffULL; /* 0x10: code, 64-bit */
	gdt[3] = 0x00cf93000000ffffULL; /* 0x18: data, flat */
	gdt[4] = 0x00affb000000ffffULL; /* 0x20: user code, 64-bit, DPL 3 */
	gdt[5] = 0x00cff3000000ffffULL; /* 0x28: user data, DPL 3 */
	/* 0x30: busy 64-bit TSS, a 16-byte system descriptor. */
	gdt[6] = TSS_LIMIT | ((uint64_t)(X86_TSS_GPA & 0xffffff) << 16) | (0x8bULL << 40) |
		 ((uint64_t)(X86_TSS_GPA >> 24) << 56);
	gdt[7] = 0;
	/* A TSS whose I/O permission bitmap allows every port. IOPL 3 alone
	 * would do on hardware-assisted KVM, but a PVM host drops IOPL from
	 * the flags we set and checks the bitmap instead. The byte after the
	 * bitmap must have all bits set. */
	uint8_t *tss = guest_mem_ptr(mem, X86_TSS_GPA, TSS_LIMIT + 1);
	memset(tss, 0, TSS_LIMIT + 1);
	uint16_t iomap = TSS_IOMAP_OFFSET;
	memcpy(tss + 0x66, &iomap, 2);
	tss[TSS_LIMIT] = 0xff;
}

int x86_write_identity_map(struct guest_mem *mem, bool user)
{
	const struct guest_mem_region *last = &mem->regions[mem->nregions - 1];
	uint64_t top = last->gpa + last->size;
	uint64_t gib = (top + (1ULL << 30) - 1) >> 30;
	if (gib < 4)
		gib = 4; /* MMIO devices below 4 GiB must be reachable too */
	if (gib > X86_PD_MAX) {
		log_error("--memory: this boot protocol maps at most %d GiB", X86_PD_MAX);
		return -1;
	}
	uint64_t flags = PTE_P | PTE_RW | (user ? PTE_US : 0);
	uint64_t *pml4 = guest_mem_ptr(mem, X86_PML4_GPA, 4096);
	uint64_t *pdpt = guest_mem_ptr(mem, X86_PDPT_GPA, 4096);
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = X86_PDPT_GPA | flags;
	for (uint64_t g = 0; g < gib; g++) {
		uint64_t *pd = guest_mem_ptr(mem, X86_PD_GPA + g * 4096, 4096);
		pdpt[g] = (X86_PD_GPA + g * 4096) | flags;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g << 30) + (i << 21)) | flags | PTE_PS;
	}
	return 0;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, uint8_t dpl,
				       bool code64, bool big)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = dpl, .db = big, .s = 1, .l = code64, .g = 1,
	};
}

int x86_set_entry_sregs(struct kvm_cpu *cpu, enum x86_entry_mode mode)
{
	struct kvm_sregs s;
	if (kvm_cpu_get_sregs(cpu, &s) < 0)
		return -1;
	switch (mode) {
	case X86_PROTECTED32:
		s.cs = flat_segment(X86_SEL_CODE32, 0xb, 0, false, true);
		s.ds = flat_segment(X86_SEL_DATA, 0x3, 0, false, true);
		s.cr0 = CR0_PE | CR0_ET;
		s.cr3 = 0;
		s.cr4 = 0;
		s.efer = 0;
		break;
	case X86_LONG64:
	case X86_LONG64_USER: {
		uint8_t dpl = mode == X86_LONG64_USER ? 3 : 0;
		s.cs = flat_segment(dpl ? X86_SEL_USER_CODE : X86_SEL_CODE64, 0xb, dpl, true, false);
		s.ds = flat_segment(dpl ? X86_SEL_USER_DATA : X86_SEL_DATA, 0x3, dpl, false, true);
		s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
		s.cr3 = X86_PML4_GPA;
		s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
		s.efer = EFER_LME | EFER_LMA;
		break;
	}
	}
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.tr = (struct kvm_segment){ .base = X86_TSS_GPA, .limit = TSS_LIMIT,
				     .selector = X86_SEL_TSS, .type = 0xb, .present = 1 };
	s.ldt = (struct kvm_segment){ .type = 0x2, .unusable = 1 };
	s.gdt.base = X86_GDT_GPA;
	s.gdt.limit = 8 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	return kvm_cpu_set_sregs(cpu, &s);
}

int x86_write_cmdline(struct guest_mem *mem, const char *cmdline, size_t max)
{
	if (!cmdline)
		cmdline = "";
	size_t len = strlen(cmdline);
	if (max > X86_CMDLINE_MAX)
		max = X86_CMDLINE_MAX;
	if (len > max) {
		log_error("--cmdline: %zu bytes, this kernel accepts at most %zu", len, max);
		return -1;
	}
	memcpy(guest_mem_ptr(mem, X86_CMDLINE_GPA, len + 1), cmdline, len + 1);
	return 0;
}

int x86_memory_map(const struct guest_mem *mem, struct x86_memmap_entry *map)
{
	int n = 0;
	uint64_t low_end = mem->regions[0].size;
	map[n++] = (struct x86_memmap_entry){ 0, X86_EBDA_GPA, E820_RAM };
	map[n++] = (struct x86_memmap_entry){ X86_EBDA_GPA, 0xa0000 - X86_EBDA_GPA, E820_RESERVED };
	map[n++] = (struct x86_memmap_entry){ X86_BIOS_GPA, X86_BIOS_END - X86_BIOS_GPA,
					      E820_RESERVED };
	if (low_end > X86_BIOS_END)
		map[n++] = (struct x86_memmap_entry){ X86_BIOS_END, low_end - X86_BIOS_END,
						      E820_RAM };
	if (mem->nregions > 1)
		map[n++] = (struct x86_memmap_entry){ mem->regions[1].gpa, mem->regions[1].size,
						      E820_RAM };
	return n;
}
