/* libFuzzer: the PCI bus and the virtio-pci transport as a guest driver
 * sees them. Each input builds a fresh machine of a PCI bus (ports
 * 0xcf8/0xcfc and the MMIO window, through the same struct bus dispatch as
 * vCPU exits) with two virtio devices on it, a virtio-rng and a virtio-blk
 * on a small image, over 64 KiB of guest RAM and the fake KVM
 * (tests/fake/kvm_fake.c). The input is then a sequence of guest
 * operations on the device selected (the rng until OP_SELECT): config
 * space accesses, BAR programming and memory decoding, BAR 0 accesses of
 * any offset and width (common config, ISR, device config, notify, MSI-X
 * table and PBA), device status writes (0 resets), guest RAM writes
 * (rings, descriptors) and a turn of the device's worker (the thread
 * itself is never started: a kick only writes its eventfd, and the harness
 * serves the queue as the worker would). See op() for the encoding;
 * fuzz/gen_virtio_pci_corpus.py writes the seed corpus in it.
 *
 * Besides ASan/UBSan, check() asserts after every operation what must hold
 * between each device and KVM, aborting on a violation: no call KVM would
 * refuse (bar an ioeventfd at an address another device's holds, when a
 * guest made two BARs overlap); every vector's irqfd bound to its own GSI;
 * no route while MSI-X is off, and routes that match the table; no
 * interrupt delivered through a masked vector or with MSI-X off, and none
 * left pending once it could be delivered; notify ioeventfds exactly where
 * the enabled queues' registers decode now; FEATURES_OK only with offered
 * features and VERSION_1. A reset must leave the transport's queues,
 * vectors and bindings cleared; destroying the devices must unbind
 * everything.
 *
 * NESTVM_FUZZ_TRACE=1 prints a line per operation (to read what a crash
 * input does): build/fuzz/fuzz_virtio_pci CRASH-FILE. */
#define _GNU_SOURCE
#include <poll.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/fake/kvm_fake.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "mem/guest_mem.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"

#define RAM           (64 * 1024)
#define DISK          (64 * 1024)
#define NDEVS         2
#define CONFIG_ENABLE 0x80000000u
#define CONFIG_PORT   0xcf8
#define DATA_PORT     0xcfc
#define STATUS_OFF    0x14 /* device_status in the common config */

/* virtio_pci_common_cfg (4.1.4.3): offset and width of each field. */
static const struct {
	uint8_t off, len;
} common_fields[] = {
	{ 0x00, 4 }, { 0x04, 4 }, { 0x08, 4 }, { 0x0c, 4 }, /* feature selects and words */
	{ 0x10, 2 }, { 0x12, 2 }, { 0x14, 1 }, { 0x15, 1 }, /* msix_config ... generation */
	{ 0x16, 2 }, { 0x18, 2 }, { 0x1a, 2 }, { 0x1c, 2 }, /* queue_select ... enable */
	{ 0x1e, 2 }, { 0x20, 8 }, { 0x28, 8 }, { 0x30, 8 }, /* notify_off, ring addresses */
	{ 0x20, 4 }, { 0x24, 4 },                           /* halves, as 32-bit drivers do */
};
#define COMMON_FIELDS (sizeof(common_fields) / sizeof(common_fields[0]))
#define STATUS_FIELD  6

enum {
	OP_CFG_WRITE,  /* sel, reg, width, u32 value */
	OP_CFG_READ,   /* sel, reg, width */
	OP_PORT,       /* port (0xcf8 + n % 8), flags (bit 7 write, 1 << bits 0-1 bytes), u32 */
	OP_BAR,        /* u32 BAR 0, u32 BAR 1, u16 command: as firmware or a driver does */
	OP_MMIO,       /* u16 offset from BAR 0, flags as OP_PORT, u64 value */
	OP_COMMON,     /* field (common_fields), u64 value */
	OP_STATUS,     /* u8 device status; 0 resets */
	OP_MSIX_ENTRY, /* entry, u32 address low, high, data, control */
	OP_MSIX_CTRL,  /* u8: the high byte of the MSI-X message control */
	OP_POKE,       /* u16 guest address, u8 length, bytes */
	OP_SERVE,      /* queue: one turn of the worker */
	OP_NOTIFY,     /* queue: a 16-bit write to its notify register */
	OP_FAIL,       /* bit 0: KVM refuses ioeventfds from now on */
	OP_SELECT,     /* device: the one later operations address */
	NOPS
};

