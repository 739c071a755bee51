/* The virtio 1.x PCI transport (modern interface only, 4.1) shared by every
 * virtio device: configuration capabilities in one 64-bit memory BAR, MSI-X
 * (each vector an irqfd on its own GSI), queue notifications through
 * ioeventfds, and one worker thread per device so that device work never
 * runs on a vCPU thread. A device model fills in the identity fields and
 * ops, then calls virtio_pci_init(). */
#ifndef NESTVM_VIRTIO_VIRTIO_PCI_H
#define NESTVM_VIRTIO_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "kvm/kvm.h"
#include "virtio/virtqueue.h"
#include "mem/guest_mem.h"

#define VIRTIO_MAX_QUEUES 4

/* Feature bits shared by all device types (6). */
#define VIRTIO_F_RING_INDIRECT_DESC (1ULL << 28)
#define VIRTIO_F_RING_EVENT_IDX     (1ULL << 29)
#define VIRTIO_F_VERSION_1          (1ULL << 32)

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

#define VIRTIO_NO_VECTOR 0xffff

struct virtio_dev;

struct virtio_dev_ops {
	/* Reads the device-specific configuration (5.x); offset + len lies
	 * inside config_len. */
	void (*read_config)(struct virtio_dev *vd, uint32_t offset, uint8_t *data, uint32_t len);
	/* Queue q was notified; worker thread, vd->lock held (see
	 * virtio_serve_queue for the request handlers, which run without it). */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* The driver set DRIVER_OK with these features; vd->lock held. */
	void (*driver_ok)(struct virtio_dev *vd);
	/* The driver reset the device; vd->lock held. */
	void (*reset)(struct virtio_dev *vd);
	/* The poll fd (virtio_set_poll_fd) is readable; worker, vd->lock held. */
	void (*poll_ready)(struct virtio_dev *vd);
	/* Before the worker thread starts (virtio_pci_start): a device starts
	 * its own threads here. Optional; -1 with a message fails the start. */
	int (*start)(struct virtio_dev *vd);
	/* After the worker stopped (virtio_pci_destroy, whether or not it had
	 * started): a device stops its own threads here, with vd->lock not
	 * held and KVM still bound. */
	void (*stop)(struct virtio_dev *vd);
	/* The transport is gone: close the backend and free the model. */
	void (*release)(struct virtio_dev *vd);
	/* About once a second, main thread, vd->lock held (devices/device.h). */
	void (*tick)(struct virtio_dev *vd, int64_t now_ms);
};

struct virtio_queue {
	struct virtq vq;
	uint16_t vector;   /* MSI-X vector, or VIRTIO_NO_VECTOR */
	bool enabled;      /* queue_enable written */
	int kick_fd;       /* eventfd KVM signals on a notify write */
	uint64_t kick_gpa; /* where kick_fd is bound, 0 if nowhere */
};

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, control;
	int gsi;
	int irq_fd;
	bool pending;
};

struct virtio_dev {
	/* Filled in by the device model before virtio_pci_init(). */
	const char *name; /* for messages, e.g. "--disk a.img" */
	uint16_t device_type; /* virtio device ID (5) */
	uint32_t pci_class;   /* class, subclass, programming interface */
	uint64_t features;    /* offered */
	uint32_t config_len;
	unsigned num_queues;
	uint16_t queue_max;   /* largest queue size offered, a power of two */
	const struct virtio_dev_ops *ops;
	void *opaque;

	/* Transport state. */
	struct kvm_guest *kvm;
	const struct guest_mem *mem;
	struct pci_device pci;
	/* Guards the transport and queue state. It is never held across a
	 * request's I/O (which may block on a slow disk for as long as the
	 * host likes): a vCPU's register access, a pause or a snapshot must
	 * not wait for that. */
	pthread_mutex_t lock;
	unsigned in_flight;  /* requests taken from a ring and not yet returned */
	bool quiesced;       /* no new request may start (virtio_pci_quiesce) */
	bool resetting;      /* a reset waits for the requests in flight */
	pthread_cond_t idle; /* in_flight went to 0 */
	uint32_t device_feature_select, driver_feature_select;
	uint64_t driver_features;
	uint16_t config_vector;
	uint8_t status;
	uint8_t isr;
	uint16_t queue_select;
	struct virtio_queue queues[VIRTIO_MAX_QUEUES];
	unsigned num_vectors;
	struct msix_vector vectors[VIRTIO_MAX_QUEUES + 1];
	bool msix_enabled, msix_masked;
	uint64_t bar_gpa; /* where BAR 0 decodes now, 0 if nowhere */

