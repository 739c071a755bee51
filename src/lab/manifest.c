#define _GNU_SOURCE
#include "lab/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "net/dhcp.h"
#include "net/nat.h"
#include "net/vxlan.h"
#include "util/log.h"
#include "util/parse.h"

#define MAX_MANIFEST_BYTES (1 << 20)

struct loader {
	struct lab_manifest *m;
	yaml_document_t doc;
	bool failed;
	/* Where each node's entry came from, for messages about it. */
	yaml_node_t *node_at[LAB_MAX_NODES];
	yaml_node_t *dep_at[LAB_MAX_NODES][LAB_MAX_DEPS];
	/* Forwards name nodes, which come later: resolved after them. */
	yaml_node_t *forward_at[LAB_MAX_NETWORKS][LAB_MAX_FORWARDS];
	char forward_node[LAB_MAX_NETWORKS][LAB_MAX_FORWARDS][LAB_NAME_MAX + 1];
	yaml_node_t *nic_ip_at[LAB_MAX_NODES][LAB_MAX_NICS];
	yaml_node_t *nic_mac_at[LAB_MAX_NODES][LAB_MAX_NICS];
	yaml_node_t *health_tcp_at[LAB_MAX_NODES];
	yaml_node_t *inner_deps[LAB_MAX_NODES]; /* an inner node's depends_on: */
	yaml_node_t *defaults; /* the defaults: mapping, applied to every node first */
};

static void fail_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
	if (l->failed)
		return; /* the first error is the one to fix */
	l->failed = true;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%zu:%zu: %s", l->m->path, n ? n->start_mark.line + 1 : 1,
		  n ? n->start_mark.column + 1 : 1, msg);
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *node(struct loader *l, int id)
{
	return yaml_document_get_node(&l->doc, id);
}

/* Copies a scalar that must fit; `what` names it in the message. */
static void string_value(struct loader *l, yaml_node_t *v, const char *what, char *out, size_t len)
{
	const char *s = scalar(v);
	if (!s) {
		fail_at(l, v, "%s: expected a string", what);
		return;
	}
	if (strlen(s) >= len) {
		fail_at(l, v, "%s: longer than %zu characters", what, len - 1);
		return;
	}
	strcpy(out, s);
}

static bool bool_value(struct loader *l, yaml_node_t *v, const char *what)
{
	const char *s = scalar(v);
	if (s && (!strcmp(s, "true") || !strcmp(s, "yes")))
		return true;
	if (s && (!strcmp(s, "false") || !strcmp(s, "no")))
		return false;
	fail_at(l, v, "%s: expected true or false", what);
	return false;
}

/* A name a node, template or network may have: it becomes a hostname and
 * part of file names. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LAB_NAME_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

#define FOR_PAIRS(l, map, k, v)                                                          \
	for (yaml_node_pair_t *p_ = (map)->data.mapping.pairs.start;                      \
	     p_ < (map)->data.mapping.pairs.top && !(l)->failed &&                        \
	     ((k) = node(l, p_->key), (v) = node(l, p_->value), 1);                       \
	     p_++)

/* Each item of a sequence, until the loader has failed. */
#define FOR_ITEMS(l, seq, item)                                                           \
	for (yaml_node_item_t *i_ = (seq)->data.sequence.items.start;                     \
	     i_ < (seq)->data.sequence.items.top && !(l)->failed &&                       \
	     ((item) = node(l, *i_), 1);                                                  \
	     i_++)

/* A sequence, or an error with `message` (which says what list is wanted). */
static bool is_list(struct loader *l, yaml_node_t *n, const char *message)
{
	if (n && n->type == YAML_SEQUENCE_NODE)
		return true;
	fail_at(l, n, "%s", message);
	return false;
}

static bool is_map(struct loader *l, yaml_node_t *n, const char *what)
{
	if (n && n->type == YAML_MAPPING_NODE)
		return true;
	fail_at(l, n, "%s: expected a mapping (key: value, ...)", what);
	return false;
}

/* Duplicate keys are legal to libyaml and an error here: the second would
 * silently replace the first. */
static bool duplicate_key(struct loader *l, yaml_node_t *map, yaml_node_t *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(l, p->key);
		if (k == key)
			return false;
		if (scalar(k) && scalar(key) && !strcmp(scalar(k), scalar(key))) {
			fail_at(l, key, "'%s' appears twice", scalar(key));
			return true;
		}
	}
	return false;
}

static int find(const char *name, const void *items, size_t stride, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp((const char *)items + (size_t)i * stride, name))
			return i;
	return -1;
}

/* The name under which a template or network is declared: valid, and
 * room for one more of its kind (count of max); NULL after the error. */
static const char *declared_name(struct loader *l, yaml_node_t *key, const char *kind, int count,
				 int max)
{
	const char *name = scalar(key);
	if (!name || !valid_name(name)) {
		fail_at(l, key, "%s name '%s': use a-z, 0-9 and '-', up to %d characters", kind,
			name ? name : "?", LAB_NAME_MAX);
		return NULL;
	}
	if (count == max) {
		fail_at(l, key, "more than %d %ss", max, kind);
		return NULL;
	}
	return name;
}

static void load_template(struct loader *l, yaml_node_t *key, yaml_node_t *map)
{
	struct lab_manifest *m = l->m;
	const char *name = declared_name(l, key, "template", m->ntemplates, LAB_MAX_TEMPLATES);
	if (!name || !is_map(l, map, name))
		return;
	struct lab_template *t = &m->templates[m->ntemplates++];
	strcpy(t->name, name);
	yaml_node_t *k, *v;
	FOR_PAIRS(l, map, k, v) {
		const char *f = scalar(k);
		char *path = !f ? NULL : !strcmp(f, "kernel") ? t->kernel : !strcmp(f, "initrd") ? t->initrd
			   : !strcmp(f, "disk") ? t->disk : NULL;
		if (duplicate_key(l, map, k))
			break;
		if (path) {
			string_value(l, v, f, path, PATH_MAX);
			if (!l->failed && path[0] != '/')
				fail_at(l, v, "%s: give an absolute path", f);
		} else if (f && !strcmp(f, "cmdline")) {
			string_value(l, v, f, t->cmdline, sizeof(t->cmdline));
		} else if (f && !strcmp(f, "identity")) {
			const char *s = scalar(v);
			if (s && (!strcmp(s, "cloud-init") || !strcmp(s, "smbios")))
				t->cloud_init = !strcmp(s, "cloud-init");
			else
				fail_at(l, v, "identity: expected cloud-init or smbios");
		} else {
			fail_at(l, k, "unknown key '%s' in template %s (expected kernel, initrd, disk, "
				"cmdline, identity)", f ? f : "?", name);
		}
	}
	if (!l->failed && !t->kernel[0])
		fail_at(l, key, "template %s has no kernel", name);
}

