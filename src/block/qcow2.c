/* qcow2 images, versions 2 and 3 (QEMU's docs/interop/qcow2.txt): the
 * header, the two-level cluster tables (L1, L2), and reads: zero
 * clusters, deflate-compressed clusters, and backing files (a linked clone
 * reads what it has not written from its template). Writing is in
 * qcow2_write.c.
 *
 * The image is untrusted: every table entry is checked when the image is
 * opened (offsets aligned, inside the file, clear of the header), so a
 * hostile image is refused with one line instead of steering reads; the
 * read path checks again, as the file could change under us. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "block/disk.h"
#include "block/qcow2.h"
#include "util/file.h"
#include "util/iov.h"
#include "util/log.h"

#define HEADER_V2_BYTES 72
#define HEADER_V3_BYTES 104
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21
#define MAX_L1_ENTRIES ((32u << 20) / 8) /* QEMU's bound: a 32 MiB L1 table */
#define MAX_BACKING_NAME 1023
#define MAX_DISK_SIZE (1ULL << 61)

#define ENTRY_OFFSET_MASK QCOW2_ENTRY_OFFSET_MASK
#define ENTRY_COPIED QCOW2_ENTRY_COPIED
#define ENTRY_COMPRESSED QCOW2_ENTRY_COMPRESSED
#define ENTRY_ZERO QCOW2_ENTRY_ZERO

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define INCOMPAT_KNOWN 0x1fULL

#define EXT_END 0
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_CRYPTO 0x0537be77u
#define EXT_DATA_FILE 0x44415441u

#define MAX_IOV 1024

static uint32_t be32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t be64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

/* A compressed cluster's place in the file: its descriptor (qcow2.txt,
 * "Compressed Clusters Descriptor") gives the offset and the 512-byte
 * sectors it spans, the first counted from the offset's own sector. */
void qcow2_compressed_extent(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *len)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t desc = entry & ~(ENTRY_COPIED | ENTRY_COMPRESSED);
	*off = desc & ((1ULL << x) - 1);
	uint64_t sectors = (desc >> x) & ((1ULL << (q->cluster_bits - 8)) - 1);
	*len = (sectors + 1) * 512 - (*off & 511);
}

/* Is an L2 entry one the read path can follow? Sets *why if not. */
static bool l2_entry_ok(const struct qcow2 *q, uint64_t entry, const char **why)
{
	if (entry & ENTRY_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_extent(q, entry, &off, &len);
		if (off < q->cluster_size) {
			*why = "a compressed cluster in the header";
			return false;
		}
		if (off >= q->file_size) {
			*why = "a compressed cluster past the end of the file";
			return false;
		}
		return true;
	}
	uint64_t host = entry & ENTRY_OFFSET_MASK;
	if ((entry & ENTRY_ZERO) && q->version < 3) {
		*why = "a zero cluster in a version 2 image";
		return false;
	}
	/* A zero cluster reads as zeros, but the cluster it may hold (a
	 * preallocated one) is freed when it is written: it is checked as
	 * data is, so that it can never be the header. */
	if ((entry & ~(ENTRY_COPIED | ENTRY_OFFSET_MASK | ENTRY_ZERO)) ||
	    (host & (q->cluster_size - 1))) {
		*why = "a misaligned cluster offset";
		return false;
	}
	if (host != 0 && host < q->cluster_size) {
		*why = "a data cluster in the header";
		return false;
	}
	if (host >= q->file_size) {
		*why = "a data cluster past the end of the file";
		return false;
	}
	return true;
}

/* Inflates a compressed cluster into q->inflated (raw deflate, as QEMU
 * writes it: a 4 KiB window and no zlib header). */
static int inflate_cluster(struct qcow2 *q, uint64_t entry)
{
	if (q->inflated_entry == entry)
		return 0;
	uint64_t off, len;
	qcow2_compressed_extent(q, entry, &off, &len);
	/* The last sector of the file may be cut short. */
	if (off >= q->file_size) {
		errno = EIO;
		return -1;
	}
	if (len > q->file_size - off)
		len = q->file_size - off;
	if (file_pread_all(q->d.fd, q->compressed, len, off) < 0)
		return -1;
	if (inflateReset(&q->zs) != Z_OK) {
		errno = EIO;
		return -1;
	}
	q->zs.next_in = q->compressed;
	q->zs.avail_in = (uInt)len;
	q->zs.next_out = q->inflated;
	q->zs.avail_out = (uInt)q->cluster_size;
	int r = inflate(&q->zs, Z_FINISH);
	/* Whole when the cluster is full; data after the stream's end is
	 * the sector's padding. */
	if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || q->zs.avail_out != 0) {
		q->inflated_entry = 0;
		errno = EIO;
		return -1;
	}
	q->inflated_entry = entry;
	return 0;
}

