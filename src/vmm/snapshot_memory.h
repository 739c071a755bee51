/* memory.bin of a snapshot (see vmm/snapshot.h): guest RAM as a sparse
 * file, with its checksum. */
#ifndef NESTVM_VMM_SNAPSHOT_MEMORY_H
#define NESTVM_VMM_SNAPSHOT_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/* Writes size bytes of RAM to path (created or truncated), data pages
 * only, and fsyncs it. Returns its checksum and the bytes of data written;
 * on failure fills why with one line. */
int snapshot_memory_save(const uint8_t *ram, uint64_t size, const char *path,
			 uint64_t *hash, uint64_t *bytes, char *why, size_t whylen);

/* Loads the memory file fd into RAM of size bytes (RAM is zero where the
 * file has holes) and returns the checksum of what it loaded. */
int snapshot_memory_load(uint8_t *ram, uint64_t size, int fd, uint64_t *hash);

/* in_use[i] = whether page i of p may hold data, read from the process's
 * page map (pagemap: an open /proc/self/pagemap, or -1). */
void snapshot_pages_in_use(int pagemap, const uint8_t *p, size_t n, uint8_t *in_use);

#endif