/* Where a device's capabilities put things, as a driver reads them. */
struct caps {
	uint32_t slot, msix_cap, common, isr, device, notify, notify_mult, msix_table, msix_pba;
};

static struct {
	struct guest_mem mem;
	struct kvm_host host;
	struct kvm_guest guest;
	struct pci_bus pci;
	struct bus pio, mmio;
	struct virtio_rng rng;
	struct virtio_blk blk;
	struct virtio_dev *devs[NDEVS];
	struct caps caps[NDEVS];
	bool ioeventfd_failed;
} M;

/* The device operations address, and its capabilities. */
static struct virtio_dev *vd;
static struct caps *C;

struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes && in->left; i++, in->p++, in->left--)
		v |= (uint64_t)*in->p << (8 * i);
	return v; /* past the end of the input: zeros */
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_virtio_pci: invariant violated: %s\n", what);
	abort();
}

/* --- the guest's side ------------------------------------------------- */

static uint64_t bar0(const struct virtio_dev *d)
{
	return pci_bar_address(&d->pci, 0);
}

/* Whether accesses to d's BAR 0 reach d: it decodes inside the PCI window
 * and no device in an earlier slot decodes over it. */
static bool bar0_reachable(const struct virtio_dev *d)
{
	uint64_t b = bar0(d), size = d->pci.bar_size[0];
	if (b < PCI_MMIO_BASE || b > PCI_MMIO_END - size)
		return false;
	uint32_t slot = d->pci.opaque == M.devs[0] ? M.caps[0].slot : M.caps[1].slot;
	for (unsigned i = 0; i < NDEVS; i++) {
		uint64_t ob = bar0(M.devs[i]), osize = M.devs[i]->pci.bar_size[0];
		if (M.caps[i].slot < slot && ob && ob < b + size && b < ob + osize)
			return false;
	}
	return true;
}

static void cfg_access(uint8_t sel, uint8_t reg, uint32_t len, uint8_t *data, bool is_write)
{
	uint32_t slot = sel < 0xe0 ? C->slot : sel & 0x1fu;
	uint32_t addr = CONFIG_ENABLE | slot << 11 | (reg & 0xfcu);
	if (sel >= 0xf8)
		addr |= (uint32_t)(sel & 7) << 8; /* another function */
	if (sel == 0xff)
		addr &= ~CONFIG_ENABLE;
	bus_access(&M.pio, CONFIG_PORT, (uint8_t *)&addr, 4, true);
	bus_access(&M.pio, DATA_PORT + (reg & 3u), data, len, is_write);
}

static void cfg_write(uint8_t reg, uint32_t len, uint32_t value)
{
	cfg_access(0, reg, len, (uint8_t *)&value, true);
}

static void mmio(uint64_t off, uint32_t len, uint64_t value, bool is_write)
{
	uint64_t base = bar0(vd) ? bar0(vd) : PCI_MMIO_BASE;
	uint8_t data[8];
	memcpy(data, &value, sizeof(data));
	bus_access(&M.mmio, base + off, data, len, is_write);
}

