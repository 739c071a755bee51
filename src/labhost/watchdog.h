/* The lab host's freeze watchdog.
 *
 * The lab host's init writes a heartbeat line ("hb UPTIME") every 2 s to a
 * serial port of its own. It depends on the lab host's timers, scheduler and
 * interrupts all working, so when it stops, the lab host is frozen (QEMU's
 * TCG has been seen to stop making progress with nested guests running).
 * The watchdog notices the silence, and before QEMU is killed it asks QEMU's
 * human monitor, over a socket of its own, for the evidence: every vCPU's
 * registers and the code at its PC, sampled several times, and the local
 * APICs. That says whether the lab host loops in a nested guest, in its
 * KVM, or in its own kernel.
 *
 * The watchdog also keeps the lab host awake: from the first beat on, a
 * byte into the heartbeat port every keepalive_ms. QEMU's TCG (7.2 to 10.0)
 * can lose the note that the local APIC has an interrupt to deliver (a
 * racy update of the vCPU's interrupt_request when VMRUN enters a nested
 * guest with a virtual interrupt pending), and the vCPU then halts, or
 * runs a nested guest, for ever with its own timer interrupt pending. Any
 * new interrupt makes QEMU look at the APIC again: the byte's receive
 * interrupt is that (docs/labhost-freeze.md). */
#ifndef NESTVM_LABHOST_WATCHDOG_H
#define NESTVM_LABHOST_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds between beats (init.sh sleeps this long). */
#define WATCHDOG_BEAT_S 2
/* Default milliseconds between keepalive bytes. */
#define WATCHDOG_KEEPALIVE_MS 250
/* A pause between beats longer than this is counted in the summary. */
#define WATCHDOG_LONG_GAP_MS 5000
/* Silence allowed before the first beat, for a boot on a busy machine. */
#define WATCHDOG_FIRST_BEAT_S 120

struct watchdog {
	int beat_fd;          /* our end of the heartbeat serial port */
	int monitor_fd;       /* our end of QEMU's human monitor */
	unsigned silence_s;   /* allowed silence after the first beat; 0: off */
	int64_t started_ms;   /* when QEMU started */
	int64_t last_beat_ms; /* 0 before the first beat */
	char last_uptime[32]; /* the lab host's uptime in its last beat */
	char partial[64];     /* a beat line not complete yet */
	size_t partial_len;
	unsigned keepalive_ms;    /* 0: no keepalive */
	int64_t next_keepalive_ms;
	int64_t longest_gap_ms;   /* the longest pause between two beats */
	unsigned long_gaps;       /* pauses longer than WATCHDOG_LONG_GAP_MS */
};

void watchdog_init(struct watchdog *w, int beat_fd, int monitor_fd, unsigned silence_s,
		   unsigned keepalive_ms, int64_t now_ms);

/* Reads the beats available on beat_fd; false once the port is closed. */
bool watchdog_read_beats(struct watchdog *w, int64_t now_ms);

/* Milliseconds until the lab host counts as frozen (0: it is), or -1 when
 * the watchdog is off. */
int64_t watchdog_ms_left(const struct watchdog *w, int64_t now_ms);

/* Milliseconds until the next keepalive byte is due (0: now), or -1 when
 * none is: before the first beat, or with the keepalive off. */
int64_t watchdog_ms_to_keepalive(const struct watchdog *w, int64_t now_ms);

/* Sends the keepalive byte. */
void watchdog_keepalive(struct watchdog *w, int64_t now_ms);

/* Warns on stderr when beats paused longer than WATCHDOG_LONG_GAP_MS. */
void watchdog_summary(const struct watchdog *w);

/* One line: how long the silence lasted and how long the lab host ran. */
void watchdog_describe(const struct watchdog *w, int64_t now_ms, char *out, size_t len);

/* Samples the frozen lab host through the monitor into path (vCPU count
 * cpus). Bounded: a monitor that does not answer is noted, not waited for. */
int watchdog_write_report(const struct watchdog *w, int cpus, const char *path);

#endif
