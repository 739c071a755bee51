/* Writing qcow2 images: refcounts, cluster allocation, copy-on-write from
 * compressed clusters and backing files, zeroing, and the order in which
 * metadata reaches the disk.
 *
 * The order is what keeps an image sound across a crash (of nestvm or of
 * the host): at most leaked clusters, never a table pointing at a cluster
 * whose refcount or data is not there.
 *   1. A new cluster's refcount is written before anything points at it,
 *      and its data (or a zeroed L2 table) before it is used.
 *   2. L2 and L1 entries that point at new clusters stay in memory (reads
 *      see them) until a commit: fdatasync, so refcounts and data are
 *      durable; then the entries; fdatasync again.
 *   3. A cluster that an entry stopped pointing at loses its reference
 *      only after that commit, and is reused only after that.
 * A new refcount block is synced before the table points at it, and a
 * grown refcount table before the header does. The guest's flush is a
 * commit; so is a full map of pending entries, and closing the disk. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "util/file.h"
#include "util/iov.h"
#include "util/log.h"

#define MAX_REFCOUNT_TABLE_BYTES (32u << 20) /* read at open */
#define MAX_GROWN_TABLE_BYTES (8u << 20)     /* written: QEMU opens no larger one */
#define MAX_HOST_OFFSET (1ULL << 56) /* what an L2 entry's offset field holds */
#define COMMIT_AT_ENTRIES 65536       /* pending L2 entries that force a commit */
#define MAX_IOV 1024

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int qcow2_open_refcounts(struct qcow2 *q)
{
	uint64_t cs = q->cluster_size;
	const char *name = q->d.name;
	if (q->rt_clusters == 0 || (q->rt_off & (cs - 1)) || q->rt_off < cs ||
	    q->rt_off >= q->file_size || (uint64_t)q->rt_clusters * cs > MAX_REFCOUNT_TABLE_BYTES ||
	    (uint64_t)q->rt_clusters * cs > q->file_size - q->rt_off) {
		log_error("%s: refcount table at %#" PRIx64 " (%u clusters) is not inside the file, "
			  "past the header", name, q->rt_off, q->rt_clusters);
		return -1;
	}
	q->rt_entries = (uint64_t)q->rt_clusters * cs / 8;
	q->rt = malloc(q->rt_entries * 8);
	uint64_t *sorted = malloc(q->rt_entries * 8);
	if (!q->rt || !sorted) {
		free(sorted);
		log_error("%s: out of memory", name);
		return -1;
	}
	if (file_pread_all(q->d.fd, q->rt, q->rt_entries * 8, q->rt_off) < 0) {
		free(sorted);
		log_error("%s: cannot read the refcount table", name);
		return -1;
	}
	uint64_t n = 0, l1_bytes = (uint64_t)q->l1_size * 8;
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t b = q->rt[i] = be64toh(q->rt[i]);
		if (b == 0)
			continue;
		const char *why = NULL;
		if (b & (cs - 1))
			why = "is misaligned";
		else if (b < cs)
			why = "is in the header";
		else if (b >= q->file_size || cs > q->file_size - b)
			why = "is past the end of the file";
		else if (overlaps(b, cs, q->rt_off, (uint64_t)q->rt_clusters * cs))
			why = "overlaps the refcount table";
		else if (l1_bytes && overlaps(b, cs, q->l1_off, l1_bytes))
			why = "overlaps the L1 table";
		if (why) {
			free(sorted);
			log_error("%s: refcount block %" PRIu64 " at %#" PRIx64 " %s", name, i, b, why);
			return -1;
		}
		sorted[n++] = b;
	}
	qsort(sorted, n, 8, qcow2_compare_u64);
	for (uint64_t i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1]) {
			log_error("%s: two refcount blocks overlap at %#" PRIx64, name, sorted[i]);
			free(sorted);
			return -1;
		}
	}
	free(sorted);
	return 0;
}

/* ---- refcounts (16 bits wide: the only width opened for writing) ---- */

