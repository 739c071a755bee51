/* Unit tests: lab manifests (lab/manifest.c) and lab identities
 * (lab/lab.c): a good manifest loads with ranges expanded and nodes in
 * dependency order; each kind of bad manifest is refused with one line
 * that gives the file, line and column; UUIDs (version 5) and MACs derive
 * from the lab's seed and the node's name, stably, and differ between
 * labs and nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/smbios.h"
#include "lab/lab.h"
#include "lab/manifest.h"
#include "util/file.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static struct lab_manifest *load_ok(const char *text)
{
	struct lab_manifest *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	if (lab_manifest_load(write_file("ok.yaml", text), 64ULL << 30, m) < 0)
		fail_msg("a good manifest was refused");
	return m;
}

/* The manifest is refused, and the one line printed has `where` (LINE:COL)
 * and `message`. */
static void assert_refused(const char *text, const char *where, const char *message)
{
	char errpath[128];
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 2);
	close(fd);
	struct lab_manifest *m = calloc(1, sizeof(*m));
	const char *path = write_file("bad.yaml", text);
	int r = lab_manifest_load(path, 8ULL << 30, m);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	free(m);
	char got[1024] = "";
	FILE *f = fopen(errpath, "r");
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	got[n] = 0;
	char want[256];
	snprintf(want, sizeof(want), "%s:%s: ", path, where);
	if (r != -1 || !strstr(got, want) || !strstr(got, message) || strchr(got, '\n') != got + n - 1)
		fail_msg("expected one line with '%s' and '%s', got '%s'", want, message, got);
}

