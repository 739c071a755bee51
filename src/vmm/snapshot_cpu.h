/* KVM's view of a snapshot: vCPUs, irqchips, PIT and kvmclock. */
#ifndef NESTVM_VMM_SNAPSHOT_CPU_H
#define NESTVM_VMM_SNAPSHOT_CPU_H

#include <stddef.h>

#include "kvm/kvm.h"
#include "vmm/snapshot_format.h"

/* The irqchips, PIT and clock. */
void snapshot_save_vm(struct state_writer *w, struct kvm_guest *kvm);
/* One vCPU; buf (bufsize bytes) is scratch space for KVM's structures. */
void snapshot_save_vcpu(struct state_writer *w, struct kvm_host *host, struct kvm_cpu *cpu, void *buf,
			size_t bufsize);

/* Restore order: chips, every vCPU, then the clock. Each prints a one-line
 * error naming the snapshot dir. */
int snapshot_restore_chips(const char *dir, struct kvm_guest *kvm, const struct state_records *recs);
int snapshot_restore_vcpu(const char *dir, struct kvm_host *host, const struct state_records *recs,
			  struct kvm_cpu *cpu);
int snapshot_restore_clock(const char *dir, struct kvm_guest *kvm, const struct state_records *recs);

#endif
