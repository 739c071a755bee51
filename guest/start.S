/* Entry for every vCPU: rdi = vCPU index, rsi = boot info (direct64_abi.h).
 * Each vCPU takes its own 16 KiB stack and calls guest_main. */
#include "boot/direct64_abi.h"

#define STACK_SIZE 16384
#define MAX_CPUS   64

	.section .text.start, "ax"
	.globl _start
_start:
	cmp $MAX_CPUS, %rdi
	jae 1f
	lea stacks(%rip), %rsp
	mov %rdi, %rax
	inc %rax
	shl $14, %rax          /* (index + 1) * STACK_SIZE */
	add %rax, %rsp
	call guest_main
1:	ud2                    /* no IDT: an exception here is a triple fault */

/* PVH entry, so that other VMMs (QEMU's -kernel) can run the guest too, for
 * side-by-side benchmarks. Entered in 32-bit protected mode with paging off
 * and %ebx pointing to hvm_start_info; builds what nestvm's direct entry
 * gives (identity paging, user segments, boot info) and drops to CPL3 with
 * IOPL 3 at _start as vCPU 0. Only one vCPU, and RAM size is not reported. */
#define HVM_CMDLINE_OFFSET 24

	.section .text.pvh, "ax"
	.code32
	.globl pvh_start
pvh_start:
	mov %ebx, %esi
	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages. */
	movl $pvh_pdpt + 7, pvh_pml4
	mov $pvh_pd + 7, %eax
	xor %ecx, %ecx
1:	mov %eax, pvh_pdpt(,%ecx,8)
	add $4096, %eax
	inc %ecx
	cmp $4, %ecx
	jb 1b
	xor %ecx, %ecx
2:	mov %ecx, %eax
	shl $21, %eax
	or $0x87, %eax             /* present, writable, user, 2 MiB */
	mov %eax, pvh_pd(,%ecx,8)
	inc %ecx
	cmp $2048, %ecx
	jb 2b
	mov $pvh_pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x620, %eax            /* PAE, OSFXSR, OSXMMEXCPT */
	mov %eax, %cr4
	mov $0xc0000080, %ecx      /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80010023, %eax       /* PG, WP, NE, MP, PE */
	mov %eax, %cr0
	lgdt pvh_gdt_desc
	ljmp $0x10, $3f
	.code64
3:	mov $0x18, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	/* Boot info for guest_main: magic, one vCPU, the command line. */
	movabs $DIRECT64_MAGIC, %rax
	mov %rax, pvh_bootinfo
	movq $1, pvh_bootinfo + 8
	mov HVM_CMDLINE_OFFSET(%rsi), %rax
	mov %rax, pvh_bootinfo + 32
	/* iretq to CPL3: SS, RSP, RFLAGS (IOPL 3), CS, RIP. */
	pushq $0x2b
	pushq $0
	pushq $0x3002
	pushq $0x23
	pushq $_start
	xor %edi, %edi
	mov $pvh_bootinfo, %esi
	iretq

	.section .rodata
	.balign 8
pvh_gdt:
	.quad 0
	.quad 0x00cf9b000000ffff   /* 0x08 code32 */
	.quad 0x00af9b000000ffff   /* 0x10 code64 */
	.quad 0x00cf93000000ffff   /* 0x18 data */
	.quad 0x00affb000000ffff   /* 0x20 user code64 */
	.quad 0x00cff3000000ffff   /* 0x28 user data */
pvh_gdt_end:
pvh_gdt_desc:
	.word pvh_gdt_end - pvh_gdt - 1
	.long pvh_gdt

	.section .note.nestvm, "a"
	.balign 4
	.long 7                /* namesz: "nestvm\0" */
	.long 4                /* descsz */
	.long DIRECT64_NOTE_TYPE
	.asciz "nestvm"
	.balign 4
	.long DIRECT64_ABI_VERSION
	.balign 4
	.long 4                /* namesz: "Xen\0" */
	.long 4                /* descsz */
	.long 18               /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start

	.bss
	.balign 4096
pvh_pml4:
	.skip 4096
pvh_pdpt:
	.skip 4096
pvh_pd:
	.skip 4096 * 4
pvh_bootinfo:
	.skip 64
	.balign 16
stacks:
	.skip STACK_SIZE * MAX_CPUS