static void loads_the_smallest_manifest_and_ranges(void **state)
{
	(void)state;
	struct lab_manifest *m = load_ok(
		"name: pair\n"
		"templates:\n"
		"  tiny: {kernel: /abs/vmlinuz, initrd: /abs/initrd.gz, cmdline: \"console=ttyS0 quiet\"}\n"
		"networks:\n"
		"  lan: {nat: 169.254.88.0/24}\n"
		"nodes:\n"
		"  a: {template: tiny, memory: 256M, nics: [{network: lan}]}\n"
		"  b: {template: tiny, memory: 256M, cpus: 1, nested: false, nics: [{network: lan}]}\n");
	assert_string_equal(m->name, "pair");
	assert_int_equal(m->nnodes, 2);
	assert_string_equal(m->templates[0].initrd, "/abs/initrd.gz");
	assert_string_equal(m->templates[0].cmdline, "console=ttyS0 quiet");
	assert_true(m->networks[0].nat);
	assert_string_equal(m->networks[0].subnet, "169.254.88.0/24");
	assert_int_equal(m->nodes[1].memory, 256 << 20);
	assert_int_equal(m->nodes[1].nnics, 1);
	free(m);

	m = load_ok("name: rack\n"
		    "templates: {t: {kernel: /k, disk: /d.qcow2}}\n"
		    "networks: {lan: , mgmt: {nat: \"\"}}\n"
		    "nodes:\n"
		    "  hv[1-3]:\n"
		    "    template: t\n"
		    "    nested: true\n"
		    "    depends_on: [jump]\n"
		    "    nics: [{network: lan}, {network: mgmt}]\n"
		    "    health: {console: 'login:'}\n"
		    "  jump: {template: t, depends_on: [db], nics: [{network: lan, mac: '02:aa:bb:cc:dd:ee'}]}\n"
		    "  db: {template: t}\n");
	assert_int_equal(m->nnodes, 5);
	assert_string_equal(m->nodes[0].name, "hv1");
	assert_string_equal(m->nodes[2].name, "hv3");
	assert_true(m->nodes[2].nested);
	assert_string_equal(m->nodes[2].health_console, "login:");
	assert_true(m->nodes[3].nics[0].mac_given);
	assert_int_equal(m->nodes[3].nics[0].mac[5], 0xee);
	assert_false(m->networks[0].nat);
	assert_true(m->networks[1].nat);
	/* db, then jump, then the hypervisors */
	int pos[5];
	for (int i = 0; i < 5; i++)
		pos[m->order[i]] = i;
	assert_true(pos[4] < pos[3]);
	for (int i = 0; i < 3; i++)
		assert_true(pos[3] < pos[i]);
	free(m);

	m = load_ok("name: fw\n"
		    "templates: {t: {kernel: /k}}\n"
		    "networks:\n"
		    "  lan:\n"
		    "    nat: 169.254.88.0/24\n"
		    "    forwards: [{node: jump, port: 22, host_port: 2222},\n"
		    "               {node: jump, port: 53, host_port: 5353, proto: udp, host_addr: 127.0.0.2}]\n"
		    "  wan: {nat: ''}\n"
		    "nodes:\n"
		    "  jump: {template: t, health: {tcp: 22},\n"
		    "         nics: [{network: wan}, {network: lan, ip: 169.254.88.20}]}\n");
	const struct lab_network *lan = &m->networks[0];
	assert_int_equal(lan->nforwards, 2);
	assert_int_equal(lan->forwards[0].node, 0);
	assert_int_equal(lan->forwards[0].host_port, 2222);
	assert_int_equal(lan->forwards[0].port, 22);
	assert_int_equal(lan->forwards[0].host_addr, 0x7f000001);
	assert_false(lan->forwards[0].udp);
	assert_true(lan->forwards[1].udp);
	assert_int_equal(lan->forwards[1].host_addr, 0x7f000002);
	assert_int_equal(m->nodes[0].nics[1].ip, 0xa9fe5814);
	assert_int_equal(m->nodes[0].health_tcp, 22);
	free(m);

	/* inner nodes: named after their parent, one set per copy of a range */
	m = load_ok("name: deep\n"
		    "templates: {hv: {kernel: /k}, tiny: {kernel: /t}}\n"
		    "nodes:\n"
		    "  hv[1-2]:\n"
		    "    template: hv\n"
		    "    nested: true\n"
		    "    memory: 512M\n"
		    "    inner:\n"
		    "      vm: {template: tiny, memory: 64M, health: {console: 'count 2'}}\n"
		    "      db[1-2]: {template: tiny, memory: 32M}\n"
		    "  solo: {template: tiny}\n");
	assert_int_equal(m->nnodes, 9);
	assert_string_equal(m->nodes[2].name, "solo");
	assert_int_equal(m->nodes[2].parent, -1);
	assert_int_equal(m->nodes[0].ninner, 3);
	assert_string_equal(m->nodes[3].name, "hv1-vm");
	assert_int_equal(m->nodes[3].parent, 0);
	assert_string_equal(m->nodes[3].health_console, "count 2");
	assert_string_equal(m->nodes[5].name, "hv1-db2");
	assert_string_equal(m->nodes[6].name, "hv2-vm");
	assert_int_equal(m->nodes[6].parent, 1);
	assert_int_equal(m->nodes[8].memory, 32 << 20);
	free(m);
	m = load_ok("name: fw\ntemplates: {t: {kernel: /k}}\nnetworks: {wan: {nat: ''}}\n"
		    "nodes: {jump: {template: t, nics: [{network: wan}]}}\n");
	/* the default subnet is known too (its pool) */
	uint32_t first;
	unsigned count;
	lab_network_pool(&m->networks[0], &first, &count);
	assert_int_equal(first, 0x0a00020f);
	assert_int_equal(count, 240);
	free(m);
}