/* One turn of the worker for queue q: what worker() does on its kick. */
static void serve(unsigned q)
{
	uint64_t count;
	if (read(vd->queues[q].kick_fd, &count, sizeof(count)) < 0) {
		/* no kick pending: the worker would not have woken */
	}
	pthread_mutex_lock(&vd->lock);
	uint8_t up = VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	if ((vd->status & up) == up && !(vd->status & VIRTIO_STATUS_NEEDS_RESET) &&
	    vd->queues[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

/* --- invariants ------------------------------------------------------- */

/* pfd: the vectors' eventfds, polled (NULL: not looked at). */
static void check_device(struct virtio_dev *d, const struct caps *c, const struct pollfd *pfd)
{
	for (unsigned i = 0; i < d->num_vectors; i++) {
		const struct msix_vector *v = &d->vectors[i];
		const struct kvm_msi_route *r = kvm_fake_msi_route(&M.guest, v->gsi);
		if (!r || kvm_fake_irqfd_gsi(v->irq_fd) != v->gsi)
			fail("a vector's irqfd is not bound to its GSI");
		uint64_t addr = (uint64_t)v->addr_hi << 32 | v->addr_lo;
		if (r->valid && !d->msix_enabled)
			fail("an MSI route while MSI-X is disabled");
		if (r->valid && (r->address != addr || r->data != v->data))
			fail("an MSI route that is not the table's entry");
		bool masked = d->msix_masked || (v->control & 1);
		uint64_t fired = 0;
		if (pfd && (pfd[i].revents & POLLIN) &&
		    read(v->irq_fd, &fired, sizeof(fired)) == sizeof(fired) && fired &&
		    (!d->msix_enabled || masked))
			fail("an interrupt through a masked vector or with MSI-X disabled");
		if (v->pending && d->msix_enabled && !masked)
			fail("a pending interrupt held back from an unmasked vector");
		if (v->control & ~1u)
			fail("a vector control bit other than the mask stuck");
	}
	if (d->config_vector != VIRTIO_NO_VECTOR && d->config_vector >= d->num_vectors)
		fail("config vector out of the table");
	uint64_t bar = bar0(d);
	if (d->bar_gpa != bar)
		fail("BAR 0 moved (or decoding switched) without the device following");
	for (unsigned q = 0; q < d->num_queues; q++) {
		const struct virtio_queue *vq = &d->queues[q];
		if (vq->vector != VIRTIO_NO_VECTOR && vq->vector >= d->num_vectors)
			fail("queue vector out of the table");
		uint64_t want = vq->enabled && bar ? bar + c->notify + (uint64_t)c->notify_mult * q : 0;
		unsigned n = kvm_fake_ioeventfd_count(vq->kick_fd);
		if (n > 1 || (!want && n))
			fail("a notify ioeventfd where no enabled queue's register is");
		/* Where KVM refused the binding (no room, or a guest made the
		 * registers of two devices overlap), writes exit instead. */
		bool refused = M.ioeventfd_failed || kvm_fake.collisions;
		if (want && !kvm_fake_ioeventfd_bound(want, vq->kick_fd) && !(refused && !n))
			fail("an enabled queue's notify ioeventfd is not at its register");
		if (vq->enabled) {
			uint16_t s = vq->vq.size;
			if (!s || (s & (s - 1)) || s > d->queue_max || !vq->vq.ready)
				fail("an enabled queue with a size or rings it should have refused");
		}
	}
	if ((d->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((d->driver_features & ~d->features) || !(d->driver_features & VIRTIO_F_VERSION_1)))
		fail("FEATURES_OK with features not offered or without VERSION_1");
}

/* irqs: look at the vectors' eventfds too, with one poll for all of them
 * (an operation that writes no device register cannot have written one). */
static void check(bool irqs)
{
	if (kvm_fake.errors)
		fail("the transport made a KVM call KVM refuses");
	struct pollfd pfd[NDEVS * (VIRTIO_MAX_QUEUES + 1)];
	nfds_t n = 0;
	for (unsigned i = 0; i < NDEVS; i++)
		for (unsigned v = 0; v < M.devs[i]->num_vectors; v++, n++)
			pfd[n] = (struct pollfd){ .fd = M.devs[i]->vectors[v].irq_fd, .events = POLLIN };
	/* libFuzzer's timeout alarm (SIGALRM every timeout/2 seconds) may
	 * interrupt even a poll that does not wait. */
	int r;
	do
		r = irqs ? poll(pfd, n, 0) : 0;
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail("poll on the vectors' eventfds");
	for (unsigned i = 0, at = 0; i < NDEVS; at += M.devs[i]->num_vectors, i++)
		check_device(M.devs[i], &M.caps[i], irqs ? &pfd[at] : NULL);
}

/* After a write of 0 to the selected device's status. */
static void check_reset(void)
{
	if (vd->status || vd->isr || vd->driver_features || vd->config_vector != VIRTIO_NO_VECTOR)
		fail("reset left status, ISR, features or the config vector");
	for (unsigned q = 0; q < vd->num_queues; q++) {
		const struct virtio_queue *vq = &vd->queues[q];
		if (vq->enabled || vq->vector != VIRTIO_NO_VECTOR || vq->vq.size != vd->queue_max ||
		    vq->vq.desc_gpa || vq->vq.avail_gpa || vq->vq.used_gpa || vq->kick_gpa ||
		    kvm_fake_ioeventfd_count(vq->kick_fd))
			fail("reset left a queue set up");
	}
	for (unsigned i = 0; i < vd->num_vectors; i++)
		if (vd->vectors[i].pending)
			fail("reset left an interrupt pending");
}

/* --- the operations --------------------------------------------------- */

static uint32_t width(uint8_t flags)
{
	return 1u << (flags & 3);
}

static void select_device(unsigned i)
{
	vd = M.devs[i];
	C = &M.caps[i];
}

/* Runs one operation; *wrote: whether it wrote to a device register (only
 * a write can deliver an interrupt). */
static uint8_t op(struct input *in, bool *wrote)
{
	uint8_t code = (uint8_t)(take(in, 1) % NOPS);
	*wrote = code != OP_CFG_READ && code != OP_POKE && code != OP_FAIL && code != OP_SELECT;
	switch (code) {
	case OP_CFG_WRITE:
	case OP_CFG_READ: {
		uint8_t sel = (uint8_t)take(in, 1), reg = (uint8_t)take(in, 1);
		uint32_t len = width((uint8_t)take(in, 1)), value = 0;
		if (len == 8)
			len = 4;
		if (code == OP_CFG_WRITE)
			value = (uint32_t)take(in, 4);
		cfg_access(sel, reg, len, (uint8_t *)&value, code == OP_CFG_WRITE);
		break;
	}
	case OP_PORT: {
		uint64_t port = CONFIG_PORT + take(in, 1) % 8;
		uint8_t flags = (uint8_t)take(in, 1);
		uint64_t value = take(in, 4);
		bus_access(&M.pio, port, (uint8_t *)&value, width(flags), flags & 0x80);
		*wrote = flags & 0x80;
		break;
	}
	case OP_BAR: {
		uint32_t lo = (uint32_t)take(in, 4), hi = (uint32_t)take(in, 4);
		uint16_t cmd = (uint16_t)take(in, 2);
		cfg_write(PCI_BAR0, 4, lo);
		cfg_write(PCI_BAR0 + 4, 4, hi);
		cfg_write(PCI_COMMAND, 2, cmd);
		break;
	}
	case OP_MMIO: {
		uint64_t off = take(in, 2);
		uint8_t flags = (uint8_t)take(in, 1);
		uint64_t value = take(in, 8);
		uint64_t status = C->common + STATUS_OFF;
		mmio(off, width(flags), value, flags & 0x80);
		*wrote = flags & 0x80;
		if (*wrote && bar0_reachable(vd) && off <= status && off + width(flags) > status &&
		    !(uint8_t)(value >> 8 * (status - off)))
			check_reset(); /* the write put 0 in device_status */
		break;
	}
	case OP_COMMON: {
		unsigned f = (unsigned)(take(in, 1) % COMMON_FIELDS);
		uint64_t value = take(in, 8);
		mmio(C->common + common_fields[f].off, common_fields[f].len, value, true);
		if (f == STATUS_FIELD && !(uint8_t)value && bar0_reachable(vd))
			check_reset();
		break;
	}
	case OP_STATUS: {
		uint8_t status = (uint8_t)take(in, 1);
		mmio(C->common + STATUS_OFF, 1, status, true);
		if (!status && bar0_reachable(vd))
			check_reset();
		break;
	}
	case OP_MSIX_ENTRY: {
		uint64_t entry = C->msix_table + 16 * (take(in, 1) % (vd->num_vectors + 1));
		for (unsigned i = 0; i < 4; i++)
			mmio(entry + 4 * i, 4, take(in, 4), true);
		break;
	}
	case OP_MSIX_CTRL:
		cfg_write((uint8_t)(C->msix_cap + 3), 1, (uint32_t)take(in, 1));
		break;
	case OP_POKE: {
		uint64_t at = take(in, 2) % RAM;
		size_t n = (size_t)take(in, 1);
		if (n > in->left)
			n = in->left;
		if (n > RAM - at)
			n = RAM - at;
		memcpy(M.mem.base + at, in->p, n);
		in->p += n, in->left -= n;
		break;
	}
	case OP_SERVE:
		serve((unsigned)(take(in, 1) % vd->num_queues));
		break;
	case OP_NOTIFY: {
		uint16_t q = (uint16_t)(take(in, 1) % (vd->num_queues + 1));
		mmio(C->notify + (uint64_t)C->notify_mult * q, 2, q, true);
		break;
	}
	case OP_FAIL:
		kvm_fake.fail_ioeventfd = take(in, 1) & 1;
		if (kvm_fake.fail_ioeventfd)
			M.ioeventfd_failed = true;
		break;
	case OP_SELECT:
		select_device((unsigned)(take(in, 1) % NDEVS));
		break;
	}
	return code;
}

static void trace(unsigned n, uint8_t code)
{
	const struct virtio_queue *q = &vd->queues[0];
	fprintf(stderr, "%3u op %2u: %s bar %#llx status %#x isr %u features %#llx msix %d%d "
		"pending %d%d q0 %s size %u used %u kvm: %u ioeventfds, %u collisions\n", n, code,
		vd == M.devs[0] ? "rng" : "blk",
		(unsigned long long)vd->bar_gpa, vd->status, vd->isr,
		(unsigned long long)vd->driver_features, vd->msix_enabled, vd->msix_masked,
		vd->vectors[0].pending, vd->vectors[1].pending, q->enabled ? "on" : "off",
		q->vq.size, q->vq.used_idx, kvm_fake.nioeventfds, kvm_fake.collisions);
}

/* --- the machine ------------------------------------------------------- */

/* Reads the capability list as a driver does (4.1.4). */
static void find_capabilities(const struct virtio_dev *d, struct caps *c)
{
	const struct pci_device *dev = &d->pci;
	uint32_t slot = c->slot;
	memset(c, 0, sizeof(*c));
	c->slot = slot;
	unsigned hops = 0;
	for (uint32_t at = dev->config[PCI_CAP_PTR]; at && hops < 48; at = dev->config[at + 1], hops++) {
		if (at < 0x40 || at > 0xf0)
			fail("capability pointer out of configuration space");
		if (dev->config[at] == 0x11) { /* MSI-X */
			c->msix_cap = at;
			c->msix_table = pci_get32(dev, at + 4) & ~7u;
			c->msix_pba = pci_get32(dev, at + 8) & ~7u;
		} else if (dev->config[at] == 0x09) { /* vendor: a virtio structure */
			uint32_t offset = pci_get32(dev, at + 8);
			switch (dev->config[at + 3]) {
			case 1: c->common = offset; break;
			case 2: c->notify = offset, c->notify_mult = pci_get32(dev, at + 16); break;
			case 3: c->isr = offset; break;
			case 4: c->device = offset; break;
			}
		}
	}
	if (!c->msix_cap || !c->notify)
		fail("a device lacks its MSI-X or notify capability");
}

static void setup_once(void)
{
	log_verbosity = -1;
	if (guest_mem_alloc(&M.mem, RAM, 0) < 0)
		abort();
	/* The disk: tmpfs if there is one, so that write-through costs no
	 * real sync; unlinked once open. */
	char path[] = "/dev/shm/nestvm-fuzz-disk.XXXXXX", alt[] = "/tmp/nestvm-fuzz-disk.XXXXXX";
	char *p = path;
	int fd = mkstemp(p);
	if (fd < 0)
		fd = mkstemp(p = alt);
	if (fd < 0 || ftruncate(fd, DISK) < 0)
		abort();
	close(fd);
	struct virtio_blk_options opt = { .serial = "FUZZ" };
	snprintf(opt.path, sizeof(opt.path), "%s", p);
	if (virtio_blk_open(&M.blk, &opt) < 0)
		abort();
	unlink(p);
	M.devs[0] = &M.rng.vdev;
	M.devs[1] = &M.blk.vdev;
}

static void build(void)
{
	kvm_fake_reset();
	if (kvm_host_open(&M.host) < 0 || kvm_guest_create(&M.host, &M.guest) < 0)
		abort();
	memset(M.mem.base, 0, RAM);
	pci_bus_init(&M.pci);
	bus_init(&M.pio, "port");
	bus_init(&M.mmio, "MMIO");
	memset(&M.rng, 0, sizeof(M.rng));
	/* The image stays open, emptied: each input starts from zeros. */
	memset(&M.blk.vdev, 0, sizeof(M.blk.vdev));
	if (ftruncate(M.blk.disk->fd, 0) < 0 || ftruncate(M.blk.disk->fd, DISK) < 0)
		abort();
	if (pci_bus_attach(&M.pci, &M.pio, &M.mmio) < 0 ||
	    virtio_rng_attach(&M.rng, &M.guest, &M.mem, &M.pci) < 0 ||
	    virtio_blk_attach(&M.blk, &M.guest, &M.mem, &M.pci) < 0)
		abort();
	for (unsigned i = 0; i < NDEVS; i++) {
		M.caps[i].slot = 0;
		for (uint32_t s = 1; s < PCI_SLOTS; s++)
			if (M.pci.slots[s] == &M.devs[i]->pci)
				M.caps[i].slot = s;
		if (!M.caps[i].slot)
			abort();
		find_capabilities(M.devs[i], &M.caps[i]);
	}
	M.ioeventfd_failed = false;
	select_device(0);
}

static void tear_down(void)
{
	for (unsigned i = 0; i < NDEVS; i++)
		virtio_pci_destroy(M.devs[i]);
	if (kvm_fake.errors || kvm_fake.nirqfds || kvm_fake.nioeventfds)
		fail("destroying the devices left KVM bindings (or made a refused call)");
	bus_free(&M.pio);
	bus_free(&M.mmio);
	pci_bus_destroy(&M.pci);
	kvm_guest_close(&M.guest);
	kvm_host_close(&M.host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready, tracing;
	if (!ready) {
		setup_once();
		tracing = getenv("NESTVM_FUZZ_TRACE") != NULL;
		ready = true;
	}
	build();
	check(true);
	struct input in = { data, size };
	for (unsigned n = 0; in.left && n < 512; n++) {
		bool wrote;
		uint8_t code = op(&in, &wrote);
		if (tracing)
			trace(n, code);
		check(wrote);
	}
	tear_down();
	return 0;
}