/* "A.B.C.D/N", N from 8 to 27, no host bits set. */
static int parse_subnet(const char *s, uint32_t *net, unsigned *prefix)
{
	char copy[32], *slash;
	uint64_t p;
	if (snprintf(copy, sizeof(copy), "%s", s) >= (int)sizeof(copy) || !(slash = strchr(copy, '/')))
		return -1;
	*slash = 0;
	if (parse_ipv4(copy, net) < 0 || parse_uint(slash + 1, 8, 27, &p) < 0 ||
	    (*net & ~(~0u << (32 - p))))
		return -1;
	*prefix = (unsigned)p;
	return 0;
}

void lab_network_pool(const struct lab_network *n, uint32_t *first, unsigned *count)
{
	uint32_t mask = ~0u << (32 - n->prefix), broadcast = n->net | ~mask;
	*first = n->net + NAT_DHCP_FIRST_HOST;
	uint32_t size = broadcast - *first;
	*count = size > DHCP_MAX_POOL ? DHCP_MAX_POOL : size;
}

static uint16_t port_value(struct loader *l, yaml_node_t *v, const char *what)
{
	const char *s = scalar(v);
	uint64_t p;
	if (!s || parse_uint(s, 1, 65535, &p) < 0) {
		fail_at(l, v, "%s: expected a port from 1 to 65535", what);
		return 0;
	}
	return (uint16_t)p;
}

/* forwards: [{node: N, port: P, host_port: H, host_addr: A, proto: tcp|udp}] */
static void load_forwards(struct loader *l, struct lab_network *n, yaml_node_t *seq)
{
	int ni = (int)(n - l->m->networks);
	if (!is_list(l, seq, "forwards: expected a list such as [{node: a, port: 22, host_port: 2222}]"))
		return;
	yaml_node_t *map;
	FOR_ITEMS(l, seq, map) {
		if (n->nforwards == LAB_MAX_FORWARDS) {
			fail_at(l, map, "more than %d forwards on network %s", LAB_MAX_FORWARDS, n->name);
			return;
		}
		if (!is_map(l, map, "a forward"))
			return;
		int fi = n->nforwards++;
		struct lab_forward *fw = &n->forwards[fi];
		fw->node = -1;
		fw->host_addr = 0x7f000001; /* 127.0.0.1 */
		l->forward_at[ni][fi] = map;
		yaml_node_t *k, *v;
		FOR_PAIRS(l, map, k, v) {
			const char *f = scalar(k);
			if (duplicate_key(l, map, k))
				break;
			if (f && !strcmp(f, "node")) {
				string_value(l, v, "node", l->forward_node[ni][fi], LAB_NAME_MAX + 1);
				l->forward_at[ni][fi] = v;
			} else if (f && !strcmp(f, "port")) {
				fw->port = port_value(l, v, "port");
			} else if (f && !strcmp(f, "host_port")) {
				fw->host_port = port_value(l, v, "host_port");
			} else if (f && !strcmp(f, "host_addr")) {
				const char *s = scalar(v);
				if (!s || parse_ipv4(s, &fw->host_addr) < 0)
					fail_at(l, v, "host_addr: expected an IPv4 address such as 127.0.0.1");
			} else if (f && !strcmp(f, "proto")) {
				const char *s = scalar(v);
				if (s && (!strcmp(s, "tcp") || !strcmp(s, "udp")))
					fw->udp = !strcmp(s, "udp");
				else
					fail_at(l, v, "proto: expected tcp or udp");
			} else {
				fail_at(l, k, "unknown key '%s' in a forward (expected node, port, host_port, "
					"host_addr, proto)", f ? f : "?");
			}
		}
		if (!l->failed && (!l->forward_node[ni][fi][0] || !fw->port || !fw->host_port))
			fail_at(l, map, "a forward needs node, port and host_port");
	}
}

/* vxlan: {remote: ADDR:PORT, vni: N, local: ADDR:PORT}: the network's
 * switch joins another over VXLAN (nestvm switch --vxlan). */
static void load_vxlan(struct loader *l, struct lab_network *n, yaml_node_t *map)
{
	if (!is_map(l, map, "vxlan"))
		return;
	char remote[64] = "", local[64] = "";
	uint64_t vni = 0;
	bool have_vni = false;
	yaml_node_t *k, *v;
	FOR_PAIRS(l, map, k, v) {
		const char *f = scalar(k);
		struct sockaddr_storage sa;
		socklen_t len;
		if (duplicate_key(l, map, k))
			break;
		if (f && (!strcmp(f, "remote") || !strcmp(f, "local"))) {
			char *out = !strcmp(f, "remote") ? remote : local;
			const char *s = scalar(v);
			if (!s || strlen(s) >= sizeof(remote) || vxlan_parse_endpoint(s, &sa, &len) < 0)
				fail_at(l, v, "vxlan: %s: expected ADDR:PORT with a numeric address, such as "
					"192.0.2.7:4789 ([ADDR]:PORT for IPv6)", f);
			else
				strcpy(out, s);
		} else if (f && !strcmp(f, "vni")) {
			const char *s = scalar(v);
			if (!s || parse_uint(s, 0, (1u << 24) - 1, &vni) < 0)
				fail_at(l, v, "vxlan: vni: expected a number from 0 to 16777215");
			have_vni = true;
		} else {
			fail_at(l, k, "unknown key '%s' in vxlan (expected remote, vni, local)", f ? f : "?");
		}
	}
	if (!l->failed && (!remote[0] || !have_vni))
		fail_at(l, map, "vxlan: give remote and vni");
	if (!l->failed)
		snprintf(n->vxlan, sizeof(n->vxlan), "%s,vni=%llu%s%s", remote, (unsigned long long)vni,
			 local[0] ? ",local=" : "", local);
}

