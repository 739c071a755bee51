/* libFuzzer: a snapshot's memory file and a disk image as restore and the
 * fingerprint walk read them. The input is the file; its holes are made by
 * its zero pages (punched out). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/snapshot_memory.h"

#define RAM (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static char path[64];
	static int fd = -1;
	if (!ram) {
		/* A memory file (shmem has holes, SEEK_DATA and hole punching
		 * like a disk file system), so an input costs no disk I/O. */
		ram = malloc(RAM);
		fd = memfd_create("nestvm-fuzz-file", MFD_CLOEXEC);
		if (!ram || fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	for (size_t off = 0; off + 4096 <= size; off += 4096) {
		size_t z = 0;
		while (z < 4096 && !data[off + z])
			z++;
		if (z == 4096)
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, 4096);
	}
	memset(ram, 0, RAM);
	uint64_t h, fsize, fp;
	lseek(fd, 0, SEEK_SET);
	snapshot_memory_load(ram, RAM, fd, &h);
	snapshot_disk_fingerprint(path, &fsize, &fp);
	return 0;
}
