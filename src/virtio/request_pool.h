/* Many requests in flight for one device: a pool of threads that each run
 * a request's handler, so a disk serves the guest's queue depth instead of
 * one request at a time (a request that waits on the host's disk no longer
 * holds up the ones behind it).
 *
 * The device's worker still takes chains from the ring, with vd->lock held,
 * into the pool's slots; a pool thread runs the handler without the lock
 * and then, with it, returns the chain in the used ring and interrupts the
 * driver. vd->in_flight counts the requests taken and not yet returned: a
 * reset or a quiesce (a snapshot) waits for all of them, and none starts
 * meanwhile. The order in which requests complete is not the order they
 * were queued, as virtio allows (2.7.14): a driver that needs an order (a
 * flush after writes) waits for the first to complete before it queues
 * the second. */
#ifndef NESTVM_VIRTIO_REQUEST_POOL_H
#define NESTVM_VIRTIO_REQUEST_POOL_H

#include <stdint.h>

#include "virtio/virtio_pci.h"

#define VIRTIO_POOL_MAX_THREADS 64

typedef uint32_t (*virtio_request_fn)(struct virtio_dev *vd, struct virtq_chain *chain);

/* Starts `threads` threads (each confined like a device worker) and
 * `slots` request slots for vd's queues; NULL with a one-line error if
 * they cannot be had. */
struct virtio_pool *virtio_pool_create(struct virtio_dev *vd, unsigned threads, unsigned slots,
				       virtio_request_fn handle);
/* Worker, vd->lock held: hands queue q's chains to the pool until the ring
 * is empty or every slot is busy (a completion then looks at the ring
 * again). A broken queue marks the device as needing a reset. */
void virtio_pool_serve(struct virtio_pool *pool, unsigned q);
/* Lets the requests in flight finish, then stops the threads and frees the
 * pool. vd->lock not held. */
void virtio_pool_destroy(struct virtio_pool *pool);

/* Requests handled, and the most that were ever in flight at once. */
void virtio_pool_stats(struct virtio_pool *pool, uint64_t *handled, unsigned *max_in_flight);

#endif
