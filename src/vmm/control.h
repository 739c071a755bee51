/* The control API: a UNIX stream socket (--api-socket) taking one JSON
 * object per line and answering each with one JSON object per line.
 *
 *   {"command": "status"}     -> {"ok": true, "state": "running"|"paused", ...}
 *   {"command": "pause"}      -> {"ok": true, "state": "paused"}
 *   {"command": "resume"}     -> {"ok": true, "state": "running"}
 *   {"command": "shutdown", "timeout": S}
 *        presses the ACPI power button; answered when the VM has ended:
 *        {"ok": true, "result": "powered-off"} or, when the guest did not
 *        power off within S seconds (default 60) and was stopped hard,
 *        {"ok": true, "result": "stopped-after-timeout"}
 *   {"command": "snapshot", "dir": PATH}
 *        -> {"ok": true, "dir": PATH, "bytes": N, "seconds": T}
 *   errors: {"ok": false, "error": "one line"}
 *
 * Everything runs on the VM's main thread, between its other events. */
#ifndef NESTVM_VMM_CONTROL_H
#define NESTVM_VMM_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAX_CLIENTS 8
#define CONTROL_LINE_MAX 8192

struct machine;

struct control_client {
	int fd;
	size_t len;
	char buf[CONTROL_LINE_MAX];
};

struct control {
	int listen_fd;
	char path[108];
	struct control_client clients[CONTROL_MAX_CLIENTS];
	int shutdown_fd;            /* client waiting for the shutdown result */
	int64_t shutdown_deadline;  /* monotonic ms; 0: no shutdown pending */
	bool forced;                /* the deadline passed: stopped hard */
};

/* No socket, no clients: what control_close() may always be called on. A
 * zeroed struct would name fd 0, the console's stdin. */
void control_init(struct control *c);
/* Listens on path (replacing a stale socket, refusing a live one); c must
 * have been through control_init(). */
int control_open(struct control *c, const char *path);
void control_close(struct control *c);
/* Adds the control fds to fds[], returns how many. */
int control_pollfds(struct control *c, struct pollfd *fds, int max);
/* Handles whatever poll() reported on the fds control_pollfds() gave. */
void control_handle(struct control *c, struct machine *m, const struct pollfd *fds, int n);
/* Milliseconds until the shutdown deadline, -1 if none. */
int control_timeout(const struct control *c);
/* Enforces the shutdown deadline. */
void control_tick(struct control *c, struct machine *m);
/* The VM has ended: answers a pending shutdown. */
void control_vm_ended(struct control *c);

#endif
