/* libFuzzer: a qcow2 image's metadata as nestvm opens, reads and writes
 * it (block/qcow2.c, block/qcow2_write.c): the input is the image file.
 * Whatever it holds, opening either refuses it or yields a disk whose
 * reads, writes, zeroes and flushes, anywhere, stay inside their buffers;
 * and the work is bounded by the file's size. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/disk.h"
#include "util/log.h"

#define READ_BYTES (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static uint8_t *buf;
	if (fd < 0) {
		log_verbosity = -1;
		/* An image in memory: no disk I/O per input. Backing names in
		 * the input reach real files, read-only, as they would. */
		fd = memfd_create("nestvm-fuzz-qcow2", MFD_CLOEXEC);
		buf = malloc(READ_BYTES);
		if (fd < 0 || !buf)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	struct disk *d = disk_open("--disk fuzz", path, true);
	if (!d)
		return 0;
	/* The start of the disk, across its end, and where the input's last
	 * bytes say. */
	uint64_t where[3] = { 0, d->size > READ_BYTES / 2 ? d->size - READ_BYTES / 2 : 0, 0 };
	if (size >= 8)
		memcpy(&where[2], data + size - 8, 8);
	for (int i = 0; i < 3; i++) {
		struct iovec iov[2] = { { buf, 1000 }, { buf + 1000, READ_BYTES - 1000 } };
		d->ops->read(d, iov, 2, where[i] % (d->size + 1));
	}
	disk_close(d);
	/* Opened for writing (the file is the input's copy): a write across a
	 * cluster boundary, zeroes, a flush, and the same place read back. */
	d = disk_open("--disk fuzz", path, false);
	if (!d)
		return 0;
	uint64_t at = d->size > 70000 ? (where[2] % (d->size - 70000)) & ~511ULL : 0;
	uint64_t len = d->size > 70000 ? 70000 & ~511ULL : d->size & ~511ULL;
	memset(buf, 0xa5, len);
	struct iovec iov = { buf, len };
	d->ops->write(d, &iov, 1, at);
	d->ops->zero(d, at + len / 2, len / 4, (where[2] & 1) != 0);
	d->ops->flush(d);
	iov = (struct iovec){ buf, len };
	d->ops->read(d, &iov, 1, at);
	disk_close(d);
	return 0;
}
