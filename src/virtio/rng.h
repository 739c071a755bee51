/* virtio-rng (5.4): the host kernel's random numbers (getrandom) for the
 * guest's entropy pool. */
#ifndef NESTVM_VIRTIO_RNG_H
#define NESTVM_VIRTIO_RNG_H

#include "virtio/virtio_pci.h"

struct virtio_rng {
	struct virtio_dev vdev;
	struct virtq_chain chain;
};

int virtio_rng_attach(struct virtio_rng *rng, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci);

#endif
