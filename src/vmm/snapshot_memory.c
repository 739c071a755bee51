/* memory.bin: guest RAM as a sparse file of the RAM's size. Pages the
 * guest never touched and pages of zeros are holes; every other page is
 * stored at its own offset and checksummed with it. */
#define _GNU_SOURCE
#include "vmm/snapshot_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/snapshot_pages.h"

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

/* Which of the n pages at p may hold data: those present in memory or
 * swapped out. A page neither present nor swapped was never touched (or
 * was discarded) and reads as zeros. mincore() would not do: it calls a
 * swapped-out page "not resident", and the page's data would be lost.
 * Without /proc (or on a read error) every page counts, which is slower
 * but loses nothing. */
void snapshot_pages_in_use(int pagemap, const uint8_t *p, size_t n, uint8_t *in_use)
{
	uint64_t entries[512];
	uint64_t first = (uint64_t)(uintptr_t)p / SNAPSHOT_PAGE;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < 512 ? n - done : 512;
		ssize_t got = pagemap < 0 ? -1
			: pread(pagemap, entries, k * 8, (off_t)((first + done) * 8));
		for (size_t i = 0; i < k; i++)
			in_use[done + i] = got != (ssize_t)(k * 8) ||
					   (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
		done += k;
	}
}

int snapshot_memory_save(const uint8_t *ram, uint64_t size, const char *path,
			 uint64_t *hash, uint64_t *bytes, char *why, size_t whylen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t h = FNV1A64_SEED, written = 0;
	const uint64_t chunk = 2ULL << 20;
	uint8_t *in_use = malloc(chunk / SNAPSHOT_PAGE);
	int r = in_use && ftruncate(fd, (off_t)size) == 0 ? 0 : -1;
	for (uint64_t base = 0; base < size && r == 0; base += chunk) {
		uint64_t len = size - base < chunk ? size - base : chunk;
		const uint8_t *p = ram + base;
		snapshot_pages_in_use(pagemap, p, len / SNAPSHOT_PAGE, in_use);
		for (uint64_t off = 0; off < len && r == 0; off += SNAPSHOT_PAGE) {
			if (!in_use[off / SNAPSHOT_PAGE] || snapshot_page_is_zero(p + off))
				continue;
			uint64_t run = SNAPSHOT_PAGE; /* runs of data pages in one write */
			while (off + run < len && in_use[(off + run) / SNAPSHOT_PAGE] &&
			       !snapshot_page_is_zero(p + off + run))
				run += SNAPSHOT_PAGE;
			for (uint64_t o = 0; o < run; o += SNAPSHOT_PAGE)
				h = snapshot_fnv_page(h, base + off + o, p + off + o);
			if (pwrite(fd, p + off, run, (off_t)(base + off)) != (ssize_t)run)
				r = -1;
			written += run;
			off += run - SNAPSHOT_PAGE;
		}
	}
	if (r < 0)
		snprintf(why, whylen, "%s: %s", path, in_use ? strerror(errno) : "out of memory");
	if (r == 0 && fsync(fd) < 0) {
		snprintf(why, whylen, "%s: fsync: %s", path, strerror(errno));
		r = -1;
	}
	free(in_use);
	if (pagemap >= 0)
		close(pagemap);
	close(fd);
	*hash = h;
	*bytes = written;
	return r;
}

/* Reads memory.bin's data regions into RAM. Every offset is checked against
 * the RAM's size as it is used: the file's holes are not trusted to be
 * where an earlier fstat() said (the file may grow meanwhile). */
int snapshot_memory_load(uint8_t *ram, uint64_t size, int fd, uint64_t *hash)
{
	uint64_t h = FNV1A64_SEED;
	off_t data, end;
	for (off_t pos = 0; snapshot_next_data(fd, pos, (off_t)size, &data, &end); pos = end) {
		if ((uint64_t)end > size)
			end = (off_t)size;
		if (data >= end)
			break;
		uint64_t len = (uint64_t)(end - data);
		uint8_t *dst = ram + data;
		for (uint64_t done = 0; done < len;) {
			ssize_t n = pread(fd, dst + done, len - done, data + (off_t)done);
			if (n < 0)
				return -1;
			if (n == 0) { /* shrank meanwhile: the checksum will tell */
				memset(dst + done, 0, len - done);
				break;
			}
			done += (uint64_t)n;
		}
		for (uint64_t o = 0; o < len; o += SNAPSHOT_PAGE)
			if (!snapshot_page_is_zero(dst + o))
				h = snapshot_fnv_page(h, (uint64_t)data + o, dst + o);
	}
	*hash = h;
	return 0;
}
