#define _GNU_SOURCE
#include "lab/lab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/disk.h"
#include "lab/cidata.h"
#include "util/cpio.h"
#include "boot/smbios.h"
#include "util/file.h"
#include "util/log.h"

#define SOCKET_PATH_MAX 107 /* sun_path, less its terminating NUL */
#define SWITCH_API_SUFFIX ".switch-api"
#define CONSOLE_SOCKET_SUFFIX ".console.sock" /* the longest name in the directory */
#define SEED_SUFFIX ".cidata.iso"

/* nestvm's namespace for lab UUIDs (version 5, RFC 9562): itself a
 * version 4 UUID, fixed for good. */
static const uint8_t lab_namespace[16] = { 0x5c, 0x1f, 0x0e, 0x6b, 0x2a, 0x47, 0x4d, 0x3e,
					   0x9b, 0x61, 0x8e, 0x0d, 0x4c, 0x73, 0x25, 0xa9 };

static void sha1(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[20])
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA1);
	g_checksum_update(c, a, (gssize)alen);
	g_checksum_update(c, b, (gssize)blen);
	gsize len = 20;
	g_checksum_get_digest(c, out, &len);
	g_checksum_free(c);
}

void lab_node_uuid(const char *seed, const char *node, uint8_t uuid[16])
{
	char name[256];
	int n = snprintf(name, sizeof(name), "%s/%s", seed, node);
	uint8_t h[20];
	sha1(lab_namespace, 16, name, (size_t)n, h);
	memcpy(uuid, h, 16);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x50); /* version 5 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC variant */
}

void lab_node_mac(const char *seed, const char *node, int nic, uint8_t mac[6])
{
	char name[256];
	int n = snprintf(name, sizeof(name), "%s/%s/nic%d", seed, node, nic);
	uint8_t h[20];
	sha1(lab_namespace, 16, name, (size_t)n, h);
	mac[0] = 0x02; /* locally administered, unicast */
	memcpy(mac + 1, h, 5);
}

/* --- the state directory ------------------------------------------------- */

struct lab {
	struct lab_options opt;
	char name[LAB_NAME_MAX + 1];
	char dir[PATH_MAX];
	char seed[33];
	int lock_fd;
	json_object *state; /* {"nodes": {NAME: {...}}, "networks": {NAME: {...}}} */
};

static int state_root(const struct lab_options *opt, char *out, size_t len)
{
	if (opt->state_root)
		return snprintf(out, len, "%s", opt->state_root) < (int)len ? 0 : -1;
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg)
		return snprintf(out, len, "%s/nestvm/labs", xdg) < (int)len ? 0 : -1;
	if (!home || !*home) {
		log_error("lab: neither XDG_STATE_HOME nor HOME is set; give --state-dir DIR");
		return -1;
	}
	return snprintf(out, len, "%s/.local/state/nestvm/labs", home) < (int)len ? 0 : -1;
}

static int mkdirs(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* lab_open() bounded the directory's length, so these always fit. */
static void path_in(const struct lab *lab, char *out, const char *name, const char *suffix)
{
	if (snprintf(out, PATH_MAX, "%s/%s%s", lab->dir, name, suffix) >= PATH_MAX)
		out[0] = 0;
}

enum open_mode {
	OPEN_UP,     /* created if need be, locked, a seed made */
	OPEN_DOWN,   /* must exist, locked */
	OPEN_STATUS, /* must exist, only read: works while up or down runs */
};

/* Opens the lab's directory, locks it against another lab command that
 * changes it, reads its seed and state. */
static int lab_open(struct lab *lab, const char *name, const struct lab_options *opt,
		    enum open_mode mode)
{
	bool create = mode == OPEN_UP;
	memset(lab, 0, sizeof(*lab));
	lab->opt = *opt;
	lab->lock_fd = -1;
	snprintf(lab->name, sizeof(lab->name), "%s", name);
	char root[PATH_MAX];
	if (state_root(opt, root, sizeof(root)) < 0 ||
	    snprintf(lab->dir, sizeof(lab->dir), "%s/%s", root, name) >= (int)sizeof(lab->dir)) {
		log_error("lab %s: the state directory's path is too long", name);
		return -1;
	}
	/* The longest socket in it: DIR/NAME.console.sock, with a name of 32. */
	size_t longest = 1 + LAB_NAME_MAX + strlen(CONSOLE_SOCKET_SUFFIX);
	if (strlen(lab->dir) + longest > SOCKET_PATH_MAX) {
		log_error("lab %s: state directory %s is too long for UNIX socket paths (at most %zu "
			  "characters); give a shorter --state-dir", name, lab->dir,
			  SOCKET_PATH_MAX - longest);
		return -1;
	}
	struct stat st;
	if (stat(lab->dir, &st) < 0) {
		if (!create) {
			log_error("lab %s: not up (no state in %s)", name, lab->dir);
			return -1;
		}
		if (mkdirs(lab->dir) < 0) {
			log_error("lab %s: cannot create %s: %s", name, lab->dir, strerror(errno));
			return -1;
		}
	}
	char p[PATH_MAX];
	if (mode != OPEN_STATUS) {
		path_in(lab, p, "lock", "");
		lab->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lab->lock_fd < 0 || flock(lab->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			log_error("lab %s: another nestvm lab up or down is working on it (%s)", name, p);
			return -1;
		}
	}
	path_in(lab, p, "seed", "");
	FILE *f = fopen(p, "r");
	if (f) {
		if (!fgets(lab->seed, sizeof(lab->seed), f) || strlen(lab->seed) != 32)
			lab->seed[0] = 0;
		fclose(f);
	}
	if (!lab->seed[0] && mode == OPEN_UP) {
		uint8_t r[16];
		if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
			log_error("lab %s: getrandom: %s", name, strerror(errno));
			return -1;
		}
		for (int i = 0; i < 16; i++)
			snprintf(lab->seed + 2 * i, 3, "%02x", r[i]);
		f = fopen(p, "w");
		if (!f || fprintf(f, "%s\n", lab->seed) < 0 || fclose(f) != 0) {
			log_error("lab %s: cannot write %s", name, p);
			return -1;
		}
	}
	path_in(lab, p, "state.json", "");
	if (access(p, F_OK) < 0) {
		lab->state = json_object_new_object();
		return 0;
	}
	/* Written whole or not at all (save_state renames): one that does not
	 * parse was changed by someone else, and starting nodes again from it
	 * could run a second copy of each. */
	lab->state = json_object_from_file(p);
	if (!lab->state || !json_object_is_type(lab->state, json_type_object)) {
		log_error("lab %s: %s is not the state nestvm wrote; look at it, then remove it (and "
			  "stop the lab's processes by hand) to start afresh", name, p);
		return -1;
	}
	return 0;
}

static void lab_close(struct lab *lab)
{
	json_object_put(lab->state);
	if (lab->lock_fd >= 0)
		close(lab->lock_fd);
}

static int save_state(struct lab *lab)
{
	char p[PATH_MAX], tmp[PATH_MAX];
	path_in(lab, p, "state.json", "");
	path_in(lab, tmp, "state.json", ".new");
	if (json_object_to_file_ext(tmp, lab->state, JSON_C_TO_STRING_PRETTY) < 0 ||
	    rename(tmp, p) < 0) {
		log_error("lab %s: cannot write %s", lab->name, p);
		return -1;
	}
	return 0;
}

static json_object *section(struct lab *lab, const char *which)
{
	json_object *s;
	if (!json_object_object_get_ex(lab->state, which, &s) || !json_object_is_type(s, json_type_object)) {
		s = json_object_new_object();
		json_object_object_add(lab->state, which, s);
	}
	return s;
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : "";
}

static int int_of(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : 0;
}

/* --- processes ------------------------------------------------------------- */

/* Is pid a live (not zombie) nestvm process whose command line names
 * `mark` (its API socket): not a stranger that reused the number? */
