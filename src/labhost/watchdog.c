#define _GNU_SOURCE
#include "labhost/watchdog.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

/* How long one monitor command may take before we give up on it. */
#define MONITOR_REPLY_MS 5000
/* Register samples taken of a frozen lab host, and the pause between. */
#define SAMPLES 3
#define SAMPLE_GAP_MS 1000

void watchdog_init(struct watchdog *w, int beat_fd, int monitor_fd, unsigned silence_s,
		   unsigned keepalive_ms, int64_t now_ms)
{
	memset(w, 0, sizeof(*w));
	w->beat_fd = beat_fd;
	w->monitor_fd = monitor_fd;
	w->silence_s = silence_s;
	w->keepalive_ms = keepalive_ms;
	w->started_ms = now_ms;
}

static void take_line(struct watchdog *w, int64_t now_ms)
{
	w->partial[w->partial_len] = '\0';
	char uptime[sizeof(w->last_uptime)];
	if (sscanf(w->partial, "hb %31s", uptime) == 1) {
		if (w->last_beat_ms) {
			int64_t gap = now_ms - w->last_beat_ms;
			if (gap > w->longest_gap_ms)
				w->longest_gap_ms = gap;
			if (gap > WATCHDOG_LONG_GAP_MS)
				w->long_gaps++;
		} else {
			w->next_keepalive_ms = now_ms;
		}
		w->last_beat_ms = now_ms;
		memcpy(w->last_uptime, uptime, sizeof(uptime));
	}
	w->partial_len = 0;
}

bool watchdog_read_beats(struct watchdog *w, int64_t now_ms)
{
	char buf[512];
	ssize_t n = read(w->beat_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || buf[i] == '\r')
			take_line(w, now_ms);
		else if (w->partial_len + 1 < sizeof(w->partial))
			w->partial[w->partial_len++] = buf[i];
	}
	return true;
}

int64_t watchdog_ms_left(const struct watchdog *w, int64_t now_ms)
{
	if (!w->silence_s)
		return -1;
	int64_t deadline = w->last_beat_ms
		? w->last_beat_ms + (int64_t)w->silence_s * 1000
		: w->started_ms + (int64_t)(w->silence_s > WATCHDOG_FIRST_BEAT_S
					    ? w->silence_s : WATCHDOG_FIRST_BEAT_S) * 1000;
	return deadline > now_ms ? deadline - now_ms : 0;
}

int64_t watchdog_ms_to_keepalive(const struct watchdog *w, int64_t now_ms)
{
	if (!w->keepalive_ms || !w->last_beat_ms)
		return -1;
	return w->next_keepalive_ms > now_ms ? w->next_keepalive_ms - now_ms : 0;
}

void watchdog_keepalive(struct watchdog *w, int64_t now_ms)
{
	/* The lab host's init drains the port, so the byte does nothing there
	 * but interrupt. A full socket buffer (QEMU not reading) is no matter:
	 * the next byte is due soon. */
	(void)!send(w->beat_fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	w->next_keepalive_ms = now_ms + w->keepalive_ms;
}

void watchdog_summary(const struct watchdog *w)
{
	if (w->long_gaps)
		log_warn("labhost: the heartbeat paused %u time%s for over %d s (the longest %.1f s)",
			 w->long_gaps, w->long_gaps == 1 ? "" : "s", WATCHDOG_LONG_GAP_MS / 1000,
			 (double)w->longest_gap_ms / 1000);
}

void watchdog_describe(const struct watchdog *w, int64_t now_ms, char *out, size_t len)
{
	double ran = (double)(now_ms - w->started_ms) / 1000;
	if (w->last_beat_ms)
		snprintf(out, len, "no heartbeat for %.0f s; it had run %.0f s, its last "
			 "heartbeat at its uptime %s s",
			 (double)(now_ms - w->last_beat_ms) / 1000, ran, w->last_uptime);
	else
		snprintf(out, len, "no heartbeat at all in %.0f s since it was started", ran);
}

/* Monitor output as it is copied: terminal escapes dropped (HMP's readline
 * redraws with them), our command's echo skipped, the prompt spotted. */
struct reply {
	enum { TEXT, ECHO, ESC, CSI } state;
	char tail[8];      /* the last bytes copied, to spot the prompt across reads */
	size_t tail_len;
};

/* Copies buf to out; true once the prompt came back. */
static bool copy_reply(struct reply *r, const char *buf, size_t n, FILE *out)
{
	static const char prompt[] = "(qemu) ";
	bool prompt_seen = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		switch (r->state) {
		case ECHO:
			if (c == '\n')
				r->state = TEXT;
			continue;
		case ESC: /* ESC [ starts a control sequence; ESC X is two bytes */
			r->state = c == '[' ? CSI : TEXT;
			continue;
		case CSI: /* parameters and intermediates up to a final 0x40-0x7e */
			if (c >= 0x40 && c <= 0x7e)
				r->state = TEXT;
			continue;
		case TEXT:
			break;
		}
		if (c == 0x1b) {
			r->state = ESC;
			continue;
		}
		if (c == '\r' || (c != '\n' && c != '\t' && c < 0x20))
			continue;
		fputc(c, out);
		if (r->tail_len == sizeof(prompt) - 1) {
			memmove(r->tail, r->tail + 1, r->tail_len - 1);
			r->tail_len--;
		}
		r->tail[r->tail_len++] = (char)c;
		if (r->tail_len == sizeof(prompt) - 1 && !memcmp(r->tail, prompt, r->tail_len))
			prompt_seen = true;
	}
	return prompt_seen;
}