static void load_network(struct loader *l, yaml_node_t *key, yaml_node_t *map)
{
	struct lab_manifest *m = l->m;
	const char *name = declared_name(l, key, "network", m->nnetworks, LAB_MAX_NETWORKS);
	if (!name)
		return;
	struct lab_network *n = &m->networks[m->nnetworks++];
	strcpy(n->name, name);
	if (map && map->type == YAML_SCALAR_NODE && !*scalar(map))
		return; /* "lan:" alone: a plain switch */
	if (!is_map(l, map, name))
		return;
	bool dhcp_given = false;
	yaml_node_t *k, *v;
	FOR_PAIRS(l, map, k, v) {
		const char *f = scalar(k);
		if (duplicate_key(l, map, k))
			break;
		if (f && !strcmp(f, "nat")) {
			n->nat = true;
			const char *s = scalar(v);
			if (!s || parse_subnet(*s ? s : NAT_DEFAULT_SUBNET, &n->net, &n->prefix) < 0)
				fail_at(l, v, "nat: expected a subnet such as 169.254.88.0/24 (prefix 8 to 27, "
					"no host bits set)");
			else
				snprintf(n->subnet, sizeof(n->subnet), "%s", s);
		} else if (f && !strcmp(f, "forwards")) {
			load_forwards(l, n, v);
		} else if (f && !strcmp(f, "vxlan")) {
			load_vxlan(l, n, v);
		} else if (f && !strcmp(f, "uplink")) {
			string_value(l, v, "uplink", n->uplink, sizeof(n->uplink));
			uint8_t mac[6];
			if (!l->failed && parse_mac(n->uplink, mac) < 0 &&
			    (strlen(n->uplink) >= 16 || strpbrk(n->uplink, "/: \t") || !n->uplink[0]))
				fail_at(l, v, "uplink: expected a network interface's name (up to 15 "
					"characters) or MAC address");
		} else if (f && !strcmp(f, "dhcp")) {
			n->dhcp = bool_value(l, v, "dhcp");
			dhcp_given = true;
		} else {
			fail_at(l, k, "unknown key '%s' in network %s (expected nat, forwards, vxlan, "
				"uplink, dhcp)", f ? f : "?", name);
		}
	}
	if (!dhcp_given)
		n->dhcp = n->nat;
	if (!l->failed && n->nforwards && !n->nat)
		fail_at(l, key, "network %s: forwards go through a NAT; give it nat: too", name);
}

/* "hv[1-3]" names hv1, hv2, hv3; any other name itself. Returns how many
 * names (0 for a range that expands to nothing, -1 if malformed). */
static int expand(const char *pattern, char names[][LAB_NAME_MAX + 1], int max)
{
	const char *open = strchr(pattern, '[');
	if (!open) {
		if (strlen(pattern) > LAB_NAME_MAX || max < 1)
			return -1;
		strcpy(names[0], pattern);
		return 1;
	}
	unsigned lo, hi;
	int used = 0;
	if (sscanf(open, "[%u-%u]%n", &lo, &hi, &used) != 2 || open[used] != 0 || hi > 9999)
		return -1;
	int n = 0;
	for (unsigned i = lo; i <= hi; i++) {
		if (n == max)
			return -1;
		if (snprintf(names[n], LAB_NAME_MAX + 1, "%.*s%u", (int)(open - pattern), pattern, i) >
		    LAB_NAME_MAX)
			return -1;
		n++;
	}
	return n;
}

static void load_nics(struct loader *l, struct lab_node *nd, yaml_node_t *seq)
{
	if (!is_list(l, seq, "nics: expected a list such as [{network: lan}]"))
		return;
	yaml_node_t *map;
	FOR_ITEMS(l, seq, map) {
		if (nd->nnics == LAB_MAX_NICS) {
			fail_at(l, map, "more than %d NICs", LAB_MAX_NICS);
			return;
		}
		if (!is_map(l, map, "a NIC"))
			return;
		struct lab_nic *nic = &nd->nics[nd->nnics++];
		nic->network = -1;
		yaml_node_t *k, *v;
		FOR_PAIRS(l, map, k, v) {
			const char *f = scalar(k);
			if (duplicate_key(l, map, k))
				break;
			if (f && !strcmp(f, "network")) {
				const char *s = scalar(v);
				nic->network = s ? find(s, l->m->networks, sizeof(struct lab_network),
							l->m->nnetworks) : -1;
				if (nic->network < 0)
					fail_at(l, v, "network '%s' is not declared under networks", s ? s : "?");
			} else if (f && !strcmp(f, "mac")) {
				const char *s = scalar(v);
				if (!s || parse_mac(s, nic->mac) < 0)
					fail_at(l, v, "mac: expected a MAC such as 02:00:00:00:00:01");
				else if (nic->mac[0] & 1)
					fail_at(l, v, "mac: %s is a multicast address; a NIC needs a unicast "
						"one (first byte even)", s);
				else if (!(nic->mac[0] | nic->mac[1] | nic->mac[2] | nic->mac[3] |
					   nic->mac[4] | nic->mac[5]))
					fail_at(l, v, "mac: 00:00:00:00:00:00 is not a NIC's address");
				nic->mac_given = true;
				l->nic_mac_at[nd - l->m->nodes][nd->nnics - 1] = v;
			} else if (f && !strcmp(f, "ip")) {
				const char *s = scalar(v);
				if (!s || parse_ipv4(s, &nic->ip) < 0 || !nic->ip)
					fail_at(l, v, "ip: expected an IPv4 address such as 169.254.88.20");
				l->nic_ip_at[nd - l->m->nodes][nd->nnics - 1] = v;
			} else if (f && !strcmp(f, "vlan")) {
				const char *s = scalar(v);
				uint64_t id;
				if (!s || parse_uint(s, 1, 4094, &id) < 0)
					fail_at(l, v, "vlan: expected a VLAN ID from 1 to 4094");
				else
					nic->vlan = (unsigned)id;
			} else if (f && !strcmp(f, "trunk")) {
				const char *s = scalar(v);
				char lo[8] = "", *dash = s ? strchr(s, '-') : NULL;
				uint64_t a, b;
				if (dash && (size_t)(dash - s) < sizeof(lo))
					memcpy(lo, s, (size_t)(dash - s));
				if (!s || (dash ? parse_uint(lo, 1, 4094, &a) < 0 || parse_uint(dash + 1, a, 4094, &b) < 0
						: (parse_uint(s, 1, 4094, &a) < 0 || (b = a, false))))
					fail_at(l, v, "trunk: expected the VLANs it carries, LO-HI such as 10-20 "
						"(1 to 4094), or one VLAN");
				else
					nic->trunk_lo = (unsigned)a, nic->trunk_hi = (unsigned)b;
			} else if (f && !strcmp(f, "policy")) {
				const char *s = scalar(v);
				if (s && (!strcmp(s, "learn") || !strcmp(s, "strict") || !strcmp(s, "promisc")))
					strcpy(nic->policy, s);
				else
					fail_at(l, v, "policy: expected learn, strict or promisc");
			} else {
				fail_at(l, k, "unknown key '%s' in a NIC (expected network, mac, ip, vlan, trunk, policy)",
					f ? f : "?");
			}
		}
		if (!l->failed && nic->network < 0)
			fail_at(l, map, "a NIC without a network");
	}
}