/* The L2 entry for the cluster at guest offset off; 0 for a cluster the
 * image does not have (its L2 table unallocated). One written since the
 * last commit is in memory. */
int qcow2_l2_entry(struct qcow2 *q, uint64_t off, uint64_t *entry)
{
	uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
	if (qcow2_dirty_find(q, off >> q->cluster_bits, entry))
		return 0;
	*entry = 0;
	if (l1i >= q->l1_used)
		return 0;
	uint64_t table = q->l1[l1i] & ENTRY_OFFSET_MASK;
	if (table == 0)
		return 0;
	uint64_t l2i = (off >> q->cluster_bits) & ((1ULL << q->l2_bits) - 1);
	uint64_t raw;
	if (file_pread_all(q->d.fd, &raw, sizeof(raw), table + l2i * 8) < 0)
		return -1;
	*entry = be64toh(raw);
	const char *why;
	if (!l2_entry_ok(q, *entry, &why)) {
		log_warn("%s: %s (the image changed since it was opened?)", q->d.name, why);
		errno = EIO;
		return -1;
	}
	return 0;
}

/* Reads part of one cluster: len bytes at guest offset off into iov. */
int qcow2_read_cluster_part(struct qcow2 *q, struct iovec *iov, unsigned n, uint64_t off,
			    uint64_t len)
{
	uint64_t entry;
	if (qcow2_l2_entry(q, off, &entry) < 0)
		return -1;
	uint64_t within = off & (q->cluster_size - 1);
	if (entry & ENTRY_COMPRESSED) {
		pthread_mutex_lock(&q->inflate_lock);
		int r = inflate_cluster(q, entry);
		if (r == 0)
			buf_to_iov(iov, n, 0, q->inflated + within, len);
		pthread_mutex_unlock(&q->inflate_lock);
		return r;
	}
	if (entry & ENTRY_ZERO) {
		iov_memset(iov, n, 0);
		return 0;
	}
	uint64_t host = entry & ENTRY_OFFSET_MASK;
	if (host)
		return iov_preadv_all(q->d.fd, iov, n, host + within);
	if (q->d.backing)
		return q->d.backing->ops->read(q->d.backing, iov, n, off);
	iov_memset(iov, n, 0);
	return 0;
}

static int qcow2_read(struct disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	struct qcow2 *q = (struct qcow2 *)d;
	struct iovec part[MAX_IOV];
	if (n > MAX_IOV) {
		errno = EINVAL;
		return -1;
	}
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	int r = 0;
	pthread_rwlock_rdlock(&q->lock);
	for (uint64_t done = 0; done < total && r == 0;) {
		uint64_t pos = off + done;
		if (pos >= d->size || pos < off) { /* past the end of the disk */
			iov_memset(part, iov_slice(iov, n, done, total - done, part), 0);
			break;
		}
		uint64_t len = q->cluster_size - (pos & (q->cluster_size - 1));
		if (len > total - done)
			len = total - done;
		if (len > d->size - pos)
			len = d->size - pos;
		unsigned k = iov_slice(iov, n, done, len, part);
		r = qcow2_read_cluster_part(q, part, k, pos, len);
		done += len;
	}
	pthread_rwlock_unlock(&q->lock);
	return r;
}

static void qcow2_close(struct disk *d)
{
	struct qcow2 *q = (struct qcow2 *)d;
	qcow2_write_close(q);
	disk_close(q->d.backing);
	if (q->zs_ready)
		inflateEnd(&q->zs);
	free(q->compressed);
	free(q->inflated);
	free(q->l1);
	free(q->rt);
	close(d->fd);
	pthread_rwlock_destroy(&q->lock);
	pthread_mutex_destroy(&q->inflate_lock);
	free(q);
}