static bool alive(int pid, const char *mark)
{
	if (pid <= 0)
		return false;
	char p[64], buf[8192];
	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *close_paren = strrchr(buf, ')');
	if (!close_paren || close_paren[1] != ' ' || close_paren[2] == 'Z' || close_paren[2] == 'X')
		return false;
	snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
	f = fopen(p, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	return strstr(buf, mark) != NULL;
}

/* Starts nestvm with argv (argv[0] ignored) detached: a session of its
 * own, stdin /dev/null, stdout and stderr into log. Returns its pid. */
static int spawn(char *const argv[], const char *log)
{
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (out < 0) {
		log_error("%s: %s", log, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(out);
		return -1;
	}
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		setsid();
		if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		if (in > 2)
			close(in);
		/* The lab's processes are this nestvm, whatever PATH holds. */
		execv("/proc/self/exe", argv);
		dprintf(2, "nestvm: cannot run /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	close(out);
	return (int)pid;
}

/* Does a process this command started (or an earlier one did) still run?
 * Our own child is asked directly: until it has run exec, its command
 * line is still ours. */
static bool still_running(int pid, const char *mark)
{
	int status;
	pid_t r = waitpid(pid, &status, WNOHANG);
	if (r == pid)
		return false;
	if (r == 0)
		return true;
	return alive(pid, mark);
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Connects to a control socket and sends one request; the socket, or -1. */
static int control_send(const char *sock, const char *request)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(sock) >= sizeof(addr.sun_path))
		return -1;
	strcpy(addr.sun_path, sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
			send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Reads the answer line into `reply` until end_ms (monotonic) and closes
 * the socket; 0 once a whole line came. */
static int control_answer(int fd, char *reply, size_t len, int64_t end_ms)
{
	size_t got = 0;
	int r = -1;
	while (got + 1 < len) {
		int64_t left = end_ms - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t n = recv(fd, reply + got, len - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got)) {
			r = 0;
			break;
		}
	}
	reply[got] = 0;
	close(fd);
	return r;
}

/* One request on a control socket; the reply into `reply`. */
static int control_request(const char *sock, const char *request, char *reply, size_t len, int wait_ms)
{
	int fd = control_send(sock, request);
	reply[0] = 0;
	return fd < 0 ? -1 : control_answer(fd, reply, len, now_ms() + wait_ms);
}


static bool file_contains(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

static void last_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	out[0] = 0;
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			snprintf(out, len, "%s", line);
	fclose(f);
	out[strcspn(out, "\n")] = 0;
}

/* --- up ----------------------------------------------------------------- */

static void nic_mac(const struct lab *lab, const struct lab_node *nd, int i, uint8_t mac[6])
{
	if (nd->nics[i].mac_given)
		memcpy(mac, nd->nics[i].mac, 6);
	else
		lab_node_mac(lab->seed, nd->name, i, mac);
}

/* A parent's uplink NIC on network ni, which its inner nodes' NICs on ni
 * reach the network through (the inner lab's switch bridges it): a MAC
 * of its own, past those of the node's NICs, starting 06: (locally
 * administered, unicast) where the lab's others start 02:, so that a
 * node's system can tell it from its own NICs (the busybox template's
 * init takes no address on it). */
static void uplink_mac(const struct lab *lab, const struct lab_node *nd, int ni, uint8_t mac[6])
{
	lab_node_mac(lab->seed, nd->name, LAB_MAX_NICS + ni, mac);
	mac[0] = 0x06;
}

/* Whether any inner node of parent pi has a NIC on network ni. */
static bool inner_uses_network(const struct lab_manifest *m, int pi, int ni)
{
	for (int i = 0; i < m->nnodes; i++)
		if (m->nodes[i].parent == pi)
			for (int c = 0; c < m->nodes[i].nnics; c++)
				if (m->nodes[i].nics[c].network == ni)
					return true;
	return false;
}

/* Every NIC on a NAT network has an address of its own, reserved at the
 * network's DHCP server: the manifest's ip, else one derived from its MAC
 * (a hash into the pool, the next free one on a collision, in the
 * manifest's order), so forwards can name it and it never changes while
 * the manifest does not. Into ips[node][nic]; 0 for NICs on plain
 * switches, and -1 when a pool is full. */
static int assign_addresses(const struct lab *lab, const struct lab_manifest *m,
			    uint32_t ips[LAB_MAX_NODES][LAB_MAX_NICS])
{
	memset(ips, 0, sizeof(uint32_t) * LAB_MAX_NODES * LAB_MAX_NICS);
	for (int ni = 0; ni < m->nnetworks; ni++) {
		const struct lab_network *n = &m->networks[ni];
		if (!n->nat)
			continue;
		uint32_t first;
		unsigned count;
		lab_network_pool(n, &first, &count);
		bool *taken = calloc(count, sizeof(bool));
		if (!taken)
			return -1;
		for (int i = 0; i < m->nnodes; i++)
			for (int c = 0; c < m->nodes[i].nnics; c++)
				if (m->nodes[i].nics[c].network == ni && m->nodes[i].nics[c].ip) {
					ips[i][c] = m->nodes[i].nics[c].ip;
					taken[ips[i][c] - first] = true; /* the manifest checked the range */
				}
		for (int i = 0; i < m->nnodes; i++)
			for (int c = 0; c < m->nodes[i].nnics; c++) {
				if (m->nodes[i].nics[c].network != ni || ips[i][c])
					continue;
				uint8_t mac[6];
				nic_mac(lab, &m->nodes[i], c, mac);
				uint32_t h = 2166136261u; /* FNV-1a */
				for (int b = 0; b < 6; b++)
					h = (h ^ mac[b]) * 16777619u;
				unsigned k = 0, slot = h % count;
				while (k < count && taken[slot])
					slot = (slot + 1) % count, k++;
				if (k == count) {
					log_error("lab %s: network %s has no address left for node %s", lab->name,
						  n->name, m->nodes[i].name);
					free(taken);
					return -1;
				}
				taken[slot] = true;
				ips[i][c] = first + slot;
			}
		free(taken);
	}
	return 0;
}

static void ip_text(uint32_t a, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
}

/* Whether a NIC has a port of its own on its network's switch (a VLAN, a
 * trunk or a MAC policy); others connect to the switch's shared socket. */
static bool nic_has_port(const struct lab_nic *nic)
{
	return nic->vlan || nic->policy[0] || nic->trunk_lo;
}

/* The socket a node's NIC connects to: its own port's (NETWORK.sock.
 * NODE.ethN) or the network's. */
static void nic_socket(struct lab *lab, const struct lab_manifest *m, const struct lab_node *nd, int i,
		       char sock[PATH_MAX])
{
	char suffix[LAB_NAME_MAX + 32];
	if (nic_has_port(&nd->nics[i]))
		snprintf(suffix, sizeof(suffix), ".sock.%s.eth%d", nd->name, i);
	else
		snprintf(suffix, sizeof(suffix), ".sock");
	path_in(lab, sock, m->networks[nd->nics[i].network].name, suffix);
}

static int start_network(struct lab *lab, const struct lab_manifest *m, int ni,
			 uint32_t ips[LAB_MAX_NODES][LAB_MAX_NICS])
{
	const struct lab_network *n = &m->networks[ni];
	json_object *nets = section(lab, "networks"), *st;
	char sock[PATH_MAX], api[PATH_MAX], log[PATH_MAX];
	path_in(lab, sock, n->name, ".sock");
	path_in(lab, api, n->name, SWITCH_API_SUFFIX);
	path_in(lab, log, n->name, ".switch-log");
	if (json_object_object_get_ex(nets, n->name, &st) && alive(int_of(st, "pid"), api))
		return 0;
	unlink(sock);
	unlink(api);
	char nat[64];
	snprintf(nat, sizeof(nat), "--nat=%s", n->subnet);
	/* Its reservations (--dhcp-host MAC=IP) and forwards, each two
	 * arguments, after the fixed ones. */
	enum { ARG_TEXT = 192 };
	/* (and per NIC a --port, and a --vxlan) */
	size_t max_args = 16 + 2 * (2 * (size_t)LAB_MAX_NODES * LAB_MAX_NICS + LAB_MAX_FORWARDS);
	char **argv = calloc(max_args, sizeof(char *));
	char (*text)[ARG_TEXT] = calloc(max_args, ARG_TEXT);
	if (!argv || !text) {
		free(argv);
		free(text);
		log_error("lab %s: out of memory", lab->name);
		return -1;
	}
	int a = 0, t = 0;
	argv[a++] = "nestvm";
	argv[a++] = "switch";
	argv[a++] = "--api-socket";
	argv[a++] = api;
	argv[a++] = "--socket";
	argv[a++] = sock;
	if (n->vxlan[0]) {
		argv[a++] = "--vxlan";
		argv[a++] = (char *)n->vxlan;
	}
	if (n->uplink[0]) {
		argv[a++] = "--uplink";
		argv[a++] = (char *)n->uplink;
	}
	/* NICs with a VLAN or a MAC policy get a port of their own, which
	 * their node connects to (nic_socket). */
	for (int i = 0; i < m->nnodes; i++)
		for (int c = 0; c < m->nodes[i].nnics; c++) {
			const struct lab_nic *nic = &m->nodes[i].nics[c];
			if (nic->network != ni || !nic_has_port(nic))
				continue;
			char port_sock[PATH_MAX];
			nic_socket(lab, m, &m->nodes[i], c, port_sock);
			if (strlen(port_sock) > SOCKET_PATH_MAX) {
				log_error("lab %s: node %s's port on network %s would be %s, too long for a "
					  "UNIX socket (at most %d characters); give a shorter --state-dir or "
					  "names", lab->name, m->nodes[i].name, n->name, port_sock,
					  SOCKET_PATH_MAX);
				free(argv);
				free(text);
				return -1;
			}
			uint8_t mac[6];
			nic_mac(lab, &m->nodes[i], c, mac);
			char trunk[24] = "";
			if (nic->trunk_lo)
				snprintf(trunk, sizeof(trunk), ",trunk=%u-%u", nic->trunk_lo, nic->trunk_hi);
			snprintf(text[t], ARG_TEXT, "%s.eth%d,vlan=%u,policy=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x%s",
				 m->nodes[i].name, c, nic->vlan ? nic->vlan : 1,
				 nic->policy[0] ? nic->policy : "learn", mac[0], mac[1], mac[2], mac[3], mac[4],
				 mac[5], trunk);
			argv[a++] = "--port";
			argv[a++] = text[t++];
		}
	if (n->nat) {
		argv[a++] = n->subnet[0] ? nat : "--nat";
		for (int i = 0; i < m->nnodes; i++)
			for (int c = 0; c < m->nodes[i].nnics; c++) {
				if (m->nodes[i].nics[c].network != ni)
					continue;
				uint8_t mac[6];
				char ip[16];
				nic_mac(lab, &m->nodes[i], c, mac);
				ip_text(ips[i][c], ip);
				snprintf(text[t], ARG_TEXT, "%02x:%02x:%02x:%02x:%02x:%02x=%s", mac[0], mac[1],
					 mac[2], mac[3], mac[4], mac[5], ip);
				argv[a++] = "--dhcp-host";
				argv[a++] = text[t++];
			}
		for (int f = 0; f < n->nforwards; f++) {
			const struct lab_forward *fw = &n->forwards[f];
			int c = 0;
			while (m->nodes[fw->node].nics[c].network != ni) /* the manifest checked it has one */
				c++;
			char host[16], guest[16];
			ip_text(fw->host_addr, host);
			ip_text(ips[fw->node][c], guest);
			snprintf(text[t], ARG_TEXT, "%s:%s:%u-%s:%u", fw->udp ? "udp" : "tcp", host,
				 fw->host_port, guest, fw->port);
			argv[a++] = "--forward";
			argv[a++] = text[t++];
		}
	}
	argv[a] = NULL;
	int pid = spawn(argv, log);
	free(argv);
	free(text);
	if (pid < 0)
		return -1;
	/* Ready once it answers on its API socket. */
	char reply[65536];
	bool answered = false;
	for (int64_t end = now_ms() + 20000; now_ms() < end && !answered;) {
		answered = control_request(api, "{\"command\":\"status\"}\n", reply, sizeof(reply),
					   1000) == 0;
		if (answered)
			break;
		if (!still_running(pid, api)) {
			char why[512];
			last_line(log, why, sizeof(why));
			log_error("lab %s: network %s did not start: %s", lab->name, n->name,
				  why[0] ? why : "(no message)");
			return -1;
		}
		usleep(50 * 1000);
	}
	if (!answered) {
		log_error("lab %s: network %s does not answer on %s after 20 s; stopped it", lab->name,
			  n->name, api);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	st = json_object_new_object();
	json_object_object_add(st, "pid", json_object_new_int(pid));
	json_object_object_add(st, "socket", json_object_new_string(sock));
	json_object_object_add(st, "api_socket", json_object_new_string(api));
	json_object_object_add(nets, n->name, st);
	return save_state(lab);
}

/* --- inner nodes ----------------------------------------------------------
 * A node's inner nodes reach it on a read-only disk of their own, serial
 * "nestvm-lab": a newc cpio archive (cpio -id unpacks it) holding this
 * nestvm, the inner lab's manifest (lab.yaml, paths under
 * INNER_DIR), the files of the templates its nodes use (files/), the inner
 * lab's seed (derived from this lab's, so inner identities are stable too)
 * and two scripts: up.sh starts the inner lab and says
 * "nestvm-lab: inner up" (or "... failed") on stdout, down.sh takes it down.
 * The parent's system unpacks it in INNER_DIR and runs up.sh (README:
 * inner nodes); the lab waits for that line on the parent's console. */
#define INNER_DIR "/run/nestvm-lab"
#define INNER_SERIAL "nestvm-lab"
#define INNER_UP_LINE "nestvm-lab: inner up"
#define INNER_FAILED_LINE "nestvm-lab: inner failed"

/* A YAML double-quoted scalar of s. */
static void yaml_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\x%02x", c);
			continue;
		}
		/* U+0080..U+009F (UTF-8 C2 80..C2 9F): not printable to YAML */
		if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f) {
			fprintf(f, "\\x%02x", (unsigned char)s[1]);
			s++;
			continue;
		}
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* Whether the image at path is a qcow2 naming a backing file (which would
 * name a file of this machine inside another). */
static bool has_backing_file(const char *path)
{
	uint8_t head[16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool backed = fd >= 0 && pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
		      !memcmp(head, "QFI\xfb", 4) && memcmp(head + 8, "\0\0\0\0\0\0\0\0", 8);
	if (fd >= 0)
		close(fd);
	return backed;
}

static int write_inner_seed(struct lab *lab, const struct lab_manifest *m, const struct lab_node *parent,
			    const char *path)
{
	int pi = (int)(parent - m->nodes);
	char *yaml = NULL;
	size_t yaml_len = 0;
	FILE *y = open_memstream(&yaml, &yaml_len);
	if (!y) {
		log_error("lab %s: out of memory", lab->name);
		return -1;
	}
	bool used[LAB_MAX_TEMPLATES] = { false };
	for (int i = 0; i < m->nnodes; i++)
		if (m->nodes[i].parent == pi)
			used[m->nodes[i].template] = true;
	fprintf(y, "# The inner nodes of %s (lab %s), written by nestvm lab\nname: %s\n", parent->name,
		lab->name, parent->name);
	if (m->ssh_keys[0])
		fprintf(y, "ssh_keys: [" INNER_DIR "/files/ssh_keys.pub]\n");
	fprintf(y, "templates:\n");
	for (int t = 0; t < m->ntemplates; t++) {
		if (!used[t])
			continue;
		const struct lab_template *tp = &m->templates[t];
		fprintf(y, "  %s:\n    kernel: " INNER_DIR "/files/%s.kernel\n", tp->name, tp->name);
		if (tp->initrd[0])
			fprintf(y, "    initrd: " INNER_DIR "/files/%s.initrd\n", tp->name);
		if (tp->disk[0])
			fprintf(y, "    disk: " INNER_DIR "/files/%s.disk\n", tp->name);
		fprintf(y, "    cmdline: ");
		yaml_quoted(y, tp->cmdline);
		fprintf(y, "\n    identity: %s\n", tp->cloud_init ? "cloud-init" : "smbios");
	}
	/* Each network the inner nodes use: a switch inside the parent whose
	 * uplink is the parent's NIC on that network (by its MAC). */
	bool any_network = false;
	for (int ni = 0; ni < m->nnetworks; ni++) {
		if (!inner_uses_network(m, pi, ni))
			continue;
		uint8_t mac[6];
		uplink_mac(lab, parent, ni, mac);
		if (!any_network)
			fprintf(y, "networks:\n");
		any_network = true;
		fprintf(y, "  %s: {uplink: \"%02x:%02x:%02x:%02x:%02x:%02x\", dhcp: %s}\n",
			m->networks[ni].name, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
			m->networks[ni].dhcp ? "true" : "false");
	}
	fprintf(y, "nodes:\n");
	for (int i = 0; i < m->nnodes; i++) {
		const struct lab_node *nd = &m->nodes[i];
		if (nd->parent != pi)
			continue;
		fprintf(y, "  %s:\n    template: %s\n    memory: %lluK\n    cpus: %d\n    nested: %s\n",
			nd->name, m->templates[nd->template].name, (unsigned long long)(nd->memory >> 10),
			nd->cpus, nd->nested ? "true" : "false");
		/* Their MACs are this lab's (its seed, their full names), so the
		 * outer DHCP server's reservations and forwards know them. */
		if (nd->nnics)
			fprintf(y, "    nics:\n");
		for (int c = 0; c < nd->nnics; c++) {
			uint8_t mac[6];
			nic_mac(lab, nd, c, mac);
			fprintf(y, "      - {network: %s, mac: \"%02x:%02x:%02x:%02x:%02x:%02x\"}\n",
				m->networks[nd->nics[c].network].name, mac[0], mac[1], mac[2], mac[3], mac[4],
				mac[5]);
		}
		if (nd->ndisks)
			fprintf(y, "    disks:\n");
		for (int d = 0; d < nd->ndisks; d++) {
			if (nd->disks[d].image[0])
				fprintf(y, "      - {image: " INNER_DIR "/files/%s.disk%d}\n", nd->name, d + 1);
			else
				fprintf(y, "      - {size: %lluK}\n",
					(unsigned long long)((nd->disks[d].size + 1023) >> 10));
		}
		if (nd->ndeps) {
			fprintf(y, "    depends_on: [");
			for (int d = 0; d < nd->ndeps; d++)
				fprintf(y, "%s%s", d ? ", " : "", m->nodes[nd->deps[d]].name);
			fprintf(y, "]\n");
		}
		if (nd->health_console[0]) {
			fprintf(y, "    health: {console: ");
			yaml_quoted(y, nd->health_console);
			fprintf(y, "}\n");
		}
	}
	if (fclose(y) != 0) {
		free(yaml);
		log_error("lab %s: out of memory", lab->name);
		return -1;
	}
	/* The inner lab's seed: from this one's and the parent's name. */
	uint8_t h[20];
	char inner_seed[34], seed_path[64 + LAB_NAME_MAX];
	sha1(lab->seed, strlen(lab->seed), parent->name, strlen(parent->name), h);
	for (int i = 0; i < 16; i++)
		snprintf(inner_seed + 2 * i, 3, "%02x", h[i]);
	strcat(inner_seed, "\n");
	static const char up[] =
		"#!/bin/sh\n"
		"# Starts this node's inner nodes (nestvm lab), then says how that went.\n"
		"cd " INNER_DIR " || exit 1\n"
		"if ./nestvm lab up lab.yaml --state-dir " INNER_DIR "/state; then\n"
		"\techo '" INNER_UP_LINE "'\n"
		"else\n"
		"\techo '" INNER_FAILED_LINE "'\n"
		"\texit 1\n"
		"fi\n";
	static const char down[] =
		"#!/bin/sh\n"
		"# Takes this node's inner nodes down (their power buttons, then a hard stop).\n"
		"cd " INNER_DIR " && exec ./nestvm lab down lab.yaml --state-dir " INNER_DIR "/state --timeout 20\n";
	/* A template disk goes in whole, alone: a qcow2 one naming a backing
	 * file would name a file of this machine. */
	for (int t = 0; t < m->ntemplates; t++) {
		if (used[t] && m->templates[t].disk[0] && has_backing_file(m->templates[t].disk)) {
			log_error("lab %s: node %s: template %s's disk %s has a backing file; an inner "
				  "node's template disk must stand alone (qemu-img convert makes one)",
				  lab->name, parent->name, m->templates[t].name, m->templates[t].disk);
			free(yaml);
			return -1;
		}
	}
	for (int i = 0; i < m->nnodes; i++)
		for (int d = 0; m->nodes[i].parent == pi && d < m->nodes[i].ndisks; d++)
			if (m->nodes[i].disks[d].image[0] && has_backing_file(m->nodes[i].disks[d].image)) {
				log_error("lab %s: node %s: disk image %s has a backing file; an inner "
					  "node's disk image must stand alone (qemu-img convert makes one)",
					  lab->name, m->nodes[i].name, m->nodes[i].disks[d].image);
				free(yaml);
				return -1;
			}
	char tmp[PATH_MAX];
	path_in(lab, tmp, parent->name, ".inner.cpio.new");
	unlink(tmp);
	struct cpio_writer w;
	if (cpio_create(&w, tmp) < 0) {
		free(yaml);
		return -1;
	}
	cpio_add_file(&w, "nestvm", 0755, "/proc/self/exe");
	cpio_add_data(&w, "lab.yaml", 0644, yaml, yaml_len);
	cpio_add_data(&w, "up.sh", 0755, up, sizeof(up) - 1);
	cpio_add_data(&w, "down.sh", 0755, down, sizeof(down) - 1);
	cpio_add_dir(&w, "state", 0700);
	snprintf(seed_path, sizeof(seed_path), "state/%s", parent->name);
	cpio_add_dir(&w, seed_path, 0700);
	snprintf(seed_path, sizeof(seed_path), "state/%s/seed", parent->name);
	cpio_add_data(&w, seed_path, 0600, inner_seed, strlen(inner_seed));
	cpio_add_dir(&w, "files", 0755);
	if (m->ssh_keys[0])
		cpio_add_data(&w, "files/ssh_keys.pub", 0644, m->ssh_keys, strlen(m->ssh_keys));
	for (int t = 0; t < m->ntemplates; t++) {
		if (!used[t])
			continue;
		const struct lab_template *tp = &m->templates[t];
		const char *src[3] = { tp->kernel, tp->initrd, tp->disk };
		const char *suffix[3] = { "kernel", "initrd", "disk" };
		for (int k = 0; k < 3; k++) {
			char name[LAB_NAME_MAX + 32];
			if (!src[k][0])
				continue;
			snprintf(name, sizeof(name), "files/%s.%s", tp->name, suffix[k]);
			cpio_add_file(&w, name, 0644, src[k]);
		}
	}
	for (int i = 0; i < m->nnodes; i++)
		for (int d = 0; m->nodes[i].parent == pi && d < m->nodes[i].ndisks; d++) {
			char name[LAB_NAME_MAX + 32];
			if (!m->nodes[i].disks[d].image[0])
				continue;
			snprintf(name, sizeof(name), "files/%s.disk%d", m->nodes[i].name, d + 1);
			cpio_add_file(&w, name, 0644, m->nodes[i].disks[d].image);
		}
	free(yaml);
	int r = cpio_finish(&w);
	/* A disk is whole sectors: the archive padded with zeros (cpio stops
	 * at its trailer). */
	struct stat st;
	if (r == 0 && (stat(tmp, &st) < 0 || truncate(tmp, (st.st_size + 511) / 512 * 512) < 0 ||
		       rename(tmp, path) < 0))
		r = -1;
	if (r < 0) {
		log_error("lab %s: node %s: cannot write its inner nodes' disk %s", lab->name,
			  parent->name, path);
		unlink(tmp);
	}
	return r;
}

/* A YAML double-quoted scalar of s (keys' comments may hold anything). */
static void yaml_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			g_string_append_printf(out, "\\x%02x", c);
		else
			g_string_append_c(out, (char)c);
	}
	g_string_append_c(out, '"');
}

/* The node's cloud-init NoCloud seed (lab/cidata.h): its instance id (the
 * UUID: a new one would make cloud-init run its first boot again) and
 * hostname, the lab's ssh keys for the image's default user, and its NICs
 * by MAC, named eth0, eth1... in order; DHCP on NAT networks, where the
 * lab's DHCP server holds each NIC's address (and where dhcp: says so);
 * no address on a plain switch, where nothing would answer. An uplink NIC
 * for inner nodes is left out: no address, the inner lab's switch brings
 * it up. */
static int write_seed(const struct lab *lab, const struct lab_manifest *m, const struct lab_node *nd,
		      const char *uuid, const char *path)
{
	GString *meta = g_string_new(NULL), *user = g_string_new("#cloud-config\n"),
		*net = g_string_new("version: 1\nconfig:\n");
	g_string_append_printf(meta, "instance-id: %s\nlocal-hostname: %s\n", uuid, nd->name);
	/* /etc/hosts names the node too (sudo looks its own name up). */
	g_string_append_printf(user, "hostname: %s\nmanage_etc_hosts: true\nssh_pwauth: false\n",
			       nd->name);
	if (m->ssh_keys[0]) {
		g_string_append(user, "ssh_authorized_keys:\n");
		for (const char *k = m->ssh_keys; *k;) {
			size_t n = strcspn(k, "\n");
			char *line = g_strndup(k, n);
			g_string_append(user, "  - ");
			yaml_string(user, line);
			g_string_append_c(user, '\n');
			g_free(line);
			k += n + (k[n] == '\n');
		}
	}
	for (int i = 0; i < nd->nnics; i++) {
		uint8_t mac[6];
		nic_mac(lab, nd, i, mac);
		g_string_append_printf(net,
				       "  - type: physical\n    name: eth%d\n"
				       "    mac_address: \"%02x:%02x:%02x:%02x:%02x:%02x\"\n",
				       i, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		if (m->networks[nd->nics[i].network].dhcp)
			g_string_append(net, "    subnets: [{type: dhcp}]\n");
	}
	if (!nd->nnics)
		g_string_assign(net, "version: 1\nconfig: []\n");
	const struct cidata_file files[] = {
		{ "meta-data", meta->str }, { "user-data", user->str }, { "network-config", net->str },
	};
	int r = cidata_write(path, files, 3);
	g_string_free(meta, TRUE);
	g_string_free(user, TRUE);
	g_string_free(net, TRUE);
	return r;
}

/* A node's definition as it runs: a digest of its nestvm command line, so
 * that up notices a manifest changed under a running node. */
static void argv_digest(char *const argv[], char out[41])
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA1);
	for (int i = 0; argv[i]; i++)
		g_checksum_update(c, (const guchar *)argv[i], (gssize)strlen(argv[i]) + 1);
	snprintf(out, 41, "%s", g_checksum_get_string(c));
	g_checksum_free(c);
}

