/* Unit tests: the switch's forwarding (net/switch_core.c) and QEMU's
 * stream framing (net/stream.c): learning, aging, limits, flaps, VLAN
 * tagging and untagging, each policy's drops, and hostile framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "net/stream.h"
#include "net/switch_core.h"

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t MAC_A[6] = { 0x52, 0x54, 0, 0, 0, 0x0a };
static const uint8_t MAC_B[6] = { 0x52, 0x54, 0, 0, 0, 0x0b };
static const uint8_t MAC_C[6] = { 0x52, 0x54, 0, 0, 0, 0x0c };

static struct switch_egress eg;

static size_t make_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src, int vlan)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	size_t off = 12;
	if (vlan >= 0) {
		f[12] = 0x81, f[13] = 0x00, f[14] = (uint8_t)(vlan >> 8), f[15] = (uint8_t)vlan;
		off = 16;
	}
	f[off] = 0x08, f[off + 1] = 0x00;
	memset(f + off + 2, 0x5a, 46);
	return off + 2 + 46;
}

static int send_frame(struct switch_core *sw, int port, const uint8_t *dst, const uint8_t *src, int vlan,
		      int64_t now)
{
	uint8_t f[128];
	size_t len = make_frame(f, dst, src, vlan);
	return switch_input(sw, port, f, len, now, &eg);
}

static bool goes_to(int port)
{
	for (int i = 0; i < eg.n; i++)
		if (eg.out[i].port == port)
			return true;
	return false;
}

static int add_port(struct switch_core *sw, enum switch_policy policy)
{
	struct switch_port_config cfg = { .policy = policy };
	return switch_port_add(sw, &cfg);
}

static void learning_floods_then_forwards(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	int a = add_port(sw, SWITCH_LEARN), b = add_port(sw, SWITCH_LEARN), c = add_port(sw, SWITCH_LEARN);
	/* Broadcast, and unknown unicast, go everywhere else. */
	assert_int_equal(send_frame(sw, a, BCAST, MAC_A, -1, 0), 2);
	assert_true(goes_to(b) && goes_to(c) && !goes_to(a));
	assert_int_equal(switch_lookup(sw, MAC_A, 1), a);
	assert_int_equal(send_frame(sw, b, MAC_C, MAC_B, -1, 0), 2);
	/* Known unicast goes to its port only. */
	assert_int_equal(send_frame(sw, b, MAC_A, MAC_B, -1, 10), 1);
	assert_true(goes_to(a));
	/* To a MAC on the port it came from: nowhere. */
	assert_int_equal(send_frame(sw, a, MAC_A, MAC_A, -1, 10), 0);
	free(sw);
}

static void macs_age_out(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	sw->aging_ms = 1000;
	int a = add_port(sw, SWITCH_LEARN), b = add_port(sw, SWITCH_LEARN);
	add_port(sw, SWITCH_LEARN);
	send_frame(sw, a, BCAST, MAC_A, -1, 0);
	switch_age(sw, 999);
	assert_int_equal(switch_lookup(sw, MAC_A, 1), a);
	assert_int_equal(send_frame(sw, b, MAC_A, MAC_B, -1, 999), 1);
	switch_age(sw, 1000);
	assert_int_equal(switch_lookup(sw, MAC_A, 1), SWITCH_NO_PORT);
	assert_int_equal(sw->counters[a].learned, 0);
	assert_int_equal(send_frame(sw, b, MAC_A, MAC_B, -1, 1001), 2); /* flooded again */
	free(sw);
}

static void a_moving_mac_is_a_flap(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	int a = add_port(sw, SWITCH_LEARN), b = add_port(sw, SWITCH_LEARN);
	send_frame(sw, a, BCAST, MAC_C, -1, 0);
	send_frame(sw, b, BCAST, MAC_C, -1, 1);
	assert_int_equal(switch_lookup(sw, MAC_C, 1), b);
	assert_int_equal(sw->counters[a].flaps, 1);
	assert_int_equal(sw->counters[b].flaps, 1);
	assert_int_equal(sw->counters[a].learned, 0);
	assert_int_equal(sw->counters[b].learned, 1);
	free(sw);
}