/* Sends one command (NULL: none, just read the banner) and copies the
 * reply to out until the prompt; false if the monitor went silent. */
static bool monitor_command(int fd, const char *cmd, FILE *out)
{
	struct reply r = { .state = TEXT };
	if (cmd) {
		char line[128];
		int len = snprintf(line, sizeof(line), "%s\n", cmd);
		/* MSG_NOSIGNAL: QEMU may be closing the monitor as we write. */
		if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len) {
			fprintf(out, "[the monitor is closed: %s]\n", strerror(errno));
			return false;
		}
		fprintf(out, "%s\n", cmd);
		r.state = ECHO;
	}
	int64_t deadline = monotonic_ms() + MONITOR_REPLY_MS;
	for (;;) {
		int64_t left = deadline - monotonic_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		char buf[4096];
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got == 0) {
			fprintf(out, "\n[the monitor was closed: QEMU is exiting]\n");
			return false;
		}
		if (got < 0)
			break;
		if (copy_reply(&r, buf, (size_t)got, out)) {
			fputc('\n', out);
			return true;
		}
	}
	fprintf(out, "\n[the monitor did not answer%s%s within %d ms: QEMU's main loop is "
		"stuck too]\n", cmd ? " " : "", cmd ? cmd : "", MONITOR_REPLY_MS);
	return false;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int watchdog_write_report(const struct watchdog *w, int cpus, const char *path)
{
	FILE *out = fopen(path, "we");
	if (!out) {
		log_error("labhost: --freeze-report %s: %s", path, strerror(errno));
		return -1;
	}
	char what[160];
	watchdog_describe(w, monotonic_ms(), what, sizeof(what));
	fprintf(out, "nestvm labhost freeze report: %s\n", what);
	if (!monitor_command(w->monitor_fd, NULL, out))
		goto done;
	for (int s = 0; s < SAMPLES; s++) {
		if (s)
			sleep_ms(SAMPLE_GAP_MS);
		fprintf(out, "\n=== sample %d of %d\n", s + 1, SAMPLES);
		if (!monitor_command(w->monitor_fd, "info registers -a", out))
			goto done;
		for (int c = 0; c < cpus; c++) {
			char cmd[64];
			snprintf(cmd, sizeof(cmd), "cpu %d", c);
			if (!monitor_command(w->monitor_fd, cmd, out) ||
			    !monitor_command(w->monitor_fd, "x/12i $pc", out))
				goto done;
			if (s == SAMPLES - 1 && !monitor_command(w->monitor_fd, "info lapic", out))
				goto done;
		}
	}
	monitor_command(w->monitor_fd, "info pic", out);
done:
	if (fclose(out) != 0) {
		log_error("labhost: --freeze-report %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
