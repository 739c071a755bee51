#include "net/stream.h"

#include <string.h>

void stream_init(struct stream *s)
{
	s->rx_len = 0;
	s->tx_head = s->tx_len = 0;
	s->broken = false;
}

uint8_t *stream_rx_space(struct stream *s, size_t *room)
{
	*room = sizeof(s->rx) - s->rx_len;
	return s->rx + s->rx_len;
}

void stream_rx_added(struct stream *s, size_t len)
{
	s->rx_len += len;
}

static uint32_t frame_length(const struct stream *s)
{
	return (uint32_t)s->rx[0] << 24 | (uint32_t)s->rx[1] << 16 | (uint32_t)s->rx[2] << 8 |
	       s->rx[3];
}

const uint8_t *stream_next_frame(struct stream *s, size_t *len)
{
	if (s->broken || s->rx_len < 4)
		return NULL;
	uint32_t n = frame_length(s);
	if (n == 0 || n > SWITCH_MAX_FRAME) {
		s->broken = true;
		return NULL;
	}
	if (s->rx_len < 4 + (size_t)n)
		return NULL;
	*len = n;
	return s->rx + 4;
}

void stream_frame_done(struct stream *s)
{
	size_t used = 4 + frame_length(s);
	memmove(s->rx, s->rx + used, s->rx_len - used);
	s->rx_len -= used;
}

bool stream_queue_frame(struct stream *s, const uint8_t *frame, size_t len)
{
	if (len == 0 || len > SWITCH_MAX_FRAME)
		return false;
	if (sizeof(s->tx) - s->tx_len < 4 + len)
		return false;
	/* Room is made at the end by moving what is pending to the front,
	 * only when the end is too short. */
	if (sizeof(s->tx) - s->tx_head - s->tx_len < 4 + len) {
		memmove(s->tx, s->tx + s->tx_head, s->tx_len);
		s->tx_head = 0;
	}
	uint8_t *p = s->tx + s->tx_head + s->tx_len;
	p[0] = (uint8_t)(len >> 24), p[1] = (uint8_t)(len >> 16), p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, frame, len);
	s->tx_len += 4 + len;
	return true;
}

const uint8_t *stream_tx_pending(const struct stream *s, size_t *len)
{
	*len = s->tx_len;
	return s->tx + s->tx_head;
}

void stream_tx_done(struct stream *s, size_t n)
{
	if (n > s->tx_len)
		n = s->tx_len;
	s->tx_head += n;
	s->tx_len -= n;
	if (!s->tx_len)
		s->tx_head = 0;
}
