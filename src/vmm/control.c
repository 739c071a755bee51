#define _GNU_SOURCE
#include "vmm/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/unix_socket.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

#define DEFAULT_SHUTDOWN_TIMEOUT 60

void control_init(struct control *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_fd = c->shutdown_fd = -1;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
}

int control_open(struct control *c, const char *path)
{
	int fd = unix_listen("--api-socket", path);
	if (fd < 0)
		return -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->listen_fd = fd;
	return 0;
}

void control_close(struct control *c)
{
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (c->clients[i].fd >= 0)
			close(c->clients[i].fd);
		c->clients[i].fd = -1;
	}
	c->shutdown_fd = -1;
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	c->listen_fd = -1;
}

int control_pollfds(struct control *c, struct pollfd *fds, int max)
{
	int n = 0;
	if (c->listen_fd < 0 || max < 1 + CONTROL_MAX_CLIENTS)
		return 0;
	fds[n++] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[n++] = (struct pollfd){ .fd = c->clients[i].fd, .events = POLLIN };
	return n;
}

static void drop(struct control *c, struct control_client *cl)
{
	if (cl->fd == c->shutdown_fd)
		c->shutdown_fd = -1;
	close(cl->fd);
	cl->fd = -1;
	cl->len = 0;
}

/* Sends one reply line and frees it; false if the client could not take
 * it at once. Client sockets never block: a client that does not read its
 * replies fills its socket buffer and is dropped, instead of stopping the
 * main loop (signals, console, shutdown deadline) with it. */
static bool send_line(int fd, char *line)
{
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(line);
	return off == len;
}

/* How many bytes the well-formed UTF-8 character at s[0..len) takes, 0 if
 * none starts there (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). */
static size_t utf8_char_len(const unsigned char *s, size_t len)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t n;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf) {
		n = 2;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3;
		lo = b == 0xe0 ? 0xa0 : lo;
		hi = b == 0xed ? 0x9f : hi;
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4;
		lo = b == 0xf0 ? 0x90 : lo;
		hi = b == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* The reply as the line sent: plain JSON and its '\n', malloc'd; frees the
 * object. NULL if memory ran out.
 *
 * json-c writes a string's bytes as they came, so a reply echoing a
 * request's invalid UTF-8 (an unknown command's name, a snapshot's dir)
 * would not be JSON, and clients' decoders would reject it (Python's
 * .decode() raises). Each byte that does not belong to a well-formed
 * character becomes U+FFFD; it can only be inside a string, JSON's own
 * syntax being ASCII. Valid replies are sent as json-c wrote them. */
static char *reply_line(json_object *reply)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	size_t len = 0;
	const unsigned char *text = (const unsigned char *)json_object_to_json_string_length(
		reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	char *line = NULL;
	if (text) {
		size_t bad = 0;
		for (size_t i = 0; i < len;) {
			size_t n = utf8_char_len(text + i, len - i);
			bad += n == 0;
			i += n ? n : 1;
		}
		line = malloc(len + bad * 2 + 2); /* 1 byte becomes 3 */
	}
	if (line) {
		size_t out = 0;
		for (size_t i = 0; i < len;) {
			size_t n = utf8_char_len(text + i, len - i);
			if (n) {
				memcpy(line + out, text + i, n);
				out += n;
				i += n;
			} else {
				memcpy(line + out, replacement, 3);
				out += 3;
				i++;
			}
		}
		line[out] = '\n';
		line[out + 1] = 0;
	}
	json_object_put(reply);
	return line;
}

static json_object *ok(void)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *error(const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, arg);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

static json_object *state(const struct control_ops *ops, void *vm)
{
	json_object *o = ok();
	json_object_object_add(o, "state", json_object_new_string(ops->is_paused(vm) ? "paused" : "running"));
	return o;
}

static json_object *status(const struct control_ops *ops, void *vm)
{
	struct control_vm_facts facts = { 0 };
	ops->describe(vm, &facts);
	json_object *o = state(ops, vm);
	json_object_object_add(o, "vcpus", json_object_new_int(facts.vcpus));
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)facts.memory_bytes));
	json_object_object_add(o, "nested", json_object_new_boolean(facts.nested));
	json_object *disks = json_object_new_array();
	for (int i = 0; i < facts.ndisks && i < CONTROL_MAX_DISKS; i++)
		json_object_array_add(disks, json_object_new_string(facts.disks[i]));
	json_object_object_add(o, "disks", disks);
	json_object_object_add(o, "restored", json_object_new_boolean(facts.restored));
	if (facts.uuid[0])
		json_object_object_add(o, "uuid", json_object_new_string(facts.uuid));
	return o;
}

