/* nestvm switch: a userspace Ethernet switch for lab networks, without
 * root. Ports are UNIX stream sockets speaking QEMU's -netdev stream
 * framing (net/stream.h), so QEMU VMs and passt join beside nestvm VMs:
 *   --socket PATH            anonymous ports: every client connecting here
 *                            gets a port of its own (default policy)
 *   --port NAME[,OPTS]       a named port, listening on PATH.NAME, with its
 *                            own policy, MAC and VLANs (one client at a time)
 * The forwarding is net/switch_core.c; this file moves bytes, never
 * blocks on a client (a client that does not read loses frames, counted),
 * and answers `nestvm ctl API-SOCKET status` with the ports, their
 * counters and the MAC table. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "net/nat.h"
#include "net/stream.h"
#include "net/pcap.h"
#include "net/switch_core.h"
#include "net/uplink.h"
#include "net/vxlan.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/sandbox.h"
#include "util/unix_socket.h"

#define MAX_NAMED 32
#define MAX_VXLAN 8
#define MAX_UPLINKS 4
#define MAX_CAPTURES 4
#define API_CLIENTS 4
#define API_LINE 4096

struct named_port {
	struct switch_port_config cfg;
	char path[108];
	int listen_fd;
	int port; /* the connected client's switch port, or -1 */
};

struct client {
	int fd;           /* -1: free */
	int named;        /* index into named ports, or -1 */
	struct stream *stream;  /* a socket client's framing */
	struct vxlan *vxlan;    /* or a VXLAN uplink's */
	struct uplink *uplink;  /* or a network interface's */
	struct nat *nat;        /* or the NAT uplink (fd -2: it has many) */
};

struct api_client {
	int fd;
	size_t len;
	char buf[API_LINE];
	char *out;           /* reply bytes the socket has not taken yet */
	size_t out_len, out_sent;
};

struct sw_state {
	struct switch_core core;
	struct switch_port_config anon;  /* what an anonymous port gets */
	int listen_fd, api_fd, sig_fd;
	struct named_port named[MAX_NAMED];
	int nnamed;
	struct vxlan vxlans[MAX_VXLAN];
	int nvxlan;
	struct uplink uplinks[MAX_UPLINKS];
	int nuplinks;
	struct {
		struct pcap pcap;
		char port[32]; /* empty: every frame coming into the switch */
	} captures[MAX_CAPTURES];
	int ncaptures;
	uint8_t packet[VXLAN_HEADER + SWITCH_MAX_FRAME];
	struct client clients[SWITCH_MAX_PORTS]; /* indexed by switch port */
	struct api_client api[API_CLIENTS];
	uint8_t frame[SWITCH_MAX_FRAME];
	struct switch_egress egress;
	int nat_port;          /* -1: no NAT */
	bool nat_on;
	struct nat_config nat_cfg;
	struct pollfd *pollv;  /* the switch's descriptors, then the NAT's */
	size_t pollv_cap;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm switch --socket PATH [OPTIONS]\n"
		"A userspace Ethernet switch; ports are UNIX sockets with QEMU's stream framing\n"
		"(QEMU: -netdev stream,id=n,server=off,addr.type=unix,addr.path=PATH).\n"
		"  --socket PATH        every client connecting here gets a port of its own\n"
		"  --policy P           policy of those ports: learn (default), strict, promisc\n"
		"  --mac-limit N        MACs a learn/promisc port may use (default %d)\n"
		"  --port NAME[,policy=P][,mac=MAC][,mac-limit=N][,vlan=N][,trunk=LO-HI]\n"
		"                       a named port listening on PATH.NAME: strict ports send\n"
		"                       only from MAC (or the first MAC they use); vlan= is the\n"
		"                       access VLAN (default 1) or a trunk's native VLAN (0: none)\n"
		"  --aging SECONDS      forget a MAC not heard from for this long (default 300)\n"
		"  --capture FILE[,port=NAME]\n"
		"                       write a pcap file (tcpdump -r FILE) of every frame\n"
		"                       into the switch, or of what one port sends and gets\n"
		"  --vxlan REMOTE:PORT,vni=N[,local=ADDR:PORT]\n"
		"                       an uplink to another switch (or a Linux vxlan device)\n"
		"                       over VXLAN (RFC 7348); local defaults to port %d\n"
		"  --uplink IFNAME|MAC  an uplink onto a network interface of this machine\n"
		"                       (a packet socket: needs CAP_NET_RAW), untagged frames\n"
		"  --forward-control    pass link-local control frames (STP, LACP, LLDP);\n"
		"                       pause frames never pass\n"
		"  --nat[=SUBNET]       a NAT uplink (libslirp) on SUBNET (default %s):\n"
		"                       gateway .2, DNS .3, DHCP from .15, leases by MAC\n"
		"  --nat-restricted     the NAT passes no outbound traffic, only --forward\n"
		"  --forward tcp|udp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT\n"
		"                       a host port forwarded to a guest through the NAT\n"
		"  --dhcp-host MAC=ADDR the NAT's DHCP gives ADDR to MAC alone, always\n"
		"  --api-socket PATH    control API: nestvm ctl PATH status\n",
		SWITCH_DEFAULT_MAC_LIMIT, VXLAN_DEFAULT_PORT, NAT_DEFAULT_SUBNET);
}

