/* The forwarding logic of `nestvm switch`, without any I/O: a frame comes
 * in on a port and the core decides, from the port's policy and VLAN
 * setting and from the MAC table it learns, which ports it goes out of and
 * in which form (tagged or not). The process around it (cli/switch.c)
 * moves bytes; tests drive this directly.
 *
 * - MAC learning per VLAN, with aging and a per-port limit; a MAC seen on
 *   another port than the one it was learned on moves there and counts as
 *   a flap on both ports.
 * - Unknown unicast, multicast and broadcast are flooded to every other
 *   port of the VLAN.
 * - Port policies: strict (only the port's own MAC may send; frames from
 *   any other source are dropped and counted: the spoofing guard), learn
 *   (up to mac_limit source MACs: a nested hypervisor's VMs), promisc
 *   (learns like learn and also receives every frame of its VLANs).
 * - 802.1Q: an access port carries its VLAN untagged; a trunk port carries
 *   tagged frames of its allowed VLANs and its native VLAN untagged.
 * - Link-local control frames (01:80:c2:00:00:0x: STP, LACP, LLDP...) are
 *   dropped unless the switch forwards them on request; pause frames
 *   (01:80:c2:00:00:01) never pass. */
#ifndef NESTVM_NET_SWITCH_CORE_H
#define NESTVM_NET_SWITCH_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWITCH_MAX_PORTS   64
#define SWITCH_FDB_SIZE    4096  /* learned MACs in all */
#define SWITCH_MAX_FRAME   (9000 + 18 + 4) /* 9000-byte MTU, Ethernet header, one tag */
#define SWITCH_MIN_FRAME   14
#define SWITCH_NO_PORT     (-1)
#define SWITCH_DEFAULT_AGING_MS (300 * 1000)
#define SWITCH_DEFAULT_MAC_LIMIT 64

enum switch_policy { SWITCH_STRICT, SWITCH_LEARN, SWITCH_PROMISC };

/* Why frames were dropped, per port (counted on the port they came in). */
enum switch_drop {
	DROP_MALFORMED,   /* shorter than a header, longer than the MTU allows */
	DROP_SPOOFED,     /* strict port, source MAC not its own */
	DROP_MAC_LIMIT,   /* learn port already holds mac_limit MACs */
	DROP_VLAN,        /* tag not allowed on the port, or tagged on an access port */
	DROP_CONTROL,     /* link-local control or pause frame */
	DROP_SOURCE,      /* multicast or zero source MAC */
	DROP_EGRESS,      /* the destination port could not take it (full) */
	DROP_REASONS
};

struct switch_counters {
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint64_t drops[DROP_REASONS];
	uint64_t flaps;   /* MACs that moved to or away from this port */
	uint64_t learned; /* MACs currently learned on it */
};

struct switch_port_config {
	char name[48]; /* (a lab names its ports NODE.ethN) */
	enum switch_policy policy;
	uint8_t mac[6];       /* strict: the only source allowed */
	bool has_mac;
	unsigned mac_limit;   /* learn, promisc: 0 means SWITCH_DEFAULT_MAC_LIMIT */
	uint16_t vlan;        /* access VLAN, or a trunk's native VLAN (0: none) */
	bool trunk;
	uint8_t allowed[4096 / 8]; /* trunk: VLANs it carries tagged */
};

struct switch_fdb_entry {
	uint8_t mac[6];
	uint16_t vlan;
	int port;            /* SWITCH_NO_PORT: free */
	int64_t seen_ms;
	int16_t next;        /* the next entry in its hash bucket, or -1 */
};

#define SWITCH_FDB_BUCKETS 1024

struct switch_core {
	int64_t aging_ms;
	bool forward_control; /* pass STP, LACP, LLDP... (never pause frames) */
	bool used[SWITCH_MAX_PORTS];
	struct switch_port_config ports[SWITCH_MAX_PORTS];
	struct switch_counters counters[SWITCH_MAX_PORTS];
	struct switch_fdb_entry fdb[SWITCH_FDB_SIZE];
	int16_t bucket[SWITCH_FDB_BUCKETS]; /* first entry of each hash chain, or -1 */
	int nfdb;                           /* entries in use */
};

/* What to send where: the same frame, either as it came without its tag
 * or with tag `vlan` inserted, to each port listed. */
struct switch_egress {
	int n;
	struct {
		int port;
		bool tagged;
	} out[SWITCH_MAX_PORTS];
	uint16_t vlan;  /* the frame's VLAN */
	/* The frame without any 802.1Q tag (an Ethernet header, then the
	 * payload): what untagged ports receive. */
	uint8_t untagged[SWITCH_MAX_FRAME];
	size_t untagged_len;
};

void switch_core_init(struct switch_core *sw);
/* Adds a port with this configuration; returns its number or -1 (full). */
int switch_port_add(struct switch_core *sw, const struct switch_port_config *cfg);
/* Gives a port a new configuration (its policy, MAC, limit, VLANs) and
 * forgets what was learned on it. */
void switch_port_configure(struct switch_core *sw, int port, const struct switch_port_config *cfg);
/* Removes a port and forgets what was learned on it. */
void switch_port_remove(struct switch_core *sw, int port);
/* Parses "strict", "learn", "promisc"; -1 if none. */
int switch_policy_parse(const char *s);
const char *switch_policy_name(enum switch_policy p);
/* Marks VLANs lo..hi allowed on a trunk. */
void switch_allow_vlans(struct switch_port_config *cfg, unsigned lo, unsigned hi);

/* A frame of len bytes came in on port at now_ms: learns its source and
 * fills e with where it goes. Returns e->n (0 when dropped or nowhere to
 * go; a drop is counted). */
int switch_input(struct switch_core *sw, int port, const uint8_t *frame, size_t len, int64_t now_ms,
		 struct switch_egress *e);
/* Builds what port out_index of e is sent: the untagged frame, or it with
 * a tag; returns the length written into buf (SWITCH_MAX_FRAME bytes). */
size_t switch_egress_frame(const struct switch_egress *e, int out_index, uint8_t *buf);
/* Forgets MACs not seen for the aging time. */
void switch_age(struct switch_core *sw, int64_t now_ms);
/* The port a MAC is learned on in a VLAN, or SWITCH_NO_PORT. */
int switch_lookup(const struct switch_core *sw, const uint8_t mac[6], uint16_t vlan);

#endif