static int refcount_get(struct qcow2 *q, uint64_t cluster, uint16_t *rc)
{
	uint64_t i = cluster >> q->rb_bits;
	*rc = 0;
	if (i >= q->rt_entries || !q->rt[i])
		return 0;
	uint16_t v;
	uint64_t at = q->rt[i] + (cluster & ((1ULL << q->rb_bits) - 1)) * 2;
	if (file_pread_all(q->d.fd, &v, 2, at) < 0)
		return -1;
	*rc = be16toh(v);
	return 0;
}

/* The cluster's block must exist. */
static int refcount_put(struct qcow2 *q, uint64_t cluster, uint16_t rc)
{
	uint64_t i = cluster >> q->rb_bits;
	if (i >= q->rt_entries || !q->rt[i]) {
		errno = EIO;
		return -1;
	}
	uint16_t v = htobe16(rc);
	return file_pwrite_all(q->d.fd, &v, 2, q->rt[i] + (cluster & ((1ULL << q->rb_bits) - 1)) * 2);
}

static void grew_to(struct qcow2 *q, uint64_t end)
{
	if (q->end < end)
		q->end = end;
	if (q->file_size < end)
		q->file_size = end;
}

/* A refcount block for range i, placed at cluster c, the first free one
 * at the end, which lies in that range: the block counts itself. */
static int new_refcount_block(struct qcow2 *q, uint64_t i, uint64_t c)
{
	memset(q->meta, 0, q->cluster_size);
	uint16_t one = htobe16(1);
	memcpy(q->meta + (c & ((1ULL << q->rb_bits) - 1)) * 2, &one, 2);
	uint64_t at = c << q->cluster_bits;
	if (file_pwrite_all(q->d.fd, q->meta, q->cluster_size, at) < 0 || fdatasync(q->d.fd) < 0)
		return -1;
	uint64_t be = htobe64(at);
	if (file_pwrite_all(q->d.fd, &be, 8, q->rt_off + i * 8) < 0)
		return -1;
	q->rt[i] = at;
	grew_to(q, at + q->cluster_size);
	return 0;
}

static int push(uint64_t **list, uint64_t *n, uint64_t *cap, uint64_t v)
{
	if (*n == *cap) {
		uint64_t ncap = *cap ? *cap * 2 : 256;
		uint64_t *l = realloc(*list, ncap * 8);
		if (!l) {
			errno = ENOMEM;
			return -1;
		}
		*list = l;
		*cap = ncap;
	}
	(*list)[(*n)++] = v;
	return 0;
}

/* The refcount table is too short for range `need`: a new one, twice as
 * long at least, goes at the end with the blocks that count it (the area),
 * then the header points at it, and the old one is freed. */
