#define _GNU_SOURCE
#include "virtio/virtio_pci.h"
#include "devices/device.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"
#include "util/sandbox.h"

/* BAR 0 layout: each structure in its own page. */
#define BAR_SIZE        0x8000
#define COMMON_OFFSET   0x0000
#define COMMON_LEN      0x38
#define ISR_OFFSET      0x1000
#define DEVICE_OFFSET   0x2000
#define DEVICE_MAX      0x1000
#define NOTIFY_OFFSET   0x3000
#define NOTIFY_MULT     4
#define MSIX_TABLE      0x4000
#define MSIX_PBA        0x5000

/* Configuration-space capabilities. */
#define CAP_MSIX        0x40
#define CAP_COMMON      0x50
#define CAP_NOTIFY      0x60
#define CAP_ISR         0x78
#define CAP_DEVICE      0x88
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09
#define MSIX_CTRL_ENABLE   0x8000
#define MSIX_CTRL_MASK_ALL 0x4000
#define MSIX_ENTRY_MASKED  1

enum { VIRTIO_CAP_COMMON = 1, VIRTIO_CAP_NOTIFY, VIRTIO_CAP_ISR, VIRTIO_CAP_DEVICE };

#define WORKER_STOP UINT64_MAX
#define WORKER_POLL (UINT64_MAX - 1)

bool virtio_negotiated(const struct virtio_dev *vd, uint64_t feature)
{
	return (vd->driver_features & feature) == feature;
}

#define STATUS_UP (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

