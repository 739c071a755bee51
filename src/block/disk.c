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

/* QEMU's image locking (its file-posix driver): OFD read locks on bytes
 * 100 + p for each permission p it holds, and on 200 + p for each it does
 * not let others hold. Permissions: 0 consistent read, 1 write, 3 resize.
 * A reader holds 0 and shares neither write nor resize; a writer holds
 * all three and shares neither. Each side then looks for the other's
 * locks that conflict. NULL, or what is held against us. */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
static const char *lock_like_qemu(int fd, bool readonly)
{
	static const char *const names[] = { "reading", "writing", NULL, "resizing" };
	unsigned perms = readonly ? 1u << 0 : (1u << 0) | (1u << 1) | (1u << 3);
	unsigned unshared = (1u << 1) | (1u << 3);
	for (int p = 0; p < 4; p++) {
		for (int shared_side = 0; shared_side < 2; shared_side++) {
			bool want = shared_side ? (unshared >> p) & 1 : (perms >> p) & 1;
			if (!want)
				continue;
			struct flock l = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
					   .l_start = (shared_side ? LOCK_SHARED_BASE : LOCK_PERM_BASE) + p,
					   .l_len = 1 };
			if (fcntl(fd, F_OFD_SETLK, &l) < 0) {
				if (errno == EAGAIN || errno == EACCES)
					return "a VM or qemu-img holds a lock on it";
				return NULL; /* a file system without OFD locks */
			}
		}
	}
	/* What we hold, others must share; what we do not share, no one may
	 * hold. (Our own locks never conflict with us.) */
	static char why[64];
	for (int p = 0; p < 4; p++) {
		for (int side = 0; side < 2; side++) {
			bool check = side ? (unshared >> p) & 1 : (perms >> p) & 1;
			if (!check || !names[p])
				continue;
			struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
					   .l_start = (side ? LOCK_PERM_BASE : LOCK_SHARED_BASE) + p,
					   .l_len = 1 };
			if (fcntl(fd, F_OFD_GETLK, &l) == 0 && l.l_type != F_UNLCK) {
				snprintf(why, sizeof(why),
					 side ? "a VM or qemu-img has it open for %s"
					      : "a VM or qemu-img that has it open does not allow %s",
					 names[p]);
				return why;
			}
		}
	}
	return NULL;
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
	/* Two VMs writing one image corrupt it: shared for readers (a
	 * template under many clones), exclusive for a writer; with flock for
	 * scripts and the byte locks QEMU uses for QEMU and qemu-img. */
	if (flock(fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		log_error("%s: the image is in use by another process (%s)", name,
			  errno == EWOULDBLOCK ? "locked" : strerror(errno));
		goto fail;
	}
	const char *held = lock_like_qemu(fd, readonly);
	if (held) {
		log_error("%s: the image is in use by another process (%s)", name, held);
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
		struct disk *d = qcow2_open(name, path, fd, bytes, readonly, &self);
		if (d)
			snprintf(d->path, sizeof(d->path), "%s", path);
		return d;
	}
	struct disk *d = raw_open(name, format == NULL, fd, bytes, readonly);
	if (d) {
		snprintf(d->path, sizeof(d->path), "%s", path);
		return d;
	}
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