static int grow_refcount_table(struct qcow2 *q, uint64_t need)
{
	uint64_t cs = q->cluster_size, per_cluster = cs / 8;
	uint64_t start = q->end >> q->cluster_bits;
	if ((need + 1) * 8 > MAX_GROWN_TABLE_BYTES)
		goto full;
	uint64_t entries = q->rt_entries * 2 > need + 1 ? q->rt_entries * 2 : need + 1;
	uint64_t table_clusters = 0, blocks = 0, last = 0;
	for (int tries = 0;; tries++) {
		entries = (entries + per_cluster - 1) / per_cluster * per_cluster;
		table_clusters = entries / per_cluster;
		/* The blocks the area needs, counting themselves: a fixed point,
		 * reached in a step or two as a block counts many clusters. */
		for (int steps = 0;; steps++) {
			last = start + table_clusters + blocks - 1;
			uint64_t needed = 0;
			for (uint64_t i = start >> q->rb_bits; i <= last >> q->rb_bits; i++)
				if (i >= q->rt_entries || !q->rt[i])
					needed++;
			if (needed == blocks)
				break;
			if (steps > 64) {
				errno = EIO;
				return -1;
			}
			blocks = needed;
		}
		if ((last >> q->rb_bits) < entries)
			break;
		if (tries > 64) {
			errno = EIO;
			return -1;
		}
		entries = (last >> q->rb_bits) + 1 + per_cluster;
	}
	if (entries * 8 > MAX_GROWN_TABLE_BYTES || (last + 1) << q->cluster_bits > MAX_HOST_OFFSET)
		goto full;
	uint64_t *rt = calloc(entries, 8), *out = malloc(entries * 8);
	if (!rt || !out) {
		free(rt);
		free(out);
		errno = ENOMEM;
		return -1;
	}
	memcpy(rt, q->rt, q->rt_entries * 8);
	uint64_t next = start + table_clusters;
	for (uint64_t i = start >> q->rb_bits; i <= last >> q->rb_bits; i++)
		if (!rt[i])
			rt[i] = (next++) << q->cluster_bits;
	/* The area's clusters count 1 each: in its new blocks, built whole,
	 * and in blocks that were there, written in place. */
	int r = 0;
	uint64_t mask = (1ULL << q->rb_bits) - 1;
	for (uint64_t i = start >> q->rb_bits; i <= last >> q->rb_bits && r == 0; i++) {
		uint64_t lo = i << q->rb_bits > start ? i << q->rb_bits : start;
		uint64_t hi = ((i + 1) << q->rb_bits) - 1 < last ? ((i + 1) << q->rb_bits) - 1 : last;
		bool fresh = i >= q->rt_entries || !q->rt[i];
		if (fresh)
			memset(q->meta, 0, cs);
		for (uint64_t c = lo; c <= hi && r == 0; c++) {
			uint16_t one = htobe16(1);
			if (fresh)
				memcpy(q->meta + (c & mask) * 2, &one, 2);
			else
				r = refcount_put(q, c, 1);
		}
		if (fresh && r == 0)
			r = file_pwrite_all(q->d.fd, q->meta, cs, rt[i]);
	}
	for (uint64_t i = 0; i < entries; i++)
		out[i] = htobe64(rt[i]);
	uint8_t header[12];
	uint64_t table_off = start << q->cluster_bits;
	uint64_t off_be = htobe64(table_off);
	uint32_t clusters_be = htobe32((uint32_t)table_clusters);
	memcpy(header, &off_be, 8);
	memcpy(header + 8, &clusters_be, 4);
	if (r == 0)
		r = file_pwrite_all(q->d.fd, out, entries * 8, table_off);
	if (r == 0)
		r = fdatasync(q->d.fd);
	if (r == 0)
		r = file_pwrite_all(q->d.fd, header, sizeof(header), 48);
	if (r == 0)
		r = fdatasync(q->d.fd);
	free(out);
	if (r < 0) {
		free(rt);
		return -1;
	}
	uint64_t old_off = q->rt_off, old_clusters = q->rt_clusters;
	free(q->rt);
	q->rt = rt;
	q->rt_entries = entries;
	q->rt_off = table_off;
	q->rt_clusters = (uint32_t)table_clusters;
	grew_to(q, (last + 1) << q->cluster_bits);
	/* The old table: nothing points at it now. */
	for (uint64_t c = old_off >> q->cluster_bits; c < (old_off >> q->cluster_bits) + old_clusters; c++)
		if (refcount_put(q, c, 0) < 0 || push(&q->reuse, &q->n_reuse, &q->cap_reuse, c) < 0)
			return -1;
	return 0;
full:
	if (!q->table_full)
		log_warn("%s: the image is too large for its refcount table to grow", q->d.name);
	q->table_full = true;
	errno = ENOSPC;
	return -1;
}

/* The first cluster from c on whose refcount is 0, reading whole
 * refcount blocks: an image may count clusters past its end as used, and a
 * read per cluster would take minutes where a read per block takes at
 * most a read of the file (its blocks are distinct clusters of it). */
static int first_free_from(struct qcow2 *q, uint64_t c, uint64_t *free_cluster)
{
	uint64_t per = 1ULL << q->rb_bits;
	uint16_t *block = NULL;
	for (uint64_t i = c >> q->rb_bits;; i++) {
		uint64_t first = i << q->rb_bits > c ? i << q->rb_bits : c;
		if (i >= q->rt_entries || !q->rt[i]) {
			*free_cluster = first; /* its block is made when it is taken */
			free(block);
			return 0;
		}
		if (!block && !(block = malloc(q->cluster_size))) {
			errno = ENOMEM;
			return -1;
		}
		if (file_pread_all(q->d.fd, block, q->cluster_size, q->rt[i]) < 0) {
			free(block);
			return -1;
		}
		for (uint64_t k = first & (per - 1); k < per; k++) {
			if (block[k] == 0) {
				*free_cluster = (i << q->rb_bits) + k;
				free(block);
				return 0;
			}
		}
	}
}


