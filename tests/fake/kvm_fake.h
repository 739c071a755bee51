/* A fake /dev/kvm layer for unit tests and fuzz harnesses: see kvm_fake.c
 * for why it exists and how it is linked. It implements all of kvm/kvm.h;
 * this header adds what a test needs to look at what the code under test
 * asked KVM for, and to make KVM calls fail. */
#ifndef NESTVM_TESTS_FAKE_KVM_FAKE_H
#define NESTVM_TESTS_FAKE_KVM_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm.h"

#define KVM_FAKE_MAX_IRQFDS     64
#define KVM_FAKE_MAX_IOEVENTFDS 64
#define KVM_FAKE_IRQ_LINES      24 /* the IOAPIC's pins */
/* The "file descriptors" the fake's kvm_host_open and kvm_guest_create
 * hand out: no real fd has these numbers, and nothing closes them. */
#define KVM_FAKE_SYSTEM_FD 0x7ffffff0
#define KVM_FAKE_VM_FD     0x7ffffff1

struct kvm_fake_irqfd {
	int gsi, fd;
};

struct kvm_fake_ioeventfd {
	uint64_t addr;
	int fd;
};

/* Everything recorded since kvm_fake_reset(). MSI routes are kept where
 * the real layer keeps them, in the guest (struct kvm_guest's msi[]):
 * kvm_fake_msi_route() reads them. */
struct kvm_fake {
	/* Calls that KVM would refuse (EINVAL, EBUSY, EEXIST, ENOENT): a
	 * route for a GSI that was never allocated, an eventfd bound twice
	 * or unbound where it is not bound, an IRQ line past the IOAPIC.
	 * They fail here too; code under test should never make one. */
	unsigned errors;
	/* Ioeventfds refused because another eventfd holds the address
	 * (EEXIST): not the caller's mistake but a guest's, which made two
	 * devices' registers overlap. */
	unsigned collisions;
	/* Times the routing table changed (each KVM_SET_GSI_ROUTING). */
	unsigned route_updates;
	/* Bound irqfds (KVM_IRQFD) and MMIO ioeventfds (KVM_IOEVENTFD). */
	unsigned nirqfds;
	struct kvm_fake_irqfd irqfds[KVM_FAKE_MAX_IRQFDS];
	unsigned nioeventfds;
	struct kvm_fake_ioeventfd ioeventfds[KVM_FAKE_MAX_IOEVENTFDS];
	/* Level of each IOAPIC line (kvm_guest_irq_line) and how often it
	 * was driven. */
	int irq_level[KVM_FAKE_IRQ_LINES];
	unsigned irq_line_calls;
	/* Set by a test: calls of that kind fail (-1, with the same one-line
	 * error as the real layer) while set, as when KVM is out of room.
	 * Only binding fails: unbinding what is bound always works. */
	bool fail_msi_route, fail_irqfd, fail_ioeventfd;
};

extern struct kvm_fake kvm_fake;

/* Forgets every binding and count and clears the failure switches. Guests
 * keep their MSI GSIs and routes (those live in struct kvm_guest). */
void kvm_fake_reset(void);
/* The route of an MSI GSI the guest allocated, NULL for any other GSI. */
const struct kvm_msi_route *kvm_fake_msi_route(const struct kvm_guest *guest, int gsi);
/* The GSI eventfd fd is bound to as an irqfd, or -1. */
int kvm_fake_irqfd_gsi(int fd);
/* Whether fd is bound to writes at addr; how many addresses it is bound to. */
bool kvm_fake_ioeventfd_bound(uint64_t addr, int fd);
unsigned kvm_fake_ioeventfd_count(int fd);

#endif
