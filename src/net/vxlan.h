/* A VXLAN uplink (RFC 7348) for `nestvm switch`: Ethernet frames in UDP,
 * with an 8-byte header carrying the segment's 24-bit VNI. Two switches,
 * or a switch and a Linux vxlan device, joined this way form one L2
 * segment across hosts. */
#ifndef NESTVM_NET_VXLAN_H
#define NESTVM_NET_VXLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define VXLAN_HEADER 8
#define VXLAN_DEFAULT_PORT 4789

struct vxlan {
	int fd;  /* UDP, bound to the local address, non-blocking */
	uint32_t vni;
	struct sockaddr_storage remote;
	socklen_t remote_len;
	uint64_t bad_packets; /* not VXLAN, another VNI, or from another host */
};

/* Parses "REMOTE:PORT,vni=N[,local=ADDR:PORT]" (numeric addresses; IPv6
 * in brackets), opens and binds the socket. One-line error, -1. */
int vxlan_open(struct vxlan *v, const char *spec);
/* "ADDR:PORT" or "[ADDR]:PORT" (numeric) into a socket address; -1 if
 * it is not one. */
int vxlan_parse_endpoint(const char *text, struct sockaddr_storage *out, socklen_t *len);
void vxlan_close(struct vxlan *v);
/* Writes the header for v's VNI into hdr[VXLAN_HEADER]. */
void vxlan_header(const struct vxlan *v, uint8_t hdr[VXLAN_HEADER]);
/* Whether a packet came from the remote's address (any source port: Linux
 * spreads flows over source ports). */
bool vxlan_from_remote(const struct vxlan *v, const struct sockaddr_storage *from);
/* The frame inside a received packet, or NULL if the packet is not VXLAN
 * of v's VNI. */
const uint8_t *vxlan_frame(const struct vxlan *v, const uint8_t *packet, size_t len, size_t *frame_len);

#endif