static void learn_ports_have_a_mac_limit(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	struct switch_port_config cfg = { .policy = SWITCH_LEARN, .mac_limit = 2 };
	int a = switch_port_add(sw, &cfg);
	int b = add_port(sw, SWITCH_LEARN);
	uint8_t src[6] = { 0x52, 0x54, 0, 0, 1, 0 };
	for (int i = 0; i < 5; i++) {
		src[5] = (uint8_t)i;
		int n = send_frame(sw, a, BCAST, src, -1, i);
		assert_int_equal(n, i < 2 ? 1 : 0);
	}
	assert_int_equal(sw->counters[a].learned, 2);
	assert_int_equal(sw->counters[a].drops[DROP_MAC_LIMIT], 3);
	/* A million random sources fill the table at most; it never grows. */
	for (int i = 0; i < 20000; i++) {
		uint8_t r[6] = { 0x02, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 7, 7 };
		send_frame(sw, b, BCAST, r, -1, 100 + i);
	}
	assert_int_equal(sw->counters[b].learned, SWITCH_DEFAULT_MAC_LIMIT);
	free(sw);
}

static void strict_ports_drop_spoofed_sources(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	struct switch_port_config cfg = { .policy = SWITCH_STRICT, .has_mac = true };
	memcpy(cfg.mac, MAC_A, 6);
	int a = switch_port_add(sw, &cfg), b = add_port(sw, SWITCH_LEARN);
	assert_int_equal(send_frame(sw, a, BCAST, MAC_A, -1, 0), 1);
	assert_int_equal(send_frame(sw, a, BCAST, MAC_C, -1, 0), 0);
	assert_int_equal(sw->counters[a].drops[DROP_SPOOFED], 1);
	assert_int_equal(switch_lookup(sw, MAC_C, 1), SWITCH_NO_PORT);
	/* Without a configured MAC, the first one it sends from is pinned. */
	struct switch_port_config pin = { .policy = SWITCH_STRICT };
	int c = switch_port_add(sw, &pin);
	assert_true(send_frame(sw, c, BCAST, MAC_B, -1, 0) > 0);
	assert_int_equal(send_frame(sw, c, BCAST, MAC_C, -1, 0), 0);
	assert_int_equal(sw->counters[c].drops[DROP_SPOOFED], 1);
	(void)b;
	free(sw);
}

static void promisc_ports_see_everything(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	int a = add_port(sw, SWITCH_LEARN), b = add_port(sw, SWITCH_LEARN);
	int p = add_port(sw, SWITCH_PROMISC);
	send_frame(sw, b, BCAST, MAC_B, -1, 0);
	assert_int_equal(send_frame(sw, a, MAC_B, MAC_A, -1, 0), 2);
	assert_true(goes_to(b) && goes_to(p));
	free(sw);
}

static void vlans_tag_untag_and_separate(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	struct switch_port_config v10 = { .policy = SWITCH_LEARN, .vlan = 10 };
	struct switch_port_config v20 = { .policy = SWITCH_LEARN, .vlan = 20 };
	struct switch_port_config trunk = { .policy = SWITCH_LEARN, .trunk = true, .vlan = 0 };
	switch_allow_vlans(&trunk, 10, 20);
	int a = switch_port_add(sw, &v10), b = switch_port_add(sw, &v20), t = switch_port_add(sw, &trunk);
	/* Access VLAN 10 to the trunk: tagged 10; not to VLAN 20's port. */
	assert_int_equal(send_frame(sw, a, BCAST, MAC_A, -1, 0), 1);
	assert_true(goes_to(t) && eg.out[0].tagged && eg.vlan == 10);
	uint8_t out[SWITCH_MAX_FRAME];
	size_t n = switch_egress_frame(&eg, 0, out);
	assert_int_equal(n, 60 + 4);
	assert_int_equal(out[12], 0x81);
	assert_int_equal(out[15], 10);
	/* Tagged 20 from the trunk to the VLAN 20 access port, untagged. */
	assert_int_equal(send_frame(sw, t, BCAST, MAC_C, 20, 0), 1);
	assert_true(goes_to(b) && !eg.out[0].tagged);
	n = switch_egress_frame(&eg, 0, out);
	assert_int_equal(n, 60);
	assert_int_equal(out[12], 0x08);
	/* A tag the trunk does not carry; a tagged frame on an access port;
	 * untagged on a trunk without a native VLAN. */
	assert_int_equal(send_frame(sw, t, BCAST, MAC_C, 30, 0), 0);
	assert_int_equal(send_frame(sw, a, BCAST, MAC_A, 10, 0), 0);
	assert_int_equal(send_frame(sw, t, BCAST, MAC_C, -1, 0), 0);
	assert_int_equal(sw->counters[t].drops[DROP_VLAN], 2);
	assert_int_equal(sw->counters[a].drops[DROP_VLAN], 1);
	/* The same MAC in two VLANs is two entries. */
	assert_int_equal(switch_lookup(sw, MAC_C, 20), t);
	assert_int_equal(switch_lookup(sw, MAC_C, 10), SWITCH_NO_PORT);
	free(sw);
}

