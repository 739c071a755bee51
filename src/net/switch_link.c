#define _GNU_SOURCE
#include "net/switch_link.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int connect_to(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	/* Non-blocking from the start: a UNIX connect blocks while the
	 * listener's backlog is full (a stopped process at the path), and
	 * the caller holds a device lock. EAGAIN is "not now". */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int switch_link_open(struct switch_link *l, const char *path, char *why, size_t whylen)
{
	memset(l, 0, sizeof(*l));
	stream_init(&l->stream);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->fd = connect_to(path);
	if (l->fd < 0) {
		snprintf(why, whylen, "%s", errno == ENOENT || errno == ECONNREFUSED
						    ? "no switch is listening there (start nestvm switch first)"
						    : strerror(errno));
		return -1;
	}
	return 0;
}

void switch_link_close(struct switch_link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->dead = false;
	stream_init(&l->stream);
}

bool switch_link_reconnect(struct switch_link *l, int64_t now_ms)
{
	if (l->fd >= 0 || now_ms < l->retry_ms)
		return false;
	l->retry_ms = now_ms + SWITCH_LINK_RETRY_MS;
	l->fd = connect_to(l->path);
	if (l->fd < 0)
		return false;
	l->reconnects++;
	return true;
}

static void fail(struct switch_link *l)
{
	l->dead = true;
}

bool switch_link_flush(struct switch_link *l)
{
	size_t len;
	const uint8_t *p = stream_tx_pending(&l->stream, &len);
	while (len && l->fd >= 0 && !l->dead) {
		ssize_t w = send(l->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(l);
			break;
		}
		stream_tx_done(&l->stream, (size_t)w);
		p = stream_tx_pending(&l->stream, &len);
	}
	stream_tx_pending(&l->stream, &len);
	return len && l->fd >= 0 && !l->dead;
}

bool switch_link_send(struct switch_link *l, const struct iovec *iov, unsigned n, size_t skip)
{
	uint8_t frame[SWITCH_MAX_FRAME];
	size_t len = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *base = iov[i].iov_base;
		size_t part = iov[i].iov_len;
		if (skip >= part) {
			skip -= part;
			continue;
		}
		base += skip, part -= skip, skip = 0;
		if (part > sizeof(frame) - len) {
			l->tx_dropped++; /* longer than any frame the switch carries */
			return false;
		}
		memcpy(frame + len, base, part);
		len += part;
	}
	if (l->fd < 0 || l->dead || len < SWITCH_MIN_FRAME || !stream_queue_frame(&l->stream, frame, len)) {
		l->tx_dropped++;
		return false;
	}
	switch_link_flush(l);
	return true;
}

const uint8_t *switch_link_next_frame(struct switch_link *l, size_t *len)
{
	for (;;) {
		const uint8_t *f = stream_next_frame(&l->stream, len);
		if (f)
			return f;
		if (l->stream.broken) {
			fail(l);
			return NULL;
		}
		if (l->fd < 0 || l->dead)
			return NULL;
		size_t room;
		uint8_t *space = stream_rx_space(&l->stream, &room);
		ssize_t r = recv(l->fd, space, room, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			fail(l);
			return NULL;
		}
		if (r < 0)
			return NULL;
		stream_rx_added(&l->stream, (size_t)r);
	}
}

void switch_link_frame_done(struct switch_link *l)
{
	stream_frame_done(&l->stream);
	l->reported_down = false; /* frames flow: the next loss is news */
}

bool switch_link_check_hangup(struct switch_link *l)
{
	if (l->fd < 0 || l->dead)
		return l->dead;
	uint8_t byte;
	ssize_t r = recv(l->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		fail(l);
	return l->dead;
}
