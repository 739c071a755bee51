/* virtio-net (5.1) on a Linux tap device. The virtio-net header travels
 * with each frame (IFF_VNET_HDR), so checksum and segmentation offloads
 * pass between guest and host kernel untouched. */
#ifndef NESTVM_VIRTIO_NET_H
#define NESTVM_VIRTIO_NET_H

#include <net/if.h>
#include <stdint.h>

#include "virtio/virtio_pci.h"

struct virtio_net_options {
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	bool mac_given;
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_net_options opt;
	char name[64];
	int tap_fd;
	struct virtq_chain chain;
};

/* Parses "tap=IFNAME[,mac=MAC]"; prints the error itself. */
int virtio_net_parse(const char *spec, struct virtio_net_options *opt);
/* Opens (creating if absent) the tap device. */
int virtio_net_open(struct virtio_net *net, const struct virtio_net_options *opt);
int virtio_net_attach(struct virtio_net *net, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci);
void virtio_net_close(struct virtio_net *net);

#endif
