/* Unit tests: the virtio-pci transport (virtio/virtio_pci.c) on the PCI bus
 * (devices/pci.c), driven as a guest driver drives it: configuration space
 * through ports 0xcf8/0xcfc, then BAR 0 through the MMIO window, with a
 * virtio-rng behind it. KVM is the fake (tests/fake/kvm_fake.c), which
 * records the MSI routes, irqfds and notify ioeventfds the transport asks
 * for; the transport's own eventfds are real, so reading a vector's irqfd
 * tells whether an interrupt was delivered. The device's worker thread is
 * not started: serve() does what it does on a kick. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../fake/kvm_fake.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "mem/guest_mem.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"

#define RAM (1 << 20)

/* virtio_pci_common_cfg (4.1.4.3) */
#define C_DFSELECT  0x00
#define C_DF        0x04
#define C_GFSELECT  0x08
#define C_GF        0x0c
#define C_MSIX      0x10
#define C_NUMQ      0x12
#define C_STATUS    0x14
#define C_Q_SELECT  0x16
#define C_Q_SIZE    0x18
#define C_Q_MSIX    0x1a
#define C_Q_ENABLE  0x1c
#define C_Q_NOFF    0x1e
#define C_Q_DESC    0x20
#define C_Q_DRIVER  0x28
#define C_Q_DEVICE  0x30

#define S_ACK        1
#define S_DRIVER     2
#define S_DRIVER_OK  4
#define S_FEATURES_OK 8

/* The ring the tests put in guest RAM. */
#define QSIZE     16
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define BUF_GPA   0x4000

#define MSI_ADDR  0xfee00000u

struct fixture {
	struct guest_mem mem;
	struct kvm_host host;
	struct kvm_guest guest;
	struct pci_bus pci;
	struct bus pio, mmio;
	struct virtio_rng rng;
	bool destroyed;
	uint32_t slot;
	uint64_t bar;
	/* What the capabilities say, as a driver reads them. */
	uint32_t msix_cap, msix_table, msix_pba, common, isr, notify, notify_mult;
	uint16_t msix_size;
	uint16_t avail_idx;
};

/* --- the driver's accessors -------------------------------------------- */

static uint32_t cfg_read(struct fixture *f, uint32_t reg, uint32_t len)
{
	uint32_t addr = 0x80000000u | f->slot << 11 | (reg & 0xfc), v = 0;
	bus_access(&f->pio, 0xcf8, (uint8_t *)&addr, 4, true);
	assert_true(bus_access(&f->pio, 0xcfc + (reg & 3), (uint8_t *)&v, len, false));
	return v;
}

static void cfg_write(struct fixture *f, uint32_t reg, uint32_t len, uint32_t v)
{
	uint32_t addr = 0x80000000u | f->slot << 11 | (reg & 0xfc);
	bus_access(&f->pio, 0xcf8, (uint8_t *)&addr, 4, true);
	assert_true(bus_access(&f->pio, 0xcfc + (reg & 3), (uint8_t *)&v, len, true));
}

static uint64_t rd(struct fixture *f, uint64_t off, uint32_t len)
{
	uint64_t v = 0;
	assert_true(bus_access(&f->mmio, f->bar + off, (uint8_t *)&v, len, false));
	return v;
}

static void wr(struct fixture *f, uint64_t off, uint32_t len, uint64_t v)
{
	assert_true(bus_access(&f->mmio, f->bar + off, (uint8_t *)&v, len, true));
}

static uint64_t common_rd(struct fixture *f, uint32_t field, uint32_t len)
{
	return rd(f, f->common + field, len);
}

static void common_wr(struct fixture *f, uint32_t field, uint32_t len, uint64_t v)
{
	wr(f, f->common + field, len, v);
}

static void msix_entry(struct fixture *f, unsigned i, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = f->msix_table + 16 * i;
	wr(f, e, 4, (uint32_t)addr);
	wr(f, e + 4, 4, (uint32_t)(addr >> 32));
	wr(f, e + 8, 4, data);
	wr(f, e + 12, 4, masked);
}

/* The high byte of the MSI-X message control: enable (0x80), mask (0x40). */
static void msix_control(struct fixture *f, uint8_t v)
{
	cfg_write(f, f->msix_cap + 3, 1, v);
}

