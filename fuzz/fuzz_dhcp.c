/* libFuzzer: the NAT's DHCP server (net/dhcp.c), which parses what any
 * guest on the switch sends to port 67. The input is a run of requests,
 * each a 2-byte length and that many bytes of frame, on a small pool (a
 * /27: 16 addresses) so that collisions, exhaustion and expiry come up;
 * time moves on by the length's top bits. check() asserts the lease
 * table's bookkeeping after each: a reply fits its buffer, a MAC holds at
 * most one slot, a slot that is bound has a unicast MAC. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"

#define NET 0xa9fe6400u

static void check(const struct dhcp_server *d)
{
	for (unsigned i = 0; i < d->pool_size; i++) {
		const struct dhcp_lease *l = &d->leases[i];
		if (l->bound && (l->mac[0] & 1))
			abort();
		if (l->declined && l->bound)
			abort();
		static const uint8_t zero[6];
		if (!memcmp(l->mac, zero, 6))
			continue;
		for (unsigned k = i + 1; k < d->pool_size; k++)
			if (!d->leases[k].declined && !l->declined && !memcmp(d->leases[k].mac, l->mac, 6))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 0x52, 0x55, 0xa9, 0xfe, 0x64, 0x02 };
	struct dhcp_server d;
	if (dhcp_init(&d, NET, 27, NET + 2, NET + 3, NET + 15, mac) < 0)
		abort();
	uint8_t reply[DHCP_REPLY_MAX + 64];
	int64_t now = 1000;
	while (size >= 2) {
		size_t len = (size_t)(data[0] << 8 | data[1]) & 0x7ff;
		now += (int64_t)(data[0] >> 3) * 400 * 1000; /* up to about 3 hours on */
		data += 2, size -= 2;
		if (len > size)
			len = size;
		uint8_t *frame = malloc(len ? len : 1); /* exactly len: ASan sees any overread */
		memcpy(frame, data, len);
		memset(reply + DHCP_REPLY_MAX, 0xa5, 64);
		size_t n = dhcp_is_request(frame, len) ? dhcp_answer(&d, frame, len, now, reply) : 0;
		free(frame);
		if (n > DHCP_REPLY_MAX || reply[DHCP_REPLY_MAX] != 0xa5)
			abort();
		check(&d);
		data += len, size -= len;
	}
	dhcp_free(&d);
	return 0;
}
