/* An uplink of `nestvm switch` onto a network interface of the machine it
 * runs on, through a packet socket: what the interface receives (from any
 * MAC: it is put in promiscuous mode) comes into the switch, and frames
 * the switch sends out of the port leave through the interface. This is
 * how an inner lab's network joins the outer one: the parent node's
 * extra NIC is the uplink of the switch the inner lab runs inside it.
 * Needs CAP_NET_RAW and CAP_NET_ADMIN: the interface is brought up
 * without ARP and IPv6 (this machine keeps off that segment), its GRO
 * turned off, and left so. It carries untagged frames only: a tagged one
 * received is dropped and counted. Made for a VM's NIC (a lab parent's
 * uplink NIC): frames whose TCP segmentation or checksums a local sender
 * left to the interface (a veth or tap peer on this machine) are not
 * completed here. */
#ifndef NESTVM_NET_UPLINK_H
#define NESTVM_NET_UPLINK_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct uplink {
	int fd;  /* AF_PACKET, bound to the interface, non-blocking */
	int ifindex;
	char ifname[IF_NAMESIZE];
	uint64_t bad_packets; /* longer than any frame: cut, not forwarded */
	uint64_t tagged_dropped; /* of a VLAN (tagged): not this port's */
};

/* spec: an interface's name, or its MAC address (the interface that has
 * it: a lab names its parent's NIC so). One-line error, -1. */
int uplink_open(struct uplink *u, const char *spec);
void uplink_close(struct uplink *u);
/* The next frame received into buf: its length; 0 for a packet that is
 * not one to forward (sent by this machine itself, or too long: then
 * counted); -1 when none is waiting. */
ssize_t uplink_recv(struct uplink *u, uint8_t *buf, size_t cap);
/* Sends one frame; false if the interface did not take it. */
bool uplink_send(struct uplink *u, const uint8_t *frame, size_t len);

#endif