/* disks: [{size: 1G}, {image: /abs/data.qcow2}]: extra disks, each a new
 * empty one or a linked clone of an image. */
static void load_disks(struct loader *l, struct lab_node *nd, yaml_node_t *seq)
{
	if (!is_list(l, seq, "disks: expected a list such as [{size: 1G}]"))
		return;
	yaml_node_t *map;
	FOR_ITEMS(l, seq, map) {
		if (nd->ndisks == LAB_MAX_DISKS) {
			fail_at(l, map, "more than %d extra disks", LAB_MAX_DISKS);
			return;
		}
		if (!is_map(l, map, "a disk"))
			return;
		struct lab_disk *d = &nd->disks[nd->ndisks++];
		yaml_node_t *k, *v;
		FOR_PAIRS(l, map, k, v) {
			const char *f = scalar(k);
			if (duplicate_key(l, map, k))
				break;
			if (f && !strcmp(f, "size")) {
				const char *s = scalar(v);
				if (!s || parse_size(s, &d->size) < 0 || d->size < (1ULL << 20) ||
				    d->size > (16ULL << 40))
					fail_at(l, v, "size: expected a size such as 1G (1M to 16T)");
			} else if (f && !strcmp(f, "image")) {
				string_value(l, v, "image", d->image, sizeof(d->image));
				if (!l->failed && d->image[0] != '/')
					fail_at(l, v, "image: give an absolute path");
			} else {
				fail_at(l, k, "unknown key '%s' in a disk (expected size or image)", f ? f : "?");
			}
		}
		if (!l->failed && !d->size == !d->image[0])
			fail_at(l, map, "a disk takes size (a new empty disk) or image (a linked clone "
				"of it), one of them");
	}
}

/* One key of a node's mapping (or of defaults:, which takes the first
 * four). Returns false where the key is not a node's. */
static bool node_field(struct loader *l, struct lab_node *nd, yaml_node_t *k, yaml_node_t *v)
{
	const char *f = scalar(k);
	if (!f) {
		return false;
	} else if (!strcmp(f, "template")) {
		const char *s = scalar(v);
		nd->template = s ? find(s, l->m->templates, sizeof(struct lab_template),
					l->m->ntemplates) : -1;
		if (nd->template < 0)
			fail_at(l, v, "template '%s' is not declared under templates", s ? s : "?");
	} else if (!strcmp(f, "memory")) {
		const char *s = scalar(v);
		if (!s || parse_size(s, &nd->memory) < 0 || nd->memory < (32ULL << 20) ||
		    nd->memory > (4ULL << 40) || nd->memory % 4096)
			fail_at(l, v, "memory: expected a size such as 256M (32M to 4T)");
	} else if (!strcmp(f, "cpus")) {
		const char *s = scalar(v);
		uint64_t c;
		if (!s || parse_uint(s, 1, 255, &c) < 0)
			fail_at(l, v, "cpus: expected a number from 1 to 255");
		else
			nd->cpus = (int)c;
	} else if (!strcmp(f, "nested")) {
		nd->nested = bool_value(l, v, "nested");
	} else if (!strcmp(f, "nics")) {
		load_nics(l, nd, v);
	} else if (!strcmp(f, "disks")) {
		load_disks(l, nd, v);
	} else if (!strcmp(f, "depends_on") || !strcmp(f, "inner")) {
		/* resolved once every node is known; inner nodes are loaded
		 * after the others (load_inner) */
	} else if (!strcmp(f, "health")) {
		if (!is_map(l, v, "health"))
			return true;
		yaml_node_t *hk, *hv;
		FOR_PAIRS(l, v, hk, hv) {
			const char *h = scalar(hk);
			if (duplicate_key(l, v, hk))
				break;
			if (h && !strcmp(h, "console")) {
				string_value(l, hv, "health: console", nd->health_console,
					     sizeof(nd->health_console));
			} else if (h && !strcmp(h, "tcp")) {
				nd->health_tcp = port_value(l, hv, "health: tcp");
				l->health_tcp_at[nd - l->m->nodes] = hv;
			} else {
				fail_at(l, hk, "unknown key '%s' in health (expected console, tcp)",
					h ? h : "?");
			}
		}
	} else {
		return false;
	}
	return true;
}

static void load_node_fields(struct loader *l, struct lab_node *nd, yaml_node_t *key, yaml_node_t *map)
{
	yaml_node_t *k, *v;
	nd->template = -1;
	nd->parent = -1;
	nd->cpus = 1;
	nd->memory = 256ULL << 20;
	if (l->defaults)
		FOR_PAIRS(l, l->defaults, k, v) {
			const char *f = scalar(k);
			if (duplicate_key(l, l->defaults, k))
				break;
			if (!f || !(!strcmp(f, "template") || !strcmp(f, "memory") || !strcmp(f, "cpus") ||
				    !strcmp(f, "nested")))
				fail_at(l, k, "unknown key '%s' in defaults (expected template, memory, cpus, "
					"nested)", f ? f : "?");
			else
				node_field(l, nd, k, v);
		}
	FOR_PAIRS(l, map, k, v) {
		if (duplicate_key(l, map, k))
			break;
		if (!node_field(l, nd, k, v))
			fail_at(l, k, "unknown key '%s' in node %s (expected template, memory, cpus, "
				"nested, nics, disks, depends_on, health, inner)", scalar(k) ? scalar(k) : "?",
				scalar(key));
	}
	if (!l->failed && nd->template < 0)
		fail_at(l, key, "node %s has no template", nd->name);
}

