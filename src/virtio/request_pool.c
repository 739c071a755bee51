#define _GNU_SOURCE
#include "virtio/request_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/sandbox.h"

struct pool_slot {
	struct virtq_chain chain;
	unsigned queue;
	struct pool_slot *next;
};

struct virtio_pool {
	struct virtio_dev *vd;
	virtio_request_fn handle;
	/* All below under vd->lock. */
	pthread_cond_t work;             /* a request was queued, or stopping */
	struct pool_slot *free_slots;
	struct pool_slot *queued, *queued_tail; /* taken from a ring, not yet started */
	bool starved[VIRTIO_MAX_QUEUES]; /* a ring was left with requests: no slot free */
	bool stopping;
	unsigned in_flight, max_in_flight;
	uint64_t handled;
	struct pool_slot *slots;
	unsigned n_threads;
	pthread_t threads[VIRTIO_POOL_MAX_THREADS];
};

static bool may_start(const struct virtio_dev *vd)
{
	return !vd->quiesced && !vd->resetting && !(vd->status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_pool_serve(struct virtio_pool *pool, unsigned q)
{
	struct virtio_dev *vd = pool->vd;
	struct virtq *vq = &vd->queues[q].vq;
	do {
		pool->starved[q] = false;
		while (may_start(vd)) {
			struct pool_slot *s = pool->free_slots;
			if (!s) {
				pool->starved[q] = true;
				return; /* a completion frees a slot and comes back */
			}
			if (virtq_pop(vq, &s->chain) != 1)
				break;
			pool->free_slots = s->next;
			s->queue = q;
			s->next = NULL;
			if (pool->queued_tail)
				pool->queued_tail->next = s;
			else
				pool->queued = s;
			pool->queued_tail = s;
			vd->in_flight++;
			if (++pool->in_flight > pool->max_in_flight)
				pool->max_in_flight = pool->in_flight;
			pthread_cond_signal(&pool->work);
		}
		if (!may_start(vd))
			return; /* unquiesce kicks the queue again; a reset empties it */
		if (vq->broken) {
			virtio_needs_reset(vd);
			return;
		}
	} while (virtq_arm_notify(vq));
}

static void *pool_thread(void *arg)
{
	struct virtio_pool *pool = arg;
	struct virtio_dev *vd = pool->vd;
	sandbox_enter(SANDBOX_WORKER);
	pthread_mutex_lock(&vd->lock);
	for (;;) {
		while (!pool->queued && !pool->stopping)
			pthread_cond_wait(&pool->work, &vd->lock);
		struct pool_slot *s = pool->queued;
		if (!s)
			break; /* stopping, and nothing left to do */
		pool->queued = s->next;
		if (!pool->queued)
			pool->queued_tail = NULL;
		pthread_mutex_unlock(&vd->lock);
		uint32_t written = pool->handle(vd, &s->chain);
		pthread_mutex_lock(&vd->lock);
		unsigned q = s->queue;
		virtq_push(&vd->queues[q].vq, s->chain.head, written);
		s->next = pool->free_slots;
		pool->free_slots = s;
		pool->in_flight--;
		pool->handled++;
		vd->in_flight--;
		/* The ring's suppression (event index) keeps a burst of
		 * completions to about one interrupt. */
		virtio_queue_interrupt(vd, q);
		if (!vd->in_flight)
			pthread_cond_broadcast(&vd->idle);
		/* A slot is free: every queue left waiting for one is looked at. */
		for (unsigned sq = 0; sq < vd->num_queues && !pool->stopping && virtio_live(vd); sq++)
			if (pool->starved[sq])
				virtio_pool_serve(pool, sq);
	}
	pthread_mutex_unlock(&vd->lock);
	return NULL;
}

struct virtio_pool *virtio_pool_create(struct virtio_dev *vd, unsigned threads, unsigned slots,
				       virtio_request_fn handle)
{
	if (threads == 0 || threads > VIRTIO_POOL_MAX_THREADS || slots < threads) {
		log_error("%s: a request pool of %u threads and %u slots", vd->name, threads, slots);
		return NULL;
	}
	struct virtio_pool *pool = calloc(1, sizeof(*pool));
	struct pool_slot *s = calloc(slots, sizeof(*s));
	if (!pool || !s) {
		log_error("%s: out of memory for %u request slots", vd->name, slots);
		free(pool);
		free(s);
		return NULL;
	}
	pool->vd = vd;
	pool->handle = handle;
	pool->slots = s;
	for (unsigned i = 0; i < slots; i++) {
		s[i].next = pool->free_slots;
		pool->free_slots = &s[i];
	}
	pthread_cond_init(&pool->work, NULL);
	for (unsigned i = 0; i < threads; i++) {
		int e = pthread_create(&pool->threads[i], NULL, pool_thread, pool);
		if (e) {
			log_error("%s: cannot start request thread %u: %s", vd->name, i, strerror(e));
			virtio_pool_destroy(pool);
			return NULL;
		}
		pool->n_threads++;
	}
	return pool;
}

void virtio_pool_destroy(struct virtio_pool *pool)
{
	if (!pool)
		return;
	struct virtio_dev *vd = pool->vd;
	pthread_mutex_lock(&vd->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&vd->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->work);
	free(pool->slots);
	free(pool);
}

void virtio_pool_stats(struct virtio_pool *pool, uint64_t *handled, unsigned *max_in_flight)
{
	pthread_mutex_lock(&pool->vd->lock);
	*handled = pool->handled;
	*max_in_flight = pool->max_in_flight;
	pthread_mutex_unlock(&pool->vd->lock);
}