static void bad_manifests_say_where(void **state)
{
	(void)state;
	const char *head = "name: pair\ntemplates:\n  tiny: {kernel: /abs/vmlinuz}\n";
	char text[1024];
#define BAD(body, where, msg)                                    \
	do {                                                     \
		snprintf(text, sizeof(text), "%s%s", head, body); \
		assert_refused(text, where, msg);                \
	} while (0)
	BAD("nodes:\n  a: {template: tiny, colour: blue}\n", "5:23", "unknown key 'colour' in node a");
	BAD("nodes:\n  a: {template: tiny}\nsize: 3\n", "6:1", "unknown key 'size'");
	BAD("nodes:\n  a: {template: tiny}\n  a: {template: tiny}\n", "6:3", "node a is declared twice");
	BAD("nodes:\n  a: {template: big}\n", "5:17", "template 'big' is not declared");
	BAD("nodes:\n  a: {template: tiny, nics: [{network: wan}]}\n", "5:40",
	    "network 'wan' is not declared");
	BAD("nodes:\n  a: {template: tiny, depends_on: [b]}\n  b: {template: tiny, depends_on: [a]}\n",
	    "6:36", "a cycle");
	BAD("nodes:\n  a: {template: tiny, depends_on: [a]}\n", "5:36", "a depends on itself");
	BAD("nodes:\n  a: {template: tiny, memory: 6G}\n  b: {template: tiny, memory: 4G}\n", "6:3",
	    "more than this host's 8192 MiB");
	BAD("nodes:\n  hv[3-1]: {template: tiny}\n", "5:3", "expands to no node");
	BAD("nodes:\n  a: {template: tiny, depends_on: [z]}\n", "5:36", "node z is not declared");
	BAD("nodes:\n  a: {template: tiny, memory: lots}\n", "5:31", "memory: expected a size");
	BAD("nodes:\n  a: {template: tiny, nested: maybe}\n", "5:31", "nested: expected true or false");
	BAD("nodes:\n  A_1: {template: tiny}\n", "5:3", "node name 'A_1'");
	BAD("networks: {lan: {nat: 169.254.88.0/24, forwards: [{node: z, port: 22, host_port: 2222}]}}\n"
	    "nodes:\n  a: {template: tiny}\n", "4:58", "forwards: node z is not declared");
	BAD("networks: {lan: {nat: 169.254.88.0/24, forwards: [{node: a, port: 22, host_port: 2222}]}}\n"
	    "nodes:\n  a: {template: tiny}\n", "4:58", "node a has no NIC on network lan");
	BAD("networks: {lan: {nat: 169.254.88.0/24, forwards: [{node: a, port: 22, host_port: 2222},"
	    " {node: a, port: 23, host_port: 2222}]}}\nnodes:\n  a: {template: tiny, nics: [{network: lan}]}\n",
	    "4:96", "host port 2222 is forwarded already");
	BAD("networks: {lan: {forwards: [{node: a, port: 22, host_port: 2222}]}}\n"
	    "nodes:\n  a: {template: tiny, nics: [{network: lan}]}\n", "4:12", "forwards go through a NAT");
	BAD("networks: {lan: {nat: 169.254.88.0/24, forwards: [{node: a, port: 22}]}}\n"
	    "nodes:\n  a: {template: tiny, nics: [{network: lan}]}\n", "4:51", "needs node, port and host_port");
	BAD("networks: {lan: {nat: 169.254.88.0/24}}\n"
	    "nodes:\n  a: {template: tiny, nics: [{network: lan, ip: 169.254.88.3}]}\n", "6:49",
	    "not in the addresses network lan's DHCP hands out (169.254.88.15 and the 239 after it)");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, ip: 169.254.88.30}]}\n",
	    "6:49", "network lan has no NAT");
	BAD("networks: {lan: {nat: 169.254.88.0/24}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, ip: 169.254.88.30}]}\n"
	    "  b: {template: tiny, nics: [{network: lan, ip: 169.254.88.30}]}\n", "7:49",
	    "node a has this address already");
	BAD("networks: {lan: {nat: 169.254.88.0/24}}\nnodes:\n  a: {template: tiny, health: {tcp: 22}, nics: [{network: lan}]}\n",
	    "6:37", "no TCP forward reaches port 22 of node a");
	BAD("networks: {lan: {nat: 169.254.88.1/24}}\nnodes:\n  a: {template: tiny}\n", "4:23",
	    "no host bits set");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, mac: '02:00:00:00:00:01'}]}\n"
	    "  b: {template: tiny, nics: [{network: lan, mac: '02:00:00:00:00:01'}]}\n", "7:50",
	    "node a has this MAC already");
	BAD("nodes:\n  a: {template: tiny, inner: {b: {template: tiny}}}\n", "5:30",
	    "node a runs VMs only with nested: true");
	BAD("nodes:\n  a: {template: tiny, nested: true, memory: 256M, inner: {b: {template: tiny, memory: 200M}}}\n",
	    "5:58", "need 200 MiB, more than three quarters of its 256 MiB");
	BAD("nodes:\n  a: {template: tiny, nested: true, inner: {b: {template: tiny, memory: 32M, depends_on: [a]}}}\n",
	    "5:91", "depends_on: a is not an inner node of a (an inner node depends only on its siblings)");
	BAD("nodes:\n  a: {template: tiny, nested: true, inner: {b: {template: tiny, memory: 32M, depends_on: [c]},\n"
	    "    c: {template: tiny, memory: 32M, depends_on: [a-b]}}}\n",
	    "6:51", "depend on each other (a cycle)");
	BAD("nodes:\n  a: {template: tiny, nested: true, inner: {b: {template: tiny, memory: 32M, inner: {}}}}\n",
	    "5:78", "inner nodes of an inner node are not supported");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nested: true, inner: {b: {template: tiny, memory: 32M,\n"
	    "    nics: [{network: lan, vlan: 5}]}}}\n", "6:45", "no vlan, trunk or policy there");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nested: true, nics: [{network: lan}, {network: lan},\n"
	    "    {network: lan}, {network: lan}, {network: lan}, {network: lan}, {network: lan}, {network: lan}],\n"
	    "    inner: {b: {template: tiny, memory: 32M, nics: [{network: lan}]}}}\n", "6:3",
	    "node a: its 8 NICs and the 1 uplink NICs its inner nodes' networks need are more than 8");
	BAD("networks: {lan: {uplink: 'eth0/1'}}\nnodes:\n  a: {template: tiny}\n", "4:26",
	    "uplink: expected a network interface's name");
	BAD("networks: {lan: {dhcp: maybe}}\nnodes:\n  a: {template: tiny}\n", "4:24",
	    "dhcp: expected true or false");
	BAD("nodes:\n  a: {template: tiny, nested: true, inner: {b: {template: tiny, memory: 32M}}}\n  a-b: {template: tiny}\n",
	    "5:45", "node a-b is declared twice");
	BAD("nodes:\n  a: {template: tiny, nested: true, inner: {b: {template: big}}}\n", "5:59",
	    "template 'big' is not declared");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, mac: '03:00:00:00:00:01'}]}\n",
	    "6:50", "multicast");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, mac: '00:00:00:00:00:00'}]}\n",
	    "6:50", "not a NIC's address");
	BAD("nodes:\n  a: {template: tiny\n", "6:1", "did not find expected");
	BAD("networks: {lan: {nat: 10.0.0.0/30}}\nnodes:\n  a: {template: tiny}\n", "4:23",
	    "nat: expected a subnet");
	assert_refused("templates:\n  t: {kernel: /k}\nnodes:\n  a: {template: t}\n", "1:1", "name:");
	assert_refused("name: x\ntemplates:\n  t: {kernel: relative/k}\nnodes:\n  a: {template: t}\n",
		       "3:15", "give an absolute path");
	BAD("defaults: {template: tiny, colour: blue}\nnodes:\n  a: {}\n", "4:28",
	    "unknown key 'colour' in defaults");
	BAD("defaults: {memory: 6G, template: tiny}\nnodes:\n  a: {}\n  b: {}\n", "7:3", "more than this host's");
	BAD("defaults: [1]\nnodes:\n  a: {template: tiny}\n", "4:11", "defaults: expected a mapping");
	assert_refused("name: x\ntemplates:\n  t: {kernel: /k, identity: puppet}\nnodes:\n  a: {template: t}\n",
		       "3:29", "identity: expected cloud-init or smbios");
	BAD("ssh_keys: /k.pub\nnodes:\n  a: {template: tiny}\n", "4:11", "expected a list");
	BAD("ssh_keys: [k.pub]\nnodes:\n  a: {template: tiny}\n", "4:12", "give an absolute path");
	BAD("ssh_keys: [/nonexistent/k.pub]\nnodes:\n  a: {template: tiny}\n", "4:12",
	    "/nonexistent/k.pub: No such file or directory");
	char key[160], body[256];
	snprintf(key, sizeof(key), "%s", write_file("private", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n"));
	snprintf(body, sizeof(body), "ssh_keys: [%s]\nnodes:\n  a: {template: tiny}\n", key);
	BAD(body, "4:12", "not an OpenSSH public key");
	snprintf(key, sizeof(key), "%s", write_file("empty.pub", "# nothing\n\n"));
	snprintf(body, sizeof(body), "ssh_keys: [%s]\nnodes:\n  a: {template: tiny}\n", key);
	BAD(body, "4:12", "has no key");
	/* wiring: VLANs, MAC policies, VXLAN uplinks, extra disks */
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, vlan: 4095}]}\n",
	    "6:51", "vlan: expected a VLAN ID from 1 to 4094");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, trunk: 30-20}]}\n",
	    "6:52", "trunk: expected the VLANs it carries");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, trunk: 0-5}]}\n",
	    "6:52", "trunk: expected the VLANs it carries");
	BAD("networks: {lan: {}}\nnodes:\n  a: {template: tiny, nics: [{network: lan, policy: open}]}\n",
	    "6:53", "policy: expected learn, strict or promisc");
	BAD("networks: {lan: {vxlan: {remote: far.example:4789, vni: 1}}}\nnodes:\n  a: {template: tiny}\n",
	    "4:34", "vxlan: remote: expected ADDR:PORT");
	BAD("networks: {lan: {vxlan: {remote: '192.0.2.1:4789', vni: 16777216}}}\nnodes:\n  a: {template: tiny}\n",
	    "4:57", "vni: expected a number from 0 to 16777215");
	BAD("networks: {lan: {vxlan: {remote: '192.0.2.1:4789'}}}\nnodes:\n  a: {template: tiny}\n",
	    "4:25", "vxlan: give remote and vni");
	BAD("networks: {lan: {vxlan: {remote: '192.0.2.1:4789', vni: 1, ttl: 3}}}\nnodes:\n  a: {template: tiny}\n",
	    "4:60", "unknown key 'ttl' in vxlan");
	BAD("nodes:\n  a: {template: tiny, disks: [{size: 1G, image: /d.qcow2}]}\n", "5:31",
	    "a disk takes size (a new empty disk) or image");
	BAD("nodes:\n  a: {template: tiny, disks: [{size: 10K}]}\n", "5:38", "size: expected a size such as 1G");
	BAD("nodes:\n  a: {template: tiny, disks: [{image: d.qcow2}]}\n", "5:39", "image: give an absolute path");
	BAD("nodes:\n  a: {template: tiny, disks: [{size: 1G}, {size: 1G}, {size: 1G}, {size: 1G}, {size: 1G}]}\n",
	    "5:79", "more than 4 extra disks");
	BAD("nodes:\n  a: {template: tiny, disks: {size: 1G}}\n", "5:30", "disks: expected a list");