/* A node's extra disk i (from 0): NODE.disk(i+1).qcow2 in the state. */
static void extra_disk_path(const struct lab *lab, const struct lab_node *nd, int i, char out[PATH_MAX])
{
	char suffix[32];
	snprintf(suffix, sizeof(suffix), ".disk%d.qcow2", i + 1);
	path_in(lab, out, nd->name, suffix);
}

/* A node's NIC with this MAC on the switch at sock: its --net argument
 * (written into net) appended to argv, its MAC to the list. */
static void net_arg(char **argv, int *a, char net[PATH_MAX + 64], json_object *list, const uint8_t mac[6],
		    const char *sock)
{
	char text[18];
	snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
	json_object_array_add(list, json_object_new_string(text));
	snprintf(net, PATH_MAX + 64, "switch=%s,mac=%s", sock, text);
	argv[(*a)++] = "--net";
	argv[(*a)++] = net;
}

static int start_node(struct lab *lab, const struct lab_manifest *m, const struct lab_node *nd)
{
	json_object *nodes = section(lab, "nodes"), *st;
	const struct lab_template *t = &m->templates[nd->template];
	char api[PATH_MAX], console[PATH_MAX], console_sock[PATH_MAX], log[PATH_MAX], overlay[PATH_MAX];
	path_in(lab, api, nd->name, ".api");
	path_in(lab, console, nd->name, ".console");
	path_in(lab, console_sock, nd->name, CONSOLE_SOCKET_SUFFIX);
	path_in(lab, log, nd->name, ".log");
	path_in(lab, overlay, nd->name, ".qcow2");
	uint8_t uuid[16];
	char uuid_text[37], serial[256], memory[32], cpus[16], disk[PATH_MAX + 8];
	lab_node_uuid(lab->seed, nd->name, uuid);
	smbios_format_uuid(uuid, uuid_text);
	snprintf(serial, sizeof(serial), "ds=nocloud;h=%s;i=%s", nd->name, uuid_text);
	snprintf(memory, sizeof(memory), "%lluK", (unsigned long long)(nd->memory >> 10));
	snprintf(cpus, sizeof(cpus), "%d", nd->cpus);
	snprintf(disk, sizeof(disk), "%s", overlay);
	char console_spec[PATH_MAX + 8], nets[LAB_MAX_NICS + LAB_MAX_NETWORKS][PATH_MAX + 64];
	/* Appended to, so that a restored node's console goes on in the same
	 * log; a started one empties it first (below). */
	snprintf(console_spec, sizeof(console_spec), "append:%s", console);
	char *argv[128];
	int a = 0;
	argv[a++] = "nestvm";
	argv[a++] = "run";
	/* First: alive() finds a node's process by it in its command line. */
	argv[a++] = "--api-socket";
	argv[a++] = api;
	argv[a++] = "--kernel";
	argv[a++] = (char *)t->kernel;
	if (t->initrd[0]) {
		argv[a++] = "--initrd";
		argv[a++] = (char *)t->initrd;
	}
	argv[a++] = "--cmdline";
	argv[a++] = (char *)t->cmdline;
	argv[a++] = "--memory";
	argv[a++] = memory;
	argv[a++] = "--cpus";
	argv[a++] = cpus;
	if (nd->nested)
		argv[a++] = "--nested";
	if (t->disk[0]) {
		argv[a++] = "--disk";
		argv[a++] = disk;
	}
	/* Extra disks after the template's: NODE.diskN.qcow2 */
	char extra[LAB_MAX_DISKS][PATH_MAX];
	for (int i = 0; i < nd->ndisks; i++) {
		extra_disk_path(lab, nd, i, extra[i]);
		argv[a++] = "--disk";
		argv[a++] = extra[i];
	}
	char seed[PATH_MAX], seed_spec[PATH_MAX + 32];
	path_in(lab, seed, nd->name, SEED_SUFFIX);
	if (t->cloud_init) {
		snprintf(seed_spec, sizeof(seed_spec), "%s,readonly,serial=cidata", seed);
		argv[a++] = "--disk";
		argv[a++] = seed_spec;
	}
	char inner[PATH_MAX], inner_spec[PATH_MAX + 32];
	path_in(lab, inner, nd->name, ".inner.cpio");
	if (nd->ninner) {
		snprintf(inner_spec, sizeof(inner_spec), "%s,readonly,serial=" INNER_SERIAL, inner);
		argv[a++] = "--disk";
		argv[a++] = inner_spec;
	}
	json_object *macs = json_object_new_array();
	for (int i = 0; i < nd->nnics; i++) {
		uint8_t mac[6];
		char sock[PATH_MAX];
		nic_mac(lab, nd, i, mac);
		nic_socket(lab, m, nd, i, sock);
		net_arg(argv, &a, nets[i], macs, mac, sock);
	}
	/* After its own NICs, an uplink NIC per network its inner nodes use. */
	json_object *uplinks = json_object_new_array();
	for (int ni = 0, k = nd->nnics; ni < m->nnetworks; ni++) {
		if (!inner_uses_network(m, (int)(nd - m->nodes), ni))
			continue;
		uint8_t mac[6];
		char sock[PATH_MAX];
		uplink_mac(lab, nd, ni, mac);
		path_in(lab, sock, m->networks[ni].name, ".sock");
		net_arg(argv, &a, nets[k++], uplinks, mac, sock);
	}
	argv[a++] = "--uuid";
	argv[a++] = uuid_text;
	argv[a++] = "--serial";
	argv[a++] = serial;
	argv[a++] = "--console";
	argv[a++] = console_spec;
	argv[a++] = "--console-socket";
	argv[a++] = console_sock;
	argv[a] = NULL;
	char digest[41];
	argv_digest(argv, digest);
	if (json_object_object_get_ex(nodes, nd->name, &st) && alive(int_of(st, "pid"), api)) {
		if (*str_of(st, "config") && strcmp(str_of(st, "config"), digest))
			log_warn("lab %s: node %s's definition in %s changed since it started; it runs "
				 "on as it was (nestvm lab down then up applies the change)", lab->name,
				 nd->name, m->path);
		json_object_put(macs);
		json_object_put(uplinks);
		return 0;
	}
	unlink(api);
	unlink(console_sock);
	if (t->disk[0] && access(overlay, F_OK) < 0) {
		char what[128];
		snprintf(what, sizeof(what), "lab %s: node %s", lab->name, nd->name);
		if (disk_clone(what, t->disk, overlay, 0) < 0) {
			json_object_put(macs);
			json_object_put(uplinks);
			return -1;
		}
	}
	for (int i = 0; i < nd->ndisks; i++) {
		const struct lab_disk *d = &nd->disks[i];
		char what[128];
		snprintf(what, sizeof(what), "lab %s: node %s: disk %d", lab->name, nd->name, i + 1);
		if (access(extra[i], F_OK) == 0)
			continue; /* kept from before: its data stays until reset */
		if ((d->image[0] ? disk_clone(what, d->image, extra[i], 0)
				 : disk_create_qcow2(what, extra[i], d->size, NULL, NULL)) < 0) {
			json_object_put(macs);
			json_object_put(uplinks);
			return -1;
		}
	}
	if ((nd->ninner && write_inner_seed(lab, m, nd, inner) < 0) ||
	    (t->cloud_init && write_seed(lab, m, nd, uuid_text, seed) < 0)) {
		json_object_put(macs);
		json_object_put(uplinks);
		return -1;
	}
	if (truncate(console, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot empty it: %s", console, strerror(errno));
	int pid = spawn(argv, log);
	if (pid < 0) {
		json_object_put(macs);
		json_object_put(uplinks);
		return -1;
	}
	json_object *deps = json_object_new_array();
	for (int d = 0; d < nd->ndeps; d++)
		json_object_array_add(deps, json_object_new_string(m->nodes[nd->deps[d]].name));
	json_object *forwards = json_object_new_array();
	for (int ni = 0; ni < m->nnetworks; ni++)
		for (int f = 0; f < m->networks[ni].nforwards; f++) {
			const struct lab_forward *fw = &m->networks[ni].forwards[f];
			if (fw->node != nd - m->nodes)
				continue;
			char host[16], text[64];
			ip_text(fw->host_addr, host);
			snprintf(text, sizeof(text), "%s:%u->%u/%s", host, fw->host_port, fw->port,
				 fw->udp ? "udp" : "tcp");
			json_object_array_add(forwards, json_object_new_string(text));
		}
	json_object *inner_names = json_object_new_array();
	for (int i = 0; i < m->nnodes; i++)
		if (m->nodes[i].parent == nd - m->nodes)
			json_object_array_add(inner_names, json_object_new_string(m->nodes[i].name));
	st = json_object_new_object();
	json_object_object_add(st, "inner", inner_names);
	json_object_object_add(st, "config", json_object_new_string(digest));
	json_object_object_add(st, "forwards", forwards);
	json_object_object_add(st, "depends_on", deps);
	json_object_object_add(st, "console_socket", json_object_new_string(console_sock));
	json_object_object_add(st, "pid", json_object_new_int(pid));
	json_object_object_add(st, "uuid", json_object_new_string(uuid_text));
	json_object_object_add(st, "hostname", json_object_new_string(nd->name));
	json_object_object_add(st, "macs", macs);
	if (json_object_array_length(uplinks))
		json_object_object_add(st, "uplink_macs", uplinks);
	else
		json_object_put(uplinks);
	json_object_object_add(st, "console_log", json_object_new_string(console));
	json_object_object_add(st, "api_socket", json_object_new_string(api));
	if (t->disk[0])
		json_object_object_add(st, "disk", json_object_new_string(overlay));
	if (nd->ninner)
		json_object_object_add(st, "inner_disk", json_object_new_string(inner));
	if (t->cloud_init)
		json_object_object_add(st, "seed_disk", json_object_new_string(seed));
	for (int i = 0; i < nd->ndisks; i++) {
		char key[16];
		snprintf(key, sizeof(key), "disk%d", i + 1);
		json_object_object_add(st, key, json_object_new_string(extra[i]));
	}
	json_object_object_add(nodes, nd->name, st);
	return save_state(lab);
}

/* Does a server answer on host_addr:port? Through a NAT forward the
 * connection is taken at once, whoever listens behind it, so only the
 * server's first bytes (an ssh banner, say) within a second tell. */
static bool tcp_answers(uint32_t host_addr, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(host_addr) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	bool answered = false;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS) {
		int64_t end = now_ms() + 1000;
		for (int64_t left; !answered && (left = end - now_ms()) > 0;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, (int)left) <= 0)
				break;
			char byte;
			ssize_t n = recv(fd, &byte, 1, 0);
			if (n == 1)
				answered = true;
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				break; /* closed or refused: nobody listens behind it */
		}
	}
	close(fd);
	return answered;
}