/* A cluster for new data or a new table, its refcount 1 on disk. */
static int alloc_cluster(struct qcow2 *q, uint64_t *host)
{
	uint16_t rc;
	while (q->n_reuse) {
		uint64_t c = q->reuse[--q->n_reuse];
		if (refcount_get(q, c, &rc) < 0)
			return -1;
		if (rc != 0)
			continue;
		if (refcount_put(q, c, 1) < 0)
			return -1;
		*host = c << q->cluster_bits;
		return 0;
	}
	for (;;) {
		uint64_t c = q->end >> q->cluster_bits, i = c >> q->rb_bits;
		if (q->end + q->cluster_size > MAX_HOST_OFFSET) {
			errno = ENOSPC;
			return -1;
		}
		if (i >= q->rt_entries) {
			if (grow_refcount_table(q, i) < 0)
				return -1;
			continue;
		}
		if (!q->rt[i]) {
			if (new_refcount_block(q, i, c) < 0)
				return -1;
			continue;
		}
		if (refcount_get(q, c, &rc) < 0)
			return -1;
		if (rc != 0) { /* counted already, though past the end of the file */
			uint64_t f;
			if (first_free_from(q, c, &f) < 0)
				return -1;
			q->end = f << q->cluster_bits;
			continue;
		}
		q->end += q->cluster_size;
		if (refcount_put(q, c, 1) < 0)
			return -1;
		grew_to(q, q->end);
		*host = c << q->cluster_bits;
		return 0;
	}
}

/* One reference fewer on a cluster; freed at zero: its space is given
 * back to the file system and allocations take it first. */
static int unref_cluster(struct qcow2 *q, uint64_t c)
{
	/* The header and the tables nestvm keeps in memory are never freed,
	 * whatever a (hostile) image's entries say. */
	uint64_t at = c << q->cluster_bits, cs = q->cluster_size;
	if (c == 0 || overlaps(at, cs, q->l1_off, (uint64_t)q->l1_size * 8) ||
	    overlaps(at, cs, q->rt_off, (uint64_t)q->rt_clusters * cs)) {
		log_warn("%s: an entry pointed at the image's own metadata (%#" PRIx64 "); left alone",
			 q->d.name, at);
		return 0;
	}
	uint16_t rc;
	if (refcount_get(q, c, &rc) < 0)
		return -1;
	if (rc == 0) {
		log_warn("%s: cluster %#" PRIx64 " was referenced with a refcount of 0; left alone",
			 q->d.name, c << q->cluster_bits);
		return 0;
	}
	if (refcount_put(q, c, rc - 1) < 0)
		return -1;
	if (rc == 1) {
		(void)fallocate(q->d.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)(c << q->cluster_bits), (off_t)q->cluster_size);
		if (push(&q->reuse, &q->n_reuse, &q->cap_reuse, c) < 0)
			return -1;
	}
	return 0;
}

/* The clusters an L2 entry held lose its reference. */
static int unref_entry(struct qcow2 *q, uint64_t entry)
{
	if (entry & QCOW2_ENTRY_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_extent(q, entry, &off, &len);
		if (q->inflated_entry == entry)
			q->inflated_entry = 0;
		uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
		for (uint64_t c = first; c <= last; c++)
			if (unref_cluster(q, c) < 0)
				return -1;
		return 0;
	}
	uint64_t host = entry & QCOW2_ENTRY_OFFSET_MASK;
	return host ? unref_cluster(q, host >> q->cluster_bits) : 0;
}

/* ---- entries pending a commit ---- */

static uint64_t slot_of(uint64_t key, uint64_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return key & (cap - 1);
}

bool qcow2_dirty_find(const struct qcow2 *q, uint64_t cluster, uint64_t *entry)
{
	const struct qcow2_dirty *m = &q->dirty;
	if (!m->used)
		return false;
	for (uint64_t s = slot_of(cluster + 1, m->cap);; s = (s + 1) & (m->cap - 1)) {
		if (m->keys[s] == 0)
			return false;
		if (m->keys[s] == cluster + 1) {
			*entry = m->entries[s];
			return true;
		}
	}
}

