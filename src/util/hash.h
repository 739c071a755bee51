/* FNV-1a, 64-bit: checksums against corruption and stable derived values
 * (test device buffers, snapshot files, default MACs), not against an
 * adversary. */
#ifndef NESTVM_UTIL_HASH_H
#define NESTVM_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_SEED  0xcbf29ce484222325ULL
#define FNV1A64_PRIME 0x100000001b3ULL

/* Continues hash h over len more bytes. */
static inline uint64_t fnv1a64_update(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * FNV1A64_PRIME;
	return h;
}

static inline uint64_t fnv1a64(const void *data, size_t len)
{
	return fnv1a64_update(FNV1A64_SEED, data, len);
}

#endif