/* The forward a TCP health check goes through (the manifest checked one
 * exists). */
static const struct lab_forward *health_forward(const struct lab_manifest *m, const struct lab_node *nd)
{
	for (int ni = 0; ni < m->nnetworks; ni++)
		for (int f = 0; f < m->networks[ni].nforwards; f++) {
			const struct lab_forward *fw = &m->networks[ni].forwards[f];
			if (fw->node == nd - m->nodes && fw->port == nd->health_tcp && !fw->udp)
				return fw;
		}
	return NULL;
}

/* Healthy: it answers on its API socket, running, the console shows the
 * manifest's health line and its health port answers through its forward
 * (for those the manifest names). */
static int wait_healthy(struct lab *lab, const struct lab_manifest *m, const struct lab_node *nd)
{
	const struct lab_forward *tcp = nd->health_tcp ? health_forward(m, nd) : NULL;
	json_object *st;
	if (!json_object_object_get_ex(section(lab, "nodes"), nd->name, &st))
		return -1;
	const char *api = str_of(st, "api_socket"), *console = str_of(st, "console_log");
	int pid = int_of(st, "pid");
	char reply[65536], log[PATH_MAX];
	path_in(lab, log, nd->name, ".log");
	bool answered = false;
	for (int64_t end = now_ms() + (int64_t)lab->opt.timeout_s * 1000; now_ms() < end;) {
		if (!answered)
			answered = control_request(api, "{\"command\":\"status\"}\n", reply, sizeof(reply),
						   1000) == 0 && strstr(reply, "\"running\"");
		if (nd->ninner && file_contains(console, INNER_FAILED_LINE)) {
			log_error("lab %s: node %s could not start its inner nodes (its console log %s "
				  "says why)", lab->name, nd->name, console);
			return -1;
		}
		if (answered && (!nd->health_console[0] || file_contains(console, nd->health_console)) &&
		    (!nd->ninner || file_contains(console, INNER_UP_LINE)) &&
		    (!tcp || tcp_answers(tcp->host_addr, tcp->host_port)))
			return 0;
		if (!still_running(pid, api)) {
			char why[512];
			last_line(log, why, sizeof(why));
			log_error("lab %s: node %s stopped before it was healthy: %s", lab->name, nd->name,
				  why[0] ? why : "(no message)");
			return -1;
		}
		usleep(100 * 1000);
	}
	char why[256] = "not healthy";
	if (!answered)
		snprintf(why, sizeof(why), "its control socket does not answer");
	else if (nd->health_console[0] && !file_contains(console, nd->health_console))
		snprintf(why, sizeof(why), "no health line on its console yet");
	else if (nd->ninner && !file_contains(console, INNER_UP_LINE))
		snprintf(why, sizeof(why), "its inner nodes are not up: no '" INNER_UP_LINE "' on its "
			 "console (does its system run " INNER_DIR "/up.sh from its " INNER_SERIAL
			 " disk?)");
	else if (tcp) {
		char host[16];
		ip_text(tcp->host_addr, host);
		snprintf(why, sizeof(why), "nothing answers on its port %u through %s:%u", nd->health_tcp,
			 host, tcp->host_port);
	}
	log_error("lab %s: node %s is not healthy after %d s (%s)", lab->name, nd->name,
		  lab->opt.timeout_s, why);
	return -1;
}