#undef BAD
}

/* defaults: apply to every node, which may override them; ssh_keys are
 * read, comments and blank lines skipped; identity: cloud-init. */
static void defaults_keys_and_identity(void **state)
{
	(void)state;
	char text[1024], a[160], b[160];
	snprintf(a, sizeof(a), "%s", write_file("a.pub", "# mine\nssh-ed25519 AAAAC3Nz me@here\n\n"));
	snprintf(b, sizeof(b), "%s", write_file("b.pub", "ecdsa-sha2-nistp256 AAAAE2Vj \"you\"\r\n"));
	snprintf(text, sizeof(text),
		 "name: keys\n"
		 "ssh_keys: [%s, %s]\n"
		 "defaults: {template: deb, memory: 512M, nested: true}\n"
		 "templates:\n"
		 "  deb: {kernel: /k, disk: /d.qcow2, identity: cloud-init}\n"
		 "  tiny: {kernel: /k, identity: smbios}\n"
		 "nodes:\n"
		 "  hv[1-2]: {cpus: 2}\n"
		 "  small: {template: tiny, memory: 64M, nested: false}\n",
		 a, b);
	struct lab_manifest *m = load_ok(text);
	assert_int_equal(m->nnodes, 3);
	assert_int_equal(m->nodes[0].template, 0);
	assert_int_equal(m->nodes[0].memory, 512 << 20);
	assert_true(m->nodes[1].nested);
	assert_int_equal(m->nodes[1].cpus, 2);
	assert_int_equal(m->nodes[2].template, 1);
	assert_int_equal(m->nodes[2].memory, 64 << 20);
	assert_false(m->nodes[2].nested);
	assert_true(m->templates[0].cloud_init);
	assert_false(m->templates[1].cloud_init);
	assert_string_equal(m->ssh_keys, "ssh-ed25519 AAAAC3Nz me@here\necdsa-sha2-nistp256 AAAAE2Vj \"you\"\n");
	free(m);
}

