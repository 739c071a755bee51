/* Page-level pieces of the snapshot format shared by its memory file and
 * disk fingerprints: the page size, the zero test and the page checksum
 * (FNV-1a over 64-bit words, tagged with the page's offset). */
#ifndef NESTVM_VMM_SNAPSHOT_PAGES_H
#define NESTVM_VMM_SNAPSHOT_PAGES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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

#endif
