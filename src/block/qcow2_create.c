/* New qcow2 images: empty, or a linked clone over a template (its backing
 * file). The layout is the one `qemu-img create -f qcow2` writes, version 3
 * with 64 KiB clusters: the header (with the backing format extension and
 * the backing file's name) in cluster 0, the refcount table in cluster 1,
 * its one refcount block in cluster 2, then the L1 table, all zeros (a
 * hole in the file). Only the bytes that are not zero are written, so a
 * clone of a 2 GiB template is 192 KiB and 32 bytes long and takes three
 * file system blocks. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/disk.h"
#include "util/file.h"
#include "util/log.h"

#define CLUSTER_BITS 16
#define CLUSTER_SIZE (1u << CLUSTER_BITS)
#define HEADER_BYTES 104
#define EXT_BACKING_FORMAT 0xe2792acau
#define MAX_BACKING_NAME 1023
/* The reader's bound (a 32 MiB L1 table): 64 KiB clusters reach 2 PiB;
 * QEMU stops at 64 TiB too. */
#define MAX_CREATE_SIZE (64ULL << 40)

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

int disk_create_qcow2(const char *name, const char *path, uint64_t size, const char *backing,
		      const char *backing_format)
{
	if (size > MAX_CREATE_SIZE) {
		log_error("%s: a size over 64 TiB", name);
		return -1;
	}
	size = (size + 511) & ~511ULL;
	size_t name_len = backing ? strlen(backing) : 0, fmt_len = backing ? strlen(backing_format) : 0;
	if (name_len > MAX_BACKING_NAME) {
		log_error("%s: the backing file's path is longer than %d bytes", name, MAX_BACKING_NAME);
		return -1;
	}
	uint64_t l2_span = (uint64_t)CLUSTER_SIZE * (CLUSTER_SIZE / 8);
	uint32_t l1_size = (uint32_t)((size + l2_span - 1) / l2_span);
	uint64_t l1_clusters = ((uint64_t)l1_size * 8 + CLUSTER_SIZE - 1) / CLUSTER_SIZE;
	/* header, refcount table and block, L1 (none for an empty disk) */
	uint64_t clusters = 3 + l1_clusters;
	if (clusters > CLUSTER_SIZE / 2) {
		log_error("%s: too large for one refcount block", name); /* not below 64 TiB */
		return -1;
	}

	uint8_t *c = calloc(3, CLUSTER_SIZE);
	if (!c) {
		log_error("%s: out of memory", name);
		return -1;
	}
	uint8_t *h = c, *rt = c + CLUSTER_SIZE, *rb = c + 2 * CLUSTER_SIZE;
	memcpy(h, "QFI\xfb", 4);
	put32(h + 4, 3);
	put32(h + 20, CLUSTER_BITS);
	put64(h + 24, size);
	put32(h + 36, l1_size);
	put64(h + 40, 3ULL * CLUSTER_SIZE);
	put64(h + 48, 1ULL * CLUSTER_SIZE);
	put32(h + 56, 1);
	put32(h + 96, 4); /* 16-bit refcounts */
	put32(h + 100, HEADER_BYTES);
	size_t at = HEADER_BYTES;
	if (backing) {
		/* The backing format, so the backing file is never probed. */
		put32(h + at, EXT_BACKING_FORMAT);
		put32(h + at + 4, (uint32_t)fmt_len);
		memcpy(h + at + 8, backing_format, fmt_len);
		at += 8 + ((fmt_len + 7) & ~(size_t)7);
	}
	at += 8; /* the end of the extensions: type 0, length 0 */
	if (backing) {
		put64(h + 8, at);
		put32(h + 16, (uint32_t)name_len);
		memcpy(h + at, backing, name_len);
	}
	put64(rt, 2ULL * CLUSTER_SIZE);
	for (uint64_t i = 0; i < clusters; i++) {
		uint16_t one = htobe16(1);
		memcpy(rb + 2 * i, &one, 2);
	}

	/* O_EXCL: never overwrite an image (or anything else) already there. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("%s: cannot create %s: %s", name, path, strerror(errno));
		free(c);
		return -1;
	}
	/* The rest stays a hole, which reads as zeros; the file ends with the
	 * L1 table, as qemu-img's does (new clusters go at the next cluster
	 * boundary). */
	int r = ftruncate(fd, (off_t)(3ULL * CLUSTER_SIZE + (uint64_t)l1_size * 8));
	if (r == 0)
		r = file_pwrite_all(fd, h, at + name_len, 0);
	if (r == 0)
		r = file_pwrite_all(fd, rt, 8, CLUSTER_SIZE);
	if (r == 0)
		r = file_pwrite_all(fd, rb, 2 * clusters, 2 * CLUSTER_SIZE);
	if (r == 0)
		r = fsync(fd);
	int e = errno;
	close(fd);
	free(c);
	if (r == 0) {
		/* The new name must survive a crash as well as the bytes. */
		char *slash = strrchr(path, '/');
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0) {
			r = -1;
			e = errno;
		}
		if (dfd >= 0)
			close(dfd);
	}
	if (r != 0) {
		log_error("%s: cannot write %s: %s", name, path, strerror(e));
		unlink(path);
		return -1;
	}
	return 0;
}

int disk_clone(const char *name, const char *template, const char *clone, uint64_t size)
{
	/* Opened as a VM's read-only disk opens it: its whole chain checked,
	 * and a shared lock that a VM writing it refuses. */
	struct disk *t = disk_open(name, template, true);
	if (!t)
		return -1;
	char *abs = realpath(template, NULL);
	int r = -1;
	if (!abs)
		log_error("%s: cannot resolve the path of %s", name, template);
	else
		r = disk_create_qcow2(name, clone, size ? size : t->size, abs, t->format);
	free(abs);
	disk_close(t);
	return r;
}
