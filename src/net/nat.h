/* The NAT uplink of `nestvm switch --nat`: a port whose far side is
 * libslirp, a user-mode TCP/IP stack that turns the guests' connections
 * into the switch process's own sockets (outbound TCP and UDP, DNS
 * forwarding, host port forwards), with no privilege at all.
 *
 * DHCP is answered here (net/dhcp.c), not by libslirp: its table holds 16
 * guests, and its addresses depend on the order guests ask in.
 *
 * libslirp is not thread-safe: one thread (the switch's) calls everything
 * here. Frames libslirp sends are queued, not forwarded from inside its
 * callback, so the switch never re-enters its forwarding code. */
#ifndef NESTVM_NET_NAT_H
#define NESTVM_NET_NAT_H

#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAT_MAX_FORWARDS 32
#define NAT_MAX_RESERVATIONS 512 /* a lab's NICs on one network, at most */
/* QEMU's layout of the subnet: .2 the gateway (the host), .3 the DNS
 * forwarder, .15 and up handed out by DHCP. */
#define NAT_GATEWAY_HOST 2
#define NAT_DNS_HOST 3
#define NAT_DHCP_FIRST_HOST 15
#define NAT_DEFAULT_SUBNET "10.0.2.0/24"  /* QEMU's -netdev user */

struct nat_forward {
	bool udp;
	uint32_t host_addr, guest_addr; /* host byte order */
	uint16_t host_port, guest_port;
};

/* A DHCP reservation: the address this MAC always gets, and no other. */
struct nat_reservation {
	uint8_t mac[6];
	uint32_t addr; /* host byte order */
};

struct nat_config {
	uint32_t net;         /* host byte order */
	unsigned prefix;
	bool restricted;      /* no outbound traffic: forwards only (air-gapped labs) */
	struct nat_forward forwards[NAT_MAX_FORWARDS];
	int nforwards;
	struct nat_reservation reservations[NAT_MAX_RESERVATIONS];
	int nreservations;
};

/* "A.B.C.D/N" into cfg (N from 8 to 27: the gateway is .2, DNS .3, DHCP
 * hands out .15 up). 0, or -1 with a one-line error naming opt. */
int nat_parse_subnet(const char *opt, const char *text, struct nat_config *cfg);
/* "tcp|udp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT" (IPv4 addresses). */
int nat_parse_forward(const char *opt, const char *text, struct nat_forward *f);

/* "MAC=A.B.C.D": a DHCP reservation (checked against the pool by nat_open). */
int nat_parse_reservation(const char *opt, const char *text, struct nat_reservation *r);

struct nat;

/* Starts libslirp on cfg, with its forwards; NULL after a one-line error. */
struct nat *nat_open(const struct nat_config *cfg);
void nat_close(struct nat *n);

/* The MAC everything the NAT sends comes from (its gateway's). */
void nat_mac(const struct nat *n, uint8_t mac[6]);

/* A frame for the NAT (the switch sent it to the NAT port). */
void nat_input(struct nat *n, const uint8_t *frame, size_t len);

/* The next frame the NAT sends into the switch, or NULL; nat_output_done
 * once it is forwarded. */
const uint8_t *nat_output(struct nat *n, size_t *len);
void nat_output_done(struct nat *n);

/* Around the switch's poll(): nat_prepare lists libslirp's sockets (in
 * *fds, *nfds of them; the array is the NAT's) and lowers *timeout_ms to
 * its next timer; nat_dispatch, given the same array with its revents,
 * lets libslirp read and write them and runs the timers that are due. */
void nat_prepare(struct nat *n, struct pollfd **fds, int *nfds, int *timeout_ms);
void nat_dispatch(struct nat *n, bool poll_failed);

/* subnet, gateway, DNS, restricted, forwards, DHCP leases and counters. */
json_object *nat_status(const struct nat *n);

#endif