int lab_up(const char *file, const struct lab_options *opt)
{
	struct lab_manifest *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("lab: out of memory");
		return -1;
	}
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
	struct lab lab;
	int r = -1;
	lab.state = NULL;
	lab.lock_fd = -1;
	if (lab_manifest_load(file, pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0, m) < 0)
		goto out_manifest;
	if (lab_open(&lab, m->name, opt, OPEN_UP) < 0)
		goto out;
	json_object_object_add(lab.state, "manifest", json_object_new_string(m->path));
	/* Health is this run's finding: a node found healthy before may have
	 * died since. */
	json_object_object_foreach(section(&lab, "nodes"), old, old_state) {
		(void)old;
		json_object_object_add(old_state, "healthy", json_object_new_int(0));
	}
	static uint32_t ips[LAB_MAX_NODES][LAB_MAX_NICS];
	if (assign_addresses(&lab, m, ips) < 0)
		goto out;
	for (int i = 0; i < m->nnetworks; i++)
		if (start_network(&lab, m, i, ips) < 0)
			goto out;
	int unhealthy = 0;
	for (int i = 0; i < m->nnodes; i++) {
		const struct lab_node *nd = &m->nodes[m->order[i]];
		if (nd->parent >= 0)
			continue; /* its parent starts it */
		/* A node starts once what it depends on is healthy. */
		bool deps_ok = true;
		for (int d = 0; d < nd->ndeps; d++) {
			json_object *st;
			const char *dn = m->nodes[nd->deps[d]].name;
			if (!json_object_object_get_ex(section(&lab, "nodes"), dn, &st) ||
			    int_of(st, "healthy") != 1)
				deps_ok = false;
		}
		if (!deps_ok) {
			log_error("lab %s: node %s not started: a node it depends on is not healthy",
				  lab.name, nd->name);
			unhealthy++;
			continue;
		}
		json_object *st;
		if (start_node(&lab, m, nd) < 0 || wait_healthy(&lab, m, nd) < 0) {
			unhealthy++;
			continue;
		}
		if (json_object_object_get_ex(section(&lab, "nodes"), nd->name, &st))
			json_object_object_add(st, "healthy", json_object_new_int(1));
		save_state(&lab);
		printf("%s: up\n", nd->name);
		fflush(stdout);
	}
	r = unhealthy ? -1 : 0;
	int ntop = 0;
	for (int i = 0; i < m->nnodes; i++)
		ntop += m->nodes[i].parent < 0;
	if (unhealthy)
		log_error("lab %s: %d of %d nodes are not healthy (nestvm lab status shows them)",
			  lab.name, unhealthy, ntop);