static void load_nodes(struct loader *l, yaml_node_t *nodes)
{
	struct lab_manifest *m = l->m;
	yaml_node_t *key, *map;
	FOR_PAIRS(l, nodes, key, map) {
		const char *pattern = scalar(key);
		char names[LAB_MAX_NODES][LAB_NAME_MAX + 1];
		int n = pattern ? expand(pattern, names, LAB_MAX_NODES - m->nnodes) : -1;
		if (n == 0) {
			fail_at(l, key, "the range %s expands to no node", pattern);
			break;
		}
		if (n < 0) {
			fail_at(l, key, "node name '%s': use a-z, 0-9 and '-' (up to %d characters), a range "
				"such as hv[1-3], and at most %d nodes", pattern ? pattern : "?", LAB_NAME_MAX,
				LAB_MAX_NODES);
			break;
		}
		if (!is_map(l, map, pattern))
			break;
		for (int i = 0; i < n && !l->failed; i++) {
			if (!valid_name(names[i])) {
				fail_at(l, key, "node name '%s': use a-z, 0-9 and '-'", names[i]);
				break;
			}
			if (find(names[i], m->nodes, sizeof(struct lab_node), m->nnodes) >= 0) {
				fail_at(l, key, "node %s is declared twice", names[i]);
				break;
			}
			struct lab_node *nd = &m->nodes[m->nnodes];
			strcpy(nd->name, names[i]);
			l->node_at[m->nnodes] = key;
			m->nnodes++;
			load_node_fields(l, nd, key, map);
		}
	}
}

/* An inner node's depends_on: its siblings (inner nodes of the same
 * parent), by their own names (vm1) or their full ones (hv1-vm1): the
 * inner lab starts them in that order inside the parent. */
static void load_inner_deps(struct loader *l, int index)
{
	struct lab_manifest *m = l->m;
	struct lab_node *nd = &m->nodes[index];
	const struct lab_node *parent = &m->nodes[nd->parent];
	yaml_node_t *deps = l->inner_deps[index], *d;
	if (!is_list(l, deps, "depends_on: expected a list of node names"))
		return;
	FOR_ITEMS(l, deps, d) {
		char dn[LAB_MAX_NODES][LAB_NAME_MAX + 1];
		int count = scalar(d) ? expand(scalar(d), dn, LAB_MAX_NODES) : -1;
		if (count <= 0) {
			fail_at(l, d, "depends_on: '%s' names no node", scalar(d) ? scalar(d) : "?");
			return;
		}
		for (int j = 0; j < count; j++) {
			char full[2 * LAB_NAME_MAX + 2];
			snprintf(full, sizeof(full), "%.32s-%.32s", parent->name, dn[j]);
			int target = find(full, m->nodes, sizeof(struct lab_node), m->nnodes);
			if (target < 0 || m->nodes[target].parent != nd->parent)
				target = find(dn[j], m->nodes, sizeof(struct lab_node), m->nnodes);
			if (target < 0 || m->nodes[target].parent != nd->parent) {
				fail_at(l, d, "depends_on: %s is not an inner node of %s (an inner node "
					"depends only on its siblings)", dn[j], parent->name);
				return;
			}
			if (nd->ndeps < LAB_MAX_DEPS) {
				l->dep_at[index][nd->ndeps] = d;
				nd->deps[nd->ndeps++] = target;
			}
		}
	}
}

/* The inner nodes under each node's inner: (after every top-level node,
 * so that those keep the indexes load_deps counts): nodes named
 * PARENT-NAME, which the parent runs; one level. Their NICs join the
 * lab's networks through an uplink NIC of their parent's (lab.c). */
