#include "net/dhcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ETH_HLEN 14
#define IP_HLEN 20
#define UDP_HLEN 8
#define BOOTP_FIXED 236  /* up to the magic cookie */
#define BOOTP_MIN 300    /* what BOOTP relays and old clients expect at least */
#define COOKIE 0x63825363u
#define OFFER_HOLD_MS (60 * 1000)

enum { DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM };

enum {
	OPT_PAD = 0, OPT_MASK = 1, OPT_ROUTER = 3, OPT_DNS = 6, OPT_HOSTNAME = 12, OPT_BROADCAST = 28,
	OPT_REQUESTED = 50, OPT_LEASE = 51, OPT_TYPE = 53, OPT_SERVER = 54, OPT_T1 = 58, OPT_T2 = 59,
	OPT_END = 255,
};

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

int dhcp_init(struct dhcp_server *d, uint32_t net, unsigned prefix, uint32_t router, uint32_t dns,
	      uint32_t first, const uint8_t server_mac[6])
{
	memset(d, 0, sizeof(*d));
	if (prefix < 8 || prefix > 30) {
		errno = EINVAL;
		return -1;
	}
	d->mask = ~0u << (32 - prefix);
	d->net = net & d->mask;
	uint32_t broadcast = d->net | ~d->mask;
	if ((first & d->mask) != d->net || first >= broadcast) {
		errno = EINVAL;
		return -1;
	}
	d->router = router;
	d->dns = dns;
	d->first = first;
	uint32_t size = broadcast - first;
	d->pool_size = size > DHCP_MAX_POOL ? DHCP_MAX_POOL : size;
	d->lease_seconds = DHCP_LEASE_SECONDS;
	memcpy(d->server_mac, server_mac, 6);
	d->leases = calloc(d->pool_size, sizeof(*d->leases));
	return d->leases ? 0 : -1;
}

void dhcp_free(struct dhcp_server *d)
{
	free(d->leases);
	d->leases = NULL;
}

/* The IPv4 header and UDP payload of an IPv4/UDP frame, bounded by the
 * lengths the headers give; NULL unless it is one, unfragmented. */
static const uint8_t *udp_of(const uint8_t *frame, size_t len, const uint8_t **ip, size_t *udp_len)
{
	if (len < ETH_HLEN + IP_HLEN + UDP_HLEN || get16(frame + 12) != 0x0800)
		return NULL;
	const uint8_t *h = frame + ETH_HLEN;
	size_t ihl = (size_t)(h[0] & 15) * 4, total = get16(h + 2);
	if (h[0] >> 4 != 4 || ihl < IP_HLEN || total > len - ETH_HLEN || total < ihl + UDP_HLEN ||
	    h[9] != 17 || (get16(h + 6) & 0x3fff)) /* MF set or an offset: a fragment */
		return NULL;
	const uint8_t *udp = h + ihl;
	size_t ulen = get16(udp + 4);
	if (ulen < UDP_HLEN || ulen > total - ihl)
		return NULL;
	*ip = h;
	*udp_len = ulen;
	return udp;
}

bool dhcp_is_request(const uint8_t *frame, size_t len)
{
	const uint8_t *ip;
	size_t ulen;
	const uint8_t *udp = udp_of(frame, len, &ip, &ulen);
	return udp && get16(udp + 2) == DHCP_SERVER_PORT;
}

static bool same_mac(const uint8_t *a, const uint8_t *b)
{
	return !memcmp(a, b, 6);
}

static bool usable(const struct dhcp_server *d, unsigned i, int64_t now)
{
	uint32_t addr = d->first + i;
	const struct dhcp_lease *l = &d->leases[i];
	return addr != d->router && addr != d->dns && !l->reserved &&
	       (l->expires_ms == 0 || l->expires_ms <= now);
}

/* Frees a slot; a reserved one stays its MAC's. */
static void free_slot(struct dhcp_lease *l)
{
	if (l->reserved) {
		l->bound = false;
		l->expires_ms = 0;
		l->hostname[0] = 0;
	} else {
		memset(l, 0, sizeof(*l));
	}
}