out:
	lab_close(&lab);
out_manifest:
	free(m);
	return r;
}

/* --- down --------------------------------------------------------------- */

static void wait_gone(int pid, const char *mark, int64_t ms)
{
	for (int64_t end = now_ms() + ms; now_ms() < end && alive(pid, mark);)
		usleep(50 * 1000);
}

/* Does a running node (one of `running`, not `self`) depend on name? */
static bool needed_by_running(json_object *nodes, json_object *running, const char *name)
{
	json_object_object_foreach(running, n, flag) {
		(void)flag;
		json_object *st, *deps;
		if (!json_object_object_get_ex(nodes, n, &st) ||
		    !json_object_object_get_ex(st, "depends_on", &deps) ||
		    !json_object_is_type(deps, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(deps); i++)
			if (!strcmp(json_object_get_string(json_object_array_get_idx(deps, i)), name))
				return true;
	}
	return false;
}

/* Stops the node with this state: its power button was pressed on fd (or
 * fd < 0), the answer comes by end_ms; then stopped hard if need be.
 * Returns how it ended. */
static const char *stop_node(json_object *st, int fd, int64_t end_ms)
{
	const char *api = str_of(st, "api_socket");
	int pid = int_of(st, "pid");
	char reply[4096] = "";
	if (fd >= 0)
		control_answer(fd, reply, sizeof(reply), end_ms);
	const char *how = strstr(reply, "powered-off") ? "powered off"
			  : strstr(reply, "stopped-after-timeout") ? "stopped after the timeout"
								    : NULL;
	wait_gone(pid, api, 5000);
	if (alive(pid, api)) {
		kill(pid, SIGKILL);
		wait_gone(pid, api, 5000);
		how = "killed";
	}
	unlink(api);
	unlink(str_of(st, "console_socket"));
	json_object_object_add(st, "pid", json_object_new_int(0));
	json_object_object_add(st, "healthy", json_object_new_int(0));
	return how ? how : "ended";
}

int lab_down(const char *file, const struct lab_options *opt)
{
	char name[LAB_NAME_MAX + 1];
	struct lab lab;
	if (lab_manifest_name(file, name) < 0)
		return -1;
	if (lab_open(&lab, name, opt, OPEN_DOWN) < 0) {
		lab_close(&lab);
		return -1;
	}
	json_object *nodes = section(&lab, "nodes"), *nets = section(&lab, "networks");
	/* In reverse dependency order: a node's power button is pressed once
	 * every running node that depends on it has ended; each wave's
	 * buttons at once, then their answers (nestvm answers once the VM has
	 * ended, powered off or stopped after the timeout). */
	json_object *running = json_object_new_object();
	json_object_object_foreach(nodes, n, st) {
		if (alive(int_of(st, "pid"), str_of(st, "api_socket")))
			json_object_object_add(running, n, json_object_new_boolean(1));
		else
			stop_node(st, -1, 0); /* what a dead node left behind */
	}
	int total = json_object_object_length(running), forced = 0;
	char request[128];
	snprintf(request, sizeof(request), "{\"command\":\"shutdown\",\"timeout\":%d}\n", opt->timeout_s);
	while (json_object_object_length(running) > 0) {
		const char *wave[LAB_MAX_NODES];
		int fds[LAB_MAX_NODES], nwave = 0;
		/* (Names as the state holds them: running's keys go as it shrinks.) */
		json_object_object_foreach(nodes, rn, rst) {
			(void)rst;
			if (nwave < LAB_MAX_NODES && json_object_object_get_ex(running, rn, NULL) &&
			    !needed_by_running(nodes, running, rn))
				wave[nwave++] = rn;
		}
		if (nwave == 0) { /* a cycle in a state file someone edited: all at once */
			json_object_object_foreach(nodes, rn2, rst2) {
				(void)rst2;
				if (nwave < LAB_MAX_NODES && json_object_object_get_ex(running, rn2, NULL))
					wave[nwave++] = rn2;
			}
		}
		for (int i = 0; i < nwave; i++) {
			json_object *st;
			json_object_object_get_ex(nodes, wave[i], &st);
			fds[i] = control_send(str_of(st, "api_socket"), request);
		}
		int64_t end = now_ms() + (int64_t)opt->timeout_s * 1000 + 10000;
		for (int i = 0; i < nwave; i++) {
			json_object *st;
			json_object_object_get_ex(nodes, wave[i], &st);
			const char *how = stop_node(st, fds[i], end);
			if (strcmp(how, "powered off"))
				forced++;
			printf("%s: down (%s)\n", wave[i], how);
			fflush(stdout);
		}
		for (int i = 0; i < nwave; i++)
			json_object_object_del(running, wave[i]);
	}
	json_object_put(running);
	json_object_object_foreach(nets, n3, st3) {
		(void)n3;
		const char *api = str_of(st3, "api_socket");
		int pid = int_of(st3, "pid");
		if (alive(pid, api)) {
			kill(pid, SIGTERM);
			wait_gone(pid, api, 5000);
			if (alive(pid, api))
				kill(pid, SIGKILL);
		}
		unlink(api);
		unlink(str_of(st3, "socket"));
		json_object_object_add(st3, "pid", json_object_new_int(0));
	}
	int r = save_state(&lab);
	if (forced)
		log_warn("lab %s: %d of %d nodes did not power off within %d s and were stopped", name,
			 forced, total, opt->timeout_s);
	lab_close(&lab);
	return r;
}

/* --- reset ------------------------------------------------------------- */

int lab_reset(const char *file, const char *only, const struct lab_options *opt)
{
	struct lab_manifest *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("lab: out of memory");
		return -1;
	}
	struct lab lab;
	int r = -1;
	lab.state = NULL;
	lab.lock_fd = -1;
	if (lab_manifest_load(file, 0, m) < 0)
		goto out_manifest;
	int target = -1;
	if (only) {
		for (int i = 0; i < m->nnodes; i++)
			if (!strcmp(m->nodes[i].name, only))
				target = i;
		if (target < 0) {
			log_error("lab %s: no node %s in %s", m->name, only, file);
			goto out_manifest;
		}
		if (m->nodes[target].parent >= 0) {
			log_error("lab %s: node %s runs inside node %s: reset %s", m->name, only,
				  m->nodes[m->nodes[target].parent].name, m->nodes[m->nodes[target].parent].name);
			goto out_manifest;
		}
	}
	if (lab_open(&lab, m->name, opt, OPEN_DOWN) < 0)
		goto out;
	r = 0;
	for (int i = 0; i < m->nnodes && r == 0; i++) {
		const struct lab_node *nd = &m->nodes[m->order[i]];
		if ((target >= 0 && m->order[i] != target) || nd->parent >= 0)
			continue;
		json_object *st;
		bool was_running = false;
		if (json_object_object_get_ex(section(&lab, "nodes"), nd->name, &st)) {
			const char *api = str_of(st, "api_socket");
			int pid = int_of(st, "pid");
			/* Its disk is thrown away: no shutdown to wait for. */
			if (alive(pid, api)) {
				was_running = true;
				kill(pid, SIGKILL);
				wait_gone(pid, api, 10000);
				if (alive(pid, api)) {
					log_error("lab %s: node %s (pid %d) does not stop", m->name, nd->name, pid);
					r = -1;
					break;
				}
			}
			json_object_object_add(st, "pid", json_object_new_int(0));
			json_object_object_add(st, "healthy", json_object_new_int(0));
		}
		/* Its disk and its extra disks (the node's whole set: also those a
		 * changed manifest no longer names). */
		for (int k = 0; k <= LAB_MAX_DISKS && r == 0; k++) {
			char disk[PATH_MAX];
			if (k == 0)
				path_in(&lab, disk, nd->name, ".qcow2"); /* its linked clone */
			else
				extra_disk_path(&lab, nd, k - 1, disk);
			if (unlink(disk) < 0 && errno != ENOENT) {
				log_error("lab %s: cannot remove %s: %s", m->name, disk, strerror(errno));
				r = -1;
			}
		}
		if (r < 0)
			break;
		/* A fresh clone of the template; the identity comes from the
		 * seed, so it is the same. */
		if (was_running) {
			if (start_node(&lab, m, nd) < 0 || wait_healthy(&lab, m, nd) < 0) {
				r = -1;
				break;
			}
			if (json_object_object_get_ex(section(&lab, "nodes"), nd->name, &st))
				json_object_object_add(st, "healthy", json_object_new_int(1));
		}
		printf("%s: reset%s\n", nd->name, was_running ? ", up" : "");
		fflush(stdout);
	}
	if (save_state(&lab) < 0)
		r = -1;
out:
	lab_close(&lab);
out_manifest:
	free(m);
	return r;
}

/* --- console ----------------------------------------------------------- */

int lab_console_socket(const char *file, const char *node, const struct lab_options *opt,
		       char path[PATH_MAX])
{
	char name[LAB_NAME_MAX + 1];
	struct lab lab;
	if (lab_manifest_name(file, name) < 0)
		return -1;
	int r = -1;
	json_object *st;
	if (lab_open(&lab, name, opt, OPEN_STATUS) < 0) {
		/* nothing to say beyond lab_open's message */
	} else if (!json_object_object_get_ex(section(&lab, "nodes"), node, &st)) {
		log_error("lab %s: no node %s has run (nestvm lab status lists them)", name, node);
	} else if (!alive(int_of(st, "pid"), str_of(st, "api_socket"))) {
		log_error("lab %s: node %s is not running", name, node);
	} else if (!*str_of(st, "console_socket")) {
		log_error("lab %s: node %s was started without a console socket (by an older "
			  "nestvm); nestvm lab down then up gives it one", name, node);
	} else {
		snprintf(path, PATH_MAX, "%s", str_of(st, "console_socket"));
		r = 0;
	}
	lab_close(&lab);
	return r;
}