static int dirty_put(struct qcow2 *q, uint64_t cluster, uint64_t entry)
{
	struct qcow2_dirty *m = &q->dirty;
	if ((m->used + 1) * 2 > m->cap) {
		struct qcow2_dirty g = { calloc(m->cap * 2, 8), calloc(m->cap * 2, 8), m->cap * 2, 0 };
		if (!g.keys || !g.entries) {
			free(g.keys);
			free(g.entries);
			errno = ENOMEM;
			return -1;
		}
		for (uint64_t s = 0; s < m->cap; s++) {
			if (!m->keys[s])
				continue;
			uint64_t t = slot_of(m->keys[s], g.cap);
			while (g.keys[t])
				t = (t + 1) & (g.cap - 1);
			g.keys[t] = m->keys[s];
			g.entries[t] = m->entries[s];
			g.used++;
		}
		free(m->keys);
		free(m->entries);
		*m = g;
	}
	uint64_t s = slot_of(cluster + 1, m->cap);
	while (m->keys[s] && m->keys[s] != cluster + 1)
		s = (s + 1) & (m->cap - 1);
	if (!m->keys[s]) {
		m->keys[s] = cluster + 1;
		m->used++;
	}
	m->entries[s] = entry;
	return 0;
}

/* Writes the pending L2 entries, a table's run of neighbours at a time. */
static int write_l2_entries(struct qcow2 *q)
{
	struct qcow2_dirty *m = &q->dirty;
	uint64_t *keys = malloc(m->used * 8);
	if (!keys) {
		errno = ENOMEM;
		return -1;
	}
	uint64_t n = 0;
	for (uint64_t s = 0; s < m->cap; s++)
		if (m->keys[s])
			keys[n++] = m->keys[s] - 1;
	qsort(keys, n, 8, qcow2_compare_u64);
	uint64_t l2_mask = (1ULL << q->l2_bits) - 1;
	uint64_t *run = (uint64_t *)q->meta;
	int r = 0;
	for (uint64_t i = 0; i < n && r == 0;) {
		uint64_t first = keys[i], table = q->l1[first >> q->l2_bits] & QCOW2_ENTRY_OFFSET_MASK;
		uint64_t k = 0;
		do {
			uint64_t e = 0;
			qcow2_dirty_find(q, keys[i], &e);
			run[k++] = htobe64(e);
			i++;
		} while (i < n && keys[i] == keys[i - 1] + 1 && (keys[i] & l2_mask) != 0);
		if (!table) {
			errno = EIO; /* cannot be: a table is made before its entries */
			r = -1;
			break;
		}
		r = file_pwrite_all(q->d.fd, run, k * 8, table + (first & l2_mask) * 8);
	}
	free(keys);
	return r;
}

static int write_l1_entries(struct qcow2 *q)
{
	uint64_t *run = (uint64_t *)q->meta, per_cluster = q->cluster_size / 8;
	for (uint32_t i = 0; i < q->l1_used;) {
		if (!q->l1_dirty[i]) {
			i++;
			continue;
		}
		uint32_t first = i;
		uint64_t k = 0;
		while (i < q->l1_used && q->l1_dirty[i] && k < per_cluster) {
			run[k++] = htobe64(q->l1[i]);
			q->l1_dirty[i++] = 0;
		}
		if (file_pwrite_all(q->d.fd, run, k * 8, q->l1_off + (uint64_t)first * 8) < 0)
			return -1;
	}
	q->any_l1_dirty = false;
	return 0;
}

