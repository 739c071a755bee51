/* Raw images: the disk's bytes are the file's. A sparse file is a thin
 * disk and stays thin: zeroing punches holes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/disk.h"
#include "util/iov.h"

#define QCOW2_MAGIC "QFI\xfb"

struct raw {
	struct disk d;
	/* The format was guessed, not given: the guest may not make the
	 * image look like a qcow2 one (whose backing file nestvm would open
	 * next time, handing the guest any file the user can read). */
	bool probed;
};

/* Reads stop at the disk's size (fixed when it was opened): a backing
 * file read for a larger overlay, or a file that grew, shows zeros there. */
static int raw_read(struct disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	uint64_t inside = off >= d->size ? 0 : d->size - off < total ? d->size - off : total;
	if (inside < total) {
		/* zero the part past the end, then read the rest */
		uint64_t skip = inside;
		for (unsigned i = 0; i < n; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			memset((uint8_t *)iov[i].iov_base + skip, 0, iov[i].iov_len - skip);
			iov[i].iov_len = skip;
			skip = 0;
		}
	}
	return inside ? iov_preadv_all(d->fd, iov, n, off) : 0;
}

static int raw_write(struct disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	struct raw *r = (struct raw *)d;
	if (r->probed && off == 0) {
		/* The first sector is checked and written from a copy: the
		 * guest's buffer could change between the check and the write. */
		uint8_t first[512];
		size_t len = iov_to_buf(iov, n, 0, first, sizeof(first));
		if (len >= 4 && !memcmp(first, QCOW2_MAGIC, 4)) {
			errno = EPERM;
			return -1;
		}
		struct iovec copy = { first, len };
		if (iov_pwritev_all(d->fd, &copy, 1, 0) < 0)
			return -1;
		size_t skip = len;
		while (n && skip >= iov->iov_len) {
			skip -= iov->iov_len;
			iov++, n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + skip;
			iov->iov_len -= skip;
		}
		off = len;
	}
	return iov_pwritev_all(d->fd, iov, n, off);
}

static int raw_flush(struct disk *d)
{
	return fdatasync(d->fd);
}

/* Zeroes a range by punching a hole (the disk stays thin); where the file
 * system cannot, by writing zeros. */
static int raw_zero(struct disk *d, uint64_t off, uint64_t len, bool must_zero)
{
	if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (!must_zero)
		return errno == EOPNOTSUPP ? 0 : -1; /* a discard is only a hint */
	static const uint8_t zeros[65536];
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pwrite(d->fd, zeros, n, (off_t)off);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		off += (uint64_t)w, len -= (uint64_t)w;
	}
	return 0;
}

static void raw_close(struct disk *d)
{
	close(d->fd);
	free(d);
}

static const struct disk_ops raw_ops = {
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.zero = raw_zero,
	.close = raw_close,
};

struct disk *raw_open(const char *name, bool probed, int fd, uint64_t size, bool readonly)
{
	struct raw *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->d.ops = &raw_ops;
	r->d.format = "raw";
	r->d.size = size;
	r->d.readonly = readonly;
	r->d.fd = fd;
	snprintf(r->d.name, sizeof(r->d.name), "%s", name);
	r->probed = probed;
	return &r->d;
}
