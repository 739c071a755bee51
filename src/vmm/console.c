#include "vmm/console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>


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
	if (in_fd < 0 || !isatty(in_fd) || raw_fd >= 0)
		return;
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
		if (raw_fd >= 0 && con->escape) {
			con->escape = false;
			if (c == 'x' || c == 'X')
				return CONSOLE_QUIT;
			if (c != CTRL_A)
				continue; /* unknown escape: dropped */
		} else if (raw_fd >= 0 && c == CTRL_A) {
			con->escape = true;
			continue;
		}
		con->pending[con->npending++] = c;
	}
	console_flush(con, uart);
	return CONSOLE_OK;
}
