/* nestvm's direct 64-bit entry: long mode, CPL3, identity paging. See
 * direct64_abi.h for the contract with the guest. */
#include <string.h>

#include "boot/boot.h"
#include "boot/direct64_abi.h"
#include "boot/x86.h"
#include "util/log.h"

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
	if (x86_write_identity_map(mem, true) < 0)
		return -1;
	x86_write_gdt(mem);
	const struct guest_mem_region *last = &mem->regions[mem->nregions - 1];

	char *cl = guest_mem_ptr(mem, DIRECT64_CMDLINE_GPA, DIRECT64_CMDLINE_MAX + 1);
	memset(cl, 0, DIRECT64_CMDLINE_MAX + 1);
	if (cmdline_len)
		memcpy(cl, cmdline, cmdline_len);
	struct direct64_bootinfo *bi = guest_mem_ptr(mem, DIRECT64_BOOTINFO_GPA, sizeof(*bi));
	*bi = (struct direct64_bootinfo){
		.magic = DIRECT64_MAGIC,
		.ncpus = (unsigned long long)ncpus,
		.ram_size = mem->ram_size,
		.ram_end = last->gpa + last->size,
		.cmdline_gpa = DIRECT64_CMDLINE_GPA,
		.cmdline_len = cmdline_len,
	};
	return 0;
}

int direct64_setup_cpu(struct kvm_cpu *cpu, uint64_t entry)
{
	if (x86_set_entry_sregs(cpu, X86_LONG64_USER) < 0)
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
		/* Interrupts off, IOPL 3. The TSS bitmap opens the ports on
		 * PVM, which drops IOPL; IOPL 3 opens them where the TSS is not
		 * consulted the way hardware does (QEMU's TCG, emulating a lab
		 * host's SVM, accepts only an "available" TSS for the bitmap). */
		.rflags = 0x3002,
	};
	return kvm_cpu_set_regs(cpu, &regs);
}