/* Runs one parsed request; returns the reply, or NULL when it comes later. */
static json_object *run_request(struct control *c, const struct control_ops *ops, void *vm,
				int client_fd, json_object *req)
{
	json_object *cmd_obj;
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "command", &cmd_obj) ||
	    !json_object_is_type(cmd_obj, json_type_string))
		return error("%s", "expected an object with a \"command\" string");
	const char *cmd = json_object_get_string(cmd_obj);
	if (!strcmp(cmd, "status"))
		return status(ops, vm);
	if (!strcmp(cmd, "pause")) {
		if (ops->pause(vm) < 0)
			return error("the VM did not pause within %s s (a vCPU is stuck in a device)", "10");
		return state(ops, vm);
	}
	if (!strcmp(cmd, "resume")) {
		ops->resume(vm);
		return state(ops, vm);
	}
	if (!strcmp(cmd, "shutdown")) {
		json_object *t;
		int64_t secs = DEFAULT_SHUTDOWN_TIMEOUT;
		if (json_object_object_get_ex(req, "timeout", &t)) {
			if (!json_object_is_type(t, json_type_int) || json_object_get_int64(t) < 0 ||
			    json_object_get_int64(t) > 86400)
				return error("%s", "\"timeout\" must be whole seconds from 0 to 86400");
			secs = json_object_get_int64(t);
		}
		if (c->shutdown_fd >= 0)
			return error("%s", "a shutdown is already in progress");
		ops->resume(vm); /* a paused guest could not react */
		ops->press_power_button(vm);
		c->shutdown_fd = client_fd;
		c->shutdown_deadline = ops->now_ms(vm) + secs * 1000;
		log_info("control: power button pressed; stopping hard in %lld s if still running",
			 (long long)secs);
		return NULL;
	}
	if (!strcmp(cmd, "snapshot")) {
		json_object *d;
		if (!json_object_object_get_ex(req, "dir", &d) || !json_object_is_type(d, json_type_string))
			return error("%s", "\"dir\" (a string) is required");
		const char *dir = json_object_get_string(d);
		/* "\u0000" would cut the path short: save somewhere else than asked. */
		if (strlen(dir) != (size_t)json_object_get_string_len(d) || !*dir)
			return error("%s", "\"dir\" must be a non-empty path without NUL characters");
		bool was_paused = ops->is_paused(vm);
		if (ops->pause(vm) < 0)
			return error("the VM did not pause within %s s (a vCPU is stuck in a device); "
				     "no snapshot taken", "10");
		int64_t t0 = ops->now_ms(vm);
		uint64_t bytes = 0;
		char why[512] = "";
		int r = ops->snapshot_save(vm, dir, &bytes, why, sizeof(why));
		int64_t t1 = ops->now_ms(vm);
		if (!was_paused)
			ops->resume(vm);
		if (r < 0)
			return error("%s", why);
		json_object *o = ok();
		json_object_object_add(o, "dir", json_object_new_string(dir));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)bytes));
		/* Milliseconds as a decimal written exactly (0.35, not 0.34999...). */
		char secs[32];
		snprintf(secs, sizeof(secs), "%.3f", (double)(t1 - t0) / 1000);
		json_object_object_add(o, "seconds",
				       json_object_new_double_s((double)(t1 - t0) / 1000, secs));
		return o;
	}
	return error("unknown command \"%s\" (status, pause, resume, shutdown, snapshot)", cmd);
}

char *control_execute(struct control *c, const struct control_ops *ops, void *vm,
		      int client_fd, const char *line, size_t len)
{
	/* The socket side never hands over more (it drops the client instead);
	 * other callers get the same answer, and json-c an int length. */
	if (len >= CONTROL_LINE_MAX)
		return reply_line(error("request longer than %s bytes", "8191"));
	json_tokener *tok = json_tokener_new();
	json_object *req = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
	bool complete = tok && json_tokener_get_error(tok) == json_tokener_success;
	if (tok)
		json_tokener_free(tok);
	json_object *reply = req && complete ? run_request(c, ops, vm, client_fd, req)
					     : error("%s", "the request is not valid JSON");
	json_object_put(req);
	return reply ? reply_line(reply) : NULL;
}

