#include "virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#define VIRTIO_ID_RNG 4
/* Bytes given per request: enough to seed a pool, small enough that one
 * greedy guest cannot keep the worker busy. */
#define MAX_PER_REQUEST 4096

static uint32_t fill(struct virtio_dev *vd, struct virtq_chain *c)
{
	(void)vd;
	if (c->n_out)
		return 0; /* the device only writes: a readable buffer is malformed */
	uint32_t done = 0;
	for (unsigned i = 0; i < c->n_in && done < MAX_PER_REQUEST; i++) {
		size_t want = c->iov[i].iov_len;
		if (want > MAX_PER_REQUEST - done)
			want = MAX_PER_REQUEST - done;
		ssize_t n;
		do
			n = getrandom(c->iov[i].iov_base, want, 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			break;
		done += (uint32_t)n;
		if ((size_t)n < want)
			break;
	}
	return done;
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_rng *rng = vd->opaque;
	virtio_serve_queue(vd, q, &rng->chain, fill);
}

/* The machine's device table destroys the transport, then this. */
static void release(struct virtio_dev *vd)
{
	struct virtio_rng *dev = vd->opaque;
	free(dev);
}

static const struct virtio_dev_ops rng_ops = {
	.queue_notify = queue_notify,
	.release = release,
};

int virtio_rng_attach(struct virtio_rng *rng, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci)
{
	struct virtio_dev *vd = &rng->vdev;
	vd->name = "--rng";
	vd->device_type = VIRTIO_ID_RNG;
	vd->pci_class = 0x00ff00; /* unclassified */
	vd->features = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_INDIRECT_DESC | VIRTIO_F_RING_EVENT_IDX;
	vd->num_queues = 1;
	vd->queue_max = VIRTQ_MAX_SIZE;
	vd->ops = &rng_ops;
	vd->opaque = rng;
	return virtio_pci_init(vd, kvm, mem, pci);
}
