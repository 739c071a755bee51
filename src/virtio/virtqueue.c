#include "virtio/virtqueue.h"

#include <string.h>

#include "util/log.h"

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* The rings are shared with vCPUs running concurrently: index loads pair
 * with the driver's barriers (acquire), index stores publish what came
 * before them (release). */
static uint16_t load16(volatile uint8_t *p)
{
	uint16_t v;
	__atomic_load((uint16_t *)p, &v, __ATOMIC_ACQUIRE);
	return v;
}

static void store16(volatile uint8_t *p, uint16_t v)
{
	__atomic_store((uint16_t *)p, &v, __ATOMIC_RELEASE);
}

static int broken(struct virtq *q, const char *why, unsigned a, unsigned b)
{
	if (!q->broken)
		log_warn("virtqueue at 0x%llx: %s (%u, %u); the device needs a reset",
			 (unsigned long long)q->desc_gpa, why, a, b);
	q->broken = true;
	return -1;
}

int virtq_start(struct virtq *q, const struct guest_mem *mem)
{
	uint16_t n = q->size;
	q->mem = mem;
	q->ready = false;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -1;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -1;
	q->desc = guest_mem_ptr(mem, q->desc_gpa, 16ULL * n);
	q->avail = guest_mem_ptr(mem, q->avail_gpa, 6 + 2ULL * n);
	q->used = guest_mem_ptr(mem, q->used_gpa, 6 + 8ULL * n);
	if (!q->desc || !q->avail || !q->used)
		return -1;
	q->last_avail = q->used_idx = 0;
	q->signalled_valid = false;
	q->broken = false;
	q->ready = true;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static void read_desc(volatile uint8_t *table, uint16_t i, struct desc *d)
{
	/* One copy, then only the copy is looked at: the guest may rewrite
	 * the descriptor while we check it. */
	memcpy(d, (const uint8_t *)table + 16u * i, sizeof(*d));
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	if (q->broken)
		return -1;
	if (!q->ready)
		return 0;
	uint16_t avail_idx = load16(q->avail + 2);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return broken(q, "available index moved past the queue size", pending, q->size);
	uint16_t head = load16(q->avail + 4 + 2u * (q->last_avail % q->size));
	if (head >= q->size)
		return broken(q, "chain head outside the descriptor table", head, q->size);
	q->last_avail++;

	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	volatile uint8_t *table = q->desc;
	unsigned table_size = q->size, seen = 0, n = 0;
	bool in_indirect = false;
	uint16_t i = head;
	for (;;) {
		if (++seen > table_size)
			return broken(q, "descriptor chain loops or outgrows its table", seen, table_size);
		struct desc d;
		read_desc(table, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (in_indirect)
				return broken(q, "indirect descriptor inside an indirect table", i, 0);
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return broken(q, "indirect descriptor also chained", i, d.next);
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_IOV)
				return broken(q, "bad indirect table length", d.len, 16);
			volatile uint8_t *t = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!t)
				return broken(q, "indirect table outside guest RAM", i, d.len);
			table = t;
			table_size = d.len / 16;
			in_indirect = true;
			seen = 0;
			i = 0;
			continue;
		}
		if (d.len) {
			void *p = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!p)
				return broken(q, "buffer outside guest RAM", i, d.len);
			if (n == VIRTQ_MAX_IOV)
				return broken(q, "chain has too many buffers", n, VIRTQ_MAX_IOV);
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				c->n_in++;
				c->in_len += d.len;
			} else {
				if (c->n_in)
					return broken(q, "readable buffer after a writable one", i, 0);
				c->n_out++;
				c->out_len += d.len;
			}
			c->iov[n].iov_base = p;
			c->iov[n].iov_len = d.len;
			n++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 1;
		if (d.next >= table_size)
			return broken(q, "next descriptor outside the table", d.next, table_size);
		i = d.next;
	}
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	if (!q->ready)
		return;
	volatile uint8_t *e = q->used + 4 + 8u * (q->used_idx % q->size);
	uint32_t id = head;
	memcpy((uint8_t *)e, &id, 4);
	memcpy((uint8_t *)e + 4, &len, 4);
	q->used_idx++;
	store16(q->used + 2, q->used_idx);
}

bool virtq_needs_interrupt(struct virtq *q)
{
	if (!q->ready)
		return false;
	/* Our used index store must be visible before we read the driver's
	 * wishes, or an interrupt could be lost (2.7.10). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	uint16_t event = load16(q->avail + 4 + 2u * q->size);
	uint16_t now = q->used_idx, old = q->signalled_used;
	bool valid = q->signalled_valid;
	q->signalled_used = now;
	q->signalled_valid = true;
	/* vring_need_event(): has used moved past the event index since the
	 * last interrupt? */
	return !valid || (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

bool virtq_arm_notify(struct virtq *q)
{
	if (!q->ready || q->broken)
		return false;
	if (q->event_idx)
		store16(q->used + 4 + 8u * q->size, q->last_avail);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(q->avail + 2) != q->last_avail;
}
