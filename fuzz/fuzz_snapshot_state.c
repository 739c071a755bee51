/* libFuzzer: state.bin as restore reads it. The input is a whole state.bin
 * (header and records); it goes through the record parser
 * (vmm/snapshot_format.c) and then, as restore does, every device record
 * into a freshly built set of devices through the device interface: the
 * PCI bus, COM1, ACPI PM, RTC, the test device and a virtio-rng (its
 * transport over the fake KVM, tests/fake/kvm_fake.c). Each device's load
 * must refuse what it cannot use; ASan/UBSan catch any load that lets a
 * value reach past an array, and check() asserts afterwards that a loaded
 * device is one its own code could be in.
 *
 * With NESTVM_FUZZ_SEED_DIR set, the harness first writes seed inputs
 * there: the saved state of these devices, fresh and driven (a driver's
 * queue, MSI-X on, memory decoding on). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/fake/kvm_fake.h"
#include "devices/acpi_pm.h"
#include "devices/device.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial8250.h"
#include "devices/testdev.h"
#include "mem/guest_mem.h"
#include "util/log.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"
#include "vmm/snapshot.h"
#include "vmm/snapshot_format.h"

#define RAM (64 * 1024)

struct devices {
	struct kvm_host host;
	struct kvm_guest kvm;
	struct pci_bus pci;
	struct serial8250 com1;
	struct acpi_pm pm;
	struct rtc rtc;
	struct testdev testdev;
	struct virtio_rng *rng;
	struct device_table table;
};

static struct guest_mem mem;

static void build(struct devices *d)
{
	memset(d, 0, sizeof(*d));
	kvm_fake_reset();
	if (kvm_host_open(&d->host) < 0 || kvm_guest_create(&d->host, &d->kvm) < 0)
		abort();
	pci_bus_init(&d->pci);
	serial8250_init(&d->com1, -1, 4, NULL, NULL);
	acpi_pm_init(&d->pm, 5, NULL, NULL, NULL);
	rtc_init(&d->rtc);
	testdev_init(&d->testdev, &mem, NULL, NULL);
	d->rng = calloc(1, sizeof(*d->rng));
	if (!d->rng || virtio_rng_attach(d->rng, &d->kvm, &mem, &d->pci) < 0)
		abort();
	struct device_table *t = &d->table;
	if (device_table_add(t, &pci_bus_device_ops, &d->pci, "PCI bus") < 0 ||
	    device_table_add(t, &serial8250_device_ops, &d->com1, "COM1") < 0 ||
	    device_table_add(t, &acpi_pm_device_ops, &d->pm, "ACPI PM") < 0 ||
	    device_table_add(t, &rtc_device_ops, &d->rtc, "RTC") < 0 ||
	    device_table_add(t, &testdev_device_ops, &d->testdev, "test device") < 0 ||
	    device_table_add(t, virtio_pci_device_ops(&d->rng->vdev), &d->rng->vdev, "--rng") < 0)
		abort();
}

static void teardown(struct devices *d)
{
	device_table_destroy(&d->table); /* frees the rng */
	kvm_guest_close(&d->kvm);
	kvm_host_close(&d->host);
}

/* What every loaded device must satisfy, whatever the input was. */
static void check(const struct devices *d)
{
	if (d->rtc.index >= sizeof(d->rtc.cmos) || d->com1.rx_head >= SERIAL_RX_FIFO ||
	    d->com1.rx_count > SERIAL_RX_FIFO)
		abort();
	const struct virtio_dev *vd = &d->rng->vdev;
	if ((vd->driver_features & ~vd->features) || vd->isr > 3 ||
	    (vd->config_vector != VIRTIO_NO_VECTOR && vd->config_vector >= vd->num_vectors))
		abort();
	for (unsigned q = 0; q < vd->num_queues; q++) {
		const struct virtio_queue *vq = &vd->queues[q];
		if (vq->vector != VIRTIO_NO_VECTOR && vq->vector >= vd->num_vectors)
			abort();
		if (vq->enabled && (!vq->vq.ready || vq->vq.size > vd->queue_max ||
				    !guest_mem_ptr(&mem, vq->vq.desc_gpa, 16u * vq->vq.size)))
			abort();
	}
	if (kvm_fake.errors)
		abort(); /* a load asked KVM for something it would refuse */
}

static void restore(struct devices *d, const uint8_t *data, size_t size)
{
	struct state_records recs;
	char why[256];
	if (state_parse(data, size, SNAPSHOT_VERSION, &recs, why, sizeof(why)) < 0)
		return;
	for (int i = 0; i < d->table.n; i++) {
		const struct device *dev = &d->table.devices[i];
		const struct state_record *r = state_find(&recs, T_DEVICE, (uint32_t)i);
		struct state_in in;
		if (!r || state_device_fields(r, dev->ops->kind, &in) < 0)
			break;
		if (dev->ops->load(dev->dev, &in) < 0)
			break;
	}
	state_records_free(&recs);
}

static void write_seed(struct devices *d, const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	char why[256];
	struct state_writer w = { .f = f, .why = why, .whylen = sizeof(why) };
	state_write_header(&w, SNAPSHOT_VERSION);
	for (int i = 0; i < d->table.n; i++) {
		const struct device *dev = &d->table.devices[i];
		struct state_out out = { 0 };
		state_device_begin(&out, dev->ops->kind);
		if (dev->ops->save(dev->dev, &out, why, sizeof(why)) < 0)
			abort();
		state_put_record(&w, T_DEVICE, (uint32_t)i, out.buf, out.len);
		state_out_free(&out);
	}
	fclose(f);
}

static void write_seeds(const char *dir)
{
	struct devices d;
	build(&d);
	write_seed(&d, dir, "fresh");
	/* A driven machine: memory decoding, MSI-X on, a live queue. */
	struct virtio_dev *vd = &d.rng->vdev;
	pci_put16(&vd->pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	vd->pci.config[0x43] = 0x80;
	vd->msix_enabled = true;
	vd->driver_features = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX;
	vd->status = 15;
	vd->config_vector = 0;
	struct virtio_queue *vq = &vd->queues[0];
	vq->vq.size = 16, vq->vq.desc_gpa = 0x1000, vq->vq.avail_gpa = 0x2000, vq->vq.used_gpa = 0x3000;
	vq->vq.event_idx = true;
	vq->vector = 1;
	if (virtq_start(&vq->vq, &mem) < 0)
		abort();
	vq->enabled = true;
	d.rtc.index = 0x10;
	d.com1.ier = 1;
	serial8250_receive(&d.com1, (const uint8_t *)"abc", 3);
	write_seed(&d, dir, "driven");
	vq->enabled = false; /* nothing bound in the fake for it: leave it as built */
	teardown(&d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	log_verbosity = -1;
	if (guest_mem_alloc(&mem, RAM, 0) < 0)
		abort();
	const char *seeds = getenv("NESTVM_FUZZ_SEED_DIR");
	if (seeds)
		write_seeds(seeds);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devices d;
	build(&d);
	restore(&d, data, size);
	check(&d);
	teardown(&d);
	return 0;
}
