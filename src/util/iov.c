/* Scatter-gather helpers shared by the virtio devices and the disk
 * formats. */
#include "util/iov.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Copies len bytes between flat memory and a chain's buffers, starting
 * skip bytes into the buffers; to_iov gives the direction. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, size_t len,
		       bool to_iov)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - skip;
		if (take > len - done)
			take = len - done;
		uint8_t *in_iov = (uint8_t *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(in_iov, buf + done, take);
		else
			memcpy(buf + done, in_iov, take);
		done += take;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, false);
}

size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	/* Only read through buf in this direction. */
	return iov_copy(iov, n, skip, (uint8_t *)(uintptr_t)buf, len, true);
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		   struct iovec *out)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - skip;
		if (take > len)
			take = len;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k].iov_len = take;
		k++;
		len -= take;
		skip = 0;
	}
	return k;
}

void iov_memset(const struct iovec *iov, unsigned n, int byte)
{
	for (unsigned i = 0; i < n; i++)
		memset(iov[i].iov_base, byte, iov[i].iov_len);
}

/* Whole-vector I/O at off, retrying short transfers; reads past the end of
 * the file see zeros. */
static int rw_all(int fd, struct iovec *iov, unsigned n, uint64_t off, bool write)
{
	while (n) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, (off_t)off) : preadv(fd, iov, (int)n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			if (write) {
				errno = ENOSPC;
				return -1;
			}
			iov_memset(iov, n, 0);
			return 0;
		}
		off += (uint64_t)r;
		while (n && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

int iov_preadv_all(int fd, struct iovec *iov, unsigned n, uint64_t off)
{
	return rw_all(fd, iov, n, off, false);
}

int iov_pwritev_all(int fd, struct iovec *iov, unsigned n, uint64_t off)
{
	return rw_all(fd, iov, n, off, true);
}