/* NAME[,policy=P][,mac=MAC][,mac-limit=N][,vlan=N][,trunk=LO-HI] */
static int parse_port(const char *spec, struct switch_port_config *cfg, const struct switch_port_config *defaults)
{
	*cfg = *defaults;
	char copy[256];
	if (snprintf(copy, sizeof(copy), "%s", spec) >= (int)sizeof(copy)) {
		log_error("--port %s: too long", spec);
		return -1;
	}
	char *save = NULL, *name = strtok_r(copy, ",", &save);
	if (!name || spec[0] == ',' || strlen(name) >= sizeof(cfg->name) || strchr(name, '/')) {
		log_error("--port %s: expected NAME[,OPTIONS] with a NAME of 1 to %zu characters, no '/'",
			  spec, sizeof(cfg->name) - 1);
		return -1;
	}
	strcpy(cfg->name, name);
	for (char *o; (o = strtok_r(NULL, ",", &save));) {
		uint64_t v, hi;
		char *dash;
		if (!strncmp(o, "policy=", 7) && switch_policy_parse(o + 7) >= 0) {
			cfg->policy = (enum switch_policy)switch_policy_parse(o + 7);
		} else if (!strncmp(o, "mac=", 4) && parse_mac(o + 4, cfg->mac) == 0 &&
			   !(cfg->mac[0] & 1)) { /* a port's MAC is unicast */
			cfg->has_mac = true;
		} else if (!strncmp(o, "mac-limit=", 10) && parse_uint(o + 10, 1, 4096, &v) == 0) {
			cfg->mac_limit = (unsigned)v;
		} else if (!strncmp(o, "vlan=", 5) && parse_uint(o + 5, 0, 4094, &v) == 0) {
			cfg->vlan = (uint16_t)v;
		} else if (!strncmp(o, "trunk=", 6) && (dash = strchr(o + 6, '-')) &&
			   (*dash = 0, parse_uint(o + 6, 1, 4094, &v) == 0) &&
			   parse_uint(dash + 1, v, 4094, &hi) == 0) {
			cfg->trunk = true;
			switch_allow_vlans(cfg, (unsigned)v, (unsigned)hi);
		} else {
			log_error("--port %s: bad option '%s' (policy=strict|learn|promisc, mac=MAC, "
				  "mac-limit=1..4096, vlan=0..4094, trunk=LO-HI)", spec, o);
			return -1;
		}
	}
	if (!cfg->trunk && cfg->vlan == 0)
		cfg->vlan = 1;
	return 0;
}

/* --- ports ---------------------------------------------------------------- */

static void close_client(struct sw_state *s, int port)
{
	struct client *c = &s->clients[port];
	if (c->fd == -1)
		return;
	if (c->vxlan)
		vxlan_close(c->vxlan);
	else if (c->uplink)
		uplink_close(c->uplink);
	else if (c->nat)
		nat_close(c->nat);
	else
		close(c->fd);
	c->vxlan = NULL;
	c->uplink = NULL;
	c->nat = NULL;
	free(c->stream);
	if (c->named >= 0)
		s->named[c->named].port = -1;
	c->fd = -1;
	c->named = -1;
	c->stream = NULL;
	switch_port_remove(&s->core, port);
}

static void accept_client(struct sw_state *s, int listen_fd, int named)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (named >= 0 && s->named[named].port >= 0) {
		log_warn("port %s: a second client refused (one at a time)", s->named[named].cfg.name);
		close(fd);
		return;
	}
	struct switch_port_config cfg = named >= 0 ? s->named[named].cfg : s->anon;
	struct stream *st = malloc(sizeof(*st));
	int port = st ? switch_port_add(&s->core, &cfg) : -1;
	if (port < 0) {
		log_warn("switch: a client refused: %s", st ? "no free port" : "out of memory");
		free(st);
		close(fd);
		return;
	}
	stream_init(st);
	s->clients[port] = (struct client){ .fd = fd, .named = named, .stream = st };
	if (named >= 0)
		s->named[named].port = port;
	if (named < 0) /* the name says which port it is in the table */
		snprintf(s->core.ports[port].name, sizeof(s->core.ports[port].name), "port%d", port);
}

static void flush_client(struct sw_state *s, int port)
{
	struct client *c = &s->clients[port];
	size_t len;
	const uint8_t *p = stream_tx_pending(c->stream, &len);
	if (!len)
		return;
	ssize_t w = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		stream_tx_done(c->stream, (size_t)w);
	else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		close_client(s, port);
}

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A frame into port `in` (to_port -1), or out of port to_port. */
static void capture(struct sw_state *s, int in, int to_port, const uint8_t *frame, size_t len)
{
	for (int i = 0; i < s->ncaptures; i++) {
		const char *want = s->captures[i].port;
		bool all = !want[0];
		if (all ? to_port < 0 : !strcmp(s->core.ports[to_port >= 0 ? to_port : in].name, want))
			pcap_write(&s->captures[i].pcap, frame, len, wall_us());
	}
}

