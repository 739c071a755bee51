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
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/clock.h"
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

static void on_signal(int sig)
{
	restore_terminal(); /* tcsetattr is async-signal-safe */
	_exit(128 + sig);
}

/* What the guest writes, as it reaches the terminal. The first bytes are
 * held back while they could still be the refusal a console socket sends a
 * second client (BUSY_LINE, all in one write), for at most HOLD_MS: a guest
 * whose output starts the same way is shown a moment late, never taken for
 * a refusal. */
#define BUSY_LINE BUSY_PREFIX " by another client\n"
#define HOLD_MS 200

struct relay {
	int fd;
	bool checking;        /* the first bytes may still be BUSY_LINE */
	size_t held;
	char hold[sizeof(BUSY_LINE)];
	uint8_t out[4096];    /* keys not yet taken by the socket */
	size_t out_len;
};

/* Shows held bytes and stops checking. */
static int release(struct relay *r)
{
	r->checking = false;
	int e = write_all(STDOUT_FILENO, r->hold, r->held);
	r->held = 0;
	return e;
}

/* Bytes from the socket: 1 when they are the refusal, -1 when stdout is
 * gone, else 0. */
static int from_socket(struct relay *r, const char *buf, size_t n)
{
	size_t i = 0;
	while (r->checking && i < n) {
		if (buf[i] != BUSY_LINE[r->held]) {
			if (release(r) < 0)
				return -1;
			break;
		}
		r->hold[r->held++] = buf[i++];
		if (r->held == strlen(BUSY_LINE))
			return 1;
	}
	return write_all(STDOUT_FILENO, buf + i, n - i) < 0 ? -1 : 0;
}

/* Sends what it can of the pending keys without waiting. */
static int flush_keys(struct relay *r)
{
	while (r->out_len) {
		ssize_t w = send(r->fd, r->out, r->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0)
			return -1;
		memmove(r->out, r->out + w, r->out_len - (size_t)w);
		r->out_len -= (size_t)w;
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
	signal(SIGPIPE, SIG_IGN); /* a closed stdout or socket: errors, not death */
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGINT, on_signal);
	make_raw();
	if (raw)
		fprintf(stderr, "nestvm: %s: connected; Ctrl-A x leaves (the VM goes on)\r\n", what);
	struct relay r = { .fd = fd, .checking = true };
	bool input_open = true, escape = false;
	int status = 0;
	int64_t held_since = -1, input_ended = -1;
	const char *end = NULL; /* why the session ended, for the message */
	while (!end) {
		/* Keys are read on a terminal even when the socket takes none
		 * (a guest that does not read): Ctrl-A x must still work; the
		 * rest is dropped while the buffer is full. A pipe waits. */
		bool room = r.out_len < sizeof(r.out);
		struct pollfd p[2] = {
			{ .fd = fd, .events = (short)(POLLIN | (r.out_len ? POLLOUT : 0)) },
			{ .fd = input_open && (raw || room) ? STDIN_FILENO : -1, .events = POLLIN },
		};
		int timeout = -1;
		int64_t now = monotonic_ms();
		if (r.checking && held_since >= 0)
			timeout = (int)(held_since + HOLD_MS > now ? held_since + HOLD_MS - now : 0);
		if (input_ended >= 0) /* the end of the input: what is typed goes, for 2 s at most */
			timeout = (int)(input_ended + 2000 > now ? input_ended + 2000 - now : 0);
		int ready = poll(p, 2, timeout);
		if (ready < 0 && errno != EINTR)
			break;
		now = monotonic_ms();
		if (r.checking && held_since >= 0 && now >= held_since + HOLD_MS && release(&r) < 0)
			break;
		if (ready > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[4096];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0) {
				if (r.checking && held_since < 0)
					held_since = now;
				int e = from_socket(&r, buf, (size_t)n);
				if (e == 1) {
					r.checking = false; /* the refusal is not the guest's to show */
					r.held = 0;
					restore_terminal();
					log_error("%s: the console is in use by another client", what);
					status = 1;
					break;
				}
				if (e < 0)
					break; /* stdout is gone */
			} else if (n == 0 || errno != EAGAIN) {
				end = "the console closed (the VM ended)";
			}
		}
		if (!end && r.out_len && flush_keys(&r) < 0)
			end = "the console closed (the VM ended)";
		if (!end && ready > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			uint8_t in[1024];
			ssize_t n = read(STDIN_FILENO, in, sizeof(in));
			if (n == 0 || (n < 0 && errno != EINTR)) {
				input_open = false; /* the end of the input: the end of the session */
				input_ended = now;
			}
			for (ssize_t i = 0; i < n && !end; i++) {
				uint8_t c = in[i];
				bool key = true;
				if (raw && escape) {
					escape = false;
					if (c == 'x' || c == 'X')
						end = "left the console; the VM goes on";
					key = c == CTRL_A && !end;
				} else if (raw && c == CTRL_A) {
					escape = true;
					key = false;
				}
				if (key && r.out_len < sizeof(r.out))
					r.out[r.out_len++] = c;
			}
			if (!end && r.out_len && flush_keys(&r) < 0)
				end = "the console closed (the VM ended)";
		}
		if (!end && !input_open && (!r.out_len || now >= input_ended + 2000))
			break;
	}
	if (r.checking)
		release(&r);
	restore_terminal();
	if (end)
		fprintf(stderr, "%snestvm: %s: %s\n", !strncmp(end, "left", 4) ? "\n" : "", what, end);
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