/* A NIC's VLAN and MAC policy, a network's VXLAN uplink (as the switch's
 * --vxlan spec), a node's extra disks. */
static void wiring_vlans_vxlan_and_disks(void **state)
{
	(void)state;
	struct lab_manifest *m = load_ok(
		"name: wired\n"
		"templates: {tiny: {kernel: /k}}\n"
		"networks:\n"
		"  lan: {vxlan: {remote: '192.0.2.7:4789', vni: 42, local: '0.0.0.0:4790'}}\n"
		"  v6: {vxlan: {remote: '[fe80::1]:4789', vni: 0}}\n"
		"nodes:\n"
		"  a: {template: tiny, nics: [{network: lan, vlan: 10, policy: strict}, {network: v6},\n"
		"      {network: lan, trunk: 100-199}, {network: lan, trunk: 7}],\n"
		"      disks: [{size: 2G}, {image: /data.qcow2}]}\n");
	assert_string_equal(m->networks[0].vxlan, "192.0.2.7:4789,vni=42,local=0.0.0.0:4790");
	assert_string_equal(m->networks[1].vxlan, "[fe80::1]:4789,vni=0");
	assert_int_equal(m->nodes[0].nics[0].vlan, 10);
	assert_string_equal(m->nodes[0].nics[0].policy, "strict");
	assert_int_equal(m->nodes[0].nics[1].vlan, 0);
	assert_string_equal(m->nodes[0].nics[1].policy, "");
	assert_int_equal(m->nodes[0].nics[1].trunk_lo, 0);
	assert_int_equal(m->nodes[0].nics[2].trunk_lo, 100);
	assert_int_equal(m->nodes[0].nics[2].trunk_hi, 199);
	assert_int_equal(m->nodes[0].nics[3].trunk_lo, 7);
	assert_int_equal(m->nodes[0].nics[3].trunk_hi, 7);
	assert_int_equal(m->nodes[0].ndisks, 2);
	assert_int_equal(m->nodes[0].disks[0].size, 2ULL << 30);
	assert_string_equal(m->nodes[0].disks[1].image, "/data.qcow2");
	assert_false(m->networks[0].dhcp);
	free(m);

	/* inner nodes with NICs on the lab's networks, disks and an order;
	 * uplink and dhcp as an inner lab's manifest has them */
	m = load_ok("name: deep\n"
		    "templates: {tiny: {kernel: /k}}\n"
		    "networks:\n"
		    "  lan: {nat: 169.254.88.0/24, forwards: [{node: hv-db, port: 22, host_port: 2201}]}\n"
		    "  up: {uplink: '02:00:00:00:00:09', dhcp: true}\n"
		    "  dev: {uplink: eth1}\n"
		    "nodes:\n"
		    "  hv:\n"
		    "    template: tiny\n"
		    "    nested: true\n"
		    "    memory: 512M\n"
		    "    inner:\n"
		    "      web: {template: tiny, memory: 64M, depends_on: [db], nics: [{network: lan, ip: 169.254.88.50}]}\n"
		    "      db: {template: tiny, memory: 64M, nics: [{network: lan}], disks: [{size: 1G}]}\n"
		    "      cache: {template: tiny, memory: 32M, depends_on: [hv-db, web]}\n");
	assert_true(m->networks[0].dhcp);
	assert_string_equal(m->networks[1].uplink, "02:00:00:00:00:09");
	assert_true(m->networks[1].dhcp);
	assert_string_equal(m->networks[2].uplink, "eth1");
	assert_false(m->networks[2].dhcp);
	assert_string_equal(m->nodes[1].name, "hv-web");
	assert_int_equal(m->nodes[1].nnics, 1);
	assert_int_equal(m->nodes[1].nics[0].ip, 0xa9fe5832);
	assert_int_equal(m->nodes[1].ndeps, 1);
	assert_int_equal(m->nodes[1].deps[0], 2);
	assert_int_equal(m->nodes[2].ndisks, 1);
	assert_int_equal(m->nodes[3].ndeps, 2);
	assert_int_equal(m->networks[0].forwards[0].node, 2);
	/* db before web before cache */
	int at[4];
	for (int i = 0; i < m->nnodes; i++)
		at[m->order[i]] = i;
	assert_true(at[2] < at[1] && at[1] < at[3]);
	free(m);
}

