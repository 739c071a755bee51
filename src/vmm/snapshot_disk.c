/* Disk fingerprints: a snapshot records each disk's size and a checksum of
 * its content, so that a restore notices a disk that changed under it. */
#define _GNU_SOURCE
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/disk.h"
#include "vmm/snapshot_pages.h"

/* Only allocated data is read, so a thin disk hashes fast; zero pages are
 * left out, so the same content hashes the same however the file system
 * allocated it. Whole pages are hashed, the last one zero-padded: a size
 * that is not a multiple of the page size is as good as any other (a
 * 4608-byte disk once made this walk go round for ever). */
int snapshot_disk_fingerprint(const char *path, uint64_t *size, uint64_t *fingerprint)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	uint64_t h = fnv1a64_update(FNV1A64_SEED, size, sizeof(*size));
	/* At most 1 MiB at a time; a small image needs no more than itself
	 * (whole pages, for the zero padding of the last one). */
	size_t bufsize = 1 << 20;
	if ((uint64_t)st.st_size < bufsize)
		bufsize = ((size_t)st.st_size + SNAPSHOT_PAGE - 1) & ~(size_t)(SNAPSHOT_PAGE - 1);
	if (bufsize == 0)
		bufsize = SNAPSHOT_PAGE;
	uint8_t *buf = malloc(bufsize);
	int r = buf ? 0 : -1;
	/* A file that grows meanwhile is read to its old size. */
	off_t data, end;
	for (off_t pos = 0; r == 0 && snapshot_next_data(fd, pos, st.st_size, &data, &end); pos = end) {
		while (data < end) {
			size_t want = (size_t)(end - data) < bufsize ? (size_t)(end - data) : bufsize;
			ssize_t n = pread(fd, buf, want, data);
			if (n < 0) {
				r = -1;
				break;
			}
			if (n == 0)
				break; /* the file shrank: nothing more to read */
			size_t got = (size_t)n, whole = (got + SNAPSHOT_PAGE - 1) & ~(size_t)(SNAPSHOT_PAGE - 1);
			memset(buf + got, 0, whole - got);
			for (size_t o = 0; o < whole; o += SNAPSHOT_PAGE)
				if (!snapshot_page_is_zero(buf + o))
					h = snapshot_fnv_page(h, (uint64_t)data + o, buf + o);
			data += (off_t)whole;
			if (got < want)
				break;
		}
		if (data < end)
			break; /* shrank, or a read error */
	}
	free(buf);
	close(fd);
	*fingerprint = h;
	return r;
}

int snapshot_disk_chain(const struct disk *d, struct snapshot_disk_layer *out, int max)
{
	int n = 0;
	for (const struct disk *b = d->backing; b; b = b->backing) {
		struct stat st;
		if (n == max || fstat(b->fd, &st) < 0 || !realpath(b->path, out[n].path))
			return -1;
		out[n].size = (uint64_t)st.st_size;
		out[n].inode = (uint64_t)st.st_ino;
		out[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		n++;
	}
	return n;
}