static void forward(struct sw_state *s, int in, const uint8_t *frame, size_t len)
{
	struct switch_egress *e = &s->egress;
	if (s->ncaptures)
		capture(s, in, -1, frame, len);
	if (switch_input(&s->core, in, frame, len, monotonic_ms(), e) <= 0)
		return;
	for (int i = 0; i < e->n; i++) {
		int p = e->out[i].port;
		if (s->ncaptures) {
			size_t n = switch_egress_frame(e, i, s->frame);
			capture(s, in, p, s->frame, n);
		}
		struct switch_counters *c = &s->core.counters[p];
		struct vxlan *vx = s->clients[p].vxlan;
		if (vx) {
			size_t n = switch_egress_frame(e, i, s->packet + VXLAN_HEADER);
			vxlan_header(vx, s->packet);
			if (n && sendto(vx->fd, s->packet, VXLAN_HEADER + n, MSG_DONTWAIT,
					(struct sockaddr *)&vx->remote, vx->remote_len) > 0) {
				c->tx_frames++;
				c->tx_bytes += n;
			} else {
				c->drops[DROP_EGRESS]++;
			}
			continue;
		}
		size_t n = switch_egress_frame(e, i, s->frame);
		if (n && s->clients[p].uplink) {
			if (uplink_send(s->clients[p].uplink, s->frame, n)) {
				c->tx_frames++;
				c->tx_bytes += n;
			} else {
				c->drops[DROP_EGRESS]++;
			}
		} else if (n && s->clients[p].nat) {
			nat_input(s->clients[p].nat, s->frame, n);
			c->tx_frames++;
			c->tx_bytes += n;
		} else if (n && s->clients[p].fd >= 0 && stream_queue_frame(s->clients[p].stream, s->frame, n)) {
			c->tx_frames++;
			c->tx_bytes += n;
		} else {
			c->drops[DROP_EGRESS]++;
		}
	}
}

static void read_client(struct sw_state *s, int port)
{
	struct client *c = &s->clients[port];
	size_t room;
	uint8_t *space = stream_rx_space(c->stream, &room);
	ssize_t r = room ? recv(c->fd, space, room, MSG_DONTWAIT) : 0;
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		close_client(s, port);
		return;
	}
	if (r < 0)
		return;
	stream_rx_added(c->stream, (size_t)r);
	const uint8_t *frame;
	size_t len;
	while ((frame = stream_next_frame(c->stream, &len))) {
		forward(s, port, frame, len);
		stream_frame_done(c->stream);
		if (s->clients[port].fd < 0)
			return;
	}
	if (c->stream->broken) {
		s->core.counters[port].drops[DROP_MALFORMED]++;
		log_warn("port %s: a frame length no frame can have; disconnected",
			 s->core.ports[port].name);
		close_client(s, port);
	}
}

/* Packets from a VXLAN uplink, as many as are waiting (at most a batch,
 * so that the other ports are served too). */
static void read_vxlan(struct sw_state *s, int port)
{
	struct vxlan *vx = s->clients[port].vxlan;
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		ssize_t r = recvfrom(vx->fd, s->packet, sizeof(s->packet), MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&from, &from_len);
		if (r < 0)
			return;
		if ((size_t)r > sizeof(s->packet)) { /* cut short: not forwarded */
			vx->bad_packets++;
			continue;
		}
		size_t len;
		const uint8_t *frame = vxlan_from_remote(vx, &from)
					       ? vxlan_frame(vx, s->packet, (size_t)r, &len) : NULL;
		if (!frame) {
			vx->bad_packets++;
			continue;
		}
		forward(s, port, frame, len);
	}
}

/* Frames from a network interface, as many as are waiting (at most a
 * batch). */
static void read_uplink(struct sw_state *s, int port)
{
	struct uplink *u = s->clients[port].uplink;
	for (int k = 0; k < 64; k++) {
		ssize_t r = uplink_recv(u, s->frame, sizeof(s->frame));
		if (r < 0)
			return;
		if (r > 0)
			forward(s, port, s->frame, (size_t)r);
	}
}

/* --- control API ---------------------------------------------------------- */

static const char *drop_names[DROP_REASONS] = {
	[DROP_MALFORMED] = "malformed", [DROP_SPOOFED] = "spoofed", [DROP_MAC_LIMIT] = "mac_limit",
	[DROP_VLAN] = "vlan", [DROP_CONTROL] = "control", [DROP_SOURCE] = "bad_source",
	[DROP_EGRESS] = "egress_full",
};

static json_object *mac_string(const uint8_t *m)
{
	char text[18];
	snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return json_object_new_string(text);
}