static const struct disk_ops qcow2_ops = {
	.read = qcow2_read,
	.write = qcow2_write,
	.flush = qcow2_flush,
	.zero = qcow2_zero,
	.close = qcow2_close,
};

/* The header's fields, checked. header is the image's first cluster (or
 * all of a shorter file), zero-padded to cluster size. */
struct header {
	uint32_t version, cluster_bits, l1_size, backing_len, header_len;
	uint64_t backing_off, size, l1_off, incompat, autoclear;
	uint64_t rt_off;
	uint32_t rt_clusters, snapshots, refcount_order;
	char backing_format[16];
};

static int parse_header(struct qcow2 *q, const uint8_t *h, size_t have, struct header *hd)
{
	const char *name = q->d.name;
	hd->version = be32_at(h + 4);
	if (hd->version != 2 && hd->version != 3) {
		log_error("%s: qcow2 version %u is not supported (2 and 3 are)", name, hd->version);
		return -1;
	}
	hd->cluster_bits = be32_at(h + 20);
	if (hd->cluster_bits < MIN_CLUSTER_BITS || hd->cluster_bits > MAX_CLUSTER_BITS) {
		log_error("%s: cluster_bits %u is out of range (%d to %d)", name, hd->cluster_bits,
			  MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
		return -1;
	}
	uint64_t cluster = 1ULL << hd->cluster_bits;
	hd->backing_off = be64_at(h + 8);
	hd->backing_len = be32_at(h + 16);
	hd->size = be64_at(h + 24);
	if (be32_at(h + 32) != 0) {
		log_error("%s: encrypted qcow2 images are not supported", name);
		return -1;
	}
	hd->l1_size = be32_at(h + 36);
	hd->l1_off = be64_at(h + 40);
	hd->rt_off = be64_at(h + 48);
	hd->rt_clusters = be32_at(h + 56);
	hd->snapshots = be32_at(h + 60);
	hd->header_len = HEADER_V2_BYTES;
	hd->incompat = 0;
	hd->autoclear = 0;
	hd->refcount_order = 4;
	if (hd->version == 3) {
		hd->incompat = be64_at(h + 72);
		hd->autoclear = be64_at(h + 88);
		hd->refcount_order = be32_at(h + 96);
		hd->header_len = be32_at(h + 100);
		if (hd->header_len < HEADER_V3_BYTES || hd->header_len % 8 || hd->header_len > have) {
			log_error("%s: bad header length %u", name, hd->header_len);
			return -1;
		}
		if (hd->refcount_order > 6) {
			log_error("%s: refcount_order %u is out of range (0 to 6)", name,
				  hd->refcount_order);
			return -1;
		}
	}
	if (hd->incompat & ~INCOMPAT_KNOWN) {
		log_error("%s: unknown incompatible qcow2 features 0x%" PRIx64, name,
			  (uint64_t)(hd->incompat & ~INCOMPAT_KNOWN));
		return -1;
	}
	if (hd->incompat & INCOMPAT_DATA_FILE) {
		log_error("%s: qcow2 images with an external data file are not supported", name);
		return -1;
	}
	if (hd->incompat & INCOMPAT_EXTL2) {
		log_error("%s: qcow2 images with extended L2 entries (subclusters) are not supported",
			  name);
		return -1;
	}
	/* The compression type field exists past 104 bytes of header; it is
	 * not zlib (0) exactly when the feature bit says so. */
	uint8_t type = hd->header_len > HEADER_V3_BYTES ? h[104] : 0;
	bool flagged = hd->incompat & INCOMPAT_COMPRESSION;
	if (flagged && type == 1) {
		log_error("%s: zstd-compressed qcow2 clusters are not supported (zlib ones are)", name);
		return -1;
	}
	if (flagged != (type != 0)) {
		log_error("%s: bad compression type %u", name, type);
		return -1;
	}
	if (hd->size > MAX_DISK_SIZE) {
		log_error("%s: disk size %" PRIu64 " is too large", name, hd->size);
		return -1;
	}
	/* Each L1 entry covers an L2 table's worth of clusters. */
	unsigned span_bits = hd->cluster_bits * 2 - 3;
	uint64_t needed = (hd->size + (1ULL << span_bits) - 1) >> span_bits;
	if (hd->l1_size > MAX_L1_ENTRIES || hd->l1_size < needed) {
		log_error("%s: L1 table of %u entries does not fit the disk size", name, hd->l1_size);
		return -1;
	}
	if (hd->l1_size &&
	    (hd->l1_off & (cluster - 1) || hd->l1_off < cluster || hd->l1_off >= q->file_size ||
	     (uint64_t)hd->l1_size * 8 > q->file_size - hd->l1_off)) {
		log_error("%s: L1 table at %#" PRIx64 " (%u entries) is not inside the file, past "
			  "the header", name, hd->l1_off, hd->l1_size);
		return -1;
	}
	/* Header extensions: after the header, up to the backing file's name
	 * or the end of the first cluster. */
	uint64_t end = hd->backing_off && hd->backing_off < cluster ? hd->backing_off : cluster;
	if (end > have)
		end = have;
	hd->backing_format[0] = 0;
	for (uint64_t p = hd->header_len; p + 8 <= end;) {
		uint32_t type = be32_at(h + p), len = be32_at(h + p + 4);
		if (type == EXT_END)
			break;
		if (len > end - p - 8) {
			log_error("%s: header extension %#x runs past its space", name, type);
			return -1;
		}
		if (type == EXT_BACKING_FORMAT) {
			if (len == 0 || len >= sizeof(hd->backing_format) || memchr(h + p + 8, 0, len)) {
				log_error("%s: bad backing format extension", name);
				return -1;
			}
			memcpy(hd->backing_format, h + p + 8, len);
			hd->backing_format[len] = 0;
		} else if (type == EXT_CRYPTO) {
			log_error("%s: encrypted qcow2 images are not supported", name);
			return -1;
		} else if (type == EXT_DATA_FILE) {
			log_error("%s: qcow2 images with an external data file are not supported", name);
			return -1;
		}
		p += 8 + (((uint64_t)len + 7) & ~7ULL);
	}
	if (hd->backing_off) {
		if (hd->backing_len == 0 || hd->backing_len > MAX_BACKING_NAME ||
		    hd->backing_off >= cluster || hd->backing_len > cluster - hd->backing_off ||
		    hd->backing_off + hd->backing_len > have) {
			log_error("%s: the backing file's name lies outside the first cluster", name);
			return -1;
		}
	}
	return 0;
}

int qcow2_compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* No two L1 entries share an L2 table (each has a refcount of one in a
 * sound image): so the tables checked below are distinct clusters of the
 * file, and checking them costs at most a read of the file, however large
 * a hostile L1 table is. */
static int check_l2_tables_distinct(struct qcow2 *q)
{
	uint64_t *tables = malloc((q->l1_used ? q->l1_used : 1) * sizeof(uint64_t));
	if (!tables) {
		log_error("%s: out of memory", q->d.name);
		return -1;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < q->l1_used; i++)
		if (q->l1[i] & ENTRY_OFFSET_MASK)
			tables[n++] = q->l1[i] & ENTRY_OFFSET_MASK;
	qsort(tables, n, sizeof(uint64_t), qcow2_compare_u64);
	int r = 0;
	for (uint32_t i = 1; i < n && r == 0; i++) {
		if (tables[i] == tables[i - 1]) {
			log_error("%s: two L1 entries point to the same L2 table at %#" PRIx64, q->d.name,
				  tables[i]);
			r = -1;
		}
	}
	free(tables);
	return r;
}

/* Every L1 entry, and every entry of every L2 table, points where the
 * read path may go. */
static int check_tables(struct qcow2 *q)
{
	uint64_t *l2 = malloc(q->cluster_size);
	if (!l2) {
		log_error("%s: out of memory", q->d.name);
		return -1;
	}
	int r = 0;
	for (uint32_t i = 0; i < q->l1_used && r == 0; i++) {
		uint64_t e = q->l1[i], table = e & ENTRY_OFFSET_MASK;
		if (table == 0)
			continue;
		if ((e & ~(ENTRY_COPIED | ENTRY_OFFSET_MASK)) || (table & (q->cluster_size - 1)) ||
		    table < q->cluster_size || table >= q->file_size ||
		    q->cluster_size > q->file_size - table) {
			log_error("%s: L1 entry %u points to %#" PRIx64 ", %s", q->d.name, i, table,
				  table < q->cluster_size ? "into the header"
							  : "not a whole cluster inside the file");
			r = -1;
			break;
		}
		/* A table in a hole of the file is all zeros (unallocated
		 * clusters): nothing to read, however large a sparse file is. */
		off_t data = lseek(q->d.fd, (off_t)table, SEEK_DATA);
		if (data < 0 ? errno == ENXIO : (uint64_t)data >= table + q->cluster_size)
			continue;
		if (file_pread_all(q->d.fd, l2, q->cluster_size, table) < 0) {
			log_error("%s: cannot read an L2 table: %s", q->d.name, strerror(errno));
			r = -1;
			break;
		}
		for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
			const char *why;
			if (!l2_entry_ok(q, be64toh(l2[j]), &why)) {
				log_error("%s: L2 table at %#" PRIx64 ", entry %" PRIu64 ": %s", q->d.name,
					  table, j, why);
				r = -1;
				break;
			}
		}
	}
	free(l2);
	return r;
}