/* The real VM behind the protocol. */
_Static_assert(MACHINE_MAX_DISKS <= CONTROL_MAX_DISKS, "status could not list every disk");

static bool machine_is_paused(void *vm)
{
	return ((struct machine *)vm)->paused;
}

static void machine_describe(void *vm, struct control_vm_facts *facts)
{
	const struct machine_config *cfg = &((struct machine *)vm)->config;
	facts->vcpus = cfg->ncpus;
	facts->memory_bytes = cfg->ram_size;
	facts->nested = cfg->nested;
	facts->restored = cfg->restore_dir != NULL;
	facts->ndisks = cfg->ndisks;
	for (int i = 0; i < cfg->ndisks; i++)
		facts->disks[i] = cfg->disks[i].path;
	smbios_format_uuid(cfg->identity.uuid, facts->uuid);
}

static int machine_pause_op(void *vm)
{
	return machine_pause(vm);
}

static void machine_resume_op(void *vm)
{
	machine_resume(vm);
}

static void machine_power_button(void *vm)
{
	acpi_pm_power_button(&((struct machine *)vm)->pm);
}

static int machine_snapshot_save(void *vm, const char *dir, uint64_t *bytes, char *why, size_t whylen)
{
	return snapshot_save(vm, dir, bytes, why, whylen);
}

static int64_t machine_now_ms(void *vm)
{
	(void)vm;
	return monotonic_ms();
}

static const struct control_ops machine_ops = {
	.is_paused = machine_is_paused,
	.describe = machine_describe,
	.pause = machine_pause_op,
	.resume = machine_resume_op,
	.press_power_button = machine_power_button,
	.snapshot_save = machine_snapshot_save,
	.now_ms = machine_now_ms,
};

static void client_input(struct control *c, struct machine *m, struct control_client *cl)
{
	ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		drop(c, cl);
		return;
	}
	if (n < 0)
		return;
	cl->len += (size_t)n;
	char *nl;
	while (cl->fd >= 0 && (nl = memchr(cl->buf, '\n', cl->len))) {
		char *reply = control_execute(c, &machine_ops, m, cl->fd, cl->buf, (size_t)(nl - cl->buf));
		if (reply && !send_line(cl->fd, reply)) {
			log_warn("control: a client that does not read its replies was dropped");
			drop(c, cl);
			break;
		}
		if (!reply && c->shutdown_fd != cl->fd) {
			log_warn("control: out of memory for a reply; its client was dropped");
			drop(c, cl);
			break;
		}
		size_t used = (size_t)(nl - cl->buf) + 1;
		memmove(cl->buf, nl + 1, cl->len - used);
		cl->len -= used;
	}
	if (cl->fd >= 0 && cl->len == sizeof(cl->buf)) {
		char *reply = reply_line(error("request longer than %s bytes", "8191"));
		if (reply)
			send_line(cl->fd, reply);
		drop(c, cl);
	}
}

void control_handle(struct control *c, struct machine *m, const struct pollfd *fds, int n)
{
	if (n < 1 + CONTROL_MAX_CLIENTS)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];
		if (cl->fd >= 0 && fds[1 + i].fd == cl->fd && (fds[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
			client_input(c, m, cl);
	}
	if (fds[0].revents & POLLIN) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			if (c->clients[i].fd < 0) {
				c->clients[i].fd = fd;
				c->clients[i].len = 0;
				return;
			}
		}
		char *reply = reply_line(error("too many clients (at most %s)", "8"));
		if (reply)
			send_line(fd, reply);
		close(fd);
	}
}

int control_timeout(const struct control *c)
{
	if (!c->shutdown_deadline)
		return -1;
	int64_t left = c->shutdown_deadline - monotonic_ms();
	return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

void control_tick(struct control *c, struct machine *m)
{
	if (c->shutdown_deadline && monotonic_ms() >= c->shutdown_deadline && !c->forced) {
		log_info("control: the guest did not power off in time: stopping it");
		c->forced = true;
		machine_request_stop(m, 0);
	}
}

void control_vm_ended(struct control *c)
{
	if (c->shutdown_fd < 0)
		return;
	json_object *o = ok();
	json_object_object_add(o, "result", json_object_new_string(c->forced ? "stopped-after-timeout"
									     : "powered-off"));
	char *reply = reply_line(o);
	if (reply)
		send_line(c->shutdown_fd, reply);
	c->shutdown_fd = -1;
}
