/* nestvm's direct 64-bit entry: long mode, CPL3, identity paging. See
 * direct64_abi.h for the contract with the guest. */
#include <string.h>

#include "boot/boot.h"
#include "boot/direct64_abi.h"
#include "util/log.h"

/* Low-memory layout (all below DIRECT64_LOAD_MIN). */
#define GDT_GPA     0x1000
#define PML4_GPA    0x2000
#define PDPT_GPA    0x3000
#define TSS_GPA     0x4000 /* up to 0x606a */
#define PD_GPA      0x10000 /* one page directory per GiB mapped */
#define PD_MAX      0x70    /* pages available up to 0x80000: 112 GiB mapped */

#define PTE_P  0x001ULL
#define PTE_RW 0x002ULL
#define PTE_US 0x004ULL
#define PTE_PS 0x080ULL

#define SEL_USER_CODE 0x1b /* GDT entry 3, RPL 3 */
#define SEL_USER_DATA 0x23 /* GDT entry 4, RPL 3 */
#define SEL_TSS       0x28
#define TSS_IOMAP_OFFSET 0x68
#define TSS_LIMIT     (TSS_IOMAP_OFFSET + 8192) /* bitmap for 65536 ports + 1 */

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
#define RFLAGS_RESERVED 0x2ULL
#define RFLAGS_IOPL3 0x3000ULL

static uint64_t *table(struct guest_mem *mem, uint64_t gpa)
{
	return guest_mem_ptr(mem, gpa, 4096);
}

int direct64_setup_memory(struct guest_mem *mem, const char *cmdline, int ncpus)
{
	if (mem->ram_size < DIRECT64_LOAD_MIN * 2) {
		log_error("--memory: a direct-entry guest needs at least 2 MiB");
		return -1;
	}
	size_t cmdline_len = cmdline ? strlen(cmdline) : 0;
	if (cmdline_len > DIRECT64_CMDLINE_MAX) {
		log_error("--cmdline: %zu bytes, the limit is %d", cmdline_len,
			  DIRECT64_CMDLINE_MAX);
		return -1;
	}
	/* Map max(4 GiB, top of RAM) so that MMIO devices below 4 GiB are
	 * reachable too. */
	uint64_t top = mem->regions[mem->nregions - 1].gpa + mem->regions[mem->nregions - 1].size;
	uint64_t gib = (top + (1ULL << 30) - 1) >> 30;
	if (gib < 4)
		gib = 4;
	if (gib > PD_MAX) {
		log_error("--memory: a direct-entry guest can address at most %d GiB", PD_MAX);
		return -1;
	}

	uint64_t *pml4 = table(mem, PML4_GPA), *pdpt = table(mem, PDPT_GPA);
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_GPA | PTE_P | PTE_RW | PTE_US;
	for (uint64_t g = 0; g < gib; g++) {
		uint64_t *pd = table(mem, PD_GPA + g * 4096);
		pdpt[g] = (PD_GPA + g * 4096) | PTE_P | PTE_RW | PTE_US;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g << 30) + (i << 21)) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	}

	uint64_t *gdt = guest_mem_ptr(mem, GDT_GPA, 7 * 8);
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffULL; /* kernel code, 64-bit */
	gdt[2] = 0x00cf93000000ffffULL; /* kernel data */
	gdt[3] = 0x00affb000000ffffULL; /* user code, 64-bit, DPL 3 */
	gdt[4] = 0x00cff3000000ffffULL; /* user data, DPL 3 */
	/* 64-bit busy TSS: 16-byte system descriptor. */
	gdt[5] = TSS_LIMIT | ((uint64_t)(TSS_GPA & 0xffffff) << 16) | (0x8bULL << 40) |
		 ((uint64_t)(TSS_GPA >> 24) << 56);
	gdt[6] = 0;
	/* A TSS whose I/O permission bitmap allows every port. IOPL 3 alone
	 * would do on hardware-assisted KVM, but a PVM host drops IOPL from
	 * the flags we set and checks the bitmap instead. The byte after the
	 * bitmap must have all bits set. */
	uint8_t *tss = guest_mem_ptr(mem, TSS_GPA, TSS_LIMIT + 1);
	memset(tss, 0, TSS_LIMIT + 1);
	uint16_t iomap = TSS_IOMAP_OFFSET;
	memcpy(tss + 0x66, &iomap, 2);
	tss[TSS_LIMIT] = 0xff;

	char *cl = guest_mem_ptr(mem, DIRECT64_CMDLINE_GPA, DIRECT64_CMDLINE_MAX + 1);
	memset(cl, 0, DIRECT64_CMDLINE_MAX + 1);
	if (cmdline_len)
		memcpy(cl, cmdline, cmdline_len);
	struct direct64_bootinfo *bi = guest_mem_ptr(mem, DIRECT64_BOOTINFO_GPA, sizeof(*bi));
	*bi = (struct direct64_bootinfo){
		.magic = DIRECT64_MAGIC,
		.ncpus = (unsigned long long)ncpus,
		.ram_size = mem->ram_size,
		.ram_end = top,
		.cmdline_gpa = DIRECT64_CMDLINE_GPA,
		.cmdline_len = cmdline_len,
	};
	return 0;
}

static struct kvm_segment user_segment(uint16_t selector, uint8_t type, int code)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 3, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1,
	};
}

int direct64_setup_cpu(struct kvm_cpu *cpu, uint64_t entry)
{
	struct kvm_sregs sregs;
	if (kvm_cpu_get_sregs(cpu, &sregs) < 0)
		return -1;
	sregs.cs = user_segment(SEL_USER_CODE, 0xb, 1);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = user_segment(SEL_USER_DATA, 0x3, 0);
	sregs.tr = (struct kvm_segment){ .base = TSS_GPA, .limit = TSS_LIMIT,
					 .selector = SEL_TSS, .type = 0xb, .present = 1 };
	sregs.ldt = (struct kvm_segment){ .type = 0x2, .unusable = 1 };
	sregs.gdt.base = GDT_GPA;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA;
	if (kvm_cpu_set_sregs(cpu, &sregs) < 0)
		return -1;
	/* With the in-kernel local APIC, every vCPU but the first waits for
	 * INIT/SIPI; direct-entry guests have no bootstrap code to send them,
	 * so all vCPUs start runnable at the entry point. */
	struct kvm_mp_state runnable = { .mp_state = KVM_MP_STATE_RUNNABLE };
	if (kvm_cpu_set_mp_state(cpu, &runnable) < 0)
		return -1;
	struct kvm_regs regs = {
		.rip = entry,
		.rdi = (uint64_t)cpu->index,
		.rsi = DIRECT64_BOOTINFO_GPA,
		.rflags = RFLAGS_RESERVED | RFLAGS_IOPL3,
	};
	return kvm_cpu_set_regs(cpu, &regs);
}
