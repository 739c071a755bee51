/* qcow2 inside the block layer: the image's state, shared by the reading
 * side (qcow2.c: header, tables, reads) and the writing side
 * (qcow2_write.c: refcounts, allocation, metadata commits, writes). */
#ifndef NESTVM_BLOCK_QCOW2_H
#define NESTVM_BLOCK_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>

#include "block/disk.h"

#define QCOW2_ENTRY_OFFSET_MASK 0x00fffffffffffe00ULL
#define QCOW2_ENTRY_COPIED (1ULL << 63)     /* refcount is 1: may be written in place */
#define QCOW2_ENTRY_COMPRESSED (1ULL << 62)
#define QCOW2_ENTRY_ZERO 1ULL

/* L2 entries written since the last commit, by guest cluster index: the
 * tables on disk get them only once the data they point at is durable. */
struct qcow2_dirty {
	uint64_t *keys;     /* guest cluster index + 1; 0: an empty slot */
	uint64_t *entries;
	uint64_t cap, used; /* cap: a power of two */
};

struct qcow2 {
	struct disk d;
	/* Requests come from several threads at once. Reads, and writes
	 * that land in clusters the image already owns, share the lock:
	 * they change no metadata. Whatever allocates, frees or commits
	 * holds it alone, so no reader ever follows an entry to a cluster
	 * being freed or reused. */
	pthread_rwlock_t lock;
	pthread_mutex_t inflate_lock; /* the inflated cluster below */
	unsigned cluster_bits, l2_bits;
	uint64_t cluster_size, file_size;
	int version;
	uint32_t l1_size;
	uint32_t l1_used;      /* the entries the disk's size reaches */
	uint64_t l1_off;
	uint64_t *l1;          /* host byte order; written ones marked in l1_dirty */
	/* Compressed clusters: the last one inflated, kept for the reads
	 * that follow it into the same cluster. */
	z_stream zs;
	bool zs_ready;
	uint8_t *compressed, *inflated;
	uint64_t inflated_entry;  /* its L2 entry; 0: none */

	/* Refcounts: 16-bit entries in blocks a table points at (the only
	 * width nestvm writes; others open read-only). */
	uint64_t rt_off;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;          /* host byte order */
	unsigned rb_bits;      /* log2 of the refcounts in one block */

	/* Writing (NULL/0 when read-only). */
	uint64_t end;          /* where new clusters go: past everything allocated */
	uint8_t *cow;          /* a cluster being assembled */
	uint8_t *zeros;        /* a cluster of zeros */
	uint8_t *meta;         /* a refcount block or table run being built */
	struct qcow2_dirty dirty;
	uint8_t *l1_dirty;     /* one byte per L1 entry in use */
	bool any_l1_dirty;
	/* Entries replaced since the last commit, whose clusters lose a
	 * reference once the tables that dropped it are durable. */
	uint64_t *to_free;
	uint64_t n_to_free, cap_to_free;
	/* Clusters freed by a commit, for allocations to take first. */
	uint64_t *reuse;
	uint64_t n_reuse, cap_reuse;
	bool broken;           /* a metadata write failed: every later request fails */
	bool table_full;       /* the refcount table cannot grow: said once */
};

/* qcow2.c */
/* qsort() order of uint64_t values. */
int qcow2_compare_u64(const void *a, const void *b);
int qcow2_read_cluster_part(struct qcow2 *q, struct iovec *iov, unsigned n, uint64_t off,
			    uint64_t len);
int qcow2_l2_entry(struct qcow2 *q, uint64_t off, uint64_t *entry);
void qcow2_compressed_extent(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *len);

/* qcow2_write.c */
/* Checks the refcount table and its blocks (any open), then readies the
 * image for writing if it is opened so. A one-line error and -1 if the
 * image is unsound. */
int qcow2_open_refcounts(struct qcow2 *q);
/* Readies an image that passed its checks for writing: clears the
 * autoclear feature bits (extensions nestvm does not keep up to date) and
 * allocates what writing needs. */
int qcow2_prepare_write(struct qcow2 *q, uint64_t autoclear);
bool qcow2_dirty_find(const struct qcow2 *q, uint64_t cluster, uint64_t *entry);
int qcow2_write(struct disk *d, struct iovec *iov, unsigned n, uint64_t off);
int qcow2_zero(struct disk *d, uint64_t off, uint64_t len, bool must_zero);
int qcow2_flush(struct disk *d);
/* Commits what is pending (at close) and frees the writing state. */
void qcow2_write_close(struct qcow2 *q);

#endif