/* --- snapshots ------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool valid_snapshot_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LAB_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

/* Asks every node in names (n of them) the same request; 0 if all said ok. */
static int ask_all(struct lab *lab, const char **names, int n, const char *request, int wait_ms,
		   const char *doing)
{
	int r = 0;
	for (int i = 0; i < n; i++) {
		json_object *st;
		char reply[4096];
		json_object_object_get_ex(section(lab, "nodes"), names[i], &st);
		if (control_request(str_of(st, "api_socket"), request, reply, sizeof(reply), wait_ms) < 0 ||
		    !strstr(reply, "\"ok\":true")) {
			reply[strcspn(reply, "\n")] = 0;
			log_error("lab %s: node %s: %s: %s", lab->name, names[i], doing,
				  reply[0] ? reply : "no answer");
			r = -1;
		}
	}
	return r;
}

/* A node's disks a lab snapshot keeps a copy of, and the copies' names. */
static const struct {
	const char *key, *suffix;
} saved_disks[3 + LAB_MAX_DISKS] = { { "disk", ".qcow2" }, { "inner_disk", ".inner.cpio" },
				     { "seed_disk", SEED_SUFFIX }, { "disk1", ".disk1.qcow2" },
				     { "disk2", ".disk2.qcow2" }, { "disk3", ".disk3.qcow2" },
				     { "disk4", ".disk4.qcow2" } };
_Static_assert(LAB_MAX_DISKS == 4, "saved_disks names each extra disk");

static int snapshot_save(struct lab *lab, const struct lab_manifest *m, const char *dir)
{
	json_object *nodes = section(lab, "nodes");
	const char *names[LAB_MAX_NODES];
	int n = 0;
	/* The lab's nodes as its file declares them (inner ones are saved
	 * inside their parents); a node the file no longer has is left out. */
	for (int i = 0; i < m->nnodes; i++) {
		const struct lab_node *nd = &m->nodes[m->order[i]];
		json_object *st;
		if (nd->parent >= 0)
			continue;
		if (!json_object_object_get_ex(nodes, nd->name, &st) ||
		    !alive(int_of(st, "pid"), str_of(st, "api_socket"))) {
			log_error("lab %s: node %s is not running; a lab snapshot is of the whole lab "
				  "running (nestvm lab up first)", lab->name, nd->name);
			return -1;
		}
		names[n++] = nd->name;
	}
	if (n == 0) {
		log_error("lab %s: no node has run; nothing to save", lab->name);
		return -1;
	}
	char snaps[PATH_MAX];
	path_in(lab, snaps, "snapshots", "");
	if (mkdirs(snaps) < 0 || mkdir(dir, 0700) < 0) {
		log_error("lab %s: %s: %s", lab->name, errno == EEXIST ? dir : snaps,
			  errno == EEXIST ? "this snapshot exists (nestvm lab snapshot delete removes it)"
					  : strerror(errno));
		return -1;
	}
	int64_t t0 = now_ms();
	/* Every node paused before any is saved: the lab is saved at one
	 * moment, not node by node while the others go on. */
	int r = ask_all(lab, names, n, "{\"command\":\"pause\"}\n", 15000, "pause");
	for (int i = 0; i < n && r == 0; i++) {
		json_object *st;
		json_object_object_get_ex(nodes, names[i], &st);
		char node_dir[PATH_MAX], copy[PATH_MAX], request[PATH_MAX + 64], reply[4096];
		if (path_fmt(node_dir, sizeof(node_dir), "%s/%s", dir, names[i]) < 0) {
			r = -1;
			break;
		}
		json_object *req = json_object_new_object();
		json_object_object_add(req, "command", json_object_new_string("snapshot"));
		json_object_object_add(req, "dir", json_object_new_string(node_dir));
		snprintf(request, sizeof(request), "%s\n",
			 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
		json_object_put(req);
		/* The node stays paused after it is saved (it was paused before). */
		if (control_request(str_of(st, "api_socket"), request, reply, sizeof(reply), 600000) < 0 ||
		    !strstr(reply, "\"ok\":true")) {
			reply[strcspn(reply, "\n")] = 0;
			log_error("lab %s: node %s: snapshot: %s", lab->name, names[i],
				  reply[0] ? reply : "no answer");
			r = -1;
			break;
		}
		/* Its disks as the saved memory knows them: the VM is paused, its
		 * requests done and its image's metadata written (the inner
		 * nodes' disk too: a later start may write it anew). */
		for (size_t k = 0; k < sizeof(saved_disks) / sizeof(saved_disks[0]) && r == 0; k++) {
			const char *disk = str_of(st, saved_disks[k].key);
			if (*disk && (path_fmt(copy, sizeof(copy), "%s/%s%s", dir, names[i],
					       saved_disks[k].suffix) < 0 ||
				      file_copy_sparse(disk, copy) < 0)) {
				log_error("lab %s: node %s: copying %s into the snapshot: %s", lab->name,
					  names[i], disk, strerror(errno));
				r = -1;
			}
		}
	}
	/* Resumed whatever happened: a failed save must not leave a lab paused. */
	if (ask_all(lab, names, n, "{\"command\":\"resume\"}\n", 15000, "resume") < 0)
		r = -1;
	/* The saved nodes' state entries (identities, sockets, disks), what
	 * a restore brings back. */
	char state[PATH_MAX];
	json_object *saved = json_object_new_object(), *saved_nodes = json_object_new_object();
	for (int i = 0; i < n; i++) {
		json_object *st;
		if (json_object_object_get_ex(nodes, names[i], &st))
			json_object_object_add(saved_nodes, names[i], json_object_get(st));
	}
	json_object_object_add(saved, "nodes", saved_nodes);
	if (r == 0 && (path_fmt(state, sizeof(state), "%s/state.json", dir) < 0 ||
		       json_object_to_file_ext(state, saved, JSON_C_TO_STRING_PRETTY) < 0)) {
		log_error("lab %s: cannot write the snapshot's state.json in %s", lab->name, dir);
		r = -1;
	}
	json_object_put(saved);
	if (r < 0) {
		remove_tree(dir);
		return -1;
	}
	printf("saved %d nodes into %s in %.1f s\n", n, dir, (double)(now_ms() - t0) / 1000);
	return 0;
}

/* Starts `nestvm restore` for a node from its saved directory; as
 * start_node, but the VM goes on from where it was saved. */
static int restore_node(struct lab *lab, const char *name, json_object *st, const char *dir)
{
	char node_dir[PATH_MAX], copy[PATH_MAX], tmp[PATH_MAX], log[PATH_MAX];
	char console_spec[PATH_MAX + 8];
	if (path_fmt(node_dir, sizeof(node_dir), "%s/%s", dir, name) < 0)
		return -1;
	path_in(lab, log, name, ".log");
	const char *api = str_of(st, "api_socket");
	const char *console_sock = str_of(st, "console_socket");
	/* Its disks back as they were saved: each copied beside, then renamed
	 * over. */
	for (size_t k = 0; k < sizeof(saved_disks) / sizeof(saved_disks[0]); k++) {
		const char *disk = str_of(st, saved_disks[k].key);
		if (!*disk)
			continue;
		if (path_fmt(copy, sizeof(copy), "%s/%s%s", dir, name, saved_disks[k].suffix) < 0 ||
		    path_fmt(tmp, sizeof(tmp), "%s.restoring", disk) < 0)
			return -1;
		unlink(tmp);
		if (file_copy_sparse(copy, tmp) < 0 || rename(tmp, disk) < 0) {
			log_error("lab %s: node %s: restoring its disk from %s: %s", lab->name, name, copy,
				  strerror(errno));
			unlink(tmp);
			return -1;
		}
	}
	unlink(api);
	unlink(console_sock);
	snprintf(console_spec, sizeof(console_spec), "append:%s", str_of(st, "console_log"));
	char *argv[] = { "nestvm", "restore", "--api-socket", (char *)api, "--console", console_spec,
			 "--console-socket", (char *)console_sock, node_dir, NULL };
	int pid = spawn(argv, log);
	if (pid < 0)
		return -1;
	json_object_object_add(st, "pid", json_object_new_int(pid));
	char reply[65536];
	for (int64_t end = now_ms() + (int64_t)lab->opt.timeout_s * 1000; now_ms() < end;) {
		if (control_request(api, "{\"command\":\"status\"}\n", reply, sizeof(reply), 1000) == 0 &&
		    strstr(reply, "\"running\"")) {
			json_object_object_add(st, "healthy", json_object_new_int(1));
			return 0;
		}
		if (!still_running(pid, api)) {
			char why[512];
			last_line(log, why, sizeof(why));
			log_error("lab %s: node %s was not restored: %s", lab->name, name,
				  why[0] ? why : "(no message)");
			return -1;
		}
		usleep(100 * 1000);
	}
	log_error("lab %s: node %s does not answer %d s after its restore began", lab->name, name,
		  lab->opt.timeout_s);
	return -1;
}

static int snapshot_restore(struct lab *lab, const struct lab_manifest *m, const char *dir)
{
	char saved_path[PATH_MAX];
	if (path_fmt(saved_path, sizeof(saved_path), "%s/state.json", dir) < 0)
		return -1;
	json_object *saved = json_object_from_file(saved_path), *saved_nodes;
	if (!saved || !json_object_object_get_ex(saved, "nodes", &saved_nodes) ||
	    !json_object_is_type(saved_nodes, json_type_object)) {
		log_error("lab %s: %s is not a lab snapshot's state", lab->name, saved_path);
		json_object_put(saved);
		return -1;
	}
	/* The networks first, as up starts them (running ones stay). */
	static uint32_t ips[LAB_MAX_NODES][LAB_MAX_NICS];
	if (assign_addresses(lab, m, ips) < 0) {
		json_object_put(saved);
		return -1;
	}
	for (int i = 0; i < m->nnetworks; i++)
		if (start_network(lab, m, i, ips) < 0) {
			json_object_put(saved);
			return -1;
		}
	json_object *nodes = section(lab, "nodes");
	/* Every node of the lab as it runs now is stopped hard: its memory
	 * and disk are about to be replaced. */
	json_object_object_foreach(nodes, cn, cst) {
		(void)cn;
		int pid = int_of(cst, "pid");
		const char *api = str_of(cst, "api_socket");
		if (alive(pid, api)) {
			kill(pid, SIGKILL);
			wait_gone(pid, api, 10000);
		}
		json_object_object_add(cst, "pid", json_object_new_int(0));
		json_object_object_add(cst, "healthy", json_object_new_int(0));
	}
	int r = 0, n = 0;
	int64_t t0 = now_ms();
	json_object_object_foreach(saved_nodes, sn, sst) {
		/* The saved entry (identity, sockets, disk) becomes the state's. */
		json_object *st = json_object_get(sst);
		json_object_object_add(nodes, sn, st);
		if (restore_node(lab, sn, st, dir) < 0) {
			r = -1;
			continue;
		}
		n++;
		printf("%s: restored\n", sn);
		fflush(stdout);
	}
	save_state(lab);
	json_object_put(saved);
	if (r == 0)
		printf("restored %d nodes from %s in %.1f s\n", n, dir, (double)(now_ms() - t0) / 1000);
	return r;
}

int lab_snapshot(const char *file, const char *action, const char *snap, const struct lab_options *opt)
{
	bool save = !strcmp(action, "save"), restore = !strcmp(action, "restore"),
	     del = !strcmp(action, "delete"), list = !strcmp(action, "list");
	if (!list && (!snap || !valid_snapshot_name(snap))) {
		log_error("lab snapshot %s: expected a snapshot name of 1 to %d letters, digits, '-', "
			  "'_' or '.' (not first), got '%s'", action, LAB_NAME_MAX, snap ? snap : "");
		return -1;
	}
	struct lab_manifest *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("lab: out of memory");
		return -1;
	}
	struct lab lab;
	lab.state = NULL;
	lab.lock_fd = -1;
	int r = -1;
	char name[LAB_NAME_MAX + 1];
	/* A save takes the nodes the manifest declares and a restore starts
	 * its networks; list and delete work from the lab's state alone. */
	if (restore || save ? lab_manifest_load(file, 0, m) < 0 : lab_manifest_name(file, m->name) < 0)
		goto out_manifest;
	snprintf(name, sizeof(name), "%s", m->name);
	if (lab_open(&lab, name, opt, list ? OPEN_STATUS : OPEN_DOWN) < 0)
		goto out;
	char snaps[PATH_MAX], dir[PATH_MAX];
	path_in(&lab, snaps, "snapshots", "");
	if (list) {
		DIR *d = opendir(snaps);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.')
				printf("%s\n", e->d_name);
		if (d)
			closedir(d);
		r = 0;
		goto out;
	}
	if (path_fmt(dir, sizeof(dir), "%s/%s", snaps, snap) < 0)
		goto out;
	struct stat sb;
	if (!save && stat(dir, &sb) < 0) {
		log_error("lab %s: no snapshot %s (nestvm lab snapshot list FILE names them)", name, snap);
		goto out;
	}
	if (save)
		r = snapshot_save(&lab, m, dir);
	else if (restore)
		r = snapshot_restore(&lab, m, dir);
	else if (del) {
		remove_tree(dir);
		r = stat(dir, &sb) < 0 ? 0 : -1;
		if (r < 0)
			log_error("lab %s: cannot remove %s", name, dir);
	}
out:
	lab_close(&lab);
out_manifest:
	free(m);
	return r;
}

