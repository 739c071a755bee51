/* A listening UNIX stream socket at a path, non-blocking. */
#ifndef NESTVM_UTIL_UNIX_SOCKET_H
#define NESTVM_UTIL_UNIX_SOCKET_H

/* Listens on path, replacing a socket nobody answers on (left over from a
 * dead process) and refusing a live one or any other file. Returns the fd,
 * or -1 after a one-line error that starts with what (an option name). */
int unix_listen(const char *what, const char *path);

#endif