int dhcp_reserve(struct dhcp_server *d, const uint8_t mac[6], uint32_t addr)
{
	if (!d->leases || addr < d->first || addr - d->first >= d->pool_size || addr == d->router ||
	    addr == d->dns) {
		errno = EINVAL;
		return -1;
	}
	struct dhcp_lease *l = &d->leases[addr - d->first];
	for (unsigned i = 0; i < d->pool_size; i++)
		if (d->leases[i].reserved && same_mac(d->leases[i].mac, mac)) {
			errno = EEXIST;
			return -1;
		}
	if (l->reserved) {
		errno = EEXIST;
		return -1;
	}
	memset(l, 0, sizeof(*l));
	memcpy(l->mac, mac, 6);
	l->reserved = true;
	return 0;
}

/* The slot holding this MAC's lease, even an expired one (so a MAC gets
 * its address back while nobody else took it), or -1. */
static int find_slot(const struct dhcp_server *d, const uint8_t mac[6])
{
	for (unsigned i = 0; i < d->pool_size; i++)
		if (!d->leases[i].declined && same_mac(d->leases[i].mac, mac))
			return (int)i; /* (a free slot's MAC is zero, which no request has) */
	return -1;
}

static unsigned mac_hash(const uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	return h;
}

/* The slot a MAC has or gets: its own, else the first usable from where
 * its hash points. -1 when the pool is exhausted. */
static int slot_for(struct dhcp_server *d, const uint8_t mac[6], int64_t now)
{
	int own = find_slot(d, mac);
	if (own >= 0) /* its MAC is still there: nobody else took it */
		return own;
	unsigned start = mac_hash(mac) % d->pool_size;
	for (unsigned k = 0; k < d->pool_size; k++) {
		unsigned i = (start + k) % d->pool_size;
		if (d->leases[i].declined && d->leases[i].expires_ms <= now)
			d->leases[i].declined = false;
		if (!d->leases[i].declined && usable(d, i, now)) {
			struct dhcp_lease *l = &d->leases[i];
			memset(l, 0, sizeof(*l));
			memcpy(l->mac, mac, 6);
			return (int)i;
		}
	}
	return -1;
}

static uint16_t checksum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

struct request {
	uint8_t type;
	uint32_t xid, ciaddr, requested, server;
	uint16_t flags;
	uint8_t chaddr[16];
	char hostname[64];
};

static bool parse(const uint8_t *frame, size_t len, struct request *r)
{
	const uint8_t *ip;
	size_t ulen;
	const uint8_t *udp = udp_of(frame, len, &ip, &ulen);
	if (!udp || get16(udp + 2) != DHCP_SERVER_PORT || ulen < UDP_HLEN + BOOTP_FIXED + 4)
		return false;
	const uint8_t *b = udp + UDP_HLEN;
	size_t blen = ulen - UDP_HLEN;
	if (b[0] != 1 || b[1] != 1 || b[2] != 6 || get32(b + BOOTP_FIXED) != COOKIE)
		return false;
	memset(r, 0, sizeof(*r));
	r->xid = get32(b + 4);
	r->flags = get16(b + 10);
	r->ciaddr = get32(b + 12);
	memcpy(r->chaddr, b + 28, 16);
	if ((r->chaddr[0] & 1) || same_mac(r->chaddr, (const uint8_t[6]){ 0 }))
		return false; /* a lease belongs to a unicast MAC */
	/* ...and only the MAC itself asks for it or gives it up: no relays,
	 * so a guest cannot release, decline or exhaust leases in another
	 * MAC's name (past its port's strict or mac-limit policy) */
	if (!same_mac(r->chaddr, frame + 6))
		return false;
	for (size_t i = BOOTP_FIXED + 4; i < blen;) {
		uint8_t code = b[i];
		if (code == OPT_END)
			break;
		if (code == OPT_PAD) {
			i++;
			continue;
		}
		if (i + 2 > blen || i + 2 + b[i + 1] > blen)
			return false;
		const uint8_t *v = b + i + 2;
		size_t n = b[i + 1];
		if (code == OPT_TYPE && n == 1)
			r->type = v[0];
		else if (code == OPT_REQUESTED && n == 4)
			r->requested = get32(v);
		else if (code == OPT_SERVER && n == 4)
			r->server = get32(v);
		else if (code == OPT_HOSTNAME) {
			size_t k = 0;
			for (size_t j = 0; j < n && k + 1 < sizeof(r->hostname); j++)
				if (v[j] > 0x20 && v[j] < 0x7f && v[j] != '"' && v[j] != '\\')
					r->hostname[k++] = (char)v[j];
			r->hostname[k] = 0;
		}
		i += 2 + n;
	}
	return r->type >= DISCOVER && r->type <= INFORM;
}