/* Reads the capability list (4.1.4) and places BAR 0 where it is. */
static void discover(struct fixture *f)
{
	assert_true(cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (uint32_t at = cfg_read(f, PCI_CAP_PTR, 1); at; at = cfg_read(f, at + 1, 1)) {
		assert_true(at >= 0x40 && at < 0x100);
		uint32_t id = cfg_read(f, at, 1);
		if (id == 0x11) {
			f->msix_cap = at;
			f->msix_size = (uint16_t)((cfg_read(f, at + 2, 2) & 0x7ff) + 1);
			uint32_t table = cfg_read(f, at + 4, 4), pba = cfg_read(f, at + 8, 4);
			assert_int_equal(table & 7, 0); /* in BAR 0 */
			assert_int_equal(pba & 7, 0);
			f->msix_table = table, f->msix_pba = pba;
		} else if (id == 0x09) {
			assert_int_equal(cfg_read(f, at + 4, 1), 0); /* BAR 0 */
			uint32_t offset = cfg_read(f, at + 8, 4);
			switch (cfg_read(f, at + 3, 1)) {
			case 1: f->common = offset; break;
			case 2:
				f->notify = offset;
				f->notify_mult = cfg_read(f, at + 16, 4);
				break;
			case 3: f->isr = offset; break;
			}
		}
	}
	assert_int_not_equal(f->msix_cap, 0);
	assert_int_not_equal(f->notify, 0);
	f->bar = (cfg_read(f, PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg_read(f, PCI_BAR0 + 4, 4) << 32;
}

static void enable_memory(struct fixture *f)
{
	cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/* --- the KVM side -------------------------------------------------------- */

static struct virtio_dev *vdev(struct fixture *f)
{
	return &f->rng.vdev;
}

/* The route KVM has for the GSI the eventfd of vector i raises. */
static const struct kvm_msi_route *route_of(struct fixture *f, unsigned i)
{
	int gsi = kvm_fake_irqfd_gsi(vdev(f)->vectors[i].irq_fd);
	assert_true(gsi >= KVM_FIRST_MSI_GSI);
	const struct kvm_msi_route *r = kvm_fake_msi_route(&f->guest, gsi);
	assert_non_null(r);
	return r;
}

/* Interrupts delivered through vector i since the last look. */
static uint64_t fired(struct fixture *f, unsigned i)
{
	uint64_t n = 0;
	if (read(vdev(f)->vectors[i].irq_fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static uint64_t kicks(struct fixture *f, unsigned q)
{
	uint64_t n = 0;
	if (read(vdev(f)->queues[q].kick_fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* What the worker does when queue q's eventfd fires. */
static void serve(struct fixture *f, unsigned q)
{
	struct virtio_dev *vd = vdev(f);
	kicks(f, q);
	pthread_mutex_lock(&vd->lock);
	uint8_t up = S_FEATURES_OK | S_DRIVER_OK;
	if ((vd->status & up) == up && !(vd->status & VIRTIO_STATUS_NEEDS_RESET) &&
	    vd->queues[q].enabled)
		vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
}

/* --- guest RAM ------------------------------------------------------------ */

static uint8_t *gpa(struct fixture *f, uint64_t a)
{
	return guest_mem_ptr(&f->mem, a, 1);
}

/* One writable buffer of len bytes offered as descriptor head. */
static void offer_buffer(struct fixture *f, uint16_t head, uint32_t len)
{
	uint64_t addr = BUF_GPA + 0x100 * head;
	uint16_t flags = 2; /* VIRTQ_DESC_F_WRITE */
	uint8_t *d = gpa(f, DESC_GPA + 16 * head);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memset(d + 14, 0, 2);
	memcpy(gpa(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % QSIZE)), &head, 2);
	f->avail_idx++;
	memcpy(gpa(f, AVAIL_GPA + 2), &f->avail_idx, 2);
}

static uint16_t used_idx(struct fixture *f)
{
	uint16_t v;
	memcpy(&v, gpa(f, USED_GPA + 2), 2);
	return v;
}

/* --- the driver's steps ---------------------------------------------------- */

static uint64_t device_features(struct fixture *f)
{
	common_wr(f, C_DFSELECT, 4, 0);
	uint64_t lo = common_rd(f, C_DF, 4);
	common_wr(f, C_DFSELECT, 4, 1);
	return lo | common_rd(f, C_DF, 4) << 32;
}

static void driver_features(struct fixture *f, uint64_t features)
{
	common_wr(f, C_GFSELECT, 4, 0);
	common_wr(f, C_GF, 4, (uint32_t)features);
	common_wr(f, C_GFSELECT, 4, 1);
	common_wr(f, C_GF, 4, features >> 32);
}

static uint8_t status(struct fixture *f)
{
	return (uint8_t)common_rd(f, C_STATUS, 1);
}

static void set_status(struct fixture *f, uint8_t s)
{
	common_wr(f, C_STATUS, 1, s);
}

/* Queue 0 on the test's ring, using MSI-X vector `vector`. */
static void setup_queue(struct fixture *f, uint16_t vector)
{
	common_wr(f, C_Q_SELECT, 2, 0);
	assert_int_equal(common_rd(f, C_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	common_wr(f, C_Q_SIZE, 2, QSIZE);
	common_wr(f, C_Q_DESC, 8, DESC_GPA);
	common_wr(f, C_Q_DRIVER, 4, AVAIL_GPA); /* 32-bit halves, as some drivers write */
	common_wr(f, C_Q_DRIVER + 4, 4, 0);
	common_wr(f, C_Q_DEVICE, 8, USED_GPA);
	common_wr(f, C_Q_MSIX, 2, vector);
	assert_int_equal(common_rd(f, C_Q_MSIX, 2), vector);
	common_wr(f, C_Q_ENABLE, 2, 1);
	assert_int_equal(common_rd(f, C_Q_ENABLE, 2), 1);
}

/* The whole of 3.1.1 with MSI-X: the state a running driver leaves. */
static void driver_init(struct fixture *f, bool masked)
{
	msix_entry(f, 0, MSI_ADDR, 0x40, masked);
	msix_entry(f, 1, MSI_ADDR | 0x1000, 0x41, masked);
	msix_control(f, 0x80);
	set_status(f, 0);
	set_status(f, S_ACK);
	set_status(f, S_ACK | S_DRIVER);
	driver_features(f, VIRTIO_F_VERSION_1);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_int_equal(status(f), S_ACK | S_DRIVER | S_FEATURES_OK);
	common_wr(f, C_MSIX, 2, 0);
	setup_queue(f, 1);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	assert_int_equal(status(f), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* --- fixture ----------------------------------------------------------------- */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	kvm_fake_reset();
	assert_int_equal(guest_mem_alloc(&f->mem, RAM, 0), 0);
	assert_int_equal(kvm_host_open(&f->host), 0);
	assert_int_equal(kvm_guest_create(&f->host, &f->guest), 0);
	pci_bus_init(&f->pci);
	bus_init(&f->pio, "port");
	bus_init(&f->mmio, "MMIO");
	assert_int_equal(pci_bus_attach(&f->pci, &f->pio, &f->mmio), 0);
	assert_int_equal(virtio_rng_attach(&f->rng, &f->guest, &f->mem, &f->pci), 0);
	for (uint32_t s = 1; s < PCI_SLOTS; s++)
		if (f->pci.slots[s] == &f->rng.vdev.pci)
			f->slot = s;
	assert_int_not_equal(f->slot, 0);
	discover(f);
	enable_memory(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f->destroyed)
		virtio_pci_destroy(vdev(f));
	/* Whatever a test did, the device gave every KVM binding back and
	 * never made a call KVM refuses. */
	assert_int_equal(kvm_fake.nirqfds, 0);
	assert_int_equal(kvm_fake.nioeventfds, 0);
	assert_int_equal(kvm_fake.errors, 0);
	bus_free(&f->pio);
	bus_free(&f->mmio);
	pci_bus_destroy(&f->pci);
	kvm_guest_close(&f->guest);
	kvm_host_close(&f->host);
	guest_mem_free(&f->mem);
	free(f);
	return 0;
}

/* --- tests ------------------------------------------------------------------- */

static void config_space_describes_a_modern_device(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(cfg_read(f, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1040 + 4); /* virtio-rng */
	assert_int_equal(cfg_read(f, PCI_REVISION, 1), 1);
	assert_int_equal(f->msix_size, 2); /* config + one queue */
	assert_int_equal(f->notify_mult, 4);
	assert_true(f->bar >= PCI_MMIO_BASE && f->bar < PCI_MMIO_END);
	/* Sizing: all ones reads back the size; the upper half is all address. */
	cfg_write(f, PCI_BAR0, 4, 0xffffffff);
	uint32_t lo = cfg_read(f, PCI_BAR0, 4);
	assert_int_equal(lo & 0xf, 0x4); /* 64-bit memory BAR */
	uint32_t size = ~(lo & ~0xfu) + 1;
	assert_true(size >= 4096 && !(size & (size - 1)));
	assert_true(f->msix_pba + 8 <= size && f->notify + 4 <= size);
	cfg_write(f, PCI_BAR0, 4, (uint32_t)f->bar);
	assert_int_equal(cfg_read(f, PCI_BAR0, 4), (uint32_t)f->bar | 4);
	/* The function's other numbers and empty slots read as all ones. */
	uint32_t addr = 0x80000000u | f->slot << 11 | 1 << 8, v = 0;
	bus_access(&f->pio, 0xcf8, (uint8_t *)&addr, 4, true);
	bus_access(&f->pio, 0xcfc, (uint8_t *)&v, 4, false);
	assert_int_equal(v, 0xffffffff);
	assert_int_equal(common_rd(f, C_NUMQ, 2), 1);
}

static void driver_init_sequence_is_accepted(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = vdev(f);
	set_status(f, S_ACK);
	set_status(f, S_ACK | S_DRIVER);
	assert_int_equal(status(f), S_ACK | S_DRIVER);
	uint64_t offered = device_features(f);
	assert_true(offered & VIRTIO_F_VERSION_1);
	assert_int_equal(offered, vd->features);
	driver_features(f, offered);
	common_wr(f, C_GFSELECT, 4, 1);
	assert_int_equal(common_rd(f, C_GF, 4), offered >> 32);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_int_equal(status(f), S_ACK | S_DRIVER | S_FEATURES_OK);
	/* Features are fixed from FEATURES_OK on. */
	driver_features(f, VIRTIO_F_VERSION_1);
	common_wr(f, C_GFSELECT, 4, 0);
	assert_int_equal(common_rd(f, C_GF, 4), (uint32_t)offered);

	setup_queue(f, 1);
	assert_int_equal(common_rd(f, C_Q_NOFF, 2), 0);
	/* Enabling the queue bound its notify register to its eventfd. */
	assert_true(kvm_fake_ioeventfd_bound(f->bar + f->notify, vd->queues[0].kick_fd));
	assert_int_equal(kicks(f, 0), 0);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	assert_int_equal(status(f), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	/* DRIVER_OK looks at what was queued before it. */
	assert_int_equal(kicks(f, 0), 1);

	/* A request goes through: random bytes in the buffer, the used ring
	 * moved. (No interrupt: MSI-X is off, the driver would poll.) */
	offer_buffer(f, 0, 64);
	wr(f, f->notify, 2, 0); /* as if KVM had let the write exit */
	assert_int_equal(kicks(f, 0), 1);
	serve(f, 0);
	assert_int_equal(used_idx(f), 1);
	uint32_t len;
	memcpy(&len, gpa(f, USED_GPA + 8), 4);
	assert_int_equal(len, 64);
	assert_int_equal(fired(f, 1), 0);
	assert_int_equal(rd(f, f->isr, 1), 1); /* queue interrupt; reading clears it */
	assert_int_equal(rd(f, f->isr, 1), 0);
}

static void features_ok_is_refused_for_what_was_not_offered(void **state)
{
	struct fixture *f = *state;
	set_status(f, S_ACK | S_DRIVER);
	uint64_t offered = device_features(f);
	/* A bit the device never offered. */
	driver_features(f, offered | 1ull << 40);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_false(status(f) & S_FEATURES_OK);
	/* No VERSION_1: a legacy driver, which this device does not serve. */
	set_status(f, 0);
	set_status(f, S_ACK | S_DRIVER);
	driver_features(f, offered & ~VIRTIO_F_VERSION_1);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_false(status(f) & S_FEATURES_OK);
	/* After a reset, a proper subset is accepted. */
	set_status(f, 0);
	set_status(f, S_ACK | S_DRIVER);
	driver_features(f, VIRTIO_F_VERSION_1);
	set_status(f, S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_true(status(f) & S_FEATURES_OK);
}

static void msix_enable_routes_vectors_to_kvm(void **state)
{
	struct fixture *f = *state;
	/* Each vector has an irqfd of its own on a GSI of its own. */
	int gsi0 = kvm_fake_irqfd_gsi(vdev(f)->vectors[0].irq_fd);
	int gsi1 = kvm_fake_irqfd_gsi(vdev(f)->vectors[1].irq_fd);
	assert_true(gsi0 >= KVM_FIRST_MSI_GSI && gsi1 >= KVM_FIRST_MSI_GSI);
	assert_int_not_equal(gsi0, gsi1);

	msix_entry(f, 0, MSI_ADDR | 0x3000, 0x4021, false);
	msix_entry(f, 1, 0x1fee01000ull, 0x4022, true);
	assert_int_equal(rd(f, f->msix_table + 8, 4), 0x4021);
	assert_int_equal(rd(f, f->msix_table + 16 + 4, 4), 1);
	assert_int_equal(rd(f, f->msix_table + 16 + 12, 4), 1);
	/* Nothing is routed while MSI-X is off. */
	assert_false(route_of(f, 0)->valid);
	assert_false(route_of(f, 1)->valid);

	msix_control(f, 0x80);
	assert_int_equal(cfg_read(f, f->msix_cap + 2, 2) & 0xc000, 0x8000);
	const struct kvm_msi_route *r0 = route_of(f, 0), *r1 = route_of(f, 1);
	assert_true(r0->valid);
	assert_int_equal(r0->address, MSI_ADDR | 0x3000);
	assert_int_equal(r0->data, 0x4021);
	assert_true(r1->valid);
	assert_int_equal(r1->address, 0x1fee01000ull);
	assert_int_equal(r1->data, 0x4022);

	/* The guest moves a vector: the route follows. */
	msix_entry(f, 0, MSI_ADDR | 0x5000, 0x4031, false);
	assert_int_equal(route_of(f, 0)->address, MSI_ADDR | 0x5000);
	assert_int_equal(route_of(f, 0)->data, 0x4031);

	/* Disabling MSI-X withdraws every route. */
	msix_control(f, 0x00);
	assert_false(route_of(f, 0)->valid);
	assert_false(route_of(f, 1)->valid);
	assert_int_equal(fired(f, 0) + fired(f, 1), 0);
}

static void masking_withholds_and_unmasking_delivers(void **state)
{
	struct fixture *f = *state;
	driver_init(f, true);
	assert_int_equal(kicks(f, 0), 1); /* DRIVER_OK looks at the queue once */
	offer_buffer(f, 0, 16);
	serve(f, 0);
	assert_int_equal(used_idx(f), 1);
	/* The entry is masked: nothing delivered, the PBA shows it pending. */
	assert_int_equal(fired(f, 1), 0);
	assert_int_equal(rd(f, f->msix_pba, 8), 1u << 1);
	/* Unmasking delivers it, once, through the vector's route. */
	wr(f, f->msix_table + 16 + 12, 4, 0);
	assert_int_equal(fired(f, 1), 1);
	assert_int_equal(rd(f, f->msix_pba, 8), 0);
	assert_true(route_of(f, 1)->valid);
	assert_int_equal(route_of(f, 1)->data, 0x41);
	assert_int_equal(fired(f, 0), 0);

	/* The function mask withholds every vector the same way. */
	msix_control(f, 0xc0);
	offer_buffer(f, 1, 16);
	serve(f, 0);
	assert_int_equal(used_idx(f), 2);
	assert_int_equal(fired(f, 1), 0);
	assert_int_equal(rd(f, f->msix_pba, 8), 1u << 1);
	msix_control(f, 0x80);
	assert_int_equal(fired(f, 1), 1);
	assert_int_equal(rd(f, f->msix_pba, 8), 0);

	/* Unmasked, a request interrupts at once. */
	offer_buffer(f, 2, 16);
	serve(f, 0);
	assert_int_equal(fired(f, 1), 1);
}

static void reset_clears_queues(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = vdev(f);
	driver_init(f, true);
	offer_buffer(f, 0, 16);
	serve(f, 0);
	assert_int_equal(rd(f, f->msix_pba, 8), 1u << 1); /* pending, masked */
	uint64_t notify = f->bar + f->notify;
	assert_true(kvm_fake_ioeventfd_bound(notify, vd->queues[0].kick_fd));

	set_status(f, 0);
	assert_int_equal(status(f), 0);
	common_wr(f, C_Q_SELECT, 2, 0);
	assert_int_equal(common_rd(f, C_Q_ENABLE, 2), 0);
	assert_int_equal(common_rd(f, C_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	assert_int_equal(common_rd(f, C_Q_DESC, 8), 0);
	assert_int_equal(common_rd(f, C_Q_DRIVER, 8), 0);
	assert_int_equal(common_rd(f, C_Q_DEVICE, 8), 0);
	assert_int_equal(common_rd(f, C_Q_MSIX, 2), VIRTIO_NO_VECTOR);
	assert_int_equal(common_rd(f, C_MSIX, 2), VIRTIO_NO_VECTOR);
	common_wr(f, C_GFSELECT, 4, 0);
	assert_int_equal(common_rd(f, C_GF, 4), 0);
	common_wr(f, C_GFSELECT, 4, 1);
	assert_int_equal(common_rd(f, C_GF, 4), 0);
	assert_int_equal(rd(f, f->isr, 1), 0);
	assert_int_equal(rd(f, f->msix_pba, 8), 0);
	/* The queue's notify register no longer signals its eventfd. */
	assert_int_equal(kvm_fake.nioeventfds, 0);
	/* The MSI-X table and enable belong to PCI, not to the device's
	 * reset: the routes stay. */
	assert_true(route_of(f, 0)->valid);
	assert_true(route_of(f, 1)->valid);

	/* A second initialisation works as the first. */
	memset(gpa(f, USED_GPA), 0, 4);
	f->avail_idx = 0;
	memset(gpa(f, AVAIL_GPA), 0, 4);
	driver_init(f, false);
	offer_buffer(f, 0, 16);
	serve(f, 0);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(fired(f, 1), 1);
}

static void notifications_follow_the_bar(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = vdev(f);
	driver_init(f, false);
	int fd = vd->queues[0].kick_fd;
	uint64_t old = f->bar;
	assert_true(kvm_fake_ioeventfd_bound(old + f->notify, fd));
	/* The guest moves BAR 0 (decoding on, as Linux does it: off first). */
	cfg_write(f, PCI_COMMAND, 2, 0);
	assert_int_equal(kvm_fake_ioeventfd_count(fd), 0);
	f->bar = old + 0x100000;
	cfg_write(f, PCI_BAR0, 4, (uint32_t)f->bar);
	enable_memory(f);
	assert_false(kvm_fake_ioeventfd_bound(old + f->notify, fd));
	assert_true(kvm_fake_ioeventfd_bound(f->bar + f->notify, fd));
	assert_int_equal(kvm_fake_ioeventfd_count(fd), 1);
	/* The device answers at the new place only. */
	assert_int_equal(common_rd(f, C_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	uint64_t v = 0;
	bus_access(&f->mmio, old + f->common + C_STATUS, (uint8_t *)&v, 1, false);
	assert_int_equal(v, 0xff);
	/* Moving it while decoding, too. */
	f->bar = old;
	cfg_write(f, PCI_BAR0, 4, (uint32_t)f->bar);
	assert_true(kvm_fake_ioeventfd_bound(old + f->notify, fd));
	assert_int_equal(kvm_fake_ioeventfd_count(fd), 1);
}

static void notify_write_kicks_without_an_ioeventfd(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = vdev(f);
	kvm_fake.fail_ioeventfd = true; /* KVM has no room for one more */
	driver_init(f, false);
	kvm_fake.fail_ioeventfd = false;
	assert_int_equal(kvm_fake_ioeventfd_count(vd->queues[0].kick_fd), 0);
	kicks(f, 0);
	offer_buffer(f, 0, 16);
	/* The write exits to nestvm, which kicks the queue itself. */
	wr(f, f->notify, 2, 0);
	assert_int_equal(kicks(f, 0), 1);
	serve(f, 0);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(fired(f, 1), 1);
}

/* --- a reset with a request in flight --------------------------------------- */

static sem_t request_started, request_release;
static int requests_handled;
static volatile bool request_released;

/* A request that blocks (a slow disk) until the test lets it end; at most
 * 2 s, so that a transport that starts a second one fails the test
 * instead of hanging it. */
static uint32_t slow_request(struct virtio_dev *vd, struct virtq_chain *chain)
{
	(void)vd, (void)chain;
	requests_handled++;
	sem_post(&request_started);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	while (sem_timedwait(&request_release, &until) < 0 && errno == EINTR)
		;
	return 1;
}

static void slow_notify(struct virtio_dev *vd, unsigned q)
{
	static struct virtq_chain chain;
	virtio_serve_queue(vd, q, &chain, slow_request);
}

static void *worker_serves(void *arg)
{
	serve(arg, 0);
	return NULL;
}

static void *release_after_200ms(void *arg)
{
	(void)arg;
	usleep(200 * 1000);
	request_released = true;
	sem_post(&request_release);
	return NULL;
}

/* The bound on a reset (issue 11, defect 6): a guest that resets its
 * device while a request runs waits for that request only. Two requests
 * are queued; the first is in flight when the vCPU writes status 0. The
 * write returns once the first ends, the second never starts, and the
 * device comes out reset. */
static void reset_waits_for_one_request_only(void **state)
{
	struct fixture *f = *state;
	driver_init(f, false);
	struct virtio_dev *vd = vdev(f);
	static struct virtio_dev_ops slow_ops;
	slow_ops = *vd->ops;
	slow_ops.queue_notify = slow_notify;
	const struct virtio_dev_ops *real_ops = vd->ops;
	vd->ops = &slow_ops;
	sem_init(&request_started, 0, 0);
	sem_init(&request_release, 0, 0);
	requests_handled = 0;
	request_released = false;
	offer_buffer(f, 0, 64);
	offer_buffer(f, 1, 64);

	pthread_t worker, releaser;
	assert_int_equal(pthread_create(&worker, NULL, worker_serves, f), 0);
	sem_wait(&request_started);
	assert_int_equal(pthread_create(&releaser, NULL, release_after_200ms, NULL), 0);
	set_status(f, 0); /* the reset: waits for the request in flight */
	assert_true(request_released);
	assert_int_equal(status(f), 0);
	pthread_join(releaser, NULL);
	pthread_join(worker, NULL);
	assert_int_equal(requests_handled, 1); /* the second never started */
	assert_false(vd->in_flight);
	assert_false(vd->queues[0].enabled);
	vd->ops = real_ops;
	sem_destroy(&request_started);
	sem_destroy(&request_release);
}

static void destroy_releases_every_kvm_binding(void **state)
{
	struct fixture *f = *state;
	driver_init(f, false);
	assert_int_equal(kvm_fake.nirqfds, 2);
	assert_int_equal(kvm_fake.nioeventfds, 1);
	virtio_pci_destroy(vdev(f));
	f->destroyed = true;
	assert_int_equal(kvm_fake.nirqfds, 0);
	assert_int_equal(kvm_fake.nioeventfds, 0);
	assert_int_equal(kvm_fake.errors, 0);
}

/* Aligned QWORD accesses to the MSI-X table are two DWORD ones (PCI 3.0,
 * 6.8.2): a driver may write address, or data and control, at once. */
static void msix_table_takes_qword_accesses(void **state)
{
	struct fixture *f = *state;
	wr(f, f->msix_table, 8, 0x00000000fee01000ull);
	wr(f, f->msix_table + 8, 8, 0x0000000000004041ull); /* data, control 0: unmasked */
	assert_int_equal(rd(f, f->msix_table, 4), 0xfee01000);
	assert_int_equal(rd(f, f->msix_table + 8, 4), 0x4041);
	assert_int_equal(rd(f, f->msix_table + 12, 4), 0);
	assert_true(rd(f, f->msix_table + 8, 8) == 0x4041);
	msix_control(f, 0x80);
	assert_true(route_of(f, 0)->valid);
	assert_int_equal(route_of(f, 0)->address, 0xfee01000);
	assert_int_equal(route_of(f, 0)->data, 0x4041);
}

/* Either byte of the command register can be written alone. */
static void command_register_takes_byte_writes(void **state)
{
	struct fixture *f = *state;
	cfg_write(f, PCI_COMMAND, 1, PCI_COMMAND_MEMORY);
	assert_int_equal(cfg_read(f, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
	cfg_write(f, PCI_COMMAND + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
	assert_int_equal(cfg_read(f, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	assert_true(vdev(f)->bar_gpa != 0); /* the BAR decodes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(config_space_describes_a_modern_device, setup, teardown),
		cmocka_unit_test_setup_teardown(driver_init_sequence_is_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(features_ok_is_refused_for_what_was_not_offered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(msix_enable_routes_vectors_to_kvm, setup, teardown),
		cmocka_unit_test_setup_teardown(masking_withholds_and_unmasking_delivers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(reset_clears_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(notifications_follow_the_bar, setup, teardown),
		cmocka_unit_test_setup_teardown(notify_write_kicks_without_an_ioeventfd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(destroy_releases_every_kvm_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_waits_for_one_request_only, setup, teardown),
		cmocka_unit_test_setup_teardown(msix_table_takes_qword_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(command_register_takes_byte_writes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
