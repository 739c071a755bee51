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
	/* Queue q was notified; worker thread, vd->lock held. */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* The driver set DRIVER_OK with these features; vd->lock held. */
	void (*driver_ok)(struct virtio_dev *vd);
	/* The driver reset the device; vd->lock held. */
	void (*reset)(struct virtio_dev *vd);
	/* The poll fd (virtio_set_poll_fd) is readable; worker, vd->lock held. */
	void (*poll_ready)(struct virtio_dev *vd);
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
	pthread_mutex_t lock;
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
	bool poll_armed;
};

/* The transport's state in a snapshot: plain data, no host pointers. */
struct virtio_pci_state {
	uint64_t driver_features;
	uint32_t device_feature_select, driver_feature_select;
	uint16_t config_vector, queue_select;
	uint8_t status, isr, msix_enabled, msix_masked;
	struct {
		uint64_t desc, avail, used;
		uint16_t size, vector, last_avail, used_idx, signalled_used;
		uint8_t enabled, signalled_valid, event_idx;
	} queues[VIRTIO_MAX_QUEUES];
	struct {
		uint32_t addr_lo, addr_hi, data, control;
		uint8_t pending;
	} vectors[VIRTIO_MAX_QUEUES + 1];
};

/* vd->lock held by the caller for save; load runs before the worker starts
 * and after the PCI configuration space is restored. */
void virtio_pci_save(struct virtio_dev *vd, struct virtio_pci_state *st);
int virtio_pci_load(struct virtio_dev *vd, const struct virtio_pci_state *st);

/* Puts the device on the PCI bus and creates its eventfds. */
int virtio_pci_init(struct virtio_dev *vd, struct kvm_guest *kvm, const struct guest_mem *mem,
		    struct pci_bus *pci);
/* Starts the worker thread. */
int virtio_pci_start(struct virtio_dev *vd);
/* Stops the worker and releases KVM bindings and fds. */
void virtio_pci_destroy(struct virtio_dev *vd);

/* For device models, vd->lock held: */
bool virtio_negotiated(const struct virtio_dev *vd, uint64_t feature);
/* Interrupts the driver for queue q if the ring's suppression allows. */
void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q);
/* Serves queue q until the driver has nothing more queued: each chain goes
 * to handle, which returns the bytes it wrote into the chain; interrupts
 * follow the ring's suppression; a broken queue marks the device as needing
 * a reset. The loop every request/response device (blk, rng, net's TX)
 * shares. */
void virtio_serve_queue(struct virtio_dev *vd, unsigned q, struct virtq_chain *chain,
			uint32_t (*handle)(struct virtio_dev *vd, struct virtq_chain *chain));
/* Marks the device as needing a reset (a broken queue) and tells the driver. */
void virtio_needs_reset(struct virtio_dev *vd);
/* Watches fd for input on the worker (poll_ready), or stops watching it. */
void virtio_set_poll_fd(struct virtio_dev *vd, int fd, bool armed);

#endif