/* A lab snapshot keeps each node's disk by util/file.c's sparse copy: the
 * same bytes, the holes kept, and never over an existing file. */
static void sparse_copy_keeps_bytes_and_holes(void **state)
{
	(void)state;
	char dir[] = "/tmp/nestvm-unit-copy.XXXXXX", src[64], dst[64];
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	int fd = open(src, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	char a[4096], b[4096];
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	assert_int_equal(pwrite(fd, a, sizeof(a), 0), sizeof(a));
	assert_int_equal(pwrite(fd, b, sizeof(b), 8 << 20), sizeof(b));
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	assert_int_equal(file_copy_sparse(src, dst), 0);
	struct stat s1, s2;
	assert_int_equal(stat(src, &s1), 0);
	assert_int_equal(stat(dst, &s2), 0);
	assert_int_equal(s2.st_size, 16 << 20);
	assert_true(s2.st_blocks * 512 < 1 << 20); /* thin: not 16 MiB of zeros */
	fd = open(dst, O_RDONLY);
	char got[4096];
	assert_int_equal(pread(fd, got, sizeof(got), 0), sizeof(got));
	assert_memory_equal(got, a, sizeof(a));
	assert_int_equal(pread(fd, got, sizeof(got), 8 << 20), sizeof(got));
	assert_memory_equal(got, b, sizeof(b));
	assert_int_equal(pread(fd, got, sizeof(got), 4 << 20), sizeof(got));
	for (size_t i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], 0);
	close(fd);
	/* onto another file system (copy_file_range refuses: EXDEV), by hand,
	 * the same bytes; /dev/shm is a tmpfs of its own where it exists */
	char other[64];
	snprintf(other, sizeof(other), "/dev/shm/nestvm-unit-copy.%d", (int)getpid());
	struct stat shm;
	if (stat("/dev/shm", &shm) == 0 && shm.st_dev != s1.st_dev) {
		assert_int_equal(file_copy_sparse(src, other), 0);
		fd = open(other, O_RDONLY);
		assert_int_equal(pread(fd, got, sizeof(got), 8 << 20), sizeof(got));
		assert_memory_equal(got, b, sizeof(b));
		assert_int_equal(pread(fd, got, sizeof(got), 0), sizeof(got));
		assert_memory_equal(got, a, sizeof(a));
		struct stat s3;
		assert_int_equal(fstat(fd, &s3), 0);
		assert_int_equal(s3.st_size, 16 << 20);
		close(fd);
		unlink(other);
	}
	/* an existing file is never overwritten */
	errno = 0;
	assert_int_equal(file_copy_sparse(src, dst), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(file_copy_sparse("/nonexistent/x", dst), -1);
	unlink(src);
	unlink(dst);
	rmdir(dir);
}

static void identities_are_stable_and_distinct(void **state)
{
	(void)state;
	const char *seed = "00112233445566778899aabbccddeeff", *other = "ffeeddccbbaa99887766554433221100";
	uint8_t u1[16], u2[16], u3[16], u4[16];
	lab_node_uuid(seed, "hv1", u1);
	lab_node_uuid(seed, "hv1", u2);
	lab_node_uuid(seed, "hv2", u3);
	lab_node_uuid(other, "hv1", u4);
	assert_memory_equal(u1, u2, 16);
	assert_memory_not_equal(u1, u3, 16);
	assert_memory_not_equal(u1, u4, 16);
	assert_int_equal(u1[6] >> 4, 5);      /* version 5 */
	assert_int_equal(u1[8] & 0xc0, 0x80); /* RFC variant */
	uint8_t m1[6], m2[6], m3[6];
	lab_node_mac(seed, "hv1", 0, m1);
	lab_node_mac(seed, "hv1", 1, m2);
	lab_node_mac(other, "hv1", 0, m3);
	assert_int_equal(m1[0], 0x02); /* locally administered, unicast */
	assert_memory_not_equal(m1, m2, 6);
	assert_memory_not_equal(m1, m3, 6);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nestvm-unit-lab.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loads_the_smallest_manifest_and_ranges),
		cmocka_unit_test(bad_manifests_say_where),
		cmocka_unit_test(defaults_keys_and_identity),
		cmocka_unit_test(wiring_vlans_vxlan_and_disks),
		cmocka_unit_test(sparse_copy_keeps_bytes_and_holes),
		cmocka_unit_test(identities_are_stable_and_distinct),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
