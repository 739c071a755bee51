/* Split virtqueues (virtio 1.x, 2.6) as the device side sees them. Every
 * index, address and length in the rings comes from an untrusted guest: a
 * chain is copied out descriptor by descriptor and checked before the device
 * touches a byte, and anything malformed makes virtq_pop() report the queue
 * broken, after which the device must be reset by the driver. */
#ifndef NESTVM_VIRTIO_VIRTQUEUE_H
#define NESTVM_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem/guest_mem.h"
#include "util/iov.h"

#define VIRTQ_MAX_SIZE 256
/* Buffers one chain may hold, indirect tables included (IOV_MAX). */
#define VIRTQ_MAX_IOV 1024

struct virtq {
	/* Set by the driver through the transport. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	/* Device state. */
	bool ready;  /* virtq_start() succeeded */
	bool broken; /* the guest corrupted the queue: no more processing */
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used; /* used index at the last interrupt */
	bool signalled_valid;
	const struct guest_mem *mem;
	volatile uint8_t *desc, *avail, *used;
};

/* One request: its readable buffers first (out), then its writable ones (in). */
struct virtq_chain {
	uint16_t head;
	unsigned n_out, n_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_IOV];
};

/* Checks the rings lie in guest RAM with the alignment 2.6 requires; fails
 * (returns -1) if not. */
int virtq_start(struct virtq *q, const struct guest_mem *mem);
void virtq_reset(struct virtq *q);

/* 1: a chain was taken; 0: the ring is empty; -1: the guest broke the
 * queue (q->broken is set, the reason logged once). */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);
/* Puts back the chain virtq_pop() just took, for a device that found it
 * cannot use it yet (no input to fill it with). */
void virtq_unpop(struct virtq *q);
/* Returns a chain to the driver with len bytes written into it. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* After pushing: does the driver want an interrupt now (event index or
 * the NO_INTERRUPT flag)? */
bool virtq_needs_interrupt(struct virtq *q);
/* Before sleeping: publish how far we got, so the driver's next
 * notification arrives (event index); returns true if more work arrived
 * meanwhile and the device should look again. */
bool virtq_arm_notify(struct virtq *q);

#endif
