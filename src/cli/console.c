/* nestvm console SOCKET: attach this terminal to a VM's console socket
 * (nestvm run/restore --console-socket; nestvm lab console uses it too).
 * Keys go to the guest, raw, Ctrl-C included; Ctrl-A x leaves (the VM goes
 * on), Ctrl-A Ctrl-A sends one Ctrl-A: the keys of 'nestvm run'. With stdin
 * not a terminal, its bytes go as they are and the session ends with it. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"

#define CTRL_A 0x01
/* What a console socket says to a second client before closing. */
#define BUSY_PREFIX "nestvm: this console is in use"

static struct termios saved;
static bool raw;

static void restore_terminal(void)
{
	if (raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	raw = false;
}

static void make_raw(void)
{
	struct termios t;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t) < 0)
		return;
	saved = t;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		raw = true;
		atexit(restore_terminal);
	}
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cli_console_attach(const char *path, const char *what)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_error("%s: console socket path %s is too long", what, path);
		return 1;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		log_error("%s: cannot connect to the console at %s: %s (is the VM running?)", what, path,
			  strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	make_raw();
	if (raw)
		fprintf(stderr, "nestvm: %s: connected; Ctrl-A x leaves (the VM goes on)\r\n", what);
	bool input_open = true, escape = false, first = true;
	int status = 0;
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = input_open ? STDIN_FILENO : -1, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[4096];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0 && first && !strncmp(buf, BUSY_PREFIX, (size_t)n < strlen(BUSY_PREFIX) ?
					       (size_t)n : strlen(BUSY_PREFIX))) {
				restore_terminal();
				log_error("%s: the console is in use by another client", what);
				status = 1;
				break;
			}
			first = false;
			if (n <= 0) {
				restore_terminal();
				fprintf(stderr, "nestvm: %s: the console closed (the VM ended)\n", what);
				break;
			}
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t in[1024], out[1024];
			ssize_t n = read(STDIN_FILENO, in, sizeof(in));
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				break; /* the end of the input is the end of the session */
			}
			size_t o = 0;
			bool leave = false;
			for (ssize_t i = 0; i < n && !leave; i++) {
				uint8_t c = in[i];
				if (raw && escape) {
					escape = false;
					if (c == 'x' || c == 'X')
						leave = true;
					else if (c == CTRL_A)
						out[o++] = c;
					/* any other key after Ctrl-A: dropped */
				} else if (raw && c == CTRL_A) {
					escape = true;
				} else {
					out[o++] = c;
				}
			}
			if (send_all(fd, out, o) < 0) {
				restore_terminal();
				fprintf(stderr, "nestvm: %s: the console closed (the VM ended)\n", what);
				break;
			}
			if (leave) {
				restore_terminal();
				fprintf(stderr, "\nnestvm: %s: left the console; the VM goes on\n", what);
				break;
			}
		}
	}
	restore_terminal();
	close(fd);
	return status;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm console SOCKET\n"
		"Attaches this terminal to a VM's console socket (nestvm run or restore\n"
		"--console-socket SOCKET): what the guest writes from now on appears here,\n"
		"keys go to the guest. Ctrl-A x leaves and the VM goes on; Ctrl-A Ctrl-A\n"
		"sends a Ctrl-A. One client at a time. With stdin not a terminal, its bytes\n"
		"are sent as they are and the session ends at the end of the input.\n");
}

int cmd_console(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		log_error("console: expected one console socket (see 'nestvm console --help')");
		return CLI_EXIT_USAGE;
	}
	return cli_console_attach(argv[1], argv[1]);
}