static json_object *status(struct sw_state *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "kind", json_object_new_string("switch"));
	json_object *ports = json_object_new_array();
	for (int p = 0; p < SWITCH_MAX_PORTS; p++) {
		if (!s->core.used[p])
			continue;
		const struct switch_port_config *cfg = &s->core.ports[p];
		const struct switch_counters *c = &s->core.counters[p];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(cfg->name));
		json_object_object_add(j, "policy", json_object_new_string(switch_policy_name(cfg->policy)));
		if (cfg->has_mac)
			json_object_object_add(j, "mac", mac_string(cfg->mac));
		json_object_object_add(j, "vlan", json_object_new_int(cfg->vlan));
		json_object_object_add(j, "trunk", json_object_new_boolean(cfg->trunk));
		json_object_object_add(j, "rx_frames", json_object_new_int64((int64_t)c->rx_frames));
		json_object_object_add(j, "tx_frames", json_object_new_int64((int64_t)c->tx_frames));
		json_object_object_add(j, "rx_bytes", json_object_new_int64((int64_t)c->rx_bytes));
		json_object_object_add(j, "tx_bytes", json_object_new_int64((int64_t)c->tx_bytes));
		json_object_object_add(j, "flaps", json_object_new_int64((int64_t)c->flaps));
		json_object_object_add(j, "learned", json_object_new_int64((int64_t)c->learned));
		json_object *drops = json_object_new_object();
		for (int r = 0; r < DROP_REASONS; r++)
			json_object_object_add(drops, drop_names[r], json_object_new_int64((int64_t)c->drops[r]));
		json_object_object_add(j, "drops", drops);
		if (s->clients[p].vxlan)
			json_object_object_add(j, "vxlan_bad_packets",
					       json_object_new_int64((int64_t)s->clients[p].vxlan->bad_packets));
		if (s->clients[p].uplink) {
			json_object_object_add(j, "interface", json_object_new_string(s->clients[p].uplink->ifname));
			json_object_object_add(j, "uplink_bad_packets",
					       json_object_new_int64((int64_t)s->clients[p].uplink->bad_packets));
			json_object_object_add(j, "uplink_tagged_dropped",
					       json_object_new_int64((int64_t)s->clients[p].uplink->tagged_dropped));
		}
		json_object_array_add(ports, j);
	}
	json_object_object_add(o, "ports", ports);
	json_object *macs = json_object_new_array();
	int64_t now = monotonic_ms();
	for (int i = 0; i < SWITCH_FDB_SIZE; i++) {
		const struct switch_fdb_entry *e = &s->core.fdb[i];
		if (e->port == SWITCH_NO_PORT)
			continue;
		json_object *j = json_object_new_object();
		json_object_object_add(j, "mac", mac_string(e->mac));
		json_object_object_add(j, "vlan", json_object_new_int(e->vlan));
		json_object_object_add(j, "port", json_object_new_string(s->core.ports[e->port].name));
		json_object_object_add(j, "age_ms", json_object_new_int64(now - e->seen_ms));
		json_object_array_add(macs, j);
	}
	json_object_object_add(o, "macs", macs);
	if (s->nat_port >= 0 && s->clients[s->nat_port].nat)
		json_object_object_add(o, "nat", nat_status(s->clients[s->nat_port].nat));
	return o;
}

static void api_drop(struct api_client *a)
{
	close(a->fd);
	a->fd = -1;
	free(a->out);
	a->out = NULL;
	a->len = a->out_len = a->out_sent = 0;
}

static void api_flush(struct api_client *a)
{
	if (!a->out)
		return;
	ssize_t w = send(a->fd, a->out + a->out_sent, a->out_len - a->out_sent,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		api_drop(a);
		return;
	}
	if (w > 0)
		a->out_sent += (size_t)w;
	if (a->out_sent == a->out_len) {
		free(a->out);
		a->out = NULL;
	}
}

static json_object *api_error(const char *text)
{
	json_object *reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(0));
	json_object_object_add(reply, "error", json_object_new_string(text));
	return reply;
}

/* {"command": "set-port", "port": NAME, "policy": P, "mac": MAC,
 * "mac_limit": N}: a port's policy changed at the switch, for the client
 * connected to it now (whose learned MACs are forgotten and relearned
 * under the new policy) and, for a named port, for its next clients. */
