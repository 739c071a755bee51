/* virtio-net (5.1) on a Linux tap device, or on a port of a userspace
 * switch (net/switch_link.h: `nestvm switch`, or anything speaking QEMU's
 * stream framing). On a tap the virtio-net header travels with each frame
 * (IFF_VNET_HDR), so checksum and segmentation offloads pass between guest
 * and host kernel untouched; on a switch the guest is offered no offloads,
 * so that every frame it sends is whole and ready for any port. */
#ifndef NESTVM_VIRTIO_NET_H
#define NESTVM_VIRTIO_NET_H

#include <net/if.h>
#include <stdint.h>

#include "net/switch_link.h"
#include "virtio/virtio_pci.h"

struct virtio_net_options {
	char ifname[IFNAMSIZ];     /* tap=, or empty */
	char switch_path[100];     /* switch=, or empty */
	char port[32];             /* port=: the switch's named port (PATH.NAME) */
	uint8_t mac[6];
	bool mac_given;
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_net_options opt;
	char name[160];
	int tap_fd;
	struct switch_link *link; /* on a switch: the connection; else NULL */
	struct virtq_chain chain;
};

/* Parses "tap=IFNAME[,mac=MAC]" or "switch=PATH[,port=NAME][,mac=MAC]";
 * prints the error itself. */
int virtio_net_parse(const char *spec, struct virtio_net_options *opt);
/* Opens (creating if absent) the tap device, or connects to the switch. */
int virtio_net_open(struct virtio_net *net, const struct virtio_net_options *opt);
int virtio_net_attach(struct virtio_net *net, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci);
void virtio_net_close(struct virtio_net *net);

#endif
