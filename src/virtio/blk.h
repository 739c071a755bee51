/* virtio-blk (5.2) on a disk image (block/disk.h: raw, or qcow2 read-only).
 * A sparse raw image is a thin disk and stays thin: discard and
 * write-zeroes punch holes. Flush returns only once the data is on stable
 * storage (the disk's flush: fdatasync for raw); a driver that does not
 * negotiate flush gets every write through to stable storage before it
 * completes. After a failed flush every later flush fails.
 *
 * Requests run in parallel on a pool of threads (virtio/request_pool.h),
 * as many at once as the guest queues, up to BLK_THREADS; the disk's
 * formats allow concurrent calls (block/disk.h). A flush covers every
 * write that completed before the flush was queued: those are in the
 * file when the flush's fdatasync (or qcow2 commit) runs. */
#ifndef NESTVM_VIRTIO_BLK_H
#define NESTVM_VIRTIO_BLK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/disk.h"
#include "virtio/virtio_pci.h"

#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk_options {
	char path[4096];
	bool readonly;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct virtio_blk_options opt;
	char name[sizeof(((struct virtio_blk_options *)0)->path) + 16];
	struct disk *disk;
	uint64_t sectors;
	atomic_bool sync_failed; /* an fdatasync failed: data may be lost */
	struct virtio_pool *pool; /* requests in flight, once started */
	struct virtq_chain chain; /* the one request of a device not started (tests) */
};

/* Parses "PATH[,readonly][,serial=ID]"; prints the error itself. */
int virtio_blk_parse(const char *spec, struct virtio_blk_options *opt);
/* Opens and locks the image, prints a one-line error on failure. */
int virtio_blk_open(struct virtio_blk *blk, const struct virtio_blk_options *opt);
void virtio_blk_close(struct virtio_blk *blk);
/* Puts the opened disk on the PCI bus. */
int virtio_blk_attach(struct virtio_blk *blk, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci);

/* Executes one request; returns the bytes written into the chain (status
 * byte included), and 0 for a chain too malformed to carry a status. Used
 * by the queue handler and by unit tests. */
uint32_t virtio_blk_request(struct virtio_blk *blk, const struct virtq_chain *chain);

#endif