static json_object *set_port(struct sw_state *s, json_object *req)
{
	json_object *v;
	if (!json_object_object_get_ex(req, "port", &v) || !json_object_is_type(v, json_type_string))
		return api_error("set-port: \"port\" (a port's name) is required");
	const char *name = json_object_get_string(v);
	int port = -1, named = -1;
	for (int i = 0; i < s->nnamed; i++)
		if (!strcmp(s->named[i].cfg.name, name))
			named = i, port = s->named[i].port;
	for (int p = 0; named < 0 && p < SWITCH_MAX_PORTS; p++)
		if (s->core.used[p] && !strcmp(s->core.ports[p].name, name))
			port = p;
	if (named < 0 && port < 0)
		return api_error("set-port: no port of that name");
	if (port >= 0 && (s->clients[port].nat || s->clients[port].vxlan || s->clients[port].uplink))
		return api_error("set-port: an uplink's policy is the switch's own");
	struct switch_port_config cfg = named >= 0 ? s->named[named].cfg : s->core.ports[port];
	if (port >= 0) { /* the MAC a strict port pinned on its first frame stays */
		cfg.has_mac = s->core.ports[port].has_mac;
		memcpy(cfg.mac, s->core.ports[port].mac, 6);
	}
	if (json_object_object_get_ex(req, "policy", &v)) {
		int policy = json_object_is_type(v, json_type_string) ? switch_policy_parse(json_object_get_string(v)) : -1;
		if (policy < 0)
			return api_error("set-port: \"policy\" is strict, learn or promisc");
		cfg.policy = (enum switch_policy)policy;
	}
	if (json_object_object_get_ex(req, "mac", &v)) {
		if (json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), "none")) {
			cfg.has_mac = false; /* strict: the next MAC it sends from */
		} else if (!json_object_is_type(v, json_type_string) ||
			   parse_mac(json_object_get_string(v), cfg.mac) < 0 || (cfg.mac[0] & 1)) {
			return api_error("set-port: \"mac\" is a unicast MAC address, or \"none\"");
		} else {
			cfg.has_mac = true;
		}
	}
	if (json_object_object_get_ex(req, "mac_limit", &v)) {
		int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
		if (n < 1 || n > 4096)
			return api_error("set-port: \"mac_limit\" is 1 to 4096");
		cfg.mac_limit = (unsigned)n;
	}
	if (named >= 0)
		s->named[named].cfg = cfg;
	if (port >= 0)
		switch_port_configure(&s->core, port, &cfg);
	log_info("switch: port %s: policy %s", name, switch_policy_name(cfg.policy));
	json_object *reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(1));
	return reply;
}

static void api_answer(struct sw_state *s, struct api_client *a, const char *line)
{
	json_object *req = json_tokener_parse(line), *cmd;
	json_object *reply;
	const char *command = req && json_object_is_type(req, json_type_object) &&
				      json_object_object_get_ex(req, "command", &cmd) &&
				      json_object_is_type(cmd, json_type_string)
			      ? json_object_get_string(cmd) : "";
	if (!strcmp(command, "status"))
		reply = status(s);
	else if (!strcmp(command, "set-port"))
		reply = set_port(s, req);
	else
		reply = api_error("expected {\"command\": \"status\"} or {\"command\": \"set-port\", "
				  "\"port\": NAME, \"policy\": P, \"mac\": MAC, \"mac_limit\": N}");
	json_object_put(req);
	const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(text);
	/* What the socket does not take at once waits here (a large MAC
	 * table); one reply at a time, so a client cannot pile them up. */
	free(a->out);
	a->out = malloc(len + 1);
	if (a->out) {
		memcpy(a->out, text, len);
		a->out[len] = '\n';
		a->out_len = len + 1;
		a->out_sent = 0;
	}
	json_object_put(reply);
	api_flush(a);
}

static void api_input(struct sw_state *s, struct api_client *a)
{
	if (a->out) /* answer the last request before reading the next */
		return;
	ssize_t r = recv(a->fd, a->buf + a->len, sizeof(a->buf) - 1 - a->len, MSG_DONTWAIT);
	if (r <= 0) {
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			api_drop(a);
		return;
	}
	a->len += (size_t)r;
	char *nl;
	while (a->fd >= 0 && !a->out && (nl = memchr(a->buf, '\n', a->len))) {
		*nl = 0;
		api_answer(s, a, a->buf);
		size_t used = (size_t)(nl + 1 - a->buf);
		memmove(a->buf, nl + 1, a->len - used);
		a->len -= used;
	}
	if (a->fd >= 0 && a->len == sizeof(a->buf) - 1)
		api_drop(a); /* a line longer than any request */
}

/* --- main loop ------------------------------------------------------------ */