/* The backing file's path: as written if absolute, else relative to the
 * overlay's directory. */
static int backing_path(const char *overlay, const char *backing, char *out, size_t outlen)
{
	if (backing[0] == '/')
		return snprintf(out, outlen, "%s", backing) < (int)outlen ? 0 : -1;
	const char *slash = strrchr(overlay, '/');
	int dir = slash ? (int)(slash - overlay) : 0;
	int n = slash ? snprintf(out, outlen, "%.*s/%s", dir, overlay, backing)
		      : snprintf(out, outlen, "%s", backing);
	return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

static int open_backing(struct qcow2 *q, const char *path, const uint8_t *h, const struct header *hd,
			const struct disk_chain *self)
{
	char bname[MAX_BACKING_NAME + 1];
	memcpy(bname, h + hd->backing_off, hd->backing_len);
	bname[hd->backing_len] = 0;
	if (strlen(bname) != hd->backing_len) {
		log_error("%s: the backing file's name holds a NUL byte", q->d.name);
		return -1;
	}
	if (!strncmp(bname, "json:", 5)) {
		log_error("%s: backing file names of the form json:{...} are not supported", q->d.name);
		return -1;
	}
	/* Guessing the format of a backing file could read a raw image
	 * holding a guest-written qcow2 header as qcow2, whose own backing
	 * name then reaches any file: qemu-img writes the format, and we
	 * require it. */
	if (!hd->backing_format[0]) {
		log_error("%s: the backing file %s has no recorded format; set it with qemu-img "
			  "rebase -u -b %s -F qcow2|raw", q->d.name, bname, bname);
		return -1;
	}
	if (strcmp(hd->backing_format, "qcow2") && strcmp(hd->backing_format, "raw")) {
		log_error("%s: backing format '%s' is not supported (qcow2 and raw are)", q->d.name,
			  hd->backing_format);
		return -1;
	}
	char bpath[4096], name[sizeof(q->d.name)];
	if (backing_path(path, bname, bpath, sizeof(bpath)) < 0) {
		log_error("%s: the backing file's path is too long", q->d.name);
		return -1;
	}
	/* Messages name the disk the user gave, and the file in its chain. */
	const char *below = strstr(q->d.name, ": backing file ");
	int top = below ? (int)(below - q->d.name) : (int)strlen(q->d.name);
	if (snprintf(name, sizeof(name), "%.*s: backing file %s", top, q->d.name, bpath) >=
	    (int)sizeof(name))
		name[sizeof(name) - 1] = 0;
	q->d.backing = disk_open_format(name, bpath, true, hd->backing_format, self);
	return q->d.backing ? 0 : -1;
}

/* An image opened for writing is written, or opened read-only where
 * writing it would need what nestvm does not do. */
static int open_for_writing(struct qcow2 *q, const char *path, const struct header *hd)
{
	if (hd->incompat & INCOMPAT_DIRTY) {
		log_error("%s: the image was not closed cleanly and its refcounts are stale (lazy "
			  "refcounts); repair it with qemu-img check -r all %s, or add ,readonly",
			  q->d.name, path);
		return -1;
	}
	const char *why = NULL;
	if (hd->incompat & INCOMPAT_CORRUPT)
		why = "it is marked corrupt (qemu-img check -r all repairs it)";
	else if (hd->snapshots)
		why = "it has internal snapshots";
	else if (hd->refcount_order != 4)
		why = "its refcounts are not 16 bits wide";
	for (uint32_t i = 0; i < q->l1_used && !why; i++)
		if ((q->l1[i] & ENTRY_OFFSET_MASK) && !(q->l1[i] & ENTRY_COPIED))
			why = "its L2 tables are shared";
	if (why) {
		log_warn("%s: opened read-only: %s", q->d.name, why);
		q->d.readonly = true;
		return 0;
	}
	return qcow2_prepare_write(q, hd->autoclear);
}

struct disk *qcow2_open(const char *name, const char *path, int fd, uint64_t file_size,
			bool readonly, const struct disk_chain *self)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	uint8_t *h = NULL;
	if (!q) {
		log_error("%s: out of memory", name);
		close(fd);
		return NULL;
	}
	/* A flush or an allocation waits for the readers in progress, not
	 * for every reader that comes after it. */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&q->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&q->inflate_lock, NULL);
	q->d.ops = &qcow2_ops;
	q->d.format = "qcow2";
	q->d.readonly = readonly;
	q->d.fd = fd;
	q->file_size = file_size;
	snprintf(q->d.name, sizeof(q->d.name), "%s", name);
	uint8_t first[HEADER_V2_BYTES];
	if (file_size < HEADER_V2_BYTES || file_pread_all(fd, first, sizeof(first), 0) < 0) {
		log_error("%s: too short for a qcow2 header", name);
		goto fail;
	}
	uint32_t bits = be32_at(first + 20);
	if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) {
		log_error("%s: cluster_bits %u is out of range (%d to %d)", name, bits,
			  MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
		goto fail;
	}
	q->cluster_bits = bits;
	q->l2_bits = bits - 3;
	q->cluster_size = 1ULL << bits;
	size_t have = file_size < q->cluster_size ? (size_t)file_size : (size_t)q->cluster_size;
	h = calloc(1, q->cluster_size);
	if (!h || file_pread_all(fd, h, have, 0) < 0) {
		log_error("%s: cannot read the header", name);
		goto fail;
	}
	struct header hd;
	if (parse_header(q, h, have, &hd) < 0)
		goto fail;
	q->version = (int)hd.version;
	q->d.size = hd.size;
	q->l1_size = hd.l1_size;
	unsigned span_bits = q->cluster_bits + q->l2_bits;
	q->l1_used = (uint32_t)((hd.size + (1ULL << span_bits) - 1) >> span_bits);
	/* Only the entries the disk's size reaches are ever used. */
	q->l1 = calloc(q->l1_used ? q->l1_used : 1, sizeof(uint64_t));
	if (!q->l1 || (q->l1_used && file_pread_all(fd, q->l1, (size_t)q->l1_used * 8, hd.l1_off) < 0)) {
		log_error("%s: cannot read the L1 table", name);
		goto fail;
	}
	for (uint32_t i = 0; i < q->l1_used; i++)
		q->l1[i] = be64toh(q->l1[i]);
	if (check_l2_tables_distinct(q) < 0 || check_tables(q) < 0)
		goto fail;
	q->l1_off = hd.l1_off;
	q->rt_off = hd.rt_off;
	q->rt_clusters = hd.rt_clusters;
	q->rb_bits = q->cluster_bits + 3 - hd.refcount_order;
	if (qcow2_open_refcounts(q) < 0)
		goto fail;
	q->compressed = malloc(2 * q->cluster_size);
	q->inflated = malloc(q->cluster_size);
	if (!q->compressed || !q->inflated || inflateInit2(&q->zs, -12) != Z_OK) {
		log_error("%s: out of memory", name);
		goto fail;
	}
	q->zs_ready = true;
	if (hd.backing_off && open_backing(q, path, h, &hd, self) < 0)
		goto fail;
	if (!readonly && open_for_writing(q, path, &hd) < 0)
		goto fail;
	free(h);
	return &q->d;
fail:
	free(h);
	qcow2_close(&q->d);
	return NULL;
}
