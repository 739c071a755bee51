/* A lab described in a YAML file (nestvm lab): its templates, networks and
 * nodes. Loading checks everything a user can get wrong before anything
 * starts, and says where: "FILE:LINE:COLUMN: what is wrong". Unknown keys
 * are errors, so a misspelt option is never silently ignored.
 *
 *   name: pair
 *   defaults: {memory: 512M, template: tiny}
 *   ssh_keys: [/home/me/.ssh/id_ed25519.pub]
 *   templates:
 *     tiny: {kernel: /abs/vmlinuz, initrd: /abs/initrd.gz, cmdline: "console=ttyS0"}
 *   networks:
 *     lan: {nat: 169.254.88.0/24, forwards: [{node: a, port: 22, host_port: 2222}]}
 *     wan: {vxlan: {remote: "192.0.2.7:4789", vni: 42}}
 *   nodes:
 *     a: {template: tiny, memory: 256M, nics: [{network: lan, ip: 169.254.88.20},
 *         {network: wan, vlan: 10, policy: strict}, {network: wan, trunk: 20-29}],
 *         disks: [{size: 1G}],
 *         health: {tcp: 22}}
 *     hv[1-2]: {template: tiny, nested: true, depends_on: [a],
 *               health: {console: "login:"}, nics: [{network: lan}],
 *               inner: {vm: {template: tiny, memory: 64M}}}
 *
 * Inner nodes (under a nested node's inner:) are nodes too, named
 * PARENT-NAME (hv1-vm, hv2-vm): their parent runs them (lab/lab.h).
 */
#ifndef NESTVM_LAB_MANIFEST_H
#define NESTVM_LAB_MANIFEST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define LAB_NAME_MAX 32
#define LAB_MAX_TEMPLATES 16
#define LAB_MAX_NETWORKS 16
#define LAB_MAX_NODES 64
#define LAB_MAX_NICS 8
#define LAB_MAX_DEPS LAB_MAX_NODES

struct lab_template {
	char name[LAB_NAME_MAX + 1];
	char kernel[PATH_MAX], initrd[PATH_MAX], disk[PATH_MAX]; /* "" if none */
	char cmdline[2048];
	/* identity: cloud-init: each node also gets a NoCloud seed disk
	 * (lab/cidata.h); smbios (the default): its UUID and serial alone. */
	bool cloud_init;
};

#define LAB_MAX_FORWARDS 32 /* per network: the switch's own limit */

/* A host port forwarded through a NAT network to a node's port: to the
 * address its first NIC on that network always gets (every NIC on a NAT
 * network has one, reserved at the network's DHCP server). */
struct lab_forward {
	int node;            /* index into nodes */
	bool udp;
	uint32_t host_addr;  /* host byte order; default 127.0.0.1 */
	uint16_t host_port, port;
};

struct lab_network {
	char name[LAB_NAME_MAX + 1];
	/* vxlan: an uplink joining this network to a switch elsewhere (another
	 * lab, another host): the switch's --vxlan spec, "" if none. */
	char vxlan[160];
	/* uplink: the switch joins a network interface of the machine it runs
	 * on (its name or MAC; the switch's --uplink, needing CAP_NET_RAW):
	 * how an inner lab's network reaches its parent's. "" if none. */
	char uplink[24];
	/* Whether its nodes' cloud-init network-config asks for DHCP on it:
	 * dhcp:, by default true on a NAT network (whose DHCP server holds
	 * each NIC's address) and false on a plain switch. */
	bool dhcp;
	bool nat;
	char subnet[32]; /* with nat: "A.B.C.D/N"; "" for the switch's default */
	uint32_t net;    /* with nat: the subnet (the default's too), host byte order */
	unsigned prefix;
	int nforwards;
	struct lab_forward forwards[LAB_MAX_FORWARDS];
};

struct lab_nic {
	int network;    /* index into networks */
	bool mac_given;
	uint8_t mac[6];
	uint32_t ip;    /* a fixed address on a NAT network (host byte order); 0: derived */
	/* The NIC's switch port, when either is given a port of its own (the
	 * switch's --port): its access VLAN (1-4094; 0: the default, 1) and
	 * its MAC policy ("" learn, the default; strict; promisc). */
	unsigned vlan;
	char policy[8];
	/* trunk: the port also carries VLANs trunk_lo..trunk_hi tagged (0:
	 * not a trunk); vlan is then its native VLAN, untagged. */
	unsigned trunk_lo, trunk_hi;
};

/* An extra disk of a node (after its template's): a new empty qcow2 of
 * size bytes, or a linked clone of image; either kept in the lab's state
 * across down and up, thrown away by reset. */
#define LAB_MAX_DISKS 4
struct lab_disk {
	uint64_t size;        /* 0 for image */
	char image[PATH_MAX]; /* "" for size */
};

struct lab_node {
	char name[LAB_NAME_MAX + 1];
	int template;   /* index into templates */
	uint64_t memory;
	int cpus;
	bool nested;
	int nnics;
	struct lab_nic nics[LAB_MAX_NICS];
	int ndisks;
	struct lab_disk disks[LAB_MAX_DISKS];
	int ndeps;
	int deps[LAB_MAX_DEPS]; /* indexes into nodes */
	char health_console[256]; /* healthy once this appears on its console; "" */
	uint16_t health_tcp;      /* healthy once this port of its answers through a forward; 0 */
	int parent;     /* an inner node: the index of the node it runs inside; else -1 */
	int ninner;     /* a node with inner nodes: how many */
};

struct lab_manifest {
	char path[PATH_MAX];
	char name[LAB_NAME_MAX + 1];
	int ntemplates, nnetworks, nnodes;
	struct lab_template templates[LAB_MAX_TEMPLATES];
	struct lab_network networks[LAB_MAX_NETWORKS];
	struct lab_node nodes[LAB_MAX_NODES];
	int order[LAB_MAX_NODES]; /* nodes, each after those it depends on (inner ones too) */
	/* ssh_keys: the public keys (one per line) cloud-init installs for
	 * the image's default user, read from the files named; "" if none. */
	char ssh_keys[8192];
};

/* The addresses a NAT network's DHCP server hands out: first, and count
 * (the switch's layout: .15 up to the last before broadcast, at most 4096). */
void lab_network_pool(const struct lab_network *n, uint32_t *first, unsigned *count);

/* Loads and checks the manifest at path into *m (zeroed first). host_ram:
 * the bytes of RAM nodes may take together (0: not checked). Prints the
 * first error as "PATH:LINE:COLUMN: message" and returns -1. */
int lab_manifest_load(const char *path, uint64_t host_ram, struct lab_manifest *m);

/* Reads only the lab's name (for down and status, which work from the
 * lab's state even after the file changed). */
int lab_manifest_name(const char *path, char name[LAB_NAME_MAX + 1]);

#endif
