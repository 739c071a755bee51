/* The nestvm direct 64-bit entry: the contract between nestvm and a
 * freestanding ELF guest that carries the note below (the tier-1 test guest
 * is one). Shared by both sides, so it holds only plain C types.
 *
 * nestvm starts every vCPU at the ELF entry point already in 64-bit mode
 * and at CPL3, so the guest runs user-mode code only; the TSS I/O bitmap
 * (and IOPL 3 where the host keeps it) lets it use every I/O port directly. This is what runs at native speed on hosts whose KVM
 * interprets guest kernel code (PVM). Registers at entry:
 *   rdi = vCPU index (0 .. ncpus-1), rsi = guest-physical address of
 *   struct direct64_bootinfo, interrupts off, rsp = 0
 *   (the guest sets its own stack).
 * Paging identity-maps the first 4 GiB and all RAM with user-accessible
 * 2 MiB pages; there is no IDT, so any exception ends in a triple fault.
 * Memory below 1 MiB is nestvm's; PT_LOAD segments must lie above it.
 */
#ifndef NESTVM_BOOT_DIRECT64_ABI_H
#define NESTVM_BOOT_DIRECT64_ABI_H

#define DIRECT64_NOTE_NAME   "nestvm"
#define DIRECT64_NOTE_TYPE   0x4e560001 /* desc: 4-byte ABI version */
#define DIRECT64_ABI_VERSION 1

#define DIRECT64_BOOTINFO_GPA 0x8000
#define DIRECT64_CMDLINE_GPA  0x9000
#define DIRECT64_CMDLINE_MAX  4095
#define DIRECT64_LOAD_MIN     0x100000
#define DIRECT64_MAGIC        0x3436544345524944ULL /* "DIRECT64" */

#ifndef __ASSEMBLER__
struct direct64_bootinfo {
	unsigned long long magic;
	unsigned long long ncpus;
	unsigned long long ram_size;
	unsigned long long ram_end;     /* end of the highest RAM range: RAM above
	                                 * 3 GiB is moved above 4 GiB */
	unsigned long long cmdline_gpa; /* NUL-terminated */
	unsigned long long cmdline_len;
};
#endif

#endif
