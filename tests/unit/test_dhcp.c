/* Unit tests: the NAT's DHCP server (net/dhcp.c): addresses derived from
 * the MAC, a collision moved to the next free address, NAK for another
 * address, release and decline, an exhausted pool, replies a client
 * accepts (checksums, options), and truncated or hostile requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"

#define NET 0xa9fe6400u /* 169.254.100.0 */
static const uint8_t SERVER_MAC[6] = { 0x52, 0x55, 0xa9, 0xfe, 0x64, 0x02 };

enum { DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM };

struct req {
	uint8_t type;
	uint8_t mac[6];
	uint32_t requested, server, ciaddr;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A request frame (Ethernet, IPv4, UDP 68 -> 67, BOOTP, options). */
static size_t build(const struct req *r, uint8_t *f)
{
	memset(f, 0, 600);
	memset(f, 0xff, 6);
	memcpy(f + 6, r->mac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
	b[0] = 1, b[1] = 1, b[2] = 6;
	put32(b + 4, 0x1234);
	put32(b + 12, r->ciaddr);
	memcpy(b + 28, r->mac, 6);
	put32(b + 236, 0x63825363);
	uint8_t *o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = r->type;
	if (r->requested)
		*o++ = 50, *o++ = 4, put32(o, r->requested), o += 4;
	if (r->server)
		*o++ = 54, *o++ = 4, put32(o, r->server), o += 4;
	*o++ = 12, *o++ = 5, memcpy(o, "n\"1 x", 5), o += 5; /* a hostname with a quote and a space */
	*o++ = 255;
	size_t blen = 300;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + 8 + blen) >> 8), ip[3] = (uint8_t)(20 + 8 + blen);
	ip[8] = 64, ip[9] = 17;
	udp[0] = 0, udp[1] = 68, udp[2] = 0, udp[3] = 67;
	udp[4] = (uint8_t)((8 + blen) >> 8), udp[5] = (uint8_t)(8 + blen);
	return 14 + 20 + 8 + blen;
}

static uint16_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The reply's message type and yiaddr, after checking what a client
 * checks: addresses, checksums, the cookie and the options it needs. */
static uint8_t reply_of(const uint8_t *f, size_t n, uint32_t *yiaddr)
{
	assert_true(n >= 14 + 20 + 8 + 300 && n <= DHCP_REPLY_MAX);
	assert_memory_equal(f + 6, SERVER_MAC, 6);
	const uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
	assert_int_equal(sum16(ip, 20, 0), 0xffff); /* the IP header checksum holds */
	size_t ulen = (size_t)(udp[4] << 8 | udp[5]);
	uint32_t src = get32(ip + 12), dst = get32(ip + 16);
	uint32_t pseudo = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + (uint32_t)ulen;
	assert_int_equal(sum16(udp, ulen, pseudo), 0xffff); /* and the UDP one */
	assert_int_equal(udp[1], 67);
	assert_int_equal(udp[3], 68);
	assert_int_equal(b[0], 2);
	assert_int_equal(get32(b + 236), 0x63825363);
	uint8_t type = 0;
	uint32_t server = 0;
	for (size_t i = 240; i < ulen - 8 && b[i] != 255; i += 2u + b[i + 1])
		if (b[i] == 53)
			type = b[i + 2];
		else if (b[i] == 54)
			server = get32(b + i + 2);
	assert_int_equal(server, NET + 2);
	*yiaddr = get32(b + 16);
	return type;
}

static struct dhcp_server d;
static uint8_t in[600], out[DHCP_REPLY_MAX];

static int setup(void **state)
{
	(void)state;
	return dhcp_init(&d, NET, 24, NET + 2, NET + 3, NET + 15, SERVER_MAC);
}

static int teardown(void **state)
{
	(void)state;
	dhcp_free(&d);
	return 0;
}

static uint8_t ask(struct req r, int64_t now, uint32_t *yiaddr)
{
	size_t n = dhcp_answer(&d, in, build(&r, in), now, out);
	if (!n)
		return 0;
	return reply_of(out, n, yiaddr);
}

/* DISCOVER then REQUEST: the address bound, or 0. */
static uint32_t bind_mac(const uint8_t mac[6], int64_t now)
{
	struct req r = { .type = DISCOVER };
	memcpy(r.mac, mac, 6);
	uint32_t offered, acked;
	if (ask(r, now, &offered) != OFFER)
		return 0;
	r.type = REQUEST;
	r.requested = offered;
	r.server = NET + 2;
	if (ask(r, now, &acked) != ACK || acked != offered)
		return 0;
	return acked;
}

static void leases_come_from_the_mac(void **state)
{
	(void)state;
	const uint8_t a[6] = { 2, 0, 0, 0, 1, 0x0a };
	uint32_t first = bind_mac(a, 1000);
	assert_true(first >= NET + 15 && first < NET + 255);
	assert_int_equal(dhcp_lookup(&d, a, 1000), first);
	/* another server instance, the same MAC: the same address */
	struct dhcp_server other;
	assert_int_equal(dhcp_init(&other, NET, 24, NET + 2, NET + 3, NET + 15, SERVER_MAC), 0);
	struct dhcp_server keep = d;
	d = other;
	assert_int_equal(bind_mac(a, 5), first);
	dhcp_free(&d);
	d = keep;
	/* the hostname is kept, only its printable, unquoted characters */
	int slot = (int)(first - (NET + 15));
	assert_string_equal(d.leases[slot].hostname, "n1x");
}