static size_t build(const struct dhcp_server *d, const struct request *r, uint8_t type, uint32_t yiaddr,
		    uint8_t *out)
{
	memset(out, 0, DHCP_REPLY_MAX);
	uint8_t *ip = out + ETH_HLEN, *udp = ip + IP_HLEN, *b = udp + UDP_HLEN;
	b[0] = 2; /* BOOTREPLY */
	b[1] = 1;
	b[2] = 6;
	put32(b + 4, r->xid);
	put16(b + 10, r->flags & 0x8000);
	put32(b + 12, type == INFORM ? r->ciaddr : 0);
	put32(b + 16, yiaddr);
	memcpy(b + 28, r->chaddr, 16);
	put32(b + BOOTP_FIXED, COOKIE);
	uint8_t *o = b + BOOTP_FIXED + 4;
#define OPT32(code, v) (o[0] = (code), o[1] = 4, put32(o + 2, (v)), o += 6)
	o[0] = OPT_TYPE, o[1] = 1, o[2] = type == INFORM ? ACK : type, o += 3;
	OPT32(OPT_SERVER, d->router);
	if (type != NAK) {
		if (type != INFORM) {
			OPT32(OPT_LEASE, d->lease_seconds);
			OPT32(OPT_T1, d->lease_seconds / 2);
			OPT32(OPT_T2, d->lease_seconds / 8 * 7);
		}
		OPT32(OPT_MASK, d->mask);
		OPT32(OPT_ROUTER, d->router);
		OPT32(OPT_DNS, d->dns);
		OPT32(OPT_BROADCAST, d->net | ~d->mask);
	}
#undef OPT32
	*o++ = OPT_END;
	size_t blen = (size_t)(o - b) < BOOTP_MIN ? BOOTP_MIN : (size_t)(o - b);

	/* Where it goes (RFC 2131 4.1): a client with an address gets it
	 * there; one without, at the address offered to its MAC, unless it
	 * asked for broadcast; a NAK always goes to everyone. */
	bool broadcast = type == NAK || (!r->ciaddr && (r->flags & 0x8000));
	uint32_t dst = type == NAK || broadcast ? 0xffffffffu : r->ciaddr ? r->ciaddr : yiaddr;
	if (broadcast)
		memset(out, 0xff, 6);
	else
		memcpy(out, r->chaddr, 6);
	memcpy(out + 6, d->server_mac, 6);
	put16(out + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HLEN + UDP_HLEN + blen));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, d->router);
	put32(ip + 16, dst);
	put16(ip + 10, checksum(ip, IP_HLEN, 0));
	put16(udp, DHCP_SERVER_PORT);
	put16(udp + 2, DHCP_CLIENT_PORT);
	put16(udp + 4, (uint16_t)(UDP_HLEN + blen));
	/* the pseudo-header: addresses, protocol, UDP length */
	uint32_t pseudo = (d->router >> 16) + (d->router & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 +
			  (uint32_t)(UDP_HLEN + blen);
	uint16_t sum = checksum(udp, UDP_HLEN + blen, pseudo);
	put16(udp + 6, sum ? sum : 0xffff);
	return ETH_HLEN + IP_HLEN + UDP_HLEN + blen;
}