static void load_inner(struct loader *l, yaml_node_t *nodes)
{
	struct lab_manifest *m = l->m;
	int ntop = m->nnodes, index = 0;
	yaml_node_t *key, *map;
	FOR_PAIRS(l, nodes, key, map) {
		char names[LAB_MAX_NODES][LAB_NAME_MAX + 1];
		int copies = expand(scalar(key), names, LAB_MAX_NODES);
		yaml_node_t *inner = NULL, *k, *v;
		FOR_PAIRS(l, map, k, v)
			if (scalar(k) && !strcmp(scalar(k), "inner"))
				inner = v;
		for (int c = 0; c < copies && !l->failed; c++, index++) {
			if (!inner || index >= ntop)
				continue;
			struct lab_node *parent = &m->nodes[index];
			if (!is_map(l, inner, "inner"))
				return;
			if (!parent->nested) {
				fail_at(l, inner, "inner: node %s runs VMs only with nested: true", parent->name);
				return;
			}
			uint64_t total = 0;
			yaml_node_t *ik, *imap;
			FOR_PAIRS(l, inner, ik, imap) {
				if (duplicate_key(l, inner, ik))
					return;
				const char *pattern = scalar(ik);
				char inames[LAB_MAX_NODES][LAB_NAME_MAX + 1];
				int n = pattern ? expand(pattern, inames, LAB_MAX_NODES - m->nnodes) : -1;
				if (n <= 0) {
					fail_at(l, ik, "inner node name '%s': use a-z, 0-9 and '-', a range such "
						"as vm[1-2], and at most %d nodes in all", pattern ? pattern : "?",
						LAB_MAX_NODES);
					return;
				}
				if (!is_map(l, imap, pattern))
					return;
				for (int i = 0; i < n && !l->failed; i++) {
					char full[2 * LAB_NAME_MAX + 2];
					snprintf(full, sizeof(full), "%.32s-%.32s", parent->name, inames[i]);
					if (strlen(full) > LAB_NAME_MAX || !valid_name(full)) {
						fail_at(l, ik, "inner node %s: its name, %s, must be at most %d "
							"characters of a-z, 0-9 and '-'", inames[i], full, LAB_NAME_MAX);
						return;
					}
					if (find(full, m->nodes, sizeof(struct lab_node), m->nnodes) >= 0) {
						fail_at(l, ik, "node %s is declared twice", full);
						return;
					}
					struct lab_node *nd = &m->nodes[m->nnodes];
					strcpy(nd->name, full);
					l->node_at[m->nnodes] = ik;
					m->nnodes++;
					load_node_fields(l, nd, ik, imap);
					nd->parent = index;
					parent->ninner++;
					total += nd->memory;
					yaml_node_t *fk, *fv;
					FOR_PAIRS(l, imap, fk, fv) {
						const char *f = scalar(fk);
						if (f && !strcmp(f, "inner"))
							fail_at(l, fk, "inner node %s: inner nodes of an inner node are "
								"not supported (one level)", full);
						if (f && !strcmp(f, "depends_on"))
							l->inner_deps[m->nnodes - 1] = fv;
					}
					for (int c = 0; c < nd->nnics && !l->failed; c++)
						if (nd->nics[c].vlan || nd->nics[c].policy[0] || nd->nics[c].trunk_lo)
							fail_at(l, ik, "inner node %s: its NICs reach their networks "
								"through its parent's uplink, untagged: no vlan, "
								"trunk or policy there", full);
					if (!l->failed && nd->health_tcp)
						fail_at(l, ik, "inner node %s: health: tcp is not for inner nodes "
							"(the lab inside their parent checks them, and has no "
							"forwards): use health: console", full);
				}
			}
			/* Room for the parent's own system too: a quarter of its memory. */
			if (!l->failed && total > parent->memory - parent->memory / 4)
				fail_at(l, inner, "inner: the inner nodes of %s need %llu MiB, more than "
					"three quarters of its %llu MiB", parent->name,
					(unsigned long long)(total >> 20),
					(unsigned long long)(parent->memory >> 20));
		}
	}
	for (int i = ntop; i < m->nnodes && !l->failed; i++)
		if (l->inner_deps[i])
			load_inner_deps(l, i);
	/* A parent's NICs: its own, and an uplink per network its inner
	 * nodes use; nestvm run takes at most LAB_MAX_NICS. */
	for (int p = 0; p < ntop && !l->failed; p++) {
		bool used[LAB_MAX_NETWORKS] = { false };
		int uplinks = 0;
		for (int i = ntop; i < m->nnodes; i++)
			for (int c = 0; m->nodes[i].parent == p && c < m->nodes[i].nnics; c++)
				if (!used[m->nodes[i].nics[c].network]) {
					used[m->nodes[i].nics[c].network] = true;
					uplinks++;
				}
		if (m->nodes[p].nnics + uplinks > LAB_MAX_NICS)
			fail_at(l, l->node_at[p], "node %s: its %d NICs and the %d uplink NICs its inner nodes' "
				"networks need are more than %d", m->nodes[p].name, m->nodes[p].nnics, uplinks,
				LAB_MAX_NICS);
	}
}

/* depends_on: names or ranges of other nodes. */
static void load_deps(struct loader *l, yaml_node_t *nodes)
{
	struct lab_manifest *m = l->m;
	int index = 0;
	yaml_node_t *key, *map;
	FOR_PAIRS(l, nodes, key, map) {
		char names[LAB_MAX_NODES][LAB_NAME_MAX + 1];
		int copies = expand(scalar(key), names, LAB_MAX_NODES);
		yaml_node_t *deps = NULL, *k, *v;
		FOR_PAIRS(l, map, k, v)
			if (scalar(k) && !strcmp(scalar(k), "depends_on"))
				deps = v;
		for (int c = 0; c < copies && !l->failed; c++, index++) {
			if (!deps)
				continue;
			struct lab_node *nd = &m->nodes[index];
			if (!is_list(l, deps, "depends_on: expected a list of node names"))
				return;
			yaml_node_t *d;
			FOR_ITEMS(l, deps, d) {
				char dn[LAB_MAX_NODES][LAB_NAME_MAX + 1];
				int nd_count = scalar(d) ? expand(scalar(d), dn, LAB_MAX_NODES) : -1;
				if (nd_count <= 0) {
					fail_at(l, d, "depends_on: '%s' names no node", scalar(d) ? scalar(d) : "?");
					return;
				}
				for (int j = 0; j < nd_count; j++) {
					int target = find(dn[j], m->nodes, sizeof(struct lab_node), m->nnodes);
					if (target < 0) {
						fail_at(l, d, "depends_on: node %s is not declared", dn[j]);
						return;
					}
					if (nd->ndeps < LAB_MAX_DEPS) {
						l->dep_at[index][nd->ndeps] = d;
						nd->deps[nd->ndeps++] = target;
					}
				}
			}
		}
	}
}

/* Orders the nodes so each comes after what it depends on; a cycle is an
 * error at one of its edges. */
static void order_nodes(struct loader *l)
{
	struct lab_manifest *m = l->m;
	int state[LAB_MAX_NODES] = { 0 }; /* 0 new, 1 on the path, 2 placed */
	int placed = 0;
	/* Depth-first, iterative: a stack of (node, next dependency). */
	int stack[LAB_MAX_NODES], next[LAB_MAX_NODES];
	for (int start = 0; start < m->nnodes && !l->failed; start++) {
		if (state[start])
			continue;
		int sp = 0;
		stack[sp] = start, next[sp] = 0, state[start] = 1;
		while (sp >= 0 && !l->failed) {
			int n = stack[sp];
			if (next[sp] < m->nodes[n].ndeps) {
				int di = next[sp]++;
				int d = m->nodes[n].deps[di];
				if (d == n) {
					fail_at(l, l->dep_at[n][di], "depends_on: %s depends on itself (a cycle)",
						m->nodes[n].name);
				} else if (state[d] == 1) {
					fail_at(l, l->dep_at[n][di], "depends_on: %s and %s depend on each other "
						"(a cycle)", m->nodes[n].name, m->nodes[d].name);
				} else if (state[d] == 0) {
					sp++;
					stack[sp] = d, next[sp] = 0, state[d] = 1;
				}
			} else {
				state[n] = 2;
				m->order[placed++] = n;
				sp--;
			}
		}
	}
}

/* The first NIC of node nd on network ni, or -1. */
static int nic_on(const struct lab_node *nd, int ni)
{
	for (int i = 0; i < nd->nnics; i++)
		if (nd->nics[i].network == ni)
			return i;
	return -1;
}

/* Fixed addresses inside their NAT network's pool and each used once;
 * forwards naming a node with a NIC there, their host ports used once;
 * a TCP health check reached by a forward. */
