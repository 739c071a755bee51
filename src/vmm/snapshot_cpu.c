/* KVM's side of a snapshot: each vCPU's registers and the VM's in-kernel
 * chips and clock, saved with KVM's GET ioctls and put back with its SET
 * ioctls in the order KVM needs (see snapshot_restore_vcpu). Records are
 * KVM's own structures, checked for their exact sizes on the way in. */
#define _GNU_SOURCE
#include "vmm/snapshot_cpu.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* One vCPU, read with KVM's GET ioctls. */
void snapshot_save_vcpu(struct state_writer *w, struct kvm_host *host, struct kvm_cpu *cpu, void *buf,
			size_t bufsize)
{
	uint32_t i = (uint32_t)cpu->index;
#define GET(req, tag, size) \
	do { \
		if (!w->failed && kvm_cpu_ioctl(cpu, req, buf, #req) < 0) \
			state_writer_fail(w, "vCPU %u: " #req " failed", i); \
		state_put_record(w, tag, i, buf, size); \
	} while (0)
	GET(KVM_GET_REGS, T_REGS, sizeof(struct kvm_regs));
	GET(KVM_GET_SREGS, T_SREGS, sizeof(struct kvm_sregs));
	int xsave_size = kvm_host_cap(host, KVM_CAP_XSAVE2);
	if (xsave_size < (int)sizeof(struct kvm_xsave))
		xsave_size = sizeof(struct kvm_xsave);
	memset(buf, 0, (size_t)xsave_size);
	GET(kvm_host_cap(host, KVM_CAP_XSAVE2) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, T_XSAVE,
	    (uint64_t)xsave_size);
	if (kvm_host_cap(host, KVM_CAP_XCRS))
		GET(KVM_GET_XCRS, T_XCRS, sizeof(struct kvm_xcrs));

	/* MSRs: every one KVM lists as saveable that this vCPU can read. */
	struct kvm_msr_list *list = kvm_host_msr_index_list(host);
	struct kvm_msrs *msrs = list ? calloc(1, sizeof(*msrs) + list->nmsrs * sizeof(struct kvm_msr_entry))
				     : NULL;
	if (!msrs) {
		state_writer_fail(w, "cannot list the vCPU's MSRs");
	} else {
		for (uint32_t k = 0; k < list->nmsrs; k++) {
			uint64_t value;
			if (kvm_cpu_get_msr(cpu, list->indices[k], &value) == 0)
				msrs->entries[msrs->nmsrs++] =
					(struct kvm_msr_entry){ .index = list->indices[k], .data = value };
		}
		state_put_record(w, T_MSRS, i, msrs, sizeof(*msrs) + msrs->nmsrs * sizeof(struct kvm_msr_entry));
	}
	free(list);
	free(msrs);

	GET(KVM_GET_LAPIC, T_LAPIC, sizeof(struct kvm_lapic_state));
	GET(KVM_GET_VCPU_EVENTS, T_EVENTS, sizeof(struct kvm_vcpu_events));
	GET(KVM_GET_MP_STATE, T_MPSTATE, sizeof(struct kvm_mp_state));
	GET(KVM_GET_DEBUGREGS, T_DEBUGREGS, sizeof(struct kvm_debugregs));
	int nested = kvm_host_cap(host, KVM_CAP_NESTED_STATE);
	if (nested > 0 && (size_t)nested <= bufsize) {
		struct kvm_nested_state *ns = buf;
		memset(ns, 0, (size_t)nested);
		ns->size = (uint32_t)nested;
		GET(KVM_GET_NESTED_STATE, T_NESTED, ns->size);
	}
#undef GET
}

void snapshot_save_vm(struct state_writer *w, struct kvm_guest *kvm)
{
	for (uint32_t chip = 0; chip < 3; chip++) {
		struct kvm_irqchip ic = { .chip_id = chip };
		if (!w->failed && kvm_guest_ioctl(kvm, KVM_GET_IRQCHIP, &ic, "KVM_GET_IRQCHIP") < 0)
			state_writer_fail(w, "KVM_GET_IRQCHIP failed");
		state_put_record(w, T_IRQCHIP, chip, &ic, sizeof(ic));
	}
	struct kvm_pit_state2 pit;
	if (!w->failed && kvm_guest_ioctl(kvm, KVM_GET_PIT2, &pit, "KVM_GET_PIT2") < 0)
		state_writer_fail(w, "KVM_GET_PIT2 failed");
	state_put_record(w, T_PIT2, 0, &pit, sizeof(pit));
	struct kvm_clock_data clock = { 0 };
	if (!w->failed && kvm_guest_ioctl(kvm, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK") < 0)
		state_writer_fail(w, "KVM_GET_CLOCK failed");
	clock.flags = 0; /* restore the guest's clock value, not a host time */
	state_put_record(w, T_CLOCK, 0, &clock, sizeof(clock));
}

/* Copies a record of exactly len bytes into dst; a missing or wrongly
 * sized record means a corrupted snapshot. */
static int take(const char *dir, const struct state_record *r, void *dst, uint64_t len, const char *what)
{
	if (!r || r->len != len) {
		log_error("snapshot %s: state.bin is corrupted (%s %s)", dir, what,
			  r ? "has the wrong size" : "is missing");
		return -1;
	}
	memcpy(dst, r->data, len);
	return 0;
}

#ifndef MSR_IA32_TSC_DEADLINE
#define MSR_IA32_TSC_DEADLINE 0x6e0
#endif

/* KVM_SET_MSRS stops at the first MSR it refuses and says how many it
 * set: each refused one is named and skipped, and the rest still go in
 * (a snapshot from a host whose KVM knew more MSRs restores all it can). */
static int restore_msrs(struct kvm_cpu *cpu, const struct kvm_msr_entry *entries, uint32_t n)
{
	struct kvm_msrs *batch = malloc(sizeof(*batch) + (n ? n : 1) * sizeof(entries[0]));
	if (!batch)
		return -1;
	int r = 0;
	for (uint32_t done = 0; done < n;) {
		batch->nmsrs = n - done;
		batch->pad = 0;
		memcpy(batch->entries, entries + done, batch->nmsrs * sizeof(entries[0]));
		int set = kvm_cpu_ioctl(cpu, KVM_SET_MSRS, batch, "KVM_SET_MSRS");
		if (set < 0) {
			r = -1;
			break;
		}
		done += (uint32_t)set;
		if (done < n) {
			log_warn("vCPU %d: this host's KVM refused MSR 0x%x from the snapshot; "
				 "the other MSRs are restored", cpu->index, entries[done].index);
			done++;
		}
	}
	free(batch);
	return r;
}

int snapshot_restore_vcpu(const char *dir, struct kvm_host *host, const struct state_records *recs,
			  struct kvm_cpu *cpu)
{
	uint32_t i = (uint32_t)cpu->index;
	const struct state_record *r;
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_xcrs xcrs;
		struct kvm_lapic_state lapic;
		struct kvm_vcpu_events events;
		struct kvm_mp_state mp;
		struct kvm_debugregs debug;
	} u;
	/* KVM's own selftests restore in this order; the nested state goes
	 * last, once EFER and the rest of L1's view are in place. */
	if (take(dir, state_find(recs, T_SREGS, i), &u.sregs, sizeof(u.sregs), "special registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_SREGS, &u.sregs, "KVM_SET_SREGS") < 0)
		return -1;
	/* Records sit at any offset in state.bin: fields are copied out, never
	 * read through a cast pointer (that would be a misaligned access). */
	r = state_find(recs, T_MSRS, i);
	uint32_t nmsrs = 0;
	if (r && r->len >= sizeof(struct kvm_msrs))
		memcpy(&nmsrs, r->data + offsetof(struct kvm_msrs, nmsrs), sizeof(nmsrs));
	if (!r || r->len < sizeof(struct kvm_msrs) ||
	    r->len != sizeof(struct kvm_msrs) + (uint64_t)nmsrs * sizeof(struct kvm_msr_entry)) {
		log_error("snapshot %s: state.bin is corrupted (MSRs)", dir);
		return -1;
	}
	struct kvm_msrs *msrs = malloc(r->len);
	if (!msrs)
		return -1;
	memcpy(msrs, r->data, r->len);
	/* IA32_TSC_DEADLINE goes in after the local APIC: KVM ignores it
	 * unless the APIC timer is already in TSC-deadline mode, and the
	 * restored guest's armed timer would never fire (QEMU writes it last
	 * too). It is moved to the end of the list. */
	uint32_t deadline_at = nmsrs;
	for (uint32_t k = 0; k < nmsrs; k++)
		if (msrs->entries[k].index == MSR_IA32_TSC_DEADLINE) {
			struct kvm_msr_entry e = msrs->entries[k];
			memmove(&msrs->entries[k], &msrs->entries[k + 1],
				(nmsrs - k - 1) * sizeof(e));
			msrs->entries[nmsrs - 1] = e;
			deadline_at = nmsrs - 1;
			break;
		}
	int set = restore_msrs(cpu, msrs->entries, deadline_at);
	if ((r = state_find(recs, T_XCRS, i))) {
		if (set < 0 || take(dir, r, &u.xcrs, sizeof(u.xcrs), "XCRs") < 0 ||
		    kvm_cpu_ioctl(cpu, KVM_SET_XCRS, &u.xcrs, "KVM_SET_XCRS") < 0)
			set = -1;
	}
	if (set < 0) {
		free(msrs);
		return -1;
	}
	r = state_find(recs, T_XSAVE, i);
	if (!r || r->len < sizeof(struct kvm_xsave)) {
		log_error("snapshot %s: state.bin is corrupted (XSAVE area)", dir);
		free(msrs);
		return -1;
	}
	int xsave_size = kvm_host_cap(host, KVM_CAP_XSAVE2);
	if (xsave_size < (int)sizeof(struct kvm_xsave))
		xsave_size = sizeof(struct kvm_xsave);
	void *xsave = calloc(1, (size_t)xsave_size > r->len ? (size_t)xsave_size : r->len);
	if (!xsave) {
		free(msrs);
		return -1;
	}
	memcpy(xsave, r->data, r->len);
	set = kvm_cpu_ioctl(cpu, KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE");
	free(xsave);
	if (set >= 0 &&
	    (take(dir, state_find(recs, T_LAPIC, i), &u.lapic, sizeof(u.lapic), "local APIC") < 0 ||
	     kvm_cpu_ioctl(cpu, KVM_SET_LAPIC, &u.lapic, "KVM_SET_LAPIC") < 0))
		set = -1;
	if (set >= 0 && deadline_at < nmsrs)
		set = restore_msrs(cpu, msrs->entries + deadline_at, 1);
	free(msrs);
	if (set < 0 ||
	    take(dir, state_find(recs, T_EVENTS, i), &u.events, sizeof(u.events), "events") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_VCPU_EVENTS, &u.events, "KVM_SET_VCPU_EVENTS") < 0 ||
	    take(dir, state_find(recs, T_MPSTATE, i), &u.mp, sizeof(u.mp), "MP state") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_MP_STATE, &u.mp, "KVM_SET_MP_STATE") < 0 ||
	    take(dir, state_find(recs, T_DEBUGREGS, i), &u.debug, sizeof(u.debug), "debug registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_DEBUGREGS, &u.debug, "KVM_SET_DEBUGREGS") < 0 ||
	    take(dir, state_find(recs, T_REGS, i), &u.regs, sizeof(u.regs), "registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_REGS, &u.regs, "KVM_SET_REGS") < 0)
		return -1;
	if ((r = state_find(recs, T_NESTED, i))) {
		struct kvm_nested_state header, *ns = &header;
		int max = kvm_host_cap(host, KVM_CAP_NESTED_STATE);
		if (r->len >= sizeof(header))
			memcpy(&header, r->data, sizeof(header));
		if (r->len < sizeof(*ns) || ns->size != r->len) {
			log_error("snapshot %s: state.bin is corrupted (nested state)", dir);
			return -1;
		}
		if (max <= 0 || r->len > (uint64_t)max) {
			if (ns->flags & KVM_STATE_NESTED_GUEST_MODE) {
				log_error("snapshot %s: vCPU %u was running a nested guest, and this "
					  "host's KVM cannot restore nested state", dir, i);
				return -1;
			}
		} else {
			void *copy = malloc(r->len);
			if (!copy)
				return -1;
			memcpy(copy, r->data, r->len);
			set = kvm_cpu_ioctl(cpu, KVM_SET_NESTED_STATE, copy, "KVM_SET_NESTED_STATE");
			free(copy);
			if (set < 0)
				return -1;
		}
	}
	return 0;
}

int snapshot_restore_chips(const char *dir, struct kvm_guest *kvm, const struct state_records *recs)
{
	struct kvm_irqchip ic;
	struct kvm_pit_state2 pit;
	for (uint32_t chip = 0; chip < 3; chip++)
		if (take(dir, state_find(recs, T_IRQCHIP, chip), &ic, sizeof(ic), "irqchip") < 0 ||
		    ic.chip_id != chip || kvm_guest_ioctl(kvm, KVM_SET_IRQCHIP, &ic, "KVM_SET_IRQCHIP") < 0)
			return -1;
	if (take(dir, state_find(recs, T_PIT2, 0), &pit, sizeof(pit), "PIT") < 0 ||
	    kvm_guest_ioctl(kvm, KVM_SET_PIT2, &pit, "KVM_SET_PIT2") < 0)
		return -1;
	return 0;
}

int snapshot_restore_clock(const char *dir, struct kvm_guest *kvm, const struct state_records *recs)
{
	struct kvm_clock_data clock;
	if (take(dir, state_find(recs, T_CLOCK, 0), &clock, sizeof(clock), "clock") < 0 ||
	    kvm_guest_ioctl(kvm, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK") < 0)
		return -1;
	return 0;
}
