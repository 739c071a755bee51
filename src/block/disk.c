/* Opening a disk image: checks, locks, and the format by its magic. */
#define _GNU_SOURCE
#include "block/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/magic.h>

#include "util/log.h"

static bool is_qcow2(int fd)
{
	uint8_t magic[4];
	return pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       !memcmp(magic, "QFI\xfb", sizeof(magic));
}

/* Backing files are named by the image, which may come from anyone: only
 * regular files on a real file system, not a device or a kernel file such
 * as /proc/self/mem (whose reported size of 0 means nothing). */
static bool backing_file_ok(int fd, const struct stat *st)
{
	struct statfs fs;
	return S_ISREG(st->st_mode) && fstatfs(fd, &fs) == 0 && fs.f_type != PROC_SUPER_MAGIC &&
	       fs.f_type != SYSFS_MAGIC;
}

struct disk *disk_open_format(const char *name, const char *path, bool readonly, const char *format,
			      const struct disk_chain *above)
{
	int depth = above ? above->depth + 1 : 0;
	if (depth > DISK_MAX_BACKING) {
		log_error("%s: more than %d backing files below the disk", name, DISK_MAX_BACKING);
		return NULL;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		log_error("%s: %s", name, errno == ENOENT ? "no such file" : strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("%s: not a regular file or block device", name);
		return NULL;
	}
	/* Root could write a file whose mode says read-only; respect the mode
	 * anyway, as the owner meant it. */
	bool file_ro = !(st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH));
	if (!readonly && file_ro) {
		log_error("%s: the image is read-only; add ,readonly to attach it so", name);
		return NULL;
	}
	/* O_NONBLOCK: should the path become a FIFO after the check above,
	 * the open does not wait for a writer; the check is made again on
	 * what was opened. */
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		if (!readonly && (e == EACCES || e == EROFS || e == EPERM) && access(path, R_OK) == 0)
			log_error("%s: cannot open it for writing (%s); add ,readonly to attach it "
				  "read-only", name, strerror(e));
		else
			log_error("%s: %s", name, e == EACCES ? "permission denied" : strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		log_error("%s: not a regular file or block device", name);
		goto fail;
	}
	if (above && !backing_file_ok(fd, &st)) {
		log_error("%s: a backing file must be a regular file (not a device or a /proc or /sys "
			  "file)", name);
		goto fail;
	}
	for (const struct disk_chain *c = above; c; c = c->above) {
		if (c->dev == st.st_dev && c->ino == st.st_ino) {
			log_error("%s: the backing chain loops back to an image above it", name);
			goto fail;
		}
	}
	/* Two VMs writing one image corrupt it: take the image like QEMU does,
	 * shared for readers (a template under many clones), exclusive for a
	 * writer. */
	if (flock(fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		log_error("%s: the image is in use by another process (%s)", name,
			  errno == EWOULDBLOCK ? "locked" : strerror(errno));
		goto fail;
	}
	uint64_t bytes = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
		log_error("%s: cannot read the device size: %s", name, strerror(errno));
		goto fail;
	}
	bool qcow2 = is_qcow2(fd);
	if (format && !strcmp(format, "qcow2") && !qcow2) {
		log_error("%s: not a qcow2 image, though its overlay says it is", name);
		goto fail;
	}
	if (qcow2 && !(format && !strcmp(format, "raw"))) {
		struct disk_chain self = { st.st_dev, st.st_ino, depth, above };
		return qcow2_open(name, path, fd, bytes, readonly, &self);
	}
	struct disk *d = raw_open(name, format == NULL, fd, bytes, readonly);
	if (d)
		return d;
	log_error("%s: out of memory", name);
fail:
	close(fd);
	return NULL;
}

struct disk *disk_open(const char *name, const char *path, bool readonly)
{
	return disk_open_format(name, path, readonly, NULL, NULL);
}

void disk_close(struct disk *d)
{
	if (d)
		d->ops->close(d);
}
