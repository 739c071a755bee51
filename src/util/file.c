#define _GNU_SOURCE
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/parse.h"

int file_read_all(const char *option, const char *path, uint64_t max_size,
		  uint8_t **data, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s %s: %s", option, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("%s %s: not a regular file", option, path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > max_size) {
		char a[32], b[32];
		log_error("%s %s: file is %s, larger than the %s it must fit in", option, path,
			  format_size((uint64_t)st.st_size, a, sizeof(a)),
			  format_size(max_size, b, sizeof(b)));
		close(fd);
		return -1;
	}
	uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		log_error("%s %s: out of memory", option, path);
		close(fd);
		return -1;
	}
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("%s %s: read failed: %s", option, path,
				  n < 0 ? strerror(errno) : "file shrank while reading");
			free(buf);
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	close(fd);
	*data = buf;
	*size = done;
	return 0;
}

int file_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t r = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

int file_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t r = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* the file ended early */
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

int path_fmt(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		log_error("path too long: %.60s...", out);
		return -1;
	}
	return 0;
}

int file_copy_sparse(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		errno = e;
		return -1;
	}
	struct stat st;
	enum { CHUNK = 1 << 16 };
	uint8_t *buf = NULL; /* for copies by hand */
	bool by_hand = false;
	int r = fstat(in, &st);
	if (r == 0 && ioctl(out, FICLONE, in) < 0) {
		/* No reflink here: the data ranges, one by one (a file system
		 * without SEEK_DATA reports all of the file as data). */
		off_t pos = 0;
		while (r == 0 && pos < st.st_size) {
			off_t data = lseek(in, pos, SEEK_DATA);
			if (data < 0) {
				if (errno != ENXIO)
					r = -1;
				break; /* ENXIO: only a hole is left */
			}
			off_t hole = lseek(in, data, SEEK_HOLE);
			if (hole < 0)
				hole = st.st_size;
			off_t from = data, to = data;
			while (r == 0 && from < hole) {
				ssize_t n = by_hand ? -1 : copy_file_range(in, &from, out, &to, (size_t)(hole - from), 0);
				if (n < 0 && errno == EINTR)
					continue;
				/* Across file systems (EXDEV on most kernels, and 9p
				 * or tmpfs may not do it at all): read and write. */
				if (n < 0 && (by_hand || errno == EXDEV || errno == EOPNOTSUPP ||
					      errno == ENOSYS || errno == EINVAL)) {
					by_hand = true;
					if (!buf && !(buf = malloc(CHUNK)))
						break;
					size_t want = (size_t)(hole - from) < CHUNK ? (size_t)(hole - from) : CHUNK;
					n = pread(in, buf, want, from);
					if (n > 0 && file_pwrite_all(out, buf, (size_t)n, to) < 0)
						n = -1;
					if (n > 0)
						from += n, to += n;
				}
				if (n <= 0)
					r = -1; /* n == 0: the file shrank under us */
			}
			pos = hole;
		}
		if (r == 0 && ftruncate(out, st.st_size) < 0)
			r = -1;
	}
	if (r == 0 && by_hand && !buf) {
		errno = ENOMEM;
		r = -1;
	}
	free(buf);
	if (r == 0 && fsync(out) < 0)
		r = -1;
	int e = errno;
	close(in);
	if (close(out) < 0 && r == 0) {
		e = errno;
		r = -1;
	}
	if (r < 0) {
		unlink(dst);
		errno = e;
	}
	return r;
}