	pthread_t thread;
	bool thread_started;
	int epoll_fd, stop_fd;
	int poll_fd;      /* device's own fd (tap), -1 if none */
	bool poll_armed;  /* watched for input */
	bool poll_out;    /* watched for room to write */
};

/* The device's entry in the machine's device table (devices/device.h),
 * whose dev pointer is vd: start, quiesce, save and a validated load of
 * the transport's state, and destroy (virtio_pci_destroy, then the
 * model's release). The kind follows the device type. */
struct device_ops;
const struct device_ops *virtio_pci_device_ops(const struct virtio_dev *vd);

/* Puts the device on the PCI bus and creates its eventfds. */
int virtio_pci_init(struct virtio_dev *vd, struct kvm_guest *kvm, const struct guest_mem *mem,
		    struct pci_bus *pci);
/* Lets the requests in flight finish, stops new ones from starting, and
 * returns with vd->lock held: the device's state and the guest memory it
 * writes are still until virtio_pci_unquiesce(), which lets it go on
 * (requests queued meanwhile are picked up) and releases the lock. For
 * snapshots, with every vCPU paused. */
void virtio_pci_quiesce(struct virtio_dev *vd);
void virtio_pci_unquiesce(struct virtio_dev *vd);
/* The worker's body for one event, callable directly (tests, fuzzers):
 * source is a queue whose notification arrived, or VIRTIO_EVENT_POLL for
 * the device's poll fd. Takes vd->lock; does nothing unless the driver
 * has the device live. */
#define VIRTIO_EVENT_POLL (-1)
void virtio_pci_serve_event(struct virtio_dev *vd, int source);
/* Starts the worker thread. */
int virtio_pci_start(struct virtio_dev *vd);
/* Stops the worker and releases KVM bindings and fds. */
void virtio_pci_destroy(struct virtio_dev *vd);

/* For device models, vd->lock held: */
bool virtio_negotiated(const struct virtio_dev *vd, uint64_t feature);
/* Does a driver run the device: features fixed (FEATURES_OK), DRIVER_OK,
 * and no broken queue? Only then are its queues served. */
bool virtio_live(const struct virtio_dev *vd);
/* Interrupts the driver for queue q if the ring's suppression allows. */
void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q);
/* Serves queue q until the driver has nothing more queued: each chain goes
 * to handle, which returns the bytes it wrote into the chain; interrupts
 * follow the ring's suppression; a broken queue marks the device as needing
 * a reset. The loop every request/response device (blk, rng, net's TX)
 * shares. Called with vd->lock held; handle runs with it released (and
 * vd->in_flight counting it), so it may only touch the chain's buffers and the
 * device's own backend, not transport or queue state. A reset or a
 * quiesce waits for it. */
void virtio_serve_queue(struct virtio_dev *vd, unsigned q, struct virtq_chain *chain,
			uint32_t (*handle)(struct virtio_dev *vd, struct virtq_chain *chain));
/* Marks the device as needing a reset (a broken queue) and tells the driver. */
void virtio_needs_reset(struct virtio_dev *vd);
/* Watches fd for input on the worker (poll_ready), or stops watching it.
 * Before closing the fd a device sets it to -1 here: the number may come
 * back for another file. */
void virtio_set_poll_fd(struct virtio_dev *vd, int fd, bool armed);
/* Also calls poll_ready when the poll fd has room to write (output the
 * device queued), or stops doing so. */
void virtio_set_poll_out(struct virtio_dev *vd, bool out);

#endif
