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
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_error("--api-socket %s: path longer than %zu bytes", path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	strcpy(addr.sun_path, path);
	strcpy(c->path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error("--api-socket %s: socket: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		/* A socket nobody answers on is left over from a dead VM. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && S_ISSOCK(st.st_mode) &&
			    connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
		if (probe >= 0)
			close(probe);
		if (live || !S_ISSOCK(st.st_mode)) {
			log_error("--api-socket %s: %s", path,
				  live ? "another VM is listening there" : "exists and is not a socket");
			close(fd);
			return -1;
		}
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0) {
		log_error("--api-socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
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

/* Sends one answer line and frees it; false if the client could not take
 * it at once. Client sockets never block: a client that does not read its
 * replies fills its socket buffer and is dropped, instead of stopping the
 * main loop (signals, console, shutdown deadline) with it. */
static bool answer(int fd, json_object *reply)
{
	const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);
	char *line = malloc(len + 2);
	bool sent = false;
	if (line) {
		memcpy(line, text, len);
		line[len] = '\n';
		size_t off = 0;
		while (off < len + 1) {
			ssize_t w = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		sent = off == len + 1;
		free(line);
	}
	json_object_put(reply);
	return sent;
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

static json_object *state(struct machine *m)
{
	json_object *o = ok();
	json_object_object_add(o, "state", json_object_new_string(m->paused ? "paused" : "running"));
	return o;
}

static json_object *status(struct machine *m)
{
	json_object *o = state(m);
	json_object_object_add(o, "vcpus", json_object_new_int(m->config.ncpus));
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)m->config.ram_size));
	json_object_object_add(o, "nested", json_object_new_boolean(m->config.nested));
	json_object *disks = json_object_new_array();
	for (int i = 0; i < m->config.ndisks; i++)
		json_object_array_add(disks, json_object_new_string(m->config.disks[i].path));
	json_object_object_add(o, "disks", disks);
	json_object_object_add(o, "restored", json_object_new_boolean(m->config.restore_dir != NULL));
	return o;
}

/* Runs one request; returns the reply, or NULL when it comes later. */
static json_object *execute(struct control *c, struct machine *m, int fd, json_object *req)
{
	json_object *cmd_obj;
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "command", &cmd_obj) ||
	    !json_object_is_type(cmd_obj, json_type_string))
		return error("%s", "expected an object with a \"command\" string");
	const char *cmd = json_object_get_string(cmd_obj);
	if (!strcmp(cmd, "status"))
		return status(m);
	if (!strcmp(cmd, "pause")) {
		if (machine_pause(m) < 0)
			return error("the VM did not pause within %s s (a vCPU is stuck in a device)", "10");
		return state(m);
	}
	if (!strcmp(cmd, "resume")) {
		machine_resume(m);
		return state(m);
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
		machine_resume(m); /* a paused guest could not react */
		acpi_pm_power_button(&m->pm);
		c->shutdown_fd = fd;
		c->shutdown_deadline = monotonic_ms() + secs * 1000;
		log_info("control: power button pressed; stopping hard in %lld s if still running",
			 (long long)secs);
		return NULL;
	}
	if (!strcmp(cmd, "snapshot")) {
		json_object *d;
		if (!json_object_object_get_ex(req, "dir", &d) || !json_object_is_type(d, json_type_string))
			return error("%s", "\"dir\" (a string) is required");
		const char *dir = json_object_get_string(d);
		bool was_paused = m->paused;
		if (machine_pause(m) < 0)
			return error("the VM did not pause within %s s (a vCPU is stuck in a device); "
				     "no snapshot taken", "10");
		int64_t t0 = monotonic_ms();
		uint64_t bytes = 0;
		char why[512] = "";
		int r = snapshot_save(m, dir, &bytes, why, sizeof(why));
		int64_t t1 = monotonic_ms();
		if (!was_paused)
			machine_resume(m);
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
		*nl = 0;
		json_tokener *tok = json_tokener_new();
		json_object *req = json_tokener_parse_ex(tok, cl->buf, (int)(nl - cl->buf));
		bool complete = json_tokener_get_error(tok) == json_tokener_success;
		json_tokener_free(tok);
		json_object *reply = req && complete ? execute(c, m, cl->fd, req)
						     : error("%s", "the request is not valid JSON");
		json_object_put(req);
		if (reply && !answer(cl->fd, reply)) {
			log_warn("control: a client that does not read its replies was dropped");
			drop(c, cl);
			break;
		}
		size_t used = (size_t)(nl - cl->buf) + 1;
		memmove(cl->buf, nl + 1, cl->len - used);
		cl->len -= used;
	}
	if (cl->fd >= 0 && cl->len == sizeof(cl->buf)) {
		answer(cl->fd, error("request longer than %s bytes", "8191"));
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
		answer(fd, error("too many clients (at most %s)", "8"));
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
	answer(c->shutdown_fd, o);
	c->shutdown_fd = -1;
}