/* Makes everything written so far durable and the tables point at it. */
static int commit(struct qcow2 *q)
{
	if (q->broken) {
		errno = EIO;
		return -1;
	}
	if (fdatasync(q->d.fd) < 0)
		goto broken;
	if (q->dirty.used || q->any_l1_dirty) {
		if ((q->dirty.used && write_l2_entries(q) < 0) ||
		    (q->any_l1_dirty && write_l1_entries(q) < 0) || fdatasync(q->d.fd) < 0)
			goto broken;
		memset(q->dirty.keys, 0, q->dirty.cap * 8);
		q->dirty.used = 0;
	}
	/* Nothing on disk points at these clusters through the entries
	 * replaced: they lose that reference. Should this be cut short,
	 * they leak. */
	for (uint64_t i = 0; i < q->n_to_free; i++)
		if (unref_entry(q, q->to_free[i]) < 0)
			goto broken;
	q->n_to_free = 0;
	return 0;
broken:
	log_warn("%s: cannot update the image's tables: %s; it fails every request from now on",
		 q->d.name, strerror(errno));
	q->broken = true;
	errno = EIO;
	return -1;
}

int qcow2_flush(struct disk *d)
{
	struct qcow2 *q = (struct qcow2 *)d;
	if (d->readonly)
		return 0;
	pthread_rwlock_wrlock(&q->lock);
	int r = commit(q);
	pthread_rwlock_unlock(&q->lock);
	return r;
}

int qcow2_prepare_write(struct qcow2 *q, uint64_t autoclear)
{
	uint64_t cs = q->cluster_size;
	q->cow = malloc(cs);
	q->zeros = calloc(1, cs);
	q->meta = malloc(cs);
	q->l1_dirty = calloc(q->l1_used ? q->l1_used : 1, 1);
	q->dirty.cap = 1024;
	q->dirty.keys = calloc(q->dirty.cap, 8);
	q->dirty.entries = calloc(q->dirty.cap, 8);
	if (!q->cow || !q->zeros || !q->meta || !q->l1_dirty || !q->dirty.keys || !q->dirty.entries) {
		log_error("%s: out of memory", q->d.name);
		return -1;
	}
	q->end = (q->file_size + cs - 1) & ~(cs - 1);
	/* Extensions whose autoclear bit is set (bitmaps, say) would go stale
	 * under our writes: clearing the bits says so to QEMU. */
	if (autoclear) {
		uint64_t zero = 0;
		if (file_pwrite_all(q->d.fd, &zero, 8, 88) < 0 || fdatasync(q->d.fd) < 0) {
			log_error("%s: cannot write the header: %s", q->d.name, strerror(errno));
			return -1;
		}
	}
	return 0;
}

void qcow2_write_close(struct qcow2 *q)
{
	if (q->cow && !q->d.readonly && !q->broken)
		(void)commit(q);
	free(q->cow);
	free(q->zeros);
	free(q->meta);
	free(q->l1_dirty);
	free(q->dirty.keys);
	free(q->dirty.entries);
	free(q->to_free);
	free(q->reuse);
	q->cow = NULL;
}

/* ---- writes ---- */

/* The L2 table for L1 entry l1i, made (zeroed, pending in the L1) if the
 * image has none. */
static int ensure_l2_table(struct qcow2 *q, uint64_t l1i)
{
	if (q->l1[l1i] & QCOW2_ENTRY_OFFSET_MASK)
		return 0;
	uint64_t host;
	if (alloc_cluster(q, &host) < 0 || file_pwrite_all(q->d.fd, q->zeros, q->cluster_size, host) < 0)
		return -1;
	q->l1[l1i] = host | QCOW2_ENTRY_COPIED;
	q->l1_dirty[l1i] = 1;
	q->any_l1_dirty = true;
	return 0;
}

/* Points guest cluster `start` at `entry` (pending the next commit); the
 * clusters `old` held are released after that commit. */
static int set_entry(struct qcow2 *q, uint64_t start, uint64_t old, uint64_t entry)
{
	if (dirty_put(q, start >> q->cluster_bits, entry) < 0)
		return -1;
	bool held = (old & QCOW2_ENTRY_COMPRESSED) || (old & QCOW2_ENTRY_OFFSET_MASK);
	return held ? push(&q->to_free, &q->n_to_free, &q->cap_to_free, old) : 0;
}