static void check_addresses(struct loader *l)
{
	struct lab_manifest *m = l->m;
	for (int i = 0; i < m->nnodes && !l->failed; i++) {
		const struct lab_node *nd = &m->nodes[i];
		for (int c = 0; c < nd->nnics && !l->failed; c++) {
			const struct lab_nic *nic = &nd->nics[c];
			if (!nic->ip)
				continue;
			const struct lab_network *n = &m->networks[nic->network];
			uint32_t first;
			unsigned count;
			if (!n->nat) {
				fail_at(l, l->nic_ip_at[i][c], "ip: network %s has no NAT, so no DHCP server to "
					"give this address", n->name);
				break;
			}
			lab_network_pool(n, &first, &count);
			if (nic->ip < first || nic->ip - first >= count) {
				fail_at(l, l->nic_ip_at[i][c], "ip: not in the addresses network %s's DHCP "
					"hands out (%u.%u.%u.%u and the %u after it)", n->name, first >> 24,
					first >> 16 & 255, first >> 8 & 255, first & 255, count - 1);
				break;
			}
			for (int j = 0; j <= i && !l->failed; j++)
				for (int d = 0; d < m->nodes[j].nnics && (j < i || d < c); d++)
					if (m->nodes[j].nics[d].ip == nic->ip &&
					    m->nodes[j].nics[d].network == nic->network)
						fail_at(l, l->nic_ip_at[i][c], "ip: node %s has this address "
							"already", m->nodes[j].name);
		}
	}
	/* A MAC given twice would put two NICs on one address (a MAC derived
	 * from the seed is unique already). */
	for (int i = 0; i < m->nnodes && !l->failed; i++)
		for (int c = 0; c < m->nodes[i].nnics && !l->failed; c++) {
			const struct lab_nic *nic = &m->nodes[i].nics[c];
			if (!nic->mac_given)
				continue;
			for (int j = 0; j <= i && !l->failed; j++)
				for (int d = 0; d < m->nodes[j].nnics && (j < i || d < c); d++)
					if (m->nodes[j].nics[d].mac_given &&
					    !memcmp(m->nodes[j].nics[d].mac, nic->mac, 6))
						fail_at(l, l->nic_mac_at[i][c], "mac: node %s has this MAC "
							"already", m->nodes[j].name);
		}
	for (int ni = 0; ni < m->nnetworks && !l->failed; ni++) {
		struct lab_network *n = &m->networks[ni];
		for (int fi = 0; fi < n->nforwards && !l->failed; fi++) {
			struct lab_forward *fw = &n->forwards[fi];
			yaml_node_t *at = l->forward_at[ni][fi];
			fw->node = find(l->forward_node[ni][fi], m->nodes, sizeof(struct lab_node), m->nnodes);
			if (fw->node < 0) {
				fail_at(l, at, "forwards: node %s is not declared", l->forward_node[ni][fi]);
				break;
			}
			if (nic_on(&m->nodes[fw->node], ni) < 0) {
				fail_at(l, at, "forwards: node %s has no NIC on network %s", m->nodes[fw->node].name,
					n->name);
				break;
			}
			for (int nj = 0; nj <= ni && !l->failed; nj++)
				for (int fj = 0; fj < (nj < ni ? m->networks[nj].nforwards : fi); fj++) {
					const struct lab_forward *o = &m->networks[nj].forwards[fj];
					if (o->host_port == fw->host_port && o->udp == fw->udp &&
					    o->host_addr == fw->host_addr) {
						fail_at(l, at, "forwards: host port %u is forwarded already",
							fw->host_port);
						break;
					}
				}
		}
	}
	for (int i = 0; i < m->nnodes && !l->failed; i++) {
		const struct lab_node *nd = &m->nodes[i];
		if (!nd->health_tcp)
			continue;
		bool reached = false;
		for (int ni = 0; ni < m->nnetworks; ni++)
			for (int fi = 0; fi < m->networks[ni].nforwards; fi++) {
				const struct lab_forward *fw = &m->networks[ni].forwards[fi];
				reached |= fw->node == i && fw->port == nd->health_tcp && !fw->udp;
			}
		if (!reached)
			fail_at(l, l->health_tcp_at[i], "health: tcp: no TCP forward reaches port %u of node "
				"%s (add one under a NAT network's forwards)", nd->health_tcp, nd->name);
	}
}

/* A public key as ssh-keygen writes it: "TYPE BASE64 [COMMENT]". */
static bool public_key_line(const char *s, size_t n)
{
	static const char *const types[] = { "ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-",
					     "sk-ssh-ed25519@openssh.com ", "sk-ecdsa-sha2-" };
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (n > strlen(types[i]) && !strncmp(s, types[i], strlen(types[i])))
			return true;
	return false;
}

/* ssh_keys: [FILE, ...]: absolute paths of public key files, each line a
 * key (blank lines and # comments skipped), read now into m->ssh_keys. */
static void load_ssh_keys(struct loader *l, yaml_node_t *seq)
{
	struct lab_manifest *m = l->m;
	if (!is_list(l, seq, "ssh_keys: expected a list of public key files"))
		return;
	size_t used = 0;
	yaml_node_t *v;
	FOR_ITEMS(l, seq, v) {
		char path[PATH_MAX];
		string_value(l, v, "ssh_keys", path, sizeof(path));
		if (l->failed)
			return;
		if (path[0] != '/') {
			fail_at(l, v, "ssh_keys: give an absolute path");
			return;
		}
		FILE *f = fopen(path, "r");
		if (!f) {
			fail_at(l, v, "ssh_keys: %s: %s", path, strerror(errno));
			return;
		}
		char line[4096];
		int keys = 0;
		while (!l->failed && fgets(line, sizeof(line), f)) {
			size_t n = strcspn(line, "\r\n");
			if (n == strlen(line) && !feof(f)) {
				fail_at(l, v, "ssh_keys: %s: a line longer than %zu characters", path,
					sizeof(line) - 2);
				break;
			}
			line[n] = 0;
			if (n == 0 || line[0] == '#')
				continue;
			if (!public_key_line(line, n)) {
				fail_at(l, v, "ssh_keys: %s: not an OpenSSH public key (a private key, or "
					"not a key?)", path);
				break;
			}
			if (used + n + 2 > sizeof(m->ssh_keys)) {
				fail_at(l, v, "ssh_keys: more than %zu bytes of keys", sizeof(m->ssh_keys) - 1);
				break;
			}
			memcpy(m->ssh_keys + used, line, n);
			used += n;
			m->ssh_keys[used++] = '\n';
			m->ssh_keys[used] = 0;
			keys++;
		}
		fclose(f);
		if (!l->failed && !keys)
			fail_at(l, v, "ssh_keys: %s has no key", path);
	}
}

