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
#include <unistd.h>
#include <linux/fs.h>

#include "util/log.h"

static bool is_qcow2(int fd)
{
	uint8_t magic[4];
	return pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       !memcmp(magic, "QFI\xfb", sizeof(magic));
}

struct disk *disk_open_format(const char *name, const char *path, bool readonly, const char *format,
			      int depth)
{
	if (depth > DISK_MAX_CHAIN) {
		log_error("%s: the backing chain is longer than %d images, or loops", name,
			  DISK_MAX_CHAIN);
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
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (!readonly && (e == EACCES || e == EROFS || e == EPERM) && access(path, R_OK) == 0)
			log_error("%s: cannot open it for writing (%s); add ,readonly to attach it "
				  "read-only", name, strerror(e));
		else
			log_error("%s: %s", name, e == EACCES ? "permission denied" : strerror(e));
		return NULL;
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
		if (!readonly) {
			log_error("%s: qcow2 images are read-only for now; add ,readonly", name);
			goto fail;
		}
		return qcow2_open(name, path, fd, bytes, readonly, depth);
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
	return disk_open_format(name, path, readonly, NULL, 0);
}

void disk_close(struct disk *d)
{
	if (d)
		d->ops->close(d);
}
