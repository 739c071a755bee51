#define _GNU_SOURCE
#include "lab/lab.h"

#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/disk.h"
#include "boot/smbios.h"
#include "util/log.h"

#define SOCKET_PATH_MAX 107 /* sun_path, less its terminating NUL */
#define SWITCH_API_SUFFIX ".switch-api"

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
	/* The longest socket in it: DIR/NAME.switch-api, with a name of 32. */
	size_t longest = 1 + LAB_NAME_MAX + strlen(SWITCH_API_SUFFIX);
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

static int start_network(struct lab *lab, const struct lab_network *n)
{
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
	char *argv[] = { "nestvm", "switch", "--api-socket", api, "--socket", sock,
			 n->nat ? (n->subnet[0] ? nat : "--nat") : NULL, NULL };
	int pid = spawn(argv, log);
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

static int start_node(struct lab *lab, const struct lab_manifest *m, const struct lab_node *nd)
{
	json_object *nodes = section(lab, "nodes"), *st;
	const struct lab_template *t = &m->templates[nd->template];
	char api[PATH_MAX], console[PATH_MAX], log[PATH_MAX], overlay[PATH_MAX];
	path_in(lab, api, nd->name, ".api");
	path_in(lab, console, nd->name, ".console");
	path_in(lab, log, nd->name, ".log");
	path_in(lab, overlay, nd->name, ".qcow2");
	if (json_object_object_get_ex(nodes, nd->name, &st) && alive(int_of(st, "pid"), api))
		return 0;
	unlink(api);
	if (t->disk[0] && access(overlay, F_OK) < 0) {
		char what[128];
		snprintf(what, sizeof(what), "lab %s: node %s", lab->name, nd->name);
		if (disk_clone(what, t->disk, overlay, 0) < 0)
			return -1;
	}
	uint8_t uuid[16];
	char uuid_text[37], serial[256], memory[32], cpus[16], disk[PATH_MAX + 8];
	lab_node_uuid(lab->seed, nd->name, uuid);
	smbios_format_uuid(uuid, uuid_text);
	snprintf(serial, sizeof(serial), "ds=nocloud;h=%s;i=%s", nd->name, uuid_text);
	snprintf(memory, sizeof(memory), "%lluK", (unsigned long long)(nd->memory >> 10));
	snprintf(cpus, sizeof(cpus), "%d", nd->cpus);
	snprintf(disk, sizeof(disk), "%s", overlay);
	char console_spec[PATH_MAX + 8], nets[LAB_MAX_NICS][PATH_MAX + 64];
	snprintf(console_spec, sizeof(console_spec), "file:%s", console);
	char *argv[64];
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
	json_object *macs = json_object_new_array();
	for (int i = 0; i < nd->nnics; i++) {
		uint8_t mac[6];
		if (nd->nics[i].mac_given)
			memcpy(mac, nd->nics[i].mac, 6);
		else
			lab_node_mac(lab->seed, nd->name, i, mac);
		char text[18], sock[PATH_MAX];
		snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
			 mac[3], mac[4], mac[5]);
		json_object_array_add(macs, json_object_new_string(text));
		path_in(lab, sock, m->networks[nd->nics[i].network].name, ".sock");
		snprintf(nets[i], sizeof(nets[i]), "switch=%s,mac=%s", sock, text);
		argv[a++] = "--net";
		argv[a++] = nets[i];
	}
	argv[a++] = "--uuid";
	argv[a++] = uuid_text;
	argv[a++] = "--serial";
	argv[a++] = serial;
	argv[a++] = "--console";
	argv[a++] = console_spec;
	argv[a] = NULL;
	if (truncate(console, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot empty it: %s", console, strerror(errno));
	int pid = spawn(argv, log);
	if (pid < 0) {
		json_object_put(macs);
		return -1;
	}
	st = json_object_new_object();
	json_object_object_add(st, "pid", json_object_new_int(pid));
	json_object_object_add(st, "uuid", json_object_new_string(uuid_text));
	json_object_object_add(st, "hostname", json_object_new_string(nd->name));
	json_object_object_add(st, "macs", macs);
	json_object_object_add(st, "console_log", json_object_new_string(console));
	json_object_object_add(st, "api_socket", json_object_new_string(api));
	if (t->disk[0])
		json_object_object_add(st, "disk", json_object_new_string(overlay));
	json_object_object_add(nodes, nd->name, st);
	return save_state(lab);
}

/* Healthy: it answers on its API socket, running, and the console shows
 * the manifest's health line (if it names one). */
static int wait_healthy(struct lab *lab, const struct lab_node *nd)
{
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
		if (answered && (!nd->health_console[0] || file_contains(console, nd->health_console)))
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
	log_error("lab %s: node %s is not healthy after %d s (%s)", lab->name, nd->name,
		  lab->opt.timeout_s, answered ? "no health line on its console yet" :
		  "its control socket does not answer");
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
	for (int i = 0; i < m->nnetworks; i++)
		if (start_network(&lab, &m->networks[i]) < 0)
			goto out;
	int unhealthy = 0;
	for (int i = 0; i < m->nnodes; i++) {
		const struct lab_node *nd = &m->nodes[m->order[i]];
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
		if (start_node(&lab, m, nd) < 0 || wait_healthy(&lab, nd) < 0) {
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
	if (unhealthy)
		log_error("lab %s: %d of %d nodes are not healthy (nestvm lab status shows them)",
			  lab.name, unhealthy, m->nnodes);
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
	/* Every node's power button at once, then the answers: nestvm answers
	 * once the VM has ended, powered off or stopped after the timeout. */
	char request[128];
	snprintf(request, sizeof(request), "{\"command\":\"shutdown\",\"timeout\":%d}\n", opt->timeout_s);
	int n_fds = 0, running = 0, forced = 0;
	int *fds = calloc((size_t)json_object_object_length(nodes) + 1, sizeof(int));
	if (!fds) {
		log_error("lab %s: out of memory", name);
		lab_close(&lab);
		return -1;
	}
	json_object_object_foreach(nodes, n, st) {
		(void)n;
		int fd = -1;
		const char *api = str_of(st, "api_socket");
		if (alive(int_of(st, "pid"), api)) {
			fd = control_send(api, request);
			running++;
		} else {
			fd = -2; /* not running */
		}
		fds[n_fds++] = fd;
	}
	int k = 0;
	int64_t end = now_ms() + (int64_t)opt->timeout_s * 1000 + 10000;
	json_object_object_foreach(nodes, n2, st2) {
		int fd = k < n_fds ? fds[k] : -2;
		k++;
		if (fd == -2)
			continue;
		const char *api = str_of(st2, "api_socket");
		int pid = int_of(st2, "pid");
		char reply[4096] = "";
		if (fd >= 0)
			control_answer(fd, reply, sizeof(reply), end);
		const char *how = strstr(reply, "powered-off") ? "powered off"
				  : strstr(reply, "stopped-after-timeout") ? "stopped after the timeout"
									    : NULL;
		wait_gone(pid, api, 5000);
		if (alive(pid, api)) {
			kill(pid, SIGKILL);
			wait_gone(pid, api, 5000);
			how = "killed";
		}
		if (!how)
			how = "ended";
		if (strcmp(how, "powered off"))
			forced++;
		unlink(api);
		json_object_object_add(st2, "pid", json_object_new_int(0));
		json_object_object_add(st2, "healthy", json_object_new_int(0));
		printf("%s: down (%s)\n", n2, how);
	}
	free(fds);
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
			 forced, running, opt->timeout_s);
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
	}
	if (lab_open(&lab, m->name, opt, OPEN_DOWN) < 0)
		goto out;
	r = 0;
	for (int i = 0; i < m->nnodes && r == 0; i++) {
		const struct lab_node *nd = &m->nodes[m->order[i]];
		if (target >= 0 && m->order[i] != target)
			continue;
		json_object *st;
		bool was_running = false;
		char overlay[PATH_MAX];
		path_in(&lab, overlay, nd->name, ".qcow2");
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
		if (unlink(overlay) < 0 && errno != ENOENT) {
			log_error("lab %s: cannot remove %s: %s", m->name, overlay, strerror(errno));
			r = -1;
			break;
		}
		/* A fresh clone of the template; the identity comes from the
		 * seed, so it is the same. */
		if (was_running) {
			if (start_node(&lab, m, nd) < 0 || wait_healthy(&lab, nd) < 0) {
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
		json_object *macs;
		json_object_object_add(o, "macs", json_object_object_get_ex(st, "macs", &macs)
						  ? json_object_get(macs) : json_object_new_array());
		json_object_object_add(o, "console_log", json_object_new_string(str_of(st, "console_log")));
		json_object_object_add(o, "api_socket", json_object_new_string(str_of(st, "api_socket")));
		if (*str_of(st, "disk"))
			json_object_object_add(o, "disk", json_object_new_string(str_of(st, "disk")));
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
			printf("  %-16s %-8s pid %-7d %s  %s  %s\n", str_of(o, "name"), str_of(o, "state"),
			       int_of(o, "pid"), str_of(o, "uuid"),
			       json_object_array_length(macs) ? json_object_get_string(
				       json_object_array_get_idx(macs, 0)) : "-",
			       str_of(o, "console_log"));
		}
		for (size_t i = 0; i < json_object_array_length(nets); i++) {
			json_object *o = json_object_array_get_idx(nets, i);
			printf("  network %-8s %-8s %s\n", str_of(o, "name"), str_of(o, "state"),
			       str_of(o, "socket"));
		}
	}
	json_object_put(out);
	lab_close(&lab);
	return 0;
}