bool virtio_live(const struct virtio_dev *vd)
{
	return (vd->status & STATUS_UP) == STATUS_UP && !(vd->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void kick(struct virtio_dev *vd, unsigned q);

/* --- MSI-X ------------------------------------------------------------- */

static bool vector_masked(const struct virtio_dev *vd, const struct msix_vector *v)
{
	return vd->msix_masked || (v->control & MSIX_ENTRY_MASKED);
}

static void fire(struct msix_vector *v)
{
	uint64_t one = 1;
	if (write(v->irq_fd, &one, sizeof(one)) < 0) {
		/* Fails only when the counter would overflow: already pending. */
	}
}

static void signal_vector(struct virtio_dev *vd, uint16_t vector)
{
	if (!vd->msix_enabled || vector >= vd->num_vectors)
		return; /* no INTx pin: without MSI-X the driver polls */
	struct msix_vector *v = &vd->vectors[vector];
	if (vector_masked(vd, v))
		v->pending = true;
	else
		fire(v);
}

/* Routes each vector where the guest points it, and delivers what became
 * deliverable. vd->lock held. */
static void update_vectors(struct virtio_dev *vd)
{
	for (unsigned i = 0; i < vd->num_vectors; i++) {
		struct msix_vector *v = &vd->vectors[i];
		uint64_t addr = (uint64_t)v->addr_hi << 32 | v->addr_lo;
		kvm_guest_set_msi_route(vd->kvm, v->gsi, vd->msix_enabled && addr, addr, v->data);
		if (v->pending && vd->msix_enabled && !vector_masked(vd, v)) {
			v->pending = false;
			fire(v);
		}
	}
}

static void msix_table_access(struct virtio_dev *vd, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	/* An aligned QWORD access is two DWORD ones (PCI 3.0, 6.8.2). */
	if (len == 8 && off % 8 == 0) {
		msix_table_access(vd, off, data, 4, is_write);
		msix_table_access(vd, off + 4, data + 4, 4, is_write);
		return;
	}
	unsigned index = (unsigned)(off / 16), field = (unsigned)(off % 16);
	if (index >= vd->num_vectors || len != 4 || field % 4) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	struct msix_vector *v = &vd->vectors[index];
	uint32_t *reg = field == 0 ? &v->addr_lo : field == 4 ? &v->addr_hi :
			field == 8 ? &v->data : &v->control;
	if (!is_write) {
		memcpy(data, reg, 4);
		return;
	}
	memcpy(reg, data, 4);
	if (field == 12)
		v->control &= MSIX_ENTRY_MASKED;
	update_vectors(vd);
}

static void msix_pba_read(struct virtio_dev *vd, uint64_t off, uint8_t *data, uint32_t len)
{
	uint64_t bits = 0;
	for (unsigned i = 0; i < vd->num_vectors; i++)
		bits |= (uint64_t)vd->vectors[i].pending << i;
	memset(data, 0, len);
	if (off < 8)
		for (uint32_t i = 0; i < len && off + i < 8; i++)
			data[i] = (uint8_t)(bits >> (8 * (off + i)));
}

void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q)
{
	if (!virtq_needs_interrupt(&vd->queues[q].vq))
		return;
	vd->isr |= 1;
	signal_vector(vd, vd->queues[q].vector);
}

void virtio_serve_queue(struct virtio_dev *vd, unsigned q, struct virtq_chain *chain,
			uint32_t (*handle)(struct virtio_dev *vd, struct virtq_chain *chain))
{
	struct virtq *vq = &vd->queues[q].vq;
	do {
		while (!vd->quiesced && !vd->resetting && !(vd->status & VIRTIO_STATUS_NEEDS_RESET) &&
		       virtq_pop(vq, chain) == 1) {
			vd->in_flight++;
			pthread_mutex_unlock(&vd->lock);
			uint32_t written = handle(vd, chain);
			pthread_mutex_lock(&vd->lock);
			virtq_push(vq, chain->head, written);
			if (--vd->in_flight == 0)
				pthread_cond_broadcast(&vd->idle);
		}
		virtio_queue_interrupt(vd, q);
		if (vd->quiesced || vd->resetting)
			return; /* virtio_pci_unquiesce() kicks the queue again; a reset empties it */
		if (vq->broken) {
			virtio_needs_reset(vd);
			return;
		}
	} while (virtq_arm_notify(vq));
}

/* A request in flight touches guest memory and ends in the used ring:
 * whoever resets the queues or saves them waits for them all. vd->lock
 * held. */
static void wait_idle(struct virtio_dev *vd)
{
	while (vd->in_flight)
		pthread_cond_wait(&vd->idle, &vd->lock);
}

void virtio_pci_quiesce(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	vd->quiesced = true;
	wait_idle(vd);
}

void virtio_pci_unquiesce(struct virtio_dev *vd)
{
	vd->quiesced = false;
	/* Kicks that came meanwhile were read and set aside. */
	for (unsigned q = 0; q < vd->num_queues; q++)
		if (vd->queues[q].enabled)
			kick(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

void virtio_needs_reset(struct virtio_dev *vd)
{
	if (vd->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("%s: the guest driver broke a queue; device stopped until it is reset", vd->name);
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	vd->isr |= 2;
	signal_vector(vd, vd->config_vector);
}

/* --- queue notification --------------------------------------------------- */

static uint64_t kick_address(const struct virtio_dev *vd, unsigned q)
{
	return vd->bar_gpa ? vd->bar_gpa + NOTIFY_OFFSET + NOTIFY_MULT * q : 0;
}

/* Binds each enabled queue's eventfd to where its notify register is now. */
static void rebind_kicks(struct virtio_dev *vd)
{
	for (unsigned q = 0; q < vd->num_queues; q++) {
		struct virtio_queue *vq = &vd->queues[q];
		uint64_t want = vq->enabled ? kick_address(vd, q) : 0;
		if (want == vq->kick_gpa)
			continue;
		if (vq->kick_gpa)
			kvm_guest_mmio_eventfd(vd->kvm, vq->kick_gpa, vq->kick_fd, false);
		vq->kick_gpa = 0;
		if (want && kvm_guest_mmio_eventfd(vd->kvm, want, vq->kick_fd, true) == 0)
			vq->kick_gpa = want;
		/* If binding failed, notify writes still exit to us and
		 * bar_access() forwards them. */
	}
}

static void kick(struct virtio_dev *vd, unsigned q)
{
	uint64_t one = 1;
	if (write(vd->queues[q].kick_fd, &one, sizeof(one)) < 0) {
		/* counter overflow: a kick is already pending */
	}
}

/* --- common configuration ------------------------------------------------- */

static void reset(struct virtio_dev *vd)
{
	/* The requests in flight end; no other starts (the worker checks
	 * resetting before each), so this waits for those already taken. */
	vd->resetting = true;
	wait_idle(vd);
	vd->resetting = false;
	if (vd->status && vd->ops->reset)
		vd->ops->reset(vd);
	for (unsigned q = 0; q < vd->num_queues; q++) {
		struct virtio_queue *vq = &vd->queues[q];
		vq->enabled = false;
		virtq_reset(&vq->vq);
		vq->vq.size = vd->queue_max;
		vq->vector = VIRTIO_NO_VECTOR;
	}
	rebind_kicks(vd);
	vd->status = 0;
	vd->isr = 0;
	vd->driver_features = 0;
	vd->device_feature_select = vd->driver_feature_select = 0;
	vd->queue_select = 0;
	vd->config_vector = VIRTIO_NO_VECTOR;
	for (unsigned i = 0; i < vd->num_vectors; i++)
		vd->vectors[i].pending = false;
}

struct __attribute__((packed)) common_cfg {
	uint32_t device_feature_select, device_feature;
	uint32_t driver_feature_select, driver_feature;
	uint16_t msix_config, num_queues;
	uint8_t device_status, config_generation;
	uint16_t queue_select, queue_size, queue_msix_vector, queue_enable, queue_notify_off;
	uint64_t queue_desc, queue_driver, queue_device;
};
_Static_assert(sizeof(struct common_cfg) == COMMON_LEN, "virtio_pci_common_cfg layout");

static struct virtio_queue *selected(struct virtio_dev *vd)
{
	return vd->queue_select < vd->num_queues ? &vd->queues[vd->queue_select] : NULL;
}

static void common_snapshot(struct virtio_dev *vd, struct common_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->device_feature_select = vd->device_feature_select;
	if (vd->device_feature_select < 2)
		c->device_feature = (uint32_t)(vd->features >> (32 * vd->device_feature_select));
	c->driver_feature_select = vd->driver_feature_select;
	if (vd->driver_feature_select < 2)
		c->driver_feature = (uint32_t)(vd->driver_features >> (32 * vd->driver_feature_select));
	c->msix_config = vd->config_vector;
	c->num_queues = (uint16_t)vd->num_queues;
	c->device_status = vd->status;
	c->queue_select = vd->queue_select;
	struct virtio_queue *vq = selected(vd);
	if (vq) {
		c->queue_size = vq->vq.size;
		c->queue_msix_vector = vq->vector;
		c->queue_enable = vq->enabled;
		c->queue_notify_off = vd->queue_select;
		c->queue_desc = vq->vq.desc_gpa;
		c->queue_driver = vq->vq.avail_gpa;
		c->queue_device = vq->vq.used_gpa;
	}
}

static void set_status(struct virtio_dev *vd, uint8_t value)
{
	if (value == 0) {
		reset(vd);
		return;
	}
	uint8_t old = vd->status;
	if ((value & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only what we offered, and only a virtio 1.x driver:
		 * leaving FEATURES_OK clear tells the driver (3.1.1). */
		if ((vd->driver_features & ~vd->features) ||
		    !(vd->driver_features & VIRTIO_F_VERSION_1))
			value &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	/* Only a reset clears status bits (a driver must not, 2.1.1): so the
	 * features, fixed at FEATURES_OK, stay fixed while requests run. */
	vd->status = (uint8_t)(value | old);
	/* The features are fixed once FEATURES_OK is set, and queues are
	 * served once DRIVER_OK is too: the event index is chosen then (a
	 * driver may set DRIVER_OK first and its features after). */
	if ((vd->status & STATUS_UP) == STATUS_UP && (old & STATUS_UP) != STATUS_UP)
		for (unsigned q = 0; q < vd->num_queues; q++)
			vd->queues[q].vq.event_idx = virtio_negotiated(vd, VIRTIO_F_RING_EVENT_IDX);
	if ((value & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (vd->ops->driver_ok)
			vd->ops->driver_ok(vd);
		/* Buffers the driver queued before DRIVER_OK are looked at now. */
		for (unsigned q = 0; q < vd->num_queues; q++)
			if (vd->queues[q].enabled)
				kick(vd, q);
	}
}

static void enable_queue(struct virtio_dev *vd, struct virtio_queue *vq)
{
	if (vq->enabled)
		return;
	if (virtq_start(&vq->vq, vd->mem) < 0) {
		log_warn("%s: queue %u: size %u or ring addresses not usable", vd->name,
			 vd->queue_select, vq->vq.size);
		virtio_needs_reset(vd);
		return;
	}
	vq->enabled = true;
	rebind_kicks(vd);
}

static void common_write(struct virtio_dev *vd, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct common_cfg c;
	common_snapshot(vd, &c);
	memcpy((uint8_t *)&c + off, data, len);
	uint32_t end = off + len;
#define TOUCHED(field) (off < offsetof(struct common_cfg, field) + sizeof(c.field) && \
			end > offsetof(struct common_cfg, field))
	struct virtio_queue *vq = selected(vd);
	bool locked = vd->status & VIRTIO_STATUS_FEATURES_OK;
	if (TOUCHED(device_feature_select))
		vd->device_feature_select = c.device_feature_select;
	if (TOUCHED(driver_feature_select))
		vd->driver_feature_select = c.driver_feature_select;
	if (TOUCHED(driver_feature) && !locked && vd->driver_feature_select < 2) {
		unsigned shift = 32 * vd->driver_feature_select;
		vd->driver_features &= ~(0xffffffffULL << shift);
		vd->driver_features |= (uint64_t)c.driver_feature << shift;
	}
	if (TOUCHED(msix_config))
		vd->config_vector = c.msix_config < vd->num_vectors ? c.msix_config : VIRTIO_NO_VECTOR;
	if (TOUCHED(queue_select))
		vd->queue_select = c.queue_select;
	if (vq && !vq->enabled) {
		/* Ring parameters are fixed once the queue is enabled. */
		if (TOUCHED(queue_size))
			vq->vq.size = c.queue_size;
		if (TOUCHED(queue_desc))
			vq->vq.desc_gpa = c.queue_desc;
		if (TOUCHED(queue_driver))
			vq->vq.avail_gpa = c.queue_driver;
		if (TOUCHED(queue_device))
			vq->vq.used_gpa = c.queue_device;
	}
	if (vq && TOUCHED(queue_msix_vector))
		vq->vector = c.queue_msix_vector < vd->num_vectors ? c.queue_msix_vector
								    : VIRTIO_NO_VECTOR;
	if (vq && TOUCHED(queue_enable) && c.queue_enable == 1)
		enable_queue(vd, vq);
	if (TOUCHED(device_status))
		set_status(vd, c.device_status);
#undef TOUCHED
}

/* --- BAR and configuration space ------------------------------------------ */

static void bar_access(struct pci_device *dev, int bar, uint64_t off, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct virtio_dev *vd = dev->opaque;
	if (bar != 0)
		return;
	pthread_mutex_lock(&vd->lock);
	if (off < COMMON_LEN) {
		if (off + len > COMMON_LEN)
			len = (uint32_t)(COMMON_LEN - off);
		if (is_write) {
			common_write(vd, (uint32_t)off, data, len);
		} else {
			struct common_cfg c;
			common_snapshot(vd, &c);
			memcpy(data, (uint8_t *)&c + off, len);
		}
	} else if (off == ISR_OFFSET && !is_write) {
		data[0] = vd->isr; /* reading acknowledges (4.1.4.5) */
		memset(data + 1, 0, len - 1);
		vd->isr = 0;
	} else if (off >= DEVICE_OFFSET && off - DEVICE_OFFSET + len <= vd->config_len) {
		if (!is_write && vd->ops->read_config)
			vd->ops->read_config(vd, (uint32_t)(off - DEVICE_OFFSET), data, len);
		/* Device configuration writes are not used by our devices. */
	} else if (off >= NOTIFY_OFFSET && off < NOTIFY_OFFSET + NOTIFY_MULT * vd->num_queues) {
		/* A notify that KVM did not take through the ioeventfd. */
		if (is_write)
			kick(vd, (unsigned)(off - NOTIFY_OFFSET) / NOTIFY_MULT);
		else
			memset(data, 0, len);
	} else if (off >= MSIX_TABLE && off < MSIX_TABLE + 16 * vd->num_vectors) {
		msix_table_access(vd, off - MSIX_TABLE, data, len, is_write);
	} else if (off >= MSIX_PBA && off < MSIX_PBA + 8 && !is_write) {
		msix_pba_read(vd, off - MSIX_PBA, data, len);
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&vd->lock);
}

/* Only the MSI-X enable and function-mask bits are writable. */
static void config_write(struct pci_device *dev, uint32_t reg, const uint8_t *data, uint32_t len)
{
	struct virtio_dev *vd = dev->opaque;
	uint32_t ctrl_hi = CAP_MSIX + 3;
	if (reg > ctrl_hi || reg + len <= ctrl_hi)
		return;
	uint8_t v = data[ctrl_hi - reg] & (uint8_t)((MSIX_CTRL_ENABLE | MSIX_CTRL_MASK_ALL) >> 8);
	dev->config[ctrl_hi] = v;
	pthread_mutex_lock(&vd->lock);
	vd->msix_enabled = v & (MSIX_CTRL_ENABLE >> 8);
	vd->msix_masked = v & (MSIX_CTRL_MASK_ALL >> 8);
	update_vectors(vd);
	pthread_mutex_unlock(&vd->lock);
}

static void bars_changed(struct pci_device *dev)
{
	struct virtio_dev *vd = dev->opaque;
	pthread_mutex_lock(&vd->lock);
	vd->bar_gpa = pci_bar_address(dev, 0);
	rebind_kicks(vd);
	pthread_mutex_unlock(&vd->lock);
}

static void put_virtio_cap(struct pci_device *dev, uint32_t at, uint8_t next, uint8_t len,
			   uint8_t type, uint32_t offset, uint32_t length)
{
	dev->config[at] = PCI_CAP_ID_VNDR;
	dev->config[at + 1] = next;
	dev->config[at + 2] = len;
	dev->config[at + 3] = type;
	dev->config[at + 4] = 0; /* BAR 0 */
	pci_put32(dev, at + 8, offset);
	pci_put32(dev, at + 12, length);
}

static void build_config_space(struct virtio_dev *vd)
{
	struct pci_device *dev = &vd->pci;
	memset(dev->config, 0, sizeof(dev->config));
	pci_put16(dev, PCI_VENDOR_ID, 0x1af4);
	pci_put16(dev, PCI_DEVICE_ID, (uint16_t)(0x1040 + vd->device_type));
	dev->config[PCI_REVISION] = 1; /* modern-only device (4.1.2.1) */
	dev->config[PCI_CLASS_PROG] = (uint8_t)vd->pci_class;
	dev->config[PCI_SUBCLASS] = (uint8_t)(vd->pci_class >> 8);
	dev->config[PCI_CLASS] = (uint8_t)(vd->pci_class >> 16);
	pci_put16(dev, PCI_SUBSYS_VENDOR, 0x1af4);
	pci_put16(dev, PCI_SUBSYS_ID, 0x1100);
	pci_put16(dev, PCI_STATUS, PCI_STATUS_CAP_LIST);
	dev->config[PCI_CAP_PTR] = CAP_MSIX;
	dev->config[PCI_INTERRUPT_PIN] = 0; /* MSI-X only */

	dev->config[CAP_MSIX] = PCI_CAP_ID_MSIX;
	dev->config[CAP_MSIX + 1] = CAP_COMMON;
	pci_put16(dev, CAP_MSIX + 2, (uint16_t)(vd->num_vectors - 1));
	pci_put32(dev, CAP_MSIX + 4, MSIX_TABLE); /* BIR 0 */
	pci_put32(dev, CAP_MSIX + 8, MSIX_PBA);
	put_virtio_cap(dev, CAP_COMMON, CAP_NOTIFY, 16, VIRTIO_CAP_COMMON, COMMON_OFFSET, COMMON_LEN);
	put_virtio_cap(dev, CAP_NOTIFY, CAP_ISR, 20, VIRTIO_CAP_NOTIFY, NOTIFY_OFFSET,
		       NOTIFY_MULT * vd->num_queues);
	pci_put32(dev, CAP_NOTIFY + 16, NOTIFY_MULT);
	put_virtio_cap(dev, CAP_ISR, vd->config_len ? CAP_DEVICE : 0, 16, VIRTIO_CAP_ISR,
		       ISR_OFFSET, 1);
	if (vd->config_len)
		put_virtio_cap(dev, CAP_DEVICE, 0, 16, VIRTIO_CAP_DEVICE, DEVICE_OFFSET,
			       vd->config_len);
	dev->bar_size[0] = BAR_SIZE;
	dev->config_write = config_write;
	dev->bars_changed = bars_changed;
	dev->bar_access = bar_access;
	dev->opaque = vd;
}

/* --- worker ------------------------------------------------------------- */

static void *worker(void *arg)
{
	struct virtio_dev *vd = arg;
	sandbox_enter(SANDBOX_WORKER);
	for (;;) {
		struct epoll_event ev[8];
		int n = epoll_wait(vd->epoll_fd, ev, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("%s: epoll_wait: %s", vd->name, strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t what = ev[i].data.u64;
			if (what == WORKER_STOP)
				return NULL;
			virtio_pci_serve_event(vd, what == WORKER_POLL ? VIRTIO_EVENT_POLL : (int)what);
		}
	}
}

void virtio_pci_serve_event(struct virtio_dev *vd, int source)
{
	pthread_mutex_lock(&vd->lock);
	bool live = virtio_live(vd) && !vd->quiesced;
	if (source == VIRTIO_EVENT_POLL) {
		if (live && vd->ops->poll_ready)
			vd->ops->poll_ready(vd);
		else if (!live && !vd->quiesced)
			/* Nobody to take it: stop watching, or a hung-up socket
			 * (epoll reports HUP whatever the mask) would wake the
			 * worker for ever. The device watches it again when the
			 * driver is back (driver_ok, a receive kick). */
			virtio_set_poll_fd(vd, -1, false);
	} else if (source >= 0 && (unsigned)source < vd->num_queues) {
		uint64_t count;
		if (vd->queues[source].kick_fd >= 0 &&
		    read(vd->queues[source].kick_fd, &count, sizeof(count)) < 0) {
			/* spurious wakeup: nothing to clear */
		}
		if (live && vd->queues[source].enabled)
			vd->ops->queue_notify(vd, (unsigned)source);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void update_poll_events(struct virtio_dev *vd)
{
	uint32_t events = (vd->poll_armed ? EPOLLIN : 0) | (vd->poll_out ? EPOLLOUT : 0);
	struct epoll_event ev = { .events = events, .data.u64 = WORKER_POLL };
	epoll_ctl(vd->epoll_fd, EPOLL_CTL_MOD, vd->poll_fd, &ev);
}

void virtio_set_poll_fd(struct virtio_dev *vd, int fd, bool armed)
{
	if (vd->poll_fd != fd) {
		if (vd->poll_fd >= 0)
			epoll_ctl(vd->epoll_fd, EPOLL_CTL_DEL, vd->poll_fd, NULL);
		vd->poll_fd = fd;
		vd->poll_armed = vd->poll_out = false;
		struct epoll_event ev = { .events = 0, .data.u64 = WORKER_POLL };
		if (fd >= 0)
			epoll_ctl(vd->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
	}
	if (fd < 0 || vd->poll_armed == armed)
		return;
	vd->poll_armed = armed;
	update_poll_events(vd);
}

void virtio_set_poll_out(struct virtio_dev *vd, bool out)
{
	if (vd->poll_fd < 0 || vd->poll_out == out)
		return;
	vd->poll_out = out;
	update_poll_events(vd);
}

static int watch(struct virtio_dev *vd, int fd, uint64_t what)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = what };
	if (epoll_ctl(vd->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("%s: epoll_ctl: %s", vd->name, strerror(errno));
		return -1;
	}
	return 0;
}

int virtio_pci_init(struct virtio_dev *vd, struct kvm_guest *kvm, const struct guest_mem *mem,
		    struct pci_bus *pci)
{
	vd->kvm = kvm;
	vd->mem = mem;
	vd->epoll_fd = vd->stop_fd = vd->poll_fd = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vd->queues[q].kick_fd = -1;
	vd->num_vectors = vd->num_queues + 1;
	for (unsigned i = 0; i < vd->num_vectors; i++) {
		vd->vectors[i].irq_fd = -1;
		vd->vectors[i].control = MSIX_ENTRY_MASKED;
	}
	pthread_mutex_init(&vd->lock, NULL);
	pthread_cond_init(&vd->idle, NULL);
	vd->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	vd->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vd->epoll_fd < 0 || vd->stop_fd < 0 || watch(vd, vd->stop_fd, WORKER_STOP) < 0) {
		log_error("%s: cannot create the worker's fds: %s", vd->name, strerror(errno));
		return -1;
	}
	for (unsigned q = 0; q < vd->num_queues; q++) {
		vd->queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vd->queues[q].kick_fd < 0 || watch(vd, vd->queues[q].kick_fd, q) < 0) {
			log_error("%s: eventfd: %s", vd->name, strerror(errno));
			return -1;
		}
	}
	for (unsigned i = 0; i < vd->num_vectors; i++) {
		struct msix_vector *v = &vd->vectors[i];
		v->gsi = kvm_guest_alloc_msi_gsi(kvm);
		v->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->gsi < 0 || v->irq_fd < 0 || kvm_guest_irqfd(kvm, v->gsi, v->irq_fd, true) < 0)
			return -1;
	}
	reset(vd);
	build_config_space(vd);
	return pci_bus_add(pci, &vd->pci, vd->name) < 0 ? -1 : 0;
}

int virtio_pci_start(struct virtio_dev *vd)
{
	/* The device's threads first: the worker may take a request at once. */
	if (vd->ops->start && vd->ops->start(vd) < 0)
		return -1;
	int e = pthread_create(&vd->thread, NULL, worker, vd);
	if (e) {
		log_error("%s: cannot start its worker thread: %s", vd->name, strerror(e));
		return -1;
	}
	vd->thread_started = true;
	return 0;
}

void virtio_pci_destroy(struct virtio_dev *vd)
{
	if (vd->thread_started) {
		uint64_t one = 1;
		if (write(vd->stop_fd, &one, sizeof(one)) < 0) {
			/* cannot fail below the counter limit */
		}
		pthread_join(vd->thread, NULL);
		vd->thread_started = false;
	}
	if (vd->ops->stop)
		vd->ops->stop(vd); /* once the worker can hand it no more requests */
	for (unsigned q = 0; q < vd->num_queues; q++) {
		struct virtio_queue *vq = &vd->queues[q];
		if (vq->kick_gpa && vd->kvm->fd >= 0)
			kvm_guest_mmio_eventfd(vd->kvm, vq->kick_gpa, vq->kick_fd, false);
		if (vq->kick_fd >= 0)
			close(vq->kick_fd);
		vq->kick_fd = -1;
	}
	for (unsigned i = 0; i < vd->num_vectors; i++) {
		struct msix_vector *v = &vd->vectors[i];
		if (v->irq_fd >= 0) {
			if (v->gsi >= 0 && vd->kvm->fd >= 0)
				kvm_guest_irqfd(vd->kvm, v->gsi, v->irq_fd, false);
			close(v->irq_fd);
		}
		v->irq_fd = -1;
	}
	if (vd->epoll_fd >= 0)
		close(vd->epoll_fd);
	if (vd->stop_fd >= 0)
		close(vd->stop_fd);
	vd->epoll_fd = vd->stop_fd = -1;
	pthread_mutex_destroy(&vd->lock);
	pthread_cond_destroy(&vd->idle);
}

/* --- device interface ------------------------------------------------- */

static int start_device(void *dev)
{
	return virtio_pci_start(dev);
}

static void quiesce_device(void *dev)
{
	virtio_pci_quiesce(dev);
}

static void unquiesce_device(void *dev)
{
	virtio_pci_unquiesce(dev);
}

/* Quiesced (vd->lock held) by the caller. */
static int save_device(void *dev, struct state_out *out, char *why, size_t whylen)
{
	struct virtio_dev *vd = dev;
	if (vd->status & VIRTIO_STATUS_NEEDS_RESET) {
		snprintf(why, whylen, "%s cannot be saved: its driver broke a queue and it needs a reset",
			 vd->name);
		return -1;
	}
	state_put_u64(out, vd->driver_features);
	state_put_u32(out, vd->device_feature_select);
	state_put_u32(out, vd->driver_feature_select);
	state_put_u16(out, vd->config_vector);
	state_put_u16(out, vd->queue_select);
	state_put_u8(out, vd->status);
	state_put_u8(out, vd->isr);
	state_put_bool(out, vd->msix_enabled);
	state_put_bool(out, vd->msix_masked);
	state_put_u32(out, vd->num_queues);
	for (unsigned q = 0; q < vd->num_queues; q++) {
		const struct virtio_queue *vq = &vd->queues[q];
		state_put_u64(out, vq->vq.desc_gpa);
		state_put_u64(out, vq->vq.avail_gpa);
		state_put_u64(out, vq->vq.used_gpa);
		state_put_u16(out, vq->vq.size);
		state_put_u16(out, vq->vector);
		state_put_u16(out, vq->vq.last_avail);
		state_put_u16(out, vq->vq.used_idx);
		state_put_u16(out, vq->vq.signalled_used);
		state_put_bool(out, vq->enabled);
		state_put_bool(out, vq->vq.signalled_valid);
		state_put_bool(out, vq->vq.event_idx);
	}
	state_put_u32(out, vd->num_vectors);
	for (unsigned i = 0; i < vd->num_vectors; i++) {
		const struct msix_vector *v = &vd->vectors[i];
		state_put_u32(out, v->addr_lo);
		state_put_u32(out, v->addr_hi);
		state_put_u32(out, v->data);
		state_put_u32(out, v->control);
		state_put_bool(out, v->pending);
	}
	return 0;
}

static bool valid_vector(const struct virtio_dev *vd, uint16_t vector)
{
	return vector == VIRTIO_NO_VECTOR || vector < vd->num_vectors;
}

#define KNOWN_STATUS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
		      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

/* Reads the state into a freshly attached device, before its worker
 * starts and after the PCI bus restored its configuration space; refuses
 * any value the transport itself could not have reached. */
static int load_device(void *dev, struct state_in *in)
{
	struct virtio_dev *vd = dev;
	uint64_t features = state_get_u64(in);
	uint32_t dev_select = state_get_u32(in), drv_select = state_get_u32(in);
	uint16_t config_vector = state_get_u16(in), queue_select = state_get_u16(in);
	uint8_t status = state_get_u8(in), isr = state_get_u8(in);
	bool msix_enabled = state_get_bool(in), msix_masked = state_get_bool(in);
	if (!state_in_failed(in) && state_get_u32(in) != vd->num_queues)
		state_in_fail(in, "queue count differs from this device's %u", vd->num_queues);
	if (state_in_failed(in))
		return -1;
	if (features & ~vd->features)
		state_in_fail(in, "features 0x%llx this device does not offer",
			      (unsigned long long)(features & ~vd->features));
	else if (status & ~KNOWN_STATUS)
		state_in_fail(in, "unknown status bits 0x%x", status);
	else if (!valid_vector(vd, config_vector))
		state_in_fail(in, "configuration vector %u out of range", config_vector);
	else if (isr > 3)
		state_in_fail(in, "interrupt status 0x%x", isr);
	else if (msix_enabled != !!(vd->pci.config[CAP_MSIX + 3] & (MSIX_CTRL_ENABLE >> 8)) ||
		 msix_masked != !!(vd->pci.config[CAP_MSIX + 3] & (MSIX_CTRL_MASK_ALL >> 8)))
		state_in_fail(in, "MSI-X state differs from the configuration space's");
	if (state_in_failed(in))
		return -1;

	pthread_mutex_lock(&vd->lock);
	vd->driver_features = features;
	vd->device_feature_select = dev_select;
	vd->driver_feature_select = drv_select;
	vd->config_vector = config_vector;
	vd->queue_select = queue_select;
	vd->status = status;
	vd->isr = isr;
	vd->msix_enabled = msix_enabled;
	vd->msix_masked = msix_masked;
	bool event_idx = virtio_negotiated(vd, VIRTIO_F_RING_EVENT_IDX);
	for (unsigned q = 0; q < vd->num_queues && !state_in_failed(in); q++) {
		struct virtio_queue *vq = &vd->queues[q];
		virtq_reset(&vq->vq);
		vq->enabled = false;
		vq->vq.desc_gpa = state_get_u64(in);
		vq->vq.avail_gpa = state_get_u64(in);
		vq->vq.used_gpa = state_get_u64(in);
		vq->vq.size = state_get_u16(in);
		uint16_t vector = state_get_u16(in);
		uint16_t last_avail = state_get_u16(in), used_idx = state_get_u16(in);
		uint16_t signalled_used = state_get_u16(in);
		bool enabled = state_get_bool(in), signalled_valid = state_get_bool(in);
		bool q_event_idx = state_get_bool(in);
		if (state_in_failed(in))
			break;
		if (!valid_vector(vd, vector)) {
			state_in_fail(in, "queue %u: vector %u out of range", q, vector);
			break;
		}
		vq->vector = vector;
		if (!enabled)
			continue;
		/* The same checks as when the driver enabled it. */
		if (vq->vq.size > vd->queue_max || virtq_start(&vq->vq, vd->mem) < 0) {
			state_in_fail(in, "queue %u: size %u or ring addresses not usable", q, vq->vq.size);
			break;
		}
		if ((status & STATUS_UP) == STATUS_UP && q_event_idx != event_idx) {
			state_in_fail(in, "queue %u: event index use differs from the features", q);
			break;
		}
		vq->enabled = true;
		vq->vq.last_avail = last_avail;
		vq->vq.used_idx = used_idx;
		vq->vq.signalled_used = signalled_used;
		vq->vq.signalled_valid = signalled_valid;
		vq->vq.event_idx = q_event_idx;
	}
	if (!state_in_failed(in) && state_get_u32(in) != vd->num_vectors)
		state_in_fail(in, "vector count differs from this device's %u", vd->num_vectors);
	for (unsigned i = 0; i < vd->num_vectors && !state_in_failed(in); i++) {
		struct msix_vector *v = &vd->vectors[i];
		v->addr_lo = state_get_u32(in);
		v->addr_hi = state_get_u32(in);
		v->data = state_get_u32(in);
		v->control = state_get_u32(in);
		v->pending = state_get_bool(in);
		if (v->control & ~MSIX_ENTRY_MASKED)
			state_in_fail(in, "vector %u: control 0x%x", i, v->control);
	}
	int r = state_in_finish(in);
	if (r < 0) {
		reset(vd); /* nothing half-loaded stays */
	} else {
		vd->bar_gpa = pci_bar_address(&vd->pci, 0);
		rebind_kicks(vd);
		update_vectors(vd);
		if ((vd->status & VIRTIO_STATUS_DRIVER_OK) && vd->ops->driver_ok)
			vd->ops->driver_ok(vd);
		/* Requests that were queued but not yet seen are picked up now. */
		for (unsigned q = 0; q < vd->num_queues; q++)
			if (vd->queues[q].enabled)
				kick(vd, q);
	}
	pthread_mutex_unlock(&vd->lock);
	return r;
}

static void destroy_device(void *dev)
{
	struct virtio_dev *vd = dev;
	virtio_pci_destroy(vd);
	if (vd->ops->release)
		vd->ops->release(vd);
}

static void tick_device(void *dev, int64_t now_ms)
{
	struct virtio_dev *vd = dev;
	if (!vd->ops->tick)
		return;
	pthread_mutex_lock(&vd->lock);
	/* A request's handler runs without the lock and may use what tick
	 * changes (a NIC's connection): next second then. */
	if (!vd->in_flight)
		vd->ops->tick(vd, now_ms);
	pthread_mutex_unlock(&vd->lock);
}

#define VIRTIO_DEVICE_OPS(name) { .kind = name, .start = start_device, \
	.quiesce = quiesce_device, .unquiesce = unquiesce_device, .save = save_device, \
	.load = load_device, .destroy = destroy_device, .tick = tick_device }

static const struct device_ops blk_device = VIRTIO_DEVICE_OPS("virtio-blk");
static const struct device_ops net_device = VIRTIO_DEVICE_OPS("virtio-net");
static const struct device_ops rng_device = VIRTIO_DEVICE_OPS("virtio-rng");
static const struct device_ops other_device = VIRTIO_DEVICE_OPS("virtio");

const struct device_ops *virtio_pci_device_ops(const struct virtio_dev *vd)
{
	switch (vd->device_type) {
	case 2: return &blk_device;
	case 1: return &net_device;
	case 4: return &rng_device;
	default: return &other_device;
	}
}
