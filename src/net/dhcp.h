/* The DHCP server of a switch's NAT uplink (RFC 2131), answering from the
 * NAT port in place of libslirp's, whose table holds 16 guests. A lab has
 * more, and its nodes should keep their addresses across restarts of the
 * switch: the address a MAC gets is derived from the MAC (a hash into the
 * pool, then the next free address on a collision), so the same MAC gets
 * the same address every time unless another MAC took it first.
 *
 * No I/O: a frame in, a reply frame out. The guest writes every byte of
 * the request, so the parser trusts none of them (fuzz/fuzz_dhcp.c). */
#ifndef NESTVM_NET_DHCP_H
#define NESTVM_NET_DHCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_LEASE_SECONDS 3600
#define DHCP_MAX_POOL 4096   /* addresses handed out at most (a /20's worth) */
#define DHCP_REPLY_MAX 600   /* a reply frame is never longer */

struct dhcp_lease {
	uint8_t mac[6];
	bool bound;          /* ACKed (else offered, or free when expires_ms is 0) */
	bool declined;       /* a client found the address in use: not handed out */
	bool reserved;       /* the address is this MAC's alone (dhcp_reserve) */
	int64_t expires_ms;  /* 0: the address is free */
	char hostname[64];   /* option 12, printable characters only */
};

struct dhcp_server {
	uint32_t net, mask;       /* host byte order, as every address here */
	uint32_t router, dns;     /* what clients are told (the NAT's gateway, its DNS) */
	uint32_t first;           /* the pool: first .. first + pool_size - 1 */
	unsigned pool_size;
	uint8_t server_mac[6];    /* the source of replies: the gateway's MAC */
	unsigned lease_seconds;
	struct dhcp_lease *leases; /* pool_size of them, by offset from first */
	uint64_t requests, replies, ignored;
};

/* Sets the server up for net/prefix (prefix 8..30), handing out addresses
 * from first to the last one before the broadcast address. Returns 0, or
 * -1 with errno (ENOMEM, EINVAL). */
int dhcp_init(struct dhcp_server *d, uint32_t net, unsigned prefix, uint32_t router, uint32_t dns,
	      uint32_t first, const uint8_t server_mac[6]);
void dhcp_free(struct dhcp_server *d);

/* Gives addr to mac alone, for good: that MAC always gets it, no other
 * MAC ever does (a lab's fixed addresses, which its forwards name). Call
 * before any request. 0, or -1 with errno: EINVAL (addr is not in the pool
 * or is the router's or DNS's), EEXIST (addr or mac is reserved already). */
int dhcp_reserve(struct dhcp_server *d, const uint8_t mac[6], uint32_t addr);

/* Is this frame a DHCP request for a server (IPv4, UDP to port 67)? Such a
 * frame is the DHCP server's, whatever it holds. */
bool dhcp_is_request(const uint8_t *frame, size_t len);

/* Answers a request that came in at now_ms: writes the reply frame into
 * reply (DHCP_REPLY_MAX bytes) and returns its length, or 0 when there is
 * nothing to answer (malformed, another server chosen, a release). */
size_t dhcp_answer(struct dhcp_server *d, const uint8_t *frame, size_t len, int64_t now_ms,
		   uint8_t *reply);

/* The address leased (or offered) to a MAC, or 0. */
uint32_t dhcp_lookup(const struct dhcp_server *d, const uint8_t mac[6], int64_t now_ms);

#endif
