/* nestvm ctl: the control API's client (the protocol is in vmm/control.h). */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/parse.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm ctl SOCKET COMMAND\n"
		"Sends one request to a VM's control API (nestvm run/restore --api-socket)\n"
		"and prints the JSON answer. Exit status 0 if the VM says ok.\n"
		"  status                 state, vCPUs, memory, disks\n"
		"  pause | resume         stop or continue every vCPU\n"
		"  shutdown [--timeout S] press the ACPI power button; stop the VM hard if it\n"
		"                         has not powered off after S seconds (default 60);\n"
		"                         answers once the VM has ended\n"
		"  snapshot DIR           pause, save the VM into DIR (for 'nestvm restore'),\n"
		"                         and let it continue\n"
		"A switch (nestvm switch --api-socket) answers:\n"
		"  status                 ports, counters, MAC table, NAT leases and forwards\n"
		"  set-port NAME [policy=strict|learn|promisc] [mac=MAC|none] [mac-limit=N]\n"
		"                         change a port's MAC policy at the switch\n");
}

int cmd_ctl(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *path = argv[1], *cmd = argv[2];
	json_object *req = json_object_new_object();
	json_object_object_add(req, "command", json_object_new_string(cmd));
	uint64_t timeout = 60;
	int wait_ms = 600 * 1000;
	if (!strcmp(cmd, "shutdown")) {
		for (int i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
			    parse_uint(argv[i + 1], 0, 86400, &timeout) == 0) {
				i++;
			} else {
				log_error("ctl shutdown: expected [--timeout SECONDS], got '%s'", argv[i]);
				json_object_put(req);
				return CLI_EXIT_USAGE;
			}
		}
		json_object_object_add(req, "timeout", json_object_new_int64((int64_t)timeout));
		wait_ms = (int)(timeout + 60) * 1000;
	} else if (!strcmp(cmd, "snapshot")) {
		if (argc != 4) {
			log_error("ctl snapshot: expected one directory");
			json_object_put(req);
			return CLI_EXIT_USAGE;
		}
		/* The VM resolves the path from its own working directory. */
		char *abs = realpath(".", NULL);
		char dir[8192];
		snprintf(dir, sizeof(dir), "%s%s%s", argv[3][0] == '/' ? "" : abs ? abs : ".",
			 argv[3][0] == '/' ? "" : "/", argv[3]);
		free(abs);
		json_object_object_add(req, "dir", json_object_new_string(dir));
	} else if (!strcmp(cmd, "set-port")) {
		if (argc < 4) {
			log_error("ctl set-port: expected a port name, then policy=, mac=, mac-limit=");
			json_object_put(req);
			return CLI_EXIT_USAGE;
		}
		json_object_object_add(req, "port", json_object_new_string(argv[3]));
		for (int i = 4; i < argc; i++) {
			const char *a = argv[i];
			uint64_t n;
			if (!strncmp(a, "policy=", 7)) {
				json_object_object_add(req, "policy", json_object_new_string(a + 7));
			} else if (!strncmp(a, "mac=", 4)) {
				json_object_object_add(req, "mac", json_object_new_string(a + 4));
			} else if (!strncmp(a, "mac-limit=", 10) && parse_uint(a + 10, 1, 4096, &n) == 0) {
				json_object_object_add(req, "mac_limit", json_object_new_int64((int64_t)n));
			} else {
				log_error("ctl set-port: bad setting '%s' (policy=P, mac=MAC, mac-limit=1..4096)", a);
				json_object_put(req);
				return CLI_EXIT_USAGE;
			}
		}
	} else if (argc != 3) {
		log_error("ctl %s: unexpected argument '%s'", cmd, argv[3]);
		json_object_put(req);
		return CLI_EXIT_USAGE;
	}

	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (strlen(path) >= sizeof(addr.sun_path) || fd < 0) {
		log_error("ctl %s: bad socket path", path);
		json_object_put(req);
		return 1;
	}
	strcpy(addr.sun_path, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		log_error("ctl %s: cannot connect: %s%s", path, strerror(errno),
			  errno == ENOENT || errno == ECONNREFUSED ? " (is the VM running with --api-socket?)" : "");
		close(fd);
		json_object_put(req);
		return 1;
	}
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);
	if (send(fd, text, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		log_error("ctl %s: send: %s", path, strerror(errno));
		close(fd);
		json_object_put(req);
		return 1;
	}
	json_object_put(req);
	/* The answer grows with what it describes (a switch's MAC table and
	 * leases): read up to its newline, within a bound. */
	const size_t max_reply = 16 << 20;
	size_t cap = 8192, got = 0;
	char *line = malloc(cap);
	while (line && !memchr(line, '\n', got)) {
		if (got == cap - 1) {
			char *more = cap < max_reply ? realloc(line, cap * 2) : NULL;
			if (!more)
				break;
			line = more;
			cap *= 2;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, wait_ms);
		if (r <= 0) {
			log_error("ctl %s: no answer within %d s", path, wait_ms / 1000);
			close(fd);
			free(line);
			return 1;
		}
		ssize_t n = recv(fd, line + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!line) {
		log_error("ctl %s: out of memory", path);
		return 1;
	}
	line[got] = 0;
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	json_object *reply = json_tokener_parse(line);
	free(line);
	json_object *ok;
	if (!reply || !json_object_object_get_ex(reply, "ok", &ok)) {
		log_error("ctl %s: the VM closed the connection without an answer", path);
		json_object_put(reply);
		return 1;
	}
	printf("%s\n", json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	int status = json_object_get_boolean(ok) ? 0 : 1;
	json_object_put(reply);
	return status;
}
