/* The serial console's input side: bytes from the terminal (or a pipe) go
 * to COM1. On a terminal, raw mode is set and restored on every exit path;
 * Ctrl-A x quits, Ctrl-A Ctrl-A sends a Ctrl-A. */
#ifndef NESTVM_VMM_CONSOLE_H
#define NESTVM_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/serial8250.h"

struct console {
	int in_fd;          /* -1: no input */
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

#endif
