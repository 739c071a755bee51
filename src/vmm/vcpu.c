/* One thread per vCPU: KVM_RUN, then dispatch the exit to a device bus. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/sandbox.h"
#include "vmm/machine.h"

static const char *exit_reason_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN: return "unknown";
	case KVM_EXIT_EXCEPTION: return "exception";
	case KVM_EXIT_HYPERCALL: return "hypercall";
	case KVM_EXIT_DEBUG: return "debug";
	case KVM_EXIT_HLT: return "hlt";
	case KVM_EXIT_IRQ_WINDOW_OPEN: return "irq window open";
	case KVM_EXIT_NMI: return "nmi";
	case KVM_EXIT_X86_RDMSR: return "rdmsr";
	case KVM_EXIT_X86_WRMSR: return "wrmsr";
	default: return "unhandled";
	}
}

static uint64_t guest_rip(struct kvm_cpu *cpu)
{
	struct kvm_regs regs;
	return kvm_cpu_get_regs(cpu, &regs) == 0 ? regs.rip : 0;
}

/* Where a triple fault happened. AMD's KVM resets the vCPU when it sees the
 * shutdown, so its registers then show the reset vector, not the fault. */
static const char *shutdown_location(struct kvm_cpu *cpu, char *buf, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (kvm_cpu_get_regs(cpu, &r) < 0 || kvm_cpu_get_sregs(cpu, &s) < 0)
		return "at an unknown address";
	if (r.rip == 0xfff0 && s.cs.selector == 0xf000)
		return "(address lost: KVM reset the vCPU at the shutdown)";
	snprintf(buf, len, "at rip 0x%llx", (unsigned long long)r.rip);
	return buf;
}

/* With -v, the registers that explain most guest crashes. */
static void dump_state(struct kvm_cpu *cpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (log_verbosity < 1 || kvm_cpu_get_regs(cpu, &r) < 0 || kvm_cpu_get_sregs(cpu, &s) < 0)
		return;
	log_info("vCPU %d: rip 0x%llx rsp 0x%llx rflags 0x%llx cs 0x%x (dpl %u, l %u) "
		 "cr0 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx", cpu->index,
		 (unsigned long long)r.rip, (unsigned long long)r.rsp,
		 (unsigned long long)r.rflags, s.cs.selector, s.cs.dpl, s.cs.l,
		 (unsigned long long)s.cr0, (unsigned long long)s.cr3,
		 (unsigned long long)s.cr4, (unsigned long long)s.efer);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->cpu.run;
	uint32_t size = run->io.size, count = run->io.count;
	uint64_t off = run->io.data_offset;
	/* The data area lies in the shared run page; check that KVM's offsets
	 * keep it there before touching it. */
	if (off > v->cpu.run_size || (uint64_t)size * count > v->cpu.run_size - off)
		return;
	uint8_t *data = (uint8_t *)run + off;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < count; i++, data += size) {
		if (!bus_access(&v->machine->pio, run->io.port, data, size, is_write))
			log_debug("vCPU %d: %s of unassigned port 0x%x", v->cpu.index,
				  is_write ? "write" : "read", run->io.port);
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->cpu.run;
	uint32_t len = run->mmio.len;
	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (!bus_access(&v->machine->mmio, run->mmio.phys_addr, run->mmio.data, len,
			run->mmio.is_write))
		log_debug("vCPU %d: %s of unassigned MMIO 0x%llx", v->cpu.index,
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr);
}

/* Returns false when the exit ends the VM. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->cpu.run;
	struct machine *m = v->machine;
	int idx = v->cpu.index;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN: {
		char where[64];
		log_error("vCPU %d: guest triple fault (CPU shutdown) %s", idx,
			  shutdown_location(&v->cpu, where, sizeof(where)));
		dump_state(&v->cpu);
		machine_request_stop(m, MACHINE_EXIT_ERROR);
		return false;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
			machine_request_stop(m, 0);
		} else if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
			machine_request_reboot(m);
		} else {
			log_error("vCPU %d: unhandled system event %u", idx, run->system_event.type);
			machine_request_stop(m, MACHINE_EXIT_ERROR);
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		log_error("vCPU %d: KVM internal error (suberror %u%s) at rip 0x%" PRIx64, idx,
			  run->internal.suberror,
			  run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
				  ": instruction emulation failed" : "",
			  guest_rip(&v->cpu));
		machine_request_stop(m, MACHINE_EXIT_ERROR);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		log_error("vCPU %d: KVM could not enter the guest (hardware reason 0x%llx)", idx,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		machine_request_stop(m, MACHINE_EXIT_ERROR);
		return false;
	default:
		log_error("vCPU %d: unhandled KVM exit %u (%s) at rip 0x%" PRIx64, idx,
			  run->exit_reason, exit_reason_name(run->exit_reason), guest_rip(&v->cpu));
		machine_request_stop(m, MACHINE_EXIT_ERROR);
		return false;
	}
}

/* Parks the vCPU for machine_pause(). One KVM_RUN with immediate_exit
 * first: it completes an I/O exit we just handled, so the registers read
 * while parked are consistent (api.rst, KVM_EXIT_IO/MMIO). */
static void park(struct vcpu *v)
{
	struct machine *m = v->machine;
	v->cpu.run->immediate_exit = 1;
	kvm_cpu_run(&v->cpu);
	v->cpu.run->immediate_exit = 0;
	pthread_mutex_lock(&m->pause_lock);
	m->parked++;
	while (atomic_load(&m->pause_requested) && !atomic_load(&m->stopping))
		pthread_cond_wait(&m->pause_cond, &m->pause_lock);
	m->parked--;
	pthread_mutex_unlock(&m->pause_lock);
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct machine *m = v->machine;
	sandbox_enter(SANDBOX_VCPU);
	/* Once: a guest reboot rebuilds the machine and starts its threads again. */
	static atomic_bool startup_reported;
	if (v->cpu.index == 0 && process_start_ns && !atomic_exchange(&startup_reported, true))
		log_info("startup: %.2f ms from main() to the first KVM_RUN",
			 (double)(monotonic_ns() - process_start_ns) / 1e6);
	while (!atomic_load(&m->stopping)) {
		if (atomic_load(&m->pause_requested)) {
			park(v);
			continue;
		}
		int r = kvm_cpu_run(&v->cpu);
		if (r < 0) {
			machine_request_stop(m, MACHINE_EXIT_ERROR);
			break;
		}
		if (r == 1) /* a signal: a kick to look at m->stopping */
			continue;
		if (!handle_exit(v))
			break;
	}
	atomic_store(&v->exited, true);
	return NULL;
}
