/* Scatter-gather lists (struct iovec arrays): copies between them and flat
 * memory, and slices of them. */
#ifndef NESTVM_UTIL_IOV_H
#define NESTVM_UTIL_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copies between a list's buffers, skip bytes in, and flat memory; return
 * the bytes copied (fewer if the list is shorter). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
/* Takes len bytes after skip from iov's buffers into out[] (at most n
 * entries); returns how many entries out has. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		   struct iovec *out);
/* Fills every buffer with byte. */
void iov_memset(const struct iovec *iov, unsigned n, int byte);

/* Whole-list file I/O at off, retrying short transfers (the list is
 * consumed); reads past the end of the file see zeros, a write that makes
 * no progress fails with ENOSPC. 0, or -1 with errno. */
int iov_preadv_all(int fd, struct iovec *iov, unsigned n, uint64_t off);
int iov_pwritev_all(int fd, struct iovec *iov, unsigned n, uint64_t off);

#endif