size_t dhcp_answer(struct dhcp_server *d, const uint8_t *frame, size_t len, int64_t now_ms, uint8_t *reply)
{
	struct request r;
	if (!d->leases || !parse(frame, len, &r)) {
		d->ignored++;
		return 0;
	}
	d->requests++;
	int slot;
	size_t n = 0;
	switch (r.type) {
	case DISCOVER:
		if ((slot = slot_for(d, r.chaddr, now_ms)) < 0)
			break; /* the pool is exhausted: no offer */
		if (!d->leases[slot].bound || d->leases[slot].expires_ms <= now_ms) {
			d->leases[slot].bound = false;
			d->leases[slot].expires_ms = now_ms + OFFER_HOLD_MS;
		}
		n = build(d, &r, OFFER, d->first + (uint32_t)slot, reply);
		break;
	case REQUEST: {
		if (r.server && r.server != d->router) { /* it chose another server's offer */
			slot = find_slot(d, r.chaddr);
			if (slot >= 0 && !d->leases[slot].bound)
				d->leases[slot].expires_ms = 0;
			break;
		}
		uint32_t want = r.requested ? r.requested : r.ciaddr;
		bool known = find_slot(d, r.chaddr) >= 0;
		slot = slot_for(d, r.chaddr, now_ms);
		if (slot < 0 || want != d->first + (uint32_t)slot) {
			if (!known && !r.server) {
				/* INIT-REBOOT or REBINDING from a client we have
				 * no record of (its address may be another
				 * server's): silent, as RFC 2131 4.3.2 asks */
				if (slot >= 0 && !d->leases[slot].expires_ms)
					free_slot(&d->leases[slot]);
				break;
			}
			/* not the address this MAC has: it starts over with a
			 * DISCOVER and gets its own */
			n = build(d, &r, NAK, 0, reply);
			break;
		}
		/* (a client we had no record of asking for the very address
		 * its MAC gets, after a restart of the switch: granted) */
		struct dhcp_lease *l = &d->leases[slot];
		l->bound = true;
		l->expires_ms = now_ms + (int64_t)d->lease_seconds * 1000;
		if (r.hostname[0])
			memcpy(l->hostname, r.hostname, sizeof(l->hostname));
		n = build(d, &r, ACK, want, reply);
		break;
	}
	case DECLINE:
		slot = find_slot(d, r.chaddr);
		/* (A reserved address stays its MAC's: whoever else uses it is
		 * the one to move; the client will ask again.) */
		if (slot >= 0 && r.requested == d->first + (uint32_t)slot && !d->leases[slot].reserved) {
			struct dhcp_lease *l = &d->leases[slot];
			memset(l, 0, sizeof(*l));
			l->declined = true;
			l->expires_ms = now_ms + (int64_t)d->lease_seconds * 1000;
		}
		break;
	case RELEASE:
		slot = find_slot(d, r.chaddr);
		if (slot >= 0 && r.ciaddr == d->first + (uint32_t)slot) {
			d->leases[slot].bound = false;
			d->leases[slot].expires_ms = 0; /* the MAC stays: it gets this address back */
		}
		break;
	case INFORM:
		if (r.ciaddr && (r.ciaddr & d->mask) == d->net)
			n = build(d, &r, INFORM, 0, reply);
		break;
	default: /* OFFER, ACK, NAK: a server's messages, not ours to answer */
		break;
	}
	if (n)
		d->replies++;
	else
		d->ignored++;
	return n;
}

uint32_t dhcp_lookup(const struct dhcp_server *d, const uint8_t mac[6], int64_t now_ms)
{
	int slot = find_slot(d, mac);
	return slot >= 0 && d->leases[slot].expires_ms > now_ms ? d->first + (uint32_t)slot : 0;
}
