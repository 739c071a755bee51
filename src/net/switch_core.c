#include "net/switch_core.h"

#include <string.h>

#define ETH_P_8021Q 0x8100
#define NATIVE_DEFAULT 1

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

static bool is_zero(const uint8_t *mac)
{
	static const uint8_t zero[6];
	return !memcmp(mac, zero, 6);
}

void switch_core_init(struct switch_core *sw)
{
	memset(sw, 0, sizeof(*sw));
	sw->aging_ms = SWITCH_DEFAULT_AGING_MS;
	for (int i = 0; i < SWITCH_FDB_SIZE; i++)
		sw->fdb[i].port = SWITCH_NO_PORT;
	for (int b = 0; b < SWITCH_FDB_BUCKETS; b++)
		sw->bucket[b] = -1;
}

int switch_policy_parse(const char *s)
{
	if (!strcmp(s, "strict"))
		return SWITCH_STRICT;
	if (!strcmp(s, "learn"))
		return SWITCH_LEARN;
	if (!strcmp(s, "promisc"))
		return SWITCH_PROMISC;
	return -1;
}

const char *switch_policy_name(enum switch_policy p)
{
	return p == SWITCH_STRICT ? "strict" : p == SWITCH_LEARN ? "learn" : "promisc";
}

void switch_allow_vlans(struct switch_port_config *cfg, unsigned lo, unsigned hi)
{
	for (unsigned v = lo; v <= hi && v < 4095; v++)
		cfg->allowed[v / 8] |= (uint8_t)(1u << (v % 8));
}

static bool allowed(const struct switch_port_config *cfg, uint16_t vlan)
{
	return vlan < 4095 && (cfg->allowed[vlan / 8] >> (vlan % 8) & 1);
}

int switch_port_add(struct switch_core *sw, const struct switch_port_config *cfg)
{
	for (int p = 0; p < SWITCH_MAX_PORTS; p++) {
		if (sw->used[p])
			continue;
		sw->used[p] = true;
		sw->ports[p] = *cfg;
		if (!sw->ports[p].trunk && !sw->ports[p].vlan)
			sw->ports[p].vlan = NATIVE_DEFAULT;
		if (!sw->ports[p].mac_limit)
			sw->ports[p].mac_limit = SWITCH_DEFAULT_MAC_LIMIT;
		memset(&sw->counters[p], 0, sizeof(sw->counters[p]));
		return p;
	}
	return -1;
}

static void forget(struct switch_core *sw, struct switch_fdb_entry *e);

void switch_port_remove(struct switch_core *sw, int port)
{
	if (port < 0 || port >= SWITCH_MAX_PORTS)
		return;
	for (int i = 0; i < SWITCH_FDB_SIZE; i++)
		if (sw->fdb[i].port == port)
			forget(sw, &sw->fdb[i]);
	sw->used[port] = false;
}

void switch_port_configure(struct switch_core *sw, int port, const struct switch_port_config *cfg)
{
	if (port < 0 || port >= SWITCH_MAX_PORTS || !sw->used[port])
		return;
	/* What was learned under the old policy is relearned under the new
	 * one: a port made strict keeps no other MAC's frames coming. */
	for (int i = 0; i < SWITCH_FDB_SIZE; i++)
		if (sw->fdb[i].port == port)
			forget(sw, &sw->fdb[i]);
	sw->ports[port] = *cfg;
	if (!sw->ports[port].trunk && !sw->ports[port].vlan)
		sw->ports[port].vlan = NATIVE_DEFAULT;
	if (!sw->ports[port].mac_limit)
		sw->ports[port].mac_limit = SWITCH_DEFAULT_MAC_LIMIT;
}

/* The table: SWITCH_FDB_SIZE entries, found through hash chains. A
 * client flooding random source MACs can only fill it (the entry seen
 * longest ago goes first), never grow it. */
static unsigned bucket_of(const uint8_t mac[6], uint16_t vlan)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	h = (h ^ vlan) * 16777619u;
	return (h ^ (h >> 16)) % SWITCH_FDB_BUCKETS;
}

