/* A VM's end of a switch port (`nestvm switch`, or anything speaking
 * QEMU's stream framing on a UNIX socket): frames out and in, without ever
 * blocking. A frame that does not fit the output buffer is dropped and
 * counted; a connection that fails is marked dead, and the owner closes it
 * (after it stopped watching the fd) and connects again later: a
 * restarted switch is joined again. */
#ifndef NESTVM_NET_SWITCH_LINK_H
#define NESTVM_NET_SWITCH_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/stream.h"

#define SWITCH_LINK_RETRY_MS 1000

struct switch_link {
	char path[108];
	int fd;              /* -1: not connected */
	bool dead;           /* the connection failed: close it */
	int64_t retry_ms;    /* when to try connecting again */
	struct stream stream;
	uint64_t tx_dropped, rx_dropped, reconnects;
	bool reported_down; /* the loss was logged; no frame came since */
};

/* Connects to path now; -1 with the reason in why if it cannot. */
int switch_link_open(struct switch_link *l, const char *path, char *why, size_t whylen);
void switch_link_close(struct switch_link *l);
/* Tries to connect again if the link is down and the retry time came;
 * true if it is connected now with a new fd. */
bool switch_link_reconnect(struct switch_link *l, int64_t now_ms);
/* Queues the frame held in iov[] past its first skip bytes (the virtio-net
 * header) and sends what the socket takes; false if it was dropped. */
bool switch_link_send(struct switch_link *l, const struct iovec *iov, unsigned n, size_t skip);
/* Sends queued output; true if some is still waiting. */
bool switch_link_flush(struct switch_link *l);
/* The next frame received (reading the socket as needed), or NULL; once
 * delivered, switch_link_frame_done(). */
const uint8_t *switch_link_next_frame(struct switch_link *l, size_t *len);
void switch_link_frame_done(struct switch_link *l);
/* Marks the link dead if the switch hung up; for an owner that stops
 * reading (no guest buffers) while the fd stays watched. */
bool switch_link_check_hangup(struct switch_link *l);

#endif