static void collisions_and_exhaustion(void **state)
{
	(void)state;
	/* a /27 pool holds .15 to .30: 16 addresses */
	dhcp_free(&d);
	assert_int_equal(dhcp_init(&d, NET, 27, NET + 2, NET + 3, NET + 15, SERVER_MAC), 0);
	assert_int_equal(d.pool_size, 16);
	uint32_t seen[16] = { 0 };
	for (int i = 0; i < 16; i++) {
		uint8_t mac[6] = { 2, 0, 0, 0, 2, (uint8_t)i };
		uint32_t a = bind_mac(mac, 1000);
		assert_true(a >= NET + 15 && a <= NET + 30);
		for (int k = 0; k < i; k++)
			assert_int_not_equal(seen[k], a);
		seen[i] = a;
	}
	/* the 17th gets no offer */
	uint8_t late[6] = { 2, 0, 0, 0, 3, 0 };
	assert_int_equal(bind_mac(late, 1000), 0);
	/* once a lease expires, its address goes to the newcomer */
	int64_t later = 1000 + (int64_t)DHCP_LEASE_SECONDS * 1000 + 1;
	assert_true(bind_mac(late, later) != 0);
}

/* A reserved address is its MAC's alone: that MAC gets it whatever its
 * hash says, no other MAC is ever offered it (even with the rest of the
 * pool taken), and a release or decline does not undo the reservation. */
static void reservations_are_kept(void **state)
{
	(void)state;
	dhcp_free(&d);
	assert_int_equal(dhcp_init(&d, NET, 27, NET + 2, NET + 3, NET + 15, SERVER_MAC), 0);
	const uint8_t r[6] = { 2, 0, 0, 0, 9, 9 }, r2[6] = { 2, 0, 0, 0, 9, 8 };
	assert_int_equal(dhcp_reserve(&d, r, NET + 20), 0);
	errno = 0;
	assert_int_equal(dhcp_reserve(&d, r2, NET + 20), -1); /* the address is taken */
	assert_int_equal(errno, EEXIST);
	assert_int_equal(dhcp_reserve(&d, r, NET + 21), -1); /* the MAC has one */
	assert_int_equal(dhcp_reserve(&d, r2, NET + 14), -1); /* below the pool */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(dhcp_reserve(&d, r2, NET + 31), -1); /* the broadcast address */
	/* the other 15 addresses go to 15 other MACs; a 16th gets none */
	for (int i = 0; i < 16; i++) {
		uint8_t mac[6] = { 2, 0, 0, 0, 3, (uint8_t)i };
		uint32_t a = bind_mac(mac, 1000);
		assert_true(a != NET + 20);
		if (i == 15)
			assert_int_equal(a, 0);
		else
			assert_true(a >= NET + 15 && a <= NET + 30);
	}
	assert_int_equal(bind_mac(r, 1000), NET + 20);
	/* released, then asked for again: the same */
	struct req rel = { .type = RELEASE, .ciaddr = NET + 20 };
	memcpy(rel.mac, r, 6);
	uint32_t ignored;
	ask(rel, 2000, &ignored);
	assert_int_equal(bind_mac(r, 3000), NET + 20);
	/* declined: still its own */
	struct req dec = { .type = DECLINE, .requested = NET + 20 };
	memcpy(dec.mac, r, 6);
	ask(dec, 4000, &ignored);
	assert_int_equal(bind_mac(r, 5000), NET + 20);
	/* long after every lease expired, the others' MACs still do not get it */
	for (int i = 0; i < 16; i++) {
		uint8_t mac[6] = { 2, 0, 0, 0, 4, (uint8_t)i };
		assert_true(bind_mac(mac, 10000000000LL) != NET + 20);
	}
}

static void nak_release_decline_inform(void **state)
{
	(void)state;
	const uint8_t a[6] = { 2, 0, 0, 0, 4, 1 };
	uint32_t addr = bind_mac(a, 1000), y;
	/* asking for an address not its own: NAK, broadcast */
	struct req r = { .type = REQUEST, .requested = addr == NET + 99 ? NET + 98 : NET + 99 };
	memcpy(r.mac, a, 6);
	assert_int_equal(ask(r, 1000, &y), NAK);
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	assert_memory_equal(out, bcast, 6);
	/* another server chosen: no answer, the offer is withdrawn */
	r = (struct req){ .type = REQUEST, .requested = addr, .server = NET + 77 };
	memcpy(r.mac, a, 6);
	assert_int_equal(ask(r, 1000, &y), 0);
	/* release: free, but the MAC gets the same address back */
	r = (struct req){ .type = RELEASE, .ciaddr = addr };
	memcpy(r.mac, a, 6);
	assert_int_equal(ask(r, 1000, &y), 0);
	assert_int_equal(dhcp_lookup(&d, a, 1000), 0);
	assert_int_equal(bind_mac(a, 2000), addr);
	/* decline: the address is held back, the MAC moves on */
	r = (struct req){ .type = DECLINE, .requested = addr };
	memcpy(r.mac, a, 6);
	assert_int_equal(ask(r, 2000, &y), 0);
	uint32_t moved = bind_mac(a, 2000);
	assert_true(moved && moved != addr);
	/* inform: an ACK without an address to a configured client */
	r = (struct req){ .type = INFORM, .ciaddr = NET + 5 };
	memcpy(r.mac, a, 6);
	assert_int_equal(ask(r, 2000, &y), ACK);
	assert_int_equal(y, 0);
	assert_int_equal(get32(out + 14 + 16), NET + 5); /* sent to the client's address */
}