/* --- status ------------------------------------------------------------- */

int lab_status(const char *file, const struct lab_options *opt)
{
	char name[LAB_NAME_MAX + 1];
	struct lab lab;
	if (lab_manifest_name(file, name) < 0)
		return -1;
	if (lab_open(&lab, name, opt, OPEN_STATUS) < 0) {
		lab_close(&lab);
		return -1;
	}
	/* The addresses the NAT networks' DHCP servers leased, by MAC. */
	json_object *leases = json_object_new_object();
	json_object_object_foreach(section(&lab, "networks"), ln, lst) {
		(void)ln;
		char *reply = malloc(1 << 20);
		if (reply && alive(int_of(lst, "pid"), str_of(lst, "api_socket")) &&
		    control_request(str_of(lst, "api_socket"), "{\"command\":\"status\"}\n", reply,
				    1 << 20, 2000) == 0) {
			json_object *sw = json_tokener_parse(reply), *nat, *ls;
			if (sw && json_object_object_get_ex(sw, "nat", &nat) &&
			    json_object_object_get_ex(nat, "leases", &ls) &&
			    json_object_is_type(ls, json_type_array))
				for (size_t i = 0; i < json_object_array_length(ls); i++) {
					json_object *l = json_object_array_get_idx(ls, i);
					if (!strcmp(str_of(l, "state"), "bound"))
						json_object_object_add(leases, str_of(l, "mac"),
								       json_object_new_string(str_of(l, "ip")));
				}
			json_object_put(sw);
		}
		free(reply);
	}
	json_object *out = json_object_new_object(), *list = json_object_new_array();
	json_object_object_add(out, "name", json_object_new_string(name));
	json_object_object_add(out, "state_dir", json_object_new_string(lab.dir));
	json_object_object_foreach(section(&lab, "nodes"), n, st) {
		int pid = int_of(st, "pid");
		bool up = alive(pid, str_of(st, "api_socket"));
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(n));
		json_object_object_add(o, "state", json_object_new_string(up ? "running" : "stopped"));
		json_object_object_add(o, "pid", json_object_new_int(up ? pid : 0));
		json_object_object_add(o, "uuid", json_object_new_string(str_of(st, "uuid")));
		json_object_object_add(o, "hostname", json_object_new_string(str_of(st, "hostname")));
		json_object *macs, *addresses = json_object_new_array();
		bool have_macs = json_object_object_get_ex(st, "macs", &macs) &&
				 json_object_is_type(macs, json_type_array);
		for (size_t i = 0; up && have_macs && i < json_object_array_length(macs); i++) {
			json_object *ip;
			if (json_object_object_get_ex(leases, json_object_get_string(
							json_object_array_get_idx(macs, i)), &ip))
				json_object_array_add(addresses, json_object_get(ip));
		}
		json_object_object_add(o, "macs", have_macs ? json_object_get(macs) : json_object_new_array());
		json_object *uplinks;
		if (json_object_object_get_ex(st, "uplink_macs", &uplinks))
			json_object_object_add(o, "uplink_macs", json_object_get(uplinks));
		json_object_object_add(o, "addresses", addresses);
		json_object *fws;
		json_object_object_add(o, "forwards", json_object_object_get_ex(st, "forwards", &fws)
						      ? json_object_get(fws) : json_object_new_array());
		json_object_object_add(o, "console_log", json_object_new_string(str_of(st, "console_log")));
		json_object_object_add(o, "console_socket",
				       json_object_new_string(str_of(st, "console_socket")));
		json_object *inner;
		if (json_object_object_get_ex(st, "inner", &inner) && json_object_array_length(inner)) {
			/* What the parent's console said of them. */
			const char *cl = str_of(st, "console_log");
			json_object_object_add(o, "inner", json_object_get(inner));
			json_object_object_add(o, "inner_state", json_object_new_string(
				!up ? "stopped" : file_contains(cl, INNER_UP_LINE) ? "up"
				: file_contains(cl, INNER_FAILED_LINE) ? "failed" : "starting"));
		}
		json_object_object_add(o, "api_socket", json_object_new_string(str_of(st, "api_socket")));
		if (*str_of(st, "disk"))
			json_object_object_add(o, "disk", json_object_new_string(str_of(st, "disk")));
		json_object *extra = json_object_new_array();
		for (int k = 1; k <= LAB_MAX_DISKS; k++) {
			char key[16];
			snprintf(key, sizeof(key), "disk%d", k);
			if (*str_of(st, key))
				json_object_array_add(extra, json_object_new_string(str_of(st, key)));
		}
		json_object_object_add(o, "disks", extra);
		json_object_array_add(list, o);
	}
	json_object_object_add(out, "nodes", list);
	json_object *nets = json_object_new_array();
	json_object_object_foreach(section(&lab, "networks"), nn, nst) {
		json_object *o = json_object_new_object();
		bool up = alive(int_of(nst, "pid"), str_of(nst, "api_socket"));
		json_object_object_add(o, "name", json_object_new_string(nn));
		json_object_object_add(o, "state", json_object_new_string(up ? "running" : "stopped"));
		json_object_object_add(o, "socket", json_object_new_string(str_of(nst, "socket")));
		json_object_object_add(o, "api_socket", json_object_new_string(str_of(nst, "api_socket")));
		json_object_array_add(nets, o);
	}
	json_object_object_add(out, "networks", nets);
	if (opt->json) {
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	} else {
		printf("lab %s (%s)\n", name, lab.dir);
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *o = json_object_array_get_idx(list, i), *macs;
			json_object_object_get_ex(o, "macs", &macs);
			json_object *addrs;
			json_object_object_get_ex(o, "addresses", &addrs);
			printf("  %-16s %-8s pid %-7d %s  %s  %-15s %s\n", str_of(o, "name"),
			       str_of(o, "state"), int_of(o, "pid"), str_of(o, "uuid"),
			       json_object_array_length(macs) ? json_object_get_string(
				       json_object_array_get_idx(macs, 0)) : "-",
			       json_object_array_length(addrs) ? json_object_get_string(
				       json_object_array_get_idx(addrs, 0)) : "-",
			       str_of(o, "console_log"));
		}
		for (size_t i = 0; i < json_object_array_length(nets); i++) {
			json_object *o = json_object_array_get_idx(nets, i);
			printf("  network %-8s %-8s %s\n", str_of(o, "name"), str_of(o, "state"),
			       str_of(o, "socket"));
		}
	}
	json_object_put(out);
	json_object_put(leases);
	lab_close(&lab);
	return 0;
}
