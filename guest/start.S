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

	.section .note.nestvm, "a"
	.balign 4
	.long 7                /* namesz: "nestvm\0" */
	.long 4                /* descsz */
	.long DIRECT64_NOTE_TYPE
	.asciz "nestvm"
	.balign 4
	.long DIRECT64_ABI_VERSION

	.bss
	.balign 16
stacks:
	.skip STACK_SIZE * MAX_CPUS
