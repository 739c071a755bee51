#define _GNU_SOURCE
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "util/log.h"
#include "util/unix_socket.h"


#define CTRL_A 0x01

static struct termios saved_termios;
static int raw_fd = -1;

void console_restore_terminal(void)
{
	if (raw_fd >= 0) {
		tcsetattr(raw_fd, TCSANOW, &saved_termios);
		raw_fd = -1;
	}
}

void console_open(struct console *con, int in_fd)
{
	memset(con, 0, sizeof(*con));
	con->in_fd = in_fd;
	if (in_fd < 0 || !isatty(in_fd))
		return;
	if (raw_fd >= 0) { /* a reboot's new machine: the terminal is raw already */
		con->escapes = in_fd == raw_fd;
		return;
	}
	struct termios t;
	if (tcgetattr(in_fd, &t) < 0)
		return;
	saved_termios = t;
	/* Raw input (keys go to the guest, Ctrl-C included); output processing
	 * stays as it was so nestvm's own messages still start new lines. */
	t.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(in_fd, TCSANOW, &t) == 0) {
		raw_fd = in_fd;
		con->escapes = true;
		atexit(console_restore_terminal);
	}
}

bool console_flush(struct console *con, struct serial8250 *uart)
{
	if (!con->npending)
		return false;
	unsigned n = serial8250_receive(uart, con->pending, (unsigned)con->npending);
	memmove(con->pending, con->pending + n, con->npending - n);
	con->npending -= n;
	return con->npending > 0;
}

enum console_result console_input(struct console *con, struct serial8250 *uart)
{
	uint8_t buf[128];
	size_t room = sizeof(con->pending) - con->npending;
	if (room == 0) /* the guest is not reading: leave input in the kernel */
		return CONSOLE_OK;
	ssize_t n = read(con->in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return CONSOLE_OK;
	if (n <= 0)
		return CONSOLE_EOF;
	for (ssize_t i = 0; i < n; i++) {
		uint8_t c = buf[i];
		if (con->escapes && con->escape) {
			con->escape = false;
			if (c == 'x' || c == 'X')
				return CONSOLE_QUIT;
			if (c != CTRL_A)
				continue; /* unknown escape: dropped */
		} else if (con->escapes && c == CTRL_A) {
			con->escape = true;
			continue;
		}
		con->pending[con->npending++] = c;
	}
	console_flush(con, uart);
	return CONSOLE_OK;
}

/* --- the attachable console ---------------------------------------------- */

void console_socket_init(struct console_socket *cs)
{
	memset(cs, 0, sizeof(*cs));
	cs->listen_fd = cs->client_fd = cs->mirror_fd = cs->null_fd = -1;
	cs->in.in_fd = -1;
}

int console_socket_open(struct console_socket *cs, const char *path)
{
	console_socket_init(cs);
	cs->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cs->mirror_fd = cs->null_fd >= 0 ? fcntl(cs->null_fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (cs->mirror_fd < 0) {
		log_error("--console-socket %s: /dev/null: %s", path, strerror(errno));
		console_socket_close(cs);
		return -1;
	}
	cs->listen_fd = unix_listen("--console-socket", path);
	if (cs->listen_fd < 0) {
		console_socket_close(cs);
		return -1;
	}
	snprintf(cs->path, sizeof(cs->path), "%s", path); /* unix_listen() checked its length */
	return 0;
}

static void detach(struct console_socket *cs)
{
	if (cs->client_fd < 0)
		return;
	/* (dup3 onto a descriptor that stays open fails only with EINTR, or
	 * EBUSY in a race with another thread's open: both pass.) */
	while (dup3(cs->null_fd, cs->mirror_fd, O_CLOEXEC) < 0 && (errno == EINTR || errno == EBUSY))
		;
	close(cs->client_fd);
	cs->client_fd = -1;
	cs->in.in_fd = -1;
	cs->in.npending = 0;
}

void console_socket_close(struct console_socket *cs)
{
	detach(cs);
	if (cs->listen_fd >= 0)
		unlink(cs->path);
	int *fds[] = { &cs->listen_fd, &cs->mirror_fd, &cs->null_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

int console_socket_pollfds(struct console_socket *cs, struct pollfd *fds)
{
	if (cs->listen_fd < 0)
		return 0;
	bool room = cs->in.npending < sizeof(cs->in.pending);
	fds[0] = (struct pollfd){ .fd = cs->listen_fd, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = room ? cs->client_fd : -1, .events = POLLIN };
	return 2;
}

void console_socket_handle(struct console_socket *cs, const struct pollfd *fds, int n,
			   struct serial8250 *uart)
{
	if (n < 2)
		return;
	if (cs->client_fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
	    console_input(&cs->in, uart) != CONSOLE_OK)
		detach(cs);
	if (!(fds[0].revents & POLLIN))
		return;
	int fd = accept4(cs->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (cs->client_fd >= 0) {
		static const char busy[] = "nestvm: this console is in use by another client\n";
		send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	/* The UART's writes to it never block the guest: a client that does
	 * not read loses output (the --console log keeps it). */
	int r;
	while ((r = dup3(fd, cs->mirror_fd, O_CLOEXEC)) < 0 && (errno == EINTR || errno == EBUSY))
		;
	if (r < 0) {
		close(fd);
		return;
	}
	cs->client_fd = fd;
	console_open(&cs->in, fd); /* a socket: no terminal, no escapes */
}