static void load_root(struct loader *l, yaml_node_t *root, uint64_t host_ram)
{
	struct lab_manifest *m = l->m;
	if (!root) {
		fail_at(l, NULL, "the file is empty");
		return;
	}
	if (!is_map(l, root, "the file"))
		return;
	yaml_node_t *k, *v, *templates = NULL, *networks = NULL, *nodes = NULL, *name = NULL,
		    *ssh_keys = NULL;
	FOR_PAIRS(l, root, k, v) {
		const char *f = scalar(k);
		if (duplicate_key(l, root, k))
			break;
		if (f && !strcmp(f, "name"))
			name = v;
		else if (f && !strcmp(f, "templates"))
			templates = v;
		else if (f && !strcmp(f, "networks"))
			networks = v;
		else if (f && !strcmp(f, "nodes"))
			nodes = v;
		else if (f && !strcmp(f, "defaults"))
			l->defaults = v;
		else if (f && !strcmp(f, "ssh_keys"))
			ssh_keys = v;
		else
			fail_at(l, k, "unknown key '%s' (expected name, defaults, ssh_keys, templates, "
				"networks, nodes)", f ? f : "?");
	}
	if (l->failed)
		return;
	if (!name || !scalar(name) || !valid_name(scalar(name))) {
		fail_at(l, name ? name : root, "name: the lab needs a name of a-z, 0-9 and '-', up to %d "
			"characters", LAB_NAME_MAX);
		return;
	}
	strcpy(m->name, scalar(name));
	if (!templates || !nodes) {
		fail_at(l, root, "a lab needs templates and nodes");
		return;
	}
	if (!is_map(l, templates, "templates") || !is_map(l, nodes, "nodes") ||
	    (networks && !(networks->type == YAML_SCALAR_NODE && !*scalar(networks)) &&
	     !is_map(l, networks, "networks")))
		return;
	if (l->defaults && !is_map(l, l->defaults, "defaults"))
		return;
	if (ssh_keys)
		load_ssh_keys(l, ssh_keys);
	FOR_PAIRS(l, templates, k, v)
		if (!duplicate_key(l, templates, k))
			load_template(l, k, v);
	if (networks && networks->type == YAML_MAPPING_NODE)
		FOR_PAIRS(l, networks, k, v)
			if (!duplicate_key(l, networks, k))
				load_network(l, k, v);
	if (!l->failed)
		load_nodes(l, nodes);
	if (!l->failed && m->nnodes == 0)
		fail_at(l, nodes, "no nodes");
	if (!l->failed)
		load_deps(l, nodes);
	if (!l->failed)
		load_inner(l, nodes);
	if (!l->failed)
		order_nodes(l);
	if (!l->failed)
		check_addresses(l);
	uint64_t total = 0;
	for (int i = 0; i < m->nnodes && !l->failed && host_ram; i++) {
		if (m->nodes[i].parent >= 0)
			continue; /* inside its parent's memory */
		total += m->nodes[i].memory; /* each at most 4 TiB, 64 of them: no wrap */
		if (total > host_ram)
			fail_at(l, l->node_at[i], "node %s: the nodes up to here need %llu MiB, more than "
				"this host's %llu MiB of RAM", m->nodes[i].name,
				(unsigned long long)(total >> 20), (unsigned long long)(host_ram >> 20));
	}
}

static int parse_file(const char *path, struct loader *l)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		log_error("%s: %s", path, strerror(errno));
		return -1;
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	int ok = yaml_parser_load(&parser, &l->doc);
	if (!ok) {
		log_error("%s:%zu:%zu: %s%s%s", path, parser.problem_mark.line + 1,
			  parser.problem_mark.column + 1, parser.problem ? parser.problem : "not YAML",
			  parser.context ? " " : "", parser.context ? parser.context : "");
	} else if (ftell(f) > MAX_MANIFEST_BYTES) {
		log_error("%s: larger than %d bytes", path, MAX_MANIFEST_BYTES);
		yaml_document_delete(&l->doc);
		ok = 0;
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return ok ? 0 : -1;
}

int lab_manifest_load(const char *path, uint64_t host_ram, struct lab_manifest *m)
{
	memset(m, 0, sizeof(*m));
	if (strlen(path) >= sizeof(m->path)) {
		log_error("%s: path too long", path);
		return -1;
	}
	strcpy(m->path, path);
	struct loader *l = calloc(1, sizeof(*l));
	if (!l) {
		log_error("%s: out of memory", path);
		return -1;
	}
	l->m = m;
	int r = -1;
	if (parse_file(path, l) == 0) {
		load_root(l, yaml_document_get_root_node(&l->doc), host_ram);
		yaml_document_delete(&l->doc);
		r = l->failed ? -1 : 0;
	}
	free(l);
	return r;
}

int lab_manifest_name(const char *path, char name[LAB_NAME_MAX + 1])
{
	struct loader *l = calloc(1, sizeof(*l));
	struct lab_manifest *m = calloc(1, sizeof(*m));
	int r = -1;
	if (!l || !m) {
		log_error("%s: out of memory", path);
	} else if (snprintf(m->path, sizeof(m->path), "%s", path), l->m = m, parse_file(path, l) == 0) {
		yaml_node_t *root = yaml_document_get_root_node(&l->doc), *k, *v;
		if (root && root->type == YAML_MAPPING_NODE)
			FOR_PAIRS(l, root, k, v)
				if (scalar(k) && !strcmp(scalar(k), "name") && scalar(v) &&
				    valid_name(scalar(v))) {
					strcpy(name, scalar(v));
					r = 0;
				}
		if (r < 0)
			fail_at(l, root, "name: the lab needs a name of a-z, 0-9 and '-'");
		yaml_document_delete(&l->doc);
	}
	free(l);
	free(m);
	return r;
}