/* Writes len bytes at guest offset off, inside one cluster. */
static int write_in_cluster(struct qcow2 *q, struct iovec *iov, unsigned n, uint64_t off, uint64_t len)
{
	uint64_t entry;
	if (qcow2_l2_entry(q, off, &entry) < 0)
		return -1;
	uint64_t within = off & (q->cluster_size - 1), start = off - within;
	uint64_t host = entry & QCOW2_ENTRY_OFFSET_MASK;
	if (host && (entry & QCOW2_ENTRY_COPIED) &&
	    !(entry & (QCOW2_ENTRY_COMPRESSED | QCOW2_ENTRY_ZERO)))
		return iov_pwritev_all(q->d.fd, iov, n, host + within);
	/* A new cluster: what the guest did not write comes from where the
	 * cluster read from (compressed data, the backing file, zeros). */
	if (ensure_l2_table(q, start >> (q->cluster_bits + q->l2_bits)) < 0)
		return -1;
	uint64_t fresh;
	if (len < q->cluster_size) {
		struct iovec whole = { q->cow, q->cluster_size };
		if (qcow2_read_cluster_part(q, &whole, 1, start, q->cluster_size) < 0)
			return -1;
		iov_to_buf(iov, n, 0, q->cow + within, len);
		if (alloc_cluster(q, &fresh) < 0 ||
		    file_pwrite_all(q->d.fd, q->cow, q->cluster_size, fresh) < 0)
			return -1;
	} else if (alloc_cluster(q, &fresh) < 0 || iov_pwritev_all(q->d.fd, iov, n, fresh) < 0) {
		return -1;
	}
	return set_entry(q, start, entry, fresh | QCOW2_ENTRY_COPIED);
}

static int make_room(struct qcow2 *q)
{
	if (q->broken) {
		errno = EIO;
		return -1;
	}
	if (q->d.readonly) {
		errno = EROFS;
		return -1;
	}
	/* Pending entries are bounded: past so many, commit first. */
	if (q->dirty.used >= COMMIT_AT_ENTRIES || q->n_to_free >= COMMIT_AT_ENTRIES)
		return commit(q);
	return 0;
}

/* Where len bytes at guest offset off (inside one cluster) go in the file,
 * if the image owns that cluster alone and it holds plain data: such a
 * write changes no table. 0 if not. */
static int in_place(struct qcow2 *q, uint64_t off, uint64_t *host)
{
	uint64_t entry;
	*host = 0;
	if (qcow2_l2_entry(q, off, &entry) < 0)
		return -1;
	if ((entry & QCOW2_ENTRY_COPIED) && (entry & QCOW2_ENTRY_OFFSET_MASK) &&
	    !(entry & (QCOW2_ENTRY_COMPRESSED | QCOW2_ENTRY_ZERO)))
		*host = (entry & QCOW2_ENTRY_OFFSET_MASK) + (off & (q->cluster_size - 1));
	return 0;
}

/* A write whose every cluster can be written in place, done with the
 * lock shared (many at once): 1 if done, 0 if some cluster needs the
 * allocating path, -1 on an I/O error. */
static int write_shared(struct qcow2 *q, struct iovec *iov, unsigned n, uint64_t off,
			uint64_t total)
{
	if (q->dirty.used >= COMMIT_AT_ENTRIES || q->n_to_free >= COMMIT_AT_ENTRIES)
		return 0;
	uint64_t first = off >> q->cluster_bits, last = (off + total - 1) >> q->cluster_bits;
	if (last - first >= 64)
		return 0; /* a long write: the allocating path does it as well */
	uint64_t hosts[64];
	for (uint64_t c = first; c <= last; c++) {
		uint64_t pos = c == first ? off : c << q->cluster_bits;
		if (in_place(q, pos, &hosts[c - first]) < 0)
			return -1;
		if (!hosts[c - first])
			return 0;
	}
	struct iovec part[MAX_IOV];
	for (uint64_t done = 0, c = first; done < total; c++) {
		uint64_t pos = off + done;
		uint64_t len = q->cluster_size - (pos & (q->cluster_size - 1));
		if (len > total - done)
			len = total - done;
		unsigned k = iov_slice(iov, n, done, len, part);
		if (iov_pwritev_all(q->d.fd, part, k, hosts[c - first]) < 0)
			return -1;
		done += len;
	}
	return 1;
}

