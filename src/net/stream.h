/* QEMU's stream framing for Ethernet over a byte stream (-netdev stream,
 * and passt): each frame is a 4-byte big-endian length, then the frame.
 * A connection's input is fed in as it arrives and whole frames come out;
 * output frames are queued in a bounded buffer that drains as the peer
 * reads. Nothing here blocks or grows without bound: a peer that stops
 * reading loses frames (queue_frame fails), one that sends a length no
 * frame can have breaks its connection (the stream cannot be resynced). */
#ifndef NESTVM_NET_STREAM_H
#define NESTVM_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/switch_core.h"

#define STREAM_RX_BYTES (4 + SWITCH_MAX_FRAME)
#define STREAM_TX_BYTES (256 * 1024)

struct stream {
	uint8_t rx[STREAM_RX_BYTES];
	size_t rx_len;
	uint8_t tx[STREAM_TX_BYTES];
	size_t tx_head, tx_len;
	bool broken; /* a length no frame can have: close the connection */
};

void stream_init(struct stream *s);
/* Room for more input: where to read into and how much. */
uint8_t *stream_rx_space(struct stream *s, size_t *room);
/* len bytes were read into the space. */
void stream_rx_added(struct stream *s, size_t len);
/* The next whole frame in the input, or NULL (need more bytes, or the
 * stream is broken); once used, stream_frame_done() drops it. */
const uint8_t *stream_next_frame(struct stream *s, size_t *len);
void stream_frame_done(struct stream *s);
/* Queues a frame for output; false if it does not fit (the caller counts
 * a drop) or is not a frame. */
bool stream_queue_frame(struct stream *s, const uint8_t *frame, size_t len);
/* Bytes waiting to be written, contiguous; then stream_tx_done(n). */
const uint8_t *stream_tx_pending(const struct stream *s, size_t *len);
void stream_tx_done(struct stream *s, size_t n);

#endif
