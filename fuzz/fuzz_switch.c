/* libFuzzer: the switch's frame path. The input is one client's byte
 * stream in QEMU's framing (net/stream.c) on a switch of five ports with
 * every policy and VLAN mode (net/switch_core.c); each frame's first byte
 * past the header also picks which port it comes in on, and time moves on
 * so that MACs age. check() asserts the table's bookkeeping: learned
 * counts match the table, no port holds more than its limit, and every
 * egress frame is one a port may carry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/stream.h"
#include "net/switch_core.h"

static struct switch_core sw;
static struct stream st;
static struct switch_egress eg;
static uint8_t out[SWITCH_MAX_FRAME];

static void check(void)
{
	unsigned learned[SWITCH_MAX_PORTS] = { 0 };
	int used = 0;
	for (int i = 0; i < SWITCH_FDB_SIZE; i++)
		if (sw.fdb[i].port != SWITCH_NO_PORT) {
			learned[sw.fdb[i].port]++;
			used++;
			/* every entry is found through its hash chain */
			if (switch_lookup(&sw, sw.fdb[i].mac, sw.fdb[i].vlan) != sw.fdb[i].port)
				abort();
		}
	if (used != sw.nfdb)
		abort();
	for (int p = 0; p < SWITCH_MAX_PORTS; p++) {
		if (!sw.used[p])
			continue;
		if (learned[p] != sw.counters[p].learned)
			abort();
		if (sw.ports[p].policy != SWITCH_STRICT && learned[p] > sw.ports[p].mac_limit)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	switch_core_init(&sw);
	sw.aging_ms = 50;
	sw.forward_control = size && (data[0] & 1);
	struct switch_port_config cfg[5] = {
		{ .policy = SWITCH_LEARN, .mac_limit = 4 },
		{ .policy = SWITCH_STRICT, .has_mac = true, .mac = { 0x52, 0x54, 0, 0, 0, 1 } },
		{ .policy = SWITCH_PROMISC, .vlan = 10 },
		{ .policy = SWITCH_LEARN, .trunk = true, .vlan = 0 },
		{ .policy = SWITCH_LEARN, .trunk = true, .vlan = 10 },
	};
	switch_allow_vlans(&cfg[3], 1, 20);
	switch_allow_vlans(&cfg[4], 5, 4094);
	for (int i = 0; i < 5; i++)
		if (switch_port_add(&sw, &cfg[i]) != i)
			abort();
	stream_init(&st);
	int64_t now = 0;
	unsigned frames = 0;
	while (size) {
		size_t room;
		uint8_t *space = stream_rx_space(&st, &room);
		size_t n = size < room ? size : room;
		if (!n)
			break;
		memcpy(space, data, n);
		stream_rx_added(&st, n);
		data += n, size -= n;
		const uint8_t *f;
		size_t len;
		while ((f = stream_next_frame(&st, &len))) {
			int port = len > 14 ? f[14] % 5 : 0;
			now += len > 15 ? f[15] : 1;
			switch_input(&sw, port, f, len, now, &eg);
			for (int i = 0; i < eg.n; i++) {
				int p = eg.out[i].port;
				if (p == port || !sw.used[p])
					abort();
				size_t m = switch_egress_frame(&eg, i, out);
				if (m > SWITCH_MAX_FRAME)
					abort();
			}
			stream_frame_done(&st);
			if (++frames % 16 == 0)
				switch_age(&sw, now);
			check();
		}
		if (st.broken)
			break;
	}
	switch_port_remove(&sw, 0);
	check();
	return 0;
}
