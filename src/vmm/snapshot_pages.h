/* Page-level pieces of the snapshot format shared by its memory file and
 * disk fingerprints: the page size, the zero test and the page checksum
 * (FNV-1a over 64-bit words, tagged with the page's offset). */
#ifndef NESTVM_VMM_SNAPSHOT_PAGES_H
#define NESTVM_VMM_SNAPSHOT_PAGES_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "util/hash.h"

#define SNAPSHOT_PAGE 4096ULL

static inline uint64_t snapshot_page_word(const uint8_t *page, size_t i)
{
	uint64_t w;
	memcpy(&w, page + i * 8, 8); /* callers' buffers need no alignment */
	return w;
}

static inline uint64_t snapshot_fnv_page(uint64_t h, uint64_t offset, const uint8_t *page)
{
	h = (h ^ offset) * FNV1A64_PRIME;
	for (size_t i = 0; i < SNAPSHOT_PAGE / 8; i++)
		h = (h ^ snapshot_page_word(page, i)) * FNV1A64_PRIME;
	return h;
}

static inline bool snapshot_page_is_zero(const uint8_t *page)
{
	for (size_t i = 0; i < SNAPSHOT_PAGE / 8; i++)
		if (snapshot_page_word(page, i))
			return false;
	return true;
}

/* The next run of data at or after pos (page-aligned) in fd, a file of
 * size bytes, as whole pages [*start, *end): true if there is one. *start
 * is never before pos, so a walk that goes on from *end always ends. The
 * file's holes are not trusted: the run stops at size (rounded up to a
 * page), even if the file grew meanwhile. A file system without SEEK_DATA
 * gives one run from pos to the end. */
static inline bool snapshot_next_data(int fd, off_t pos, off_t size, off_t *start, off_t *end)
{
	const off_t page = (off_t)SNAPSHOT_PAGE;
	if (pos >= size)
		return false;
	off_t data = lseek(fd, pos, SEEK_DATA);
	if (data < 0 && errno == ENXIO)
		return false; /* no data past pos */
	off_t hole = data < 0 ? size : lseek(fd, data, SEEK_HOLE);
	if (data < 0)
		data = pos;
	if (hole < 0 || hole > size)
		hole = size;
	data &= ~(page - 1);
	*start = data < pos ? pos : data;
	*end = (hole + page - 1) & ~(page - 1);
	return *start < *end;
}

#endif