static struct switch_fdb_entry *find(struct switch_core *sw, const uint8_t mac[6], uint16_t vlan)
{
	for (int i = sw->bucket[bucket_of(mac, vlan)]; i >= 0; i = sw->fdb[i].next) {
		struct switch_fdb_entry *e = &sw->fdb[i];
		if (e->vlan == vlan && !memcmp(e->mac, mac, 6))
			return e;
	}
	return NULL;
}

int switch_lookup(const struct switch_core *sw, const uint8_t mac[6], uint16_t vlan)
{
	const struct switch_fdb_entry *e = find((struct switch_core *)sw, mac, vlan);
	return e ? e->port : SWITCH_NO_PORT;
}

static void forget(struct switch_core *sw, struct switch_fdb_entry *e)
{
	if (e->port == SWITCH_NO_PORT)
		return;
	if (sw->counters[e->port].learned)
		sw->counters[e->port].learned--;
	int16_t self = (int16_t)(e - sw->fdb);
	int16_t *link = &sw->bucket[bucket_of(e->mac, e->vlan)];
	while (*link != self)
		link = &sw->fdb[*link].next;
	*link = e->next;
	e->port = SWITCH_NO_PORT;
	sw->nfdb--;
}

void switch_age(struct switch_core *sw, int64_t now_ms)
{
	for (int i = 0; i < SWITCH_FDB_SIZE; i++)
		if (sw->fdb[i].port != SWITCH_NO_PORT && now_ms - sw->fdb[i].seen_ms >= sw->aging_ms)
			forget(sw, &sw->fdb[i]);
}

/* Learns src on port; false if the port may not learn another MAC. */
static bool learn(struct switch_core *sw, int port, const uint8_t src[6], uint16_t vlan,
		  int64_t now_ms)
{
	struct switch_fdb_entry *e = find(sw, src, vlan);
	if (e && e->port == port) {
		e->seen_ms = now_ms;
		return true;
	}
	const struct switch_port_config *cfg = &sw->ports[port];
	if (cfg->policy != SWITCH_STRICT && sw->counters[port].learned >= cfg->mac_limit)
		return false;
	if (e) { /* moved: a flap, seen from both sides */
		sw->counters[e->port].flaps++;
		sw->counters[port].flaps++;
		forget(sw, e);
	} else if (sw->nfdb == SWITCH_FDB_SIZE) {
		/* Full: the entry seen longest ago makes room. */
		e = &sw->fdb[0];
		for (int i = 1; i < SWITCH_FDB_SIZE; i++)
			if (sw->fdb[i].seen_ms < e->seen_ms)
				e = &sw->fdb[i];
		forget(sw, e);
	}
	if (!e || e->port != SWITCH_NO_PORT)
		for (int i = 0; i < SWITCH_FDB_SIZE; i++)
			if (sw->fdb[i].port == SWITCH_NO_PORT) {
				e = &sw->fdb[i];
				break;
			}
	memcpy(e->mac, src, 6);
	e->vlan = vlan;
	e->port = port;
	e->seen_ms = now_ms;
	unsigned b = bucket_of(src, vlan);
	e->next = sw->bucket[b];
	sw->bucket[b] = (int16_t)(e - sw->fdb);
	sw->nfdb++;
	sw->counters[port].learned++;
	return true;
}

/* Does port carry vlan, and tagged? */
static bool carries(const struct switch_port_config *cfg, uint16_t vlan, bool *tagged)
{
	if (cfg->vlan == vlan) {
		*tagged = false;
		return true;
	}
	*tagged = true;
	return cfg->trunk && allowed(cfg, vlan);
}

static int drop(struct switch_core *sw, int port, enum switch_drop why)
{
	sw->counters[port].drops[why]++;
	return 0;
}

static void add_out(struct switch_core *sw, struct switch_egress *e, int p, uint16_t vlan)
{
	bool tagged;
	if (!sw->used[p] || !carries(&sw->ports[p], vlan, &tagged))
		return;
	for (int i = 0; i < e->n; i++)
		if (e->out[i].port == p)
			return;
	e->out[e->n].port = p;
	e->out[e->n].tagged = tagged;
	e->n++;
}