static int run(struct sw_state *s)
{
	int64_t next_age = monotonic_ms() + 1000;
	for (;;) {
		struct pollfd fds[3 + MAX_NAMED + API_CLIENTS + SWITCH_MAX_PORTS];
		int kind[sizeof(fds) / sizeof(fds[0])], index[sizeof(fds) / sizeof(fds[0])];
		int n = 0;
#define WATCH(f, ev, k, i) (fds[n] = (struct pollfd){ .fd = (f), .events = (ev) }, kind[n] = (k), index[n] = (i), n++)
		WATCH(s->sig_fd, POLLIN, 0, 0);
		WATCH(s->listen_fd, POLLIN, 1, -1);
		if (s->api_fd >= 0)
			WATCH(s->api_fd, POLLIN, 2, 0);
		for (int i = 0; i < s->nnamed; i++)
			WATCH(s->named[i].listen_fd, POLLIN, 1, i);
		for (int i = 0; i < API_CLIENTS; i++)
			if (s->api[i].fd >= 0)
				WATCH(s->api[i].fd, s->api[i].out ? POLLOUT : POLLIN, 3, i);
		for (int p = 0; p < SWITCH_MAX_PORTS; p++) {
			if (s->clients[p].fd < 0)
				continue;
			if (s->clients[p].vxlan || s->clients[p].uplink) {
				WATCH(s->clients[p].fd, POLLIN, s->clients[p].vxlan ? 5 : 6, p);
				continue;
			}
			size_t pending;
			stream_tx_pending(s->clients[p].stream, &pending);
			WATCH(s->clients[p].fd, POLLIN | (pending ? POLLOUT : 0), 4, p);
		}
#undef WATCH
		int64_t now = monotonic_ms();
		int timeout = (int)(next_age > now ? next_age - now : 0);
		/* The NAT's sockets (as many as its guests' connections) follow
		 * the switch's own in one array. */
		struct pollfd *nat_fds = NULL;
		int nat_n = 0;
		struct nat *nat = s->nat_port >= 0 ? s->clients[s->nat_port].nat : NULL;
		if (nat)
			nat_prepare(nat, &nat_fds, &nat_n, &timeout);
		if ((size_t)(n + nat_n) > s->pollv_cap) {
			struct pollfd *v = realloc(s->pollv, (size_t)(n + nat_n) * sizeof(*v));
			if (!v) {
				log_error("switch: out of memory");
				return 1;
			}
			s->pollv = v;
			s->pollv_cap = (size_t)(n + nat_n);
		}
		memcpy(s->pollv, fds, (size_t)n * sizeof(*fds));
		if (nat_n)
			memcpy(s->pollv + n, nat_fds, (size_t)nat_n * sizeof(*nat_fds));
		int ready = poll(s->pollv, (nfds_t)(n + nat_n), timeout);
		if (ready < 0 && errno != EINTR) {
			log_error("switch: poll: %s", strerror(errno));
			return 1;
		}
		memcpy(fds, s->pollv, (size_t)n * sizeof(*fds));
		if (nat) {
			if (nat_n)
				memcpy(nat_fds, s->pollv + n, (size_t)nat_n * sizeof(*nat_fds));
			nat_dispatch(nat, ready < 0);
		}
		for (int i = 0; i < n; i++) {
			if (!fds[i].revents)
				continue;
			switch (kind[i]) {
			case 0:
				log_info("switch: stopping");
				return 0;
			case 1:
				accept_client(s, fds[i].fd, index[i]);
				break;
			case 2: {
				/* Taken even when every slot is busy (then closed at
				 * once): a pending connection left in the backlog
				 * would wake poll for ever. */
				int fd = accept4(s->api_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				int k = 0;
				while (k < API_CLIENTS && s->api[k].fd >= 0)
					k++;
				if (fd >= 0 && k == API_CLIENTS)
					close(fd);
				else if (fd >= 0)
					s->api[k] = (struct api_client){ .fd = fd };
				break;
			}
			case 3:
				if (fds[i].revents & POLLOUT)
					api_flush(&s->api[index[i]]);
				else
					api_input(s, &s->api[index[i]]);
				break;
			case 4:
				/* a port closed earlier in this round may be reused: check it is the same fd */
				if (s->clients[index[i]].fd != fds[i].fd)
					break;
				if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
					read_client(s, index[i]);
				if (s->clients[index[i]].fd == fds[i].fd && (fds[i].revents & POLLOUT))
					flush_client(s, index[i]);
				break;
			case 5:
				read_vxlan(s, index[i]);
				break;
			case 6:
				read_uplink(s, index[i]);
				break;
			}
		}
		/* What the NAT sent (libslirp's answers, DHCP replies) goes
		 * through the switch now, not from inside its callbacks. */
		if (s->nat_port >= 0 && s->clients[s->nat_port].nat) {
			struct nat *nt = s->clients[s->nat_port].nat;
			const uint8_t *frame;
			size_t len;
			while ((frame = nat_output(nt, &len))) {
				forward(s, s->nat_port, frame, len);
				nat_output_done(nt);
			}
		}
		/* Frames queued this round go out now where the socket takes them. */
		for (int p = 0; p < SWITCH_MAX_PORTS; p++)
			if (s->clients[p].fd >= 0 && s->clients[p].stream)
				flush_client(s, p);
		if (monotonic_ms() >= next_age) {
			for (int i = 0; i < s->ncaptures; i++) /* readable while it runs */
				if (s->captures[i].pcap.f)
					fflush(s->captures[i].pcap.f);
			switch_age(&s->core, monotonic_ms());
			next_age = monotonic_ms() + 1000;
		}
	}
}

int cmd_switch(int argc, char **argv)
{
	struct sw_state *s = calloc(1, sizeof(*s));
	if (!s) {
		log_error("switch: out of memory");
		return 1;
	}
	switch_core_init(&s->core);
	s->anon.policy = SWITCH_LEARN;
	s->anon.vlan = 1;
	s->listen_fd = s->api_fd = s->sig_fd = s->nat_port = -1;
	for (int p = 0; p < SWITCH_MAX_PORTS; p++)
		s->clients[p] = (struct client){ .fd = -1, .named = -1 };
	for (int i = 0; i < API_CLIENTS; i++)
		s->api[i].fd = -1;
	const char *path = NULL, *api = NULL;
	const char *port_specs[MAX_NAMED];
	const char *vxlan_specs[MAX_VXLAN];
	const char *uplink_specs[MAX_UPLINKS];
	int status = CLI_EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			status = 0;
			goto out;
		} else if (!strcmp(a, "--forward-control")) {
			s->core.forward_control = true;
			continue;
		} else if (!strcmp(a, "--nat")) {
			s->nat_on = true;
			continue;
		} else if (!strncmp(a, "--nat=", 6)) {
			if (nat_parse_subnet("--nat", a + 6, &s->nat_cfg) < 0)
				goto out;
			s->nat_on = true;
			continue;
		} else if (!strcmp(a, "--nat-restricted")) {
			s->nat_on = s->nat_cfg.restricted = true;
			continue;
		} else if (!v) {
			log_error("switch: %s: %s", a, a[0] == '-' ? "needs a value" : "unexpected argument");
			goto out;
		}
		i++;
		if (!strcmp(a, "--socket")) {
			path = v;
		} else if (!strcmp(a, "--api-socket")) {
			api = v;
		} else if (!strcmp(a, "--policy")) {
			if (switch_policy_parse(v) < 0) {
				log_error("--policy %s: expected learn, strict or promisc", v);
				goto out;
			}
			s->anon.policy = (enum switch_policy)switch_policy_parse(v);
		} else if (!strcmp(a, "--mac-limit")) {
			if (parse_uint(v, 1, 4096, &n) < 0) {
				log_error("--mac-limit %s: expected 1 to 4096", v);
				goto out;
			}
			s->anon.mac_limit = (unsigned)n;
		} else if (!strcmp(a, "--aging")) {
			if (parse_uint(v, 1, 86400, &n) < 0) {
				log_error("--aging %s: expected seconds from 1 to 86400", v);
				goto out;
			}
			s->core.aging_ms = (int64_t)n * 1000;
		} else if (!strcmp(a, "--capture")) {
			if (s->ncaptures == MAX_CAPTURES) {
				log_error("--capture %s: at most %d captures", v, MAX_CAPTURES);
				goto out;
			}
			char file[4096];
			snprintf(file, sizeof(file), "%s", v);
			char *comma = strchr(file, ',');
			char *port = s->captures[s->ncaptures].port;
			if (comma) {
				*comma = 0;
				if (strncmp(comma + 1, "port=", 5) || !comma[6] ||
				    strlen(comma + 6) >= sizeof(s->captures[0].port)) {
					log_error("--capture %s: expected FILE[,port=NAME]", v);
					goto out;
				}
				strcpy(port, comma + 6);
			}
			if (pcap_open(&s->captures[s->ncaptures].pcap, file) < 0) {
				log_error("--capture %s: %s", file, strerror(errno));
				goto out;
			}
			s->ncaptures++;
		} else if (!strcmp(a, "--vxlan")) {
			if (s->nvxlan == MAX_VXLAN) {
				log_error("--vxlan %s: at most %d VXLAN uplinks", v, MAX_VXLAN);
				goto out;
			}
			vxlan_specs[s->nvxlan++] = v;
		} else if (!strcmp(a, "--uplink")) {
			if (s->nuplinks == MAX_UPLINKS) {
				log_error("--uplink %s: at most %d interface uplinks", v, MAX_UPLINKS);
				goto out;
			}
			uplink_specs[s->nuplinks++] = v;
		} else if (!strcmp(a, "--forward")) {
			if (s->nat_cfg.nforwards == NAT_MAX_FORWARDS) {
				log_error("--forward %s: at most %d forwards", v, NAT_MAX_FORWARDS);
				goto out;
			}
			if (nat_parse_forward("--forward", v, &s->nat_cfg.forwards[s->nat_cfg.nforwards]) < 0)
				goto out;
			s->nat_cfg.nforwards++;
		} else if (!strcmp(a, "--dhcp-host")) {
			if (s->nat_cfg.nreservations == NAT_MAX_RESERVATIONS) {
				log_error("--dhcp-host %s: at most %d reservations", v, NAT_MAX_RESERVATIONS);
				goto out;
			}
			if (nat_parse_reservation("--dhcp-host", v,
						  &s->nat_cfg.reservations[s->nat_cfg.nreservations]) < 0)
				goto out;
			s->nat_cfg.nreservations++;
		} else if (!strcmp(a, "--port")) {
			if (s->nnamed == MAX_NAMED) {
				log_error("--port %s: at most %d named ports", v, MAX_NAMED);
				goto out;
			}
			port_specs[s->nnamed++] = v;
		} else {
			log_error("switch: unknown option '%s' (see nestvm switch --help)", a);
			goto out;
		}
	}
	if (!path) {
		log_error("switch: --socket PATH is required");
		goto out;
	}
	if (s->nat_cfg.nforwards && !s->nat_on) {
		log_error("--forward: needs --nat (forwards go through the NAT uplink)");
		goto out;
	}
	if (s->nat_cfg.nreservations && !s->nat_on) {
		log_error("--dhcp-host: needs --nat (the DHCP server is the NAT's)");
		goto out;
	}
	if (s->nat_on && !s->nat_cfg.prefix && nat_parse_subnet("--nat", NAT_DEFAULT_SUBNET, &s->nat_cfg) < 0)
		goto out;
	for (int i = 0; i < s->nnamed; i++) {
		struct named_port *np = &s->named[i];
		np->listen_fd = -1;
		np->port = -1;
		if (parse_port(port_specs[i], &np->cfg, &s->anon) < 0)
			goto out;
		for (int k = 0; k < i; k++)
			if (!strcmp(s->named[k].cfg.name, np->cfg.name)) {
				log_error("--port %s: the name is already used", port_specs[i]);
				goto out;
			}
		char name[sizeof(np->cfg.name)];
		memcpy(name, np->cfg.name, sizeof(name));
		if (snprintf(np->path, sizeof(np->path), "%s.%s", path, name) >= (int)sizeof(np->path)) {
			log_error("--port %s: %s.%s is too long for a socket path", port_specs[i], path,
				  np->cfg.name);
			goto out;
		}
	}
	status = 1;
	if ((s->listen_fd = unix_listen("--socket", path)) < 0)
		goto out;
	for (int i = 0; i < s->nnamed; i++)
		if ((s->named[i].listen_fd = unix_listen("--port", s->named[i].path)) < 0)
			goto out;
	if (api && (s->api_fd = unix_listen("--api-socket", api)) < 0)
		goto out;
	for (int i = 0; i < s->nvxlan; i++) {
		/* An uplink carries a whole remote segment: learn, with room for
		 * every MAC the table holds. */
		struct switch_port_config cfg = { .policy = SWITCH_LEARN, .mac_limit = SWITCH_FDB_SIZE,
						  .vlan = 1 };
		snprintf(cfg.name, sizeof(cfg.name), "vxlan%d", i);
		if (vxlan_open(&s->vxlans[i], vxlan_specs[i]) < 0)
			goto out;
		int port = switch_port_add(&s->core, &cfg);
		if (port < 0) {
			vxlan_close(&s->vxlans[i]);
			goto out;
		}
		s->clients[port] = (struct client){ .fd = s->vxlans[i].fd, .named = -1,
						    .vxlan = &s->vxlans[i] };
	}
	for (int i = 0; i < s->nuplinks; i++) {
		/* Like a VXLAN uplink: a whole segment behind one port. */
		struct switch_port_config cfg = { .policy = SWITCH_LEARN, .mac_limit = SWITCH_FDB_SIZE,
						  .vlan = 1 };
		snprintf(cfg.name, sizeof(cfg.name), "uplink%d", i);
		if (uplink_open(&s->uplinks[i], uplink_specs[i]) < 0)
			goto out;
		int port = switch_port_add(&s->core, &cfg);
		if (port < 0) {
			uplink_close(&s->uplinks[i]);
			goto out;
		}
		s->clients[port] = (struct client){ .fd = s->uplinks[i].fd, .named = -1,
						    .uplink = &s->uplinks[i] };
	}
	if (s->nat_on) {
		struct nat *nat = nat_open(&s->nat_cfg);
		if (!nat)
			goto out;
		/* libslirp sends from one MAC per address it answers for (the
		 * gateway's and the DNS forwarder's): learn, with room for those. */
		struct switch_port_config cfg = { .name = "nat", .policy = SWITCH_LEARN, .has_mac = true,
						  .mac_limit = 4, .vlan = 1 };
		nat_mac(nat, cfg.mac);
		int port = switch_port_add(&s->core, &cfg);
		if (port < 0) {
			nat_close(nat);
			goto out;
		}
		s->clients[port] = (struct client){ .fd = -2, .named = -1, .nat = nat };
		s->nat_port = port;
	}
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	sigprocmask(SIG_BLOCK, &term, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &term, SFD_CLOEXEC);
	/* Frames from any client are parsed here: from now on only the calls
	 * a switch makes (util/sandbox.c). */
	if (sandbox_check() < 0)
		goto out;
	sandbox_enter(s->nat_on ? SANDBOX_SWITCH_NAT : SANDBOX_SWITCH);
	log_info("switch: listening on %s (%s ports)%s", path, switch_policy_name(s->anon.policy),
		 s->nnamed ? ", and named ports beside it" : "");
	status = s->sig_fd < 0 ? 1 : run(s);
out:
	for (int p = 0; p < SWITCH_MAX_PORTS; p++)
		close_client(s, p);
	for (int i = 0; i < API_CLIENTS; i++)
		if (s->api[i].fd >= 0)
			api_drop(&s->api[i]);
	for (int i = 0; i < s->nnamed; i++)
		if (s->named[i].listen_fd >= 0) {
			close(s->named[i].listen_fd);
			unlink(s->named[i].path);
		}
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(path);
	}
	if (s->api_fd >= 0) {
		close(s->api_fd);
		unlink(api);
	}
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	for (int i = 0; i < s->ncaptures; i++)
		pcap_close(&s->captures[i].pcap);
	free(s->pollv);
	free(s);
	return status;
}
