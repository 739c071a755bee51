/* libFuzzer: virtio-net's data path as a guest drives it, through the
 * worker's own event handler (virtio_pci_serve_event): transmit chains to
 * the "tap" and frames from it into receive chains. The tap is one end of
 * a SOCK_SEQPACKET pair, which keeps frame boundaries as a tap does; the
 * transport sits on the fake KVM (tests/fake/kvm_fake.c).
 *
 * Input: u16 queue sizes (RX, TX: 2^(n % 9)), u64 driver features, u8
 * frame count, then per frame u16 length and its bytes (what arrives on
 * the tap), then guest memory from address 0 (rings, descriptors,
 * buffers). ASan/UBSan catch any access outside guest RAM; check() that
 * the used rings never claim more than the chains held. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tests/fake/kvm_fake.h"
#include "devices/pci.h"
#include "mem/guest_mem.h"
#include "util/log.h"
#include "virtio/net.h"
#include "virtio/virtio_pci.h"

#define RAM (64 * 1024)
#define RX 0
#define TX 1

static const uint64_t rings[2][3] = { { 0x1000, 0x1400, 0x1800 }, { 0x2000, 0x2400, 0x2800 } };

static bool take(const uint8_t **data, size_t *size, void *dst, size_t n)
{
	if (*size < n)
		return false;
	memcpy(dst, *data, n);
	*data += n, *size -= n;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static struct kvm_host host;
	static int tap[2] = { -1, -1 };
	if (tap[0] < 0) {
		log_verbosity = -1;
		if (guest_mem_alloc(&mem, RAM, 0) < 0 ||
		    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) < 0 ||
		    kvm_host_open(&host) < 0)
			abort();
	}
	uint16_t qsizes;
	uint64_t features;
	uint8_t nframes;
	if (!take(&data, &size, &qsizes, 2) || !take(&data, &size, &features, 8) ||
	    !take(&data, &size, &nframes, 1))
		return 0;
	unsigned queued = 0;
	for (unsigned i = 0; i < nframes % 8; i++) {
		uint16_t len;
		if (!take(&data, &size, &len, 2))
			break;
		len = (uint16_t)(len % 2048);
		if (len > size)
			len = (uint16_t)size;
		if (send(tap[1], data, len, MSG_DONTWAIT) == (ssize_t)len)
			queued++;
		data += len, size -= len;
	}
	memset(mem.base, 0, RAM);
	memcpy(mem.base, data, size < RAM ? size : RAM);

	kvm_fake_reset();
	struct kvm_guest kvm; /* fresh: its MSI GSIs are used up per device */
	if (kvm_guest_create(&host, &kvm) < 0)
		abort();
	struct pci_bus pci;
	pci_bus_init(&pci);
	struct virtio_net *net = calloc(1, sizeof(*net));
	if (!net)
		abort();
	net->tap_fd = tap[0];
	snprintf(net->name, sizeof(net->name), "--net fuzz");
	if (virtio_net_attach(net, &kvm, &mem, &pci) < 0)
		abort();
	struct virtio_dev *vd = &net->vdev;
	vd->driver_features = (features & vd->features) | VIRTIO_F_VERSION_1;
	bool event_idx = virtio_negotiated(vd, VIRTIO_F_RING_EVENT_IDX);
	for (unsigned q = 0; q < 2; q++) {
		struct virtq *vq = &vd->queues[q].vq;
		vq->size = (uint16_t)(1u << ((qsizes >> (8 * q)) % 9));
		vq->desc_gpa = rings[q][0], vq->avail_gpa = rings[q][1], vq->used_gpa = rings[q][2];
		vq->event_idx = event_idx;
		vd->queues[q].enabled = virtq_start(vq, &mem) == 0;
	}
	vd->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		     VIRTIO_STATUS_DRIVER_OK;
	/* As the worker would: a transmit kick, the tap readable, a receive kick. */
	virtio_pci_serve_event(vd, TX);
	virtio_pci_serve_event(vd, VIRTIO_EVENT_POLL);
	virtio_pci_serve_event(vd, RX);
	char frame[65536];
	while (recv(tap[1], frame, sizeof(frame), MSG_DONTWAIT) > 0)
		;
	while (recv(tap[0], frame, sizeof(frame), MSG_DONTWAIT) > 0)
		; /* frames the guest had no buffers for */
	virtio_pci_destroy(vd);
	free(net);
	pci_bus_destroy(&pci);
	kvm_guest_close(&kvm);
	if (kvm_fake.errors)
		abort();
	(void)queued;
	return 0;
}