static int write_exclusive(struct qcow2 *q, struct iovec *iov, unsigned n, uint64_t off,
			   uint64_t total)
{
	struct iovec part[MAX_IOV];
	if (make_room(q) < 0)
		return -1;
	for (uint64_t done = 0; done < total;) {
		uint64_t pos = off + done;
		uint64_t len = q->cluster_size - (pos & (q->cluster_size - 1));
		if (len > total - done)
			len = total - done;
		unsigned k = iov_slice(iov, n, done, len, part);
		if (write_in_cluster(q, part, k, pos, len) < 0)
			return -1;
		done += len;
	}
	return 0;
}

int qcow2_write(struct disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	struct qcow2 *q = (struct qcow2 *)d;
	if (n > MAX_IOV) {
		errno = EINVAL;
		return -1;
	}
	if (q->d.readonly) {
		errno = EROFS;
		return -1;
	}
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (off > d->size || total > d->size - off) {
		errno = ENOSPC;
		return -1;
	}
	if (total == 0)
		return 0;
	pthread_rwlock_rdlock(&q->lock);
	int r = q->broken ? (errno = EIO, -1) : write_shared(q, iov, n, off, total);
	pthread_rwlock_unlock(&q->lock);
	if (r != 0)
		return r < 0 ? -1 : 0;
	/* Some cluster is new, shared or compressed: the tables change. A
	 * write that was in place is simply done again. */
	pthread_rwlock_wrlock(&q->lock);
	r = write_exclusive(q, iov, n, off, total);
	pthread_rwlock_unlock(&q->lock);
	return r;
}

/* A whole cluster made to read as zeros: the zero flag (version 3), or
 * unallocated where nothing shows through (no backing file); else, for a
 * version 2 overlay, zeros written, or nothing for a discard. */
static int zero_cluster(struct qcow2 *q, uint64_t start, bool must_zero)
{
	uint64_t entry;
	if (qcow2_l2_entry(q, start, &entry) < 0)
		return -1;
	if (entry == 0 && !q->d.backing)
		return 0; /* reads as zeros already */
	uint64_t zeroed;
	if (q->version >= 3) {
		zeroed = QCOW2_ENTRY_ZERO;
	} else if (!q->d.backing) {
		zeroed = 0;
	} else {
		if (!must_zero)
			return 0;
		struct iovec z = { q->zeros, q->cluster_size };
		return write_in_cluster(q, &z, 1, start, q->cluster_size);
	}
	if (entry == zeroed)
		return 0;
	if (ensure_l2_table(q, start >> (q->cluster_bits + q->l2_bits)) < 0)
		return -1;
	return set_entry(q, start, entry, zeroed);
}

static int zero_exclusive(struct qcow2 *q, uint64_t off, uint64_t len, bool must_zero);

int qcow2_zero(struct disk *d, uint64_t off, uint64_t len, bool must_zero)
{
	struct qcow2 *q = (struct qcow2 *)d;
	pthread_rwlock_wrlock(&q->lock);
	int r = zero_exclusive(q, off, len, must_zero);
	pthread_rwlock_unlock(&q->lock);
	return r;
}

static int zero_exclusive(struct qcow2 *q, uint64_t off, uint64_t len, bool must_zero)
{
	struct disk *d = &q->d;
	if (make_room(q) < 0)
		return -1;
	if (off > d->size || len > d->size - off) {
		errno = ENOSPC;
		return -1;
	}
	for (uint64_t done = 0; done < len;) {
		uint64_t pos = off + done, within = pos & (q->cluster_size - 1);
		uint64_t part = q->cluster_size - within;
		if (part > len - done)
			part = len - done;
		int r = 0;
		/* The disk's last cluster may be cut short by its size. */
		bool whole = within == 0 && (part == q->cluster_size || pos + part == d->size);
		if (whole) {
			r = zero_cluster(q, pos, must_zero);
		} else if (must_zero) {
			struct iovec z = { q->zeros, part };
			r = write_in_cluster(q, &z, 1, pos, part);
		}
		if (r < 0)
			return -1;
		done += part;
		if (q->dirty.used >= COMMIT_AT_ENTRIES && commit(q) < 0)
			return -1;
	}
	return 0;
}
