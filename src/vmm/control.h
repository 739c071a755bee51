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
 * Replies are valid UTF-8: a byte that is not (in an echoed request, a
 * path) comes back as U+FFFD.
 *
 * Everything runs on the VM's main thread, between its other events. */
#ifndef NESTVM_VMM_CONTROL_H
#define NESTVM_VMM_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAX_CLIENTS 8
#define CONTROL_LINE_MAX 8192 /* a request line and its '\n' */
#define CONTROL_MAX_DISKS 16  /* at least MACHINE_MAX_DISKS (checked in control.c) */

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

/* What "status" reports about the VM besides its state. */
struct control_vm_facts {
	int vcpus;
	uint64_t memory_bytes;
	bool nested;
	bool restored;  /* resumed from a snapshot instead of booted */
	int ndisks;
	const char *disks[CONTROL_MAX_DISKS]; /* image paths */
	char uuid[37];  /* the SMBIOS UUID; "" if none */
};

/* Everything the protocol asks of the VM, so that it can be run (by unit
 * tests, by the fuzzer) against a fake with no KVM and no struct machine
 * behind it. Each callback gets back the vm pointer given to
 * control_execute(). The table control_handle() uses drives a struct
 * machine: machine_pause(), machine_resume(), acpi_pm_power_button(),
 * snapshot_save(), m->paused, m->config. */
struct control_ops {
	bool (*is_paused)(void *vm);
	void (*describe)(void *vm, struct control_vm_facts *facts);
	/* 0 once every vCPU is parked (also when they already were); -1 if one
	 * did not stop in time, the VM running on. */
	int (*pause)(void *vm);
	void (*resume)(void *vm);
	void (*press_power_button)(void *vm);
	/* Saves the paused VM into dir: 0 with *bytes written, or -1 with a
	 * one-line reason in why. */
	int (*snapshot_save)(void *vm, const char *dir, uint64_t *bytes, char *why, size_t whylen);
	/* Monotonic milliseconds: the shutdown deadline, a snapshot's duration. */
	int64_t (*now_ms)(void *vm);
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

/* The protocol without the socket: runs one request line, given as len
 * bytes without its '\n' (not necessarily NUL-terminated, and possibly
 * anything at all: NULs, invalid UTF-8, broken JSON), on c (which need
 * only have been through control_init()) and vm through ops.
 *
 * Returns the reply: one line of JSON, valid UTF-8, ending in '\n' and
 * NUL-terminated; malloc'd, the caller frees it. Returns NULL when there is
 * no reply yet: a shutdown began, c->shutdown_fd is now client_fd, and
 * control_vm_ended() will answer. (NULL with c->shutdown_fd != client_fd:
 * out of memory.) client_fd (>= 0: -1 means nobody waits) only names the
 * asking client; nothing is read from or written to it here. */
char *control_execute(struct control *c, const struct control_ops *ops, void *vm,
		      int client_fd, const char *line, size_t len);

#endif