/* Only the MAC itself asks for its lease or gives it up; a client the
 * server has no record of is answered only when it asks for the address
 * its MAC gets (after a restart of the switch), else not at all (its
 * address may be another DHCP server's). */
static void only_the_mac_itself_and_known_clients_are_answered(void **state)
{
	(void)state;
	uint32_t y;
	struct req r = { .type = DISCOVER, .mac = { 2, 0, 0, 0, 6, 1 } };
	size_t n = build(&r, in);
	in[11] ^= 1; /* the frame comes from another MAC than chaddr */
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	uint32_t a = bind_mac(r.mac, 1000);
	assert_true(a != 0);
	struct req rel = { .type = RELEASE, .ciaddr = a };
	memcpy(rel.mac, r.mac, 6);
	n = build(&rel, in);
	in[11] ^= 1;
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	assert_int_equal(dhcp_lookup(&d, r.mac, 1000), a); /* still leased */

	/* what MAC ...:06:03 gets, from a server of its own */
	const uint8_t c[6] = { 2, 0, 0, 0, 6, 3 };
	struct dhcp_server keep = d, other;
	assert_int_equal(dhcp_init(&other, NET, 24, NET + 2, NET + 3, NET + 15, SERVER_MAC), 0);
	d = other;
	uint32_t its = bind_mac(c, 5);
	dhcp_free(&d);
	d = keep;
	/* INIT-REBOOT for another address: silent, and nothing held for it */
	struct req ir = { .type = REQUEST, .requested = its == NET + 200 ? NET + 201 : NET + 200 };
	memcpy(ir.mac, c, 6);
	assert_int_equal(ask(ir, 1000, &y), 0);
	assert_int_equal(dhcp_lookup(&d, c, 1000), 0);
	/* INIT-REBOOT for the address its MAC gets: ACK */
	ir.requested = its;
	assert_int_equal(ask(ir, 1000, &y), ACK);
	assert_int_equal(y, its);
	/* a known client asking for another address is told no */
	ir.requested = its == NET + 200 ? NET + 201 : NET + 200;
	assert_int_equal(ask(ir, 1000, &y), NAK);
}

static void hostile_requests_are_ignored(void **state)
{
	(void)state;
	struct req r = { .type = DISCOVER, .mac = { 2, 0, 0, 0, 5, 1 } };
	size_t n = build(&r, in);
	/* every truncation: never a read past the frame (ASan), never a reply
	 * built from bytes that were not there */
	for (size_t len = 0; len < n; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, in, len);
		size_t got = dhcp_answer(&d, copy, len, 1000, out);
		free(copy);
		/* the options end at byte 14+20+8+240+~20: shorter is malformed */
		if (len < 14 + 20 + 8 + 240)
			assert_int_equal(got, 0);
	}
	/* an option running past the end */
	build(&r, in);
	uint8_t *opt = in + 14 + 20 + 8 + 240 + 3;
	opt[0] = 12, opt[1] = 255;
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	/* a multicast or zero client MAC, a wrong cookie, a fragment, BOOTREPLY */
	struct req m = r;
	m.mac[0] = 1;
	assert_int_equal(dhcp_answer(&d, in, build(&m, in), 1000, out), 0);
	memset(m.mac, 0, 6);
	assert_int_equal(dhcp_answer(&d, in, build(&m, in), 1000, out), 0);
	build(&r, in);
	in[14 + 20 + 8 + 236] ^= 1;
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	build(&r, in);
	in[14 + 6] = 0x20; /* more fragments */
	assert_false(dhcp_is_request(in, n));
	build(&r, in);
	in[14 + 20 + 8] = 2;
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	/* UDP length beyond the IP packet */
	build(&r, in);
	in[14 + 20 + 4] = 0xff;
	assert_int_equal(dhcp_answer(&d, in, n, 1000, out), 0);
	/* and a good one still works after all that */
	assert_true(bind_mac(r.mac, 1000) != 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(leases_come_from_the_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(collisions_and_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(reservations_are_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(nak_release_decline_inform, setup, teardown),
		cmocka_unit_test_setup_teardown(only_the_mac_itself_and_known_clients_are_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_requests_are_ignored, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