static void control_and_bad_frames_are_dropped(void **state)
{
	(void)state;
	struct switch_core *sw = malloc(sizeof(*sw));
	switch_core_init(sw);
	int a = add_port(sw, SWITCH_LEARN);
	add_port(sw, SWITCH_LEARN);
	const uint8_t stp[6] = { 0x01, 0x80, 0xc2, 0, 0, 0 }, pause[6] = { 0x01, 0x80, 0xc2, 0, 0, 1 };
	assert_int_equal(send_frame(sw, a, stp, MAC_A, -1, 0), 0);
	sw->forward_control = true;
	assert_int_equal(send_frame(sw, a, stp, MAC_A, -1, 0), 1);
	assert_int_equal(send_frame(sw, a, pause, MAC_A, -1, 0), 0); /* never */
	assert_int_equal(sw->counters[a].drops[DROP_CONTROL], 2);
	assert_int_equal(send_frame(sw, a, BCAST, BCAST, -1, 0), 0); /* multicast source */
	assert_int_equal(sw->counters[a].drops[DROP_SOURCE], 1);
	uint8_t tiny[13] = { 0 }, huge[SWITCH_MAX_FRAME + 1];
	memset(huge, 0, sizeof(huge));
	assert_int_equal(switch_input(sw, a, tiny, sizeof(tiny), 0, &eg), 0);
	assert_int_equal(switch_input(sw, a, huge, sizeof(huge), 0, &eg), 0);
	assert_int_equal(sw->counters[a].drops[DROP_MALFORMED], 2);
	/* A 9000-byte MTU frame passes. */
	memcpy(huge, BCAST, 6);
	memcpy(huge + 6, MAC_A, 6);
	huge[12] = 0x08;
	assert_int_equal(switch_input(sw, a, huge, 9014, 0, &eg), 1);
	free(sw);
}

static void stream_framing_survives_hostile_input(void **state)
{
	(void)state;
	struct stream *s = malloc(sizeof(*s));
	stream_init(s);
	/* Two frames split across reads at every byte. */
	uint8_t wire[2 * (4 + 60)];
	for (int k = 0; k < 2; k++) {
		uint8_t *p = wire + k * 64;
		p[0] = p[1] = p[2] = 0, p[3] = 60;
		memset(p + 4, 0x10 + k, 60);
	}
	int frames = 0;
	for (size_t i = 0; i < sizeof(wire); i++) {
		size_t room;
		uint8_t *space = stream_rx_space(s, &room);
		assert_true(room >= 1);
		*space = wire[i];
		stream_rx_added(s, 1);
		const uint8_t *f;
		size_t len;
		while ((f = stream_next_frame(s, &len))) {
			assert_int_equal(len, 60);
			assert_int_equal(f[0], 0x10 + frames);
			frames++;
			stream_frame_done(s);
		}
	}
	assert_int_equal(frames, 2);
	/* A length no frame can have breaks the stream. */
	size_t room;
	uint8_t *space = stream_rx_space(s, &room);
	memcpy(space, "\x7f\xff\xff\xff", 4);
	stream_rx_added(s, 4);
	size_t len;
	assert_null(stream_next_frame(s, &len));
	assert_true(s->broken);
	/* Output is bounded: a peer that never reads loses frames. */
	stream_init(s);
	uint8_t f[1500] = { 0 };
	int queued = 0;
	while (stream_queue_frame(s, f, sizeof(f)))
		queued++;
	assert_int_equal(queued, STREAM_TX_BYTES / (4 + 1500));
	size_t pending;
	stream_tx_pending(s, &pending);
	stream_tx_done(s, pending - 10);
	assert_true(stream_queue_frame(s, f, sizeof(f))); /* room again, made at the front */
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(learning_floods_then_forwards),
		cmocka_unit_test(macs_age_out),
		cmocka_unit_test(a_moving_mac_is_a_flap),
		cmocka_unit_test(learn_ports_have_a_mac_limit),
		cmocka_unit_test(strict_ports_drop_spoofed_sources),
		cmocka_unit_test(promisc_ports_see_everything),
		cmocka_unit_test(vlans_tag_untag_and_separate),
		cmocka_unit_test(control_and_bad_frames_are_dropped),
		cmocka_unit_test(stream_framing_survives_hostile_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
