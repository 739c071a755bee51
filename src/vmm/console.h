/* The serial console's input side: bytes from the terminal (or a pipe) go
 * to COM1. On a terminal, raw mode is set and restored on every exit path;
 * Ctrl-A x quits, Ctrl-A Ctrl-A sends a Ctrl-A. */
#ifndef NESTVM_VMM_CONSOLE_H
#define NESTVM_VMM_CONSOLE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/serial8250.h"

struct console {
	int in_fd;          /* -1: no input */
	bool escapes;       /* in_fd is the terminal nestvm made raw: Ctrl-A is an escape */
	bool escape;        /* the previous byte was Ctrl-A */
	uint8_t pending[256];
	size_t npending;    /* read from in_fd, not yet taken by the UART */
};

/* Starts reading from in_fd (-1 for none); raw mode if it is a terminal. */
void console_open(struct console *con, int in_fd);
/* Restores the terminal; safe to call any number of times. */
void console_restore_terminal(void);

enum console_result { CONSOLE_OK, CONSOLE_EOF, CONSOLE_QUIT };
/* Reads what is available and passes it to the UART. */
enum console_result console_input(struct console *con, struct serial8250 *uart);
/* Offers held-back bytes to the UART again; true while some remain. */
bool console_flush(struct console *con, struct serial8250 *uart);

/* An attachable console (--console-socket PATH): a UNIX socket on which one
 * client at a time types to COM1 and sees what the guest writes from then
 * on, besides --console's output, which keeps all of it. It belongs to the
 * process, not the machine: a client stays attached across a reboot. */
struct console_socket {
	int listen_fd;     /* -1: none */
	int client_fd;     /* -1: nobody attached */
	/* What the UART also writes each byte to (serial8250.mirror_fd): a
	 * duplicate of the client, or of /dev/null while nobody is attached.
	 * Swapped by dup3(), so a vCPU thread writing to it never sees a
	 * closed or reused descriptor. */
	int mirror_fd;
	int null_fd;
	struct console in; /* the client's input */
	char path[108];
};

/* Listens on path (after unix_listen()'s checks); -1 after a one-line
 * error naming --console-socket. */
int console_socket_open(struct console_socket *cs, const char *path);
/* No socket: what console_socket_close() may always be called on. */
void console_socket_init(struct console_socket *cs);
void console_socket_close(struct console_socket *cs);
/* The fds to poll: the listener, and the client while its input has room. */
int console_socket_pollfds(struct console_socket *cs, struct pollfd *fds);
/* Handles what poll() reported on those fds: a client attaching (a second
 * one is told the console is taken and closed), its input, its leaving. */
void console_socket_handle(struct console_socket *cs, const struct pollfd *fds, int n,
			   struct serial8250 *uart);

#endif