int switch_input(struct switch_core *sw, int port, const uint8_t *frame, size_t len, int64_t now_ms,
		 struct switch_egress *e)
{
	e->n = 0;
	if (port < 0 || port >= SWITCH_MAX_PORTS || !sw->used[port])
		return 0;
	struct switch_counters *c = &sw->counters[port];
	const struct switch_port_config *cfg = &sw->ports[port];
	c->rx_frames++;
	c->rx_bytes += len;
	if (len < SWITCH_MIN_FRAME || len > SWITCH_MAX_FRAME)
		return drop(sw, port, DROP_MALFORMED);
	const uint8_t *dst = frame, *src = frame + 6;

	/* The frame's VLAN, and the frame without its tag. */
	uint16_t vlan;
	if (be16(frame + 12) == ETH_P_8021Q) {
		if (len < SWITCH_MIN_FRAME + 4)
			return drop(sw, port, DROP_MALFORMED);
		uint16_t vid = be16(frame + 14) & 0xfff;
		if (vid == 0) {
			vid = cfg->vlan; /* priority-tagged: the port's own VLAN */
		} else if (!cfg->trunk || !allowed(cfg, vid) || vid == 4095) {
			return drop(sw, port, DROP_VLAN);
		}
		if (!vid)
			return drop(sw, port, DROP_VLAN);
		vlan = vid;
		memcpy(e->untagged, frame, 12);
		memcpy(e->untagged + 12, frame + 16, len - 16);
		e->untagged_len = len - 4;
	} else {
		if (!cfg->vlan) /* a trunk without a native VLAN */
			return drop(sw, port, DROP_VLAN);
		vlan = cfg->vlan;
		memcpy(e->untagged, frame, len);
		e->untagged_len = len;
	}
	e->vlan = vlan;

	/* 01:80:c2:00:00:0x: link-local control; :01 is a pause frame. */
	static const uint8_t link_local[5] = { 0x01, 0x80, 0xc2, 0x00, 0x00 };
	if (!memcmp(dst, link_local, 5) && (dst[5] & 0xf0) == 0 &&
	    (dst[5] == 0x01 || !sw->forward_control))
		return drop(sw, port, DROP_CONTROL);
	if (is_multicast(src) || is_zero(src))
		return drop(sw, port, DROP_SOURCE);

	if (cfg->policy == SWITCH_STRICT) {
		if (!sw->ports[port].has_mac) { /* pinned to the first MAC it sends from */
			memcpy(sw->ports[port].mac, src, 6);
			sw->ports[port].has_mac = true;
		}
		if (memcmp(src, sw->ports[port].mac, 6))
			return drop(sw, port, DROP_SPOOFED);
	}
	if (!learn(sw, port, src, vlan, now_ms))
		return drop(sw, port, DROP_MAC_LIMIT);

	int to = is_multicast(dst) ? SWITCH_NO_PORT : switch_lookup(sw, dst, vlan);
	if (to == port)
		return 0; /* it stays on the segment it came from */
	for (int p = 0; p < SWITCH_MAX_PORTS; p++) {
		if (p == port || !sw->used[p])
			continue;
		if (to == SWITCH_NO_PORT || p == to || sw->ports[p].policy == SWITCH_PROMISC)
			add_out(sw, e, p, vlan);
	}
	return e->n;
}

size_t switch_egress_frame(const struct switch_egress *e, int out_index, uint8_t *buf)
{
	if (!e->out[out_index].tagged) {
		memcpy(buf, e->untagged, e->untagged_len);
		return e->untagged_len;
	}
	if (e->untagged_len + 4 > SWITCH_MAX_FRAME)
		return 0;
	memcpy(buf, e->untagged, 12);
	buf[12] = ETH_P_8021Q >> 8;
	buf[13] = ETH_P_8021Q & 0xff;
	buf[14] = (uint8_t)(e->vlan >> 8);
	buf[15] = (uint8_t)e->vlan;
	memcpy(buf + 16, e->untagged + 12, e->untagged_len - 12);
	return e->untagged_len + 4;
}
