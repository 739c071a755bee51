/* A guest's disk as its device models see it: bytes at offsets, whatever
 * the image format underneath. disk_open() recognises the format by its
 * magic (qcow2, else raw) and hands back a disk whose operations the
 * device calls from several threads at once (its requests in flight):
 * every format makes that safe (raw: positioned I/O on one fd; qcow2: a
 * lock its metadata changes hold alone). */
#ifndef NESTVM_BLOCK_DISK_H
#define NESTVM_BLOCK_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct disk;

struct disk_ops {
	/* Reads into the buffers (which it may modify) from off; bytes past
	 * the end of the disk read as zeros. 0, or -1 with errno. */
	int (*read)(struct disk *d, struct iovec *iov, unsigned n, uint64_t off);
	/* NULL for a format nestvm only reads. */
	int (*write)(struct disk *d, struct iovec *iov, unsigned n, uint64_t off);
	/* Every completed write onto stable storage. */
	int (*flush)(struct disk *d);
	/* The range reads as zeros afterwards (must_zero), or may (a
	 * discard, only a hint: it may do nothing). */
	int (*zero)(struct disk *d, uint64_t off, uint64_t len, bool must_zero);
	void (*close)(struct disk *d);
};

struct disk {
	const struct disk_ops *ops;
	const char *format;  /* "raw", "qcow2" */
	uint64_t size;       /* the guest-visible size in bytes */
	bool readonly;
	int fd;              /* the image file */
	struct disk *backing; /* the image below (qcow2); NULL: none, or raw */
	char path[4096];     /* the image's path, as opened */
	char name[4200];     /* "--disk PATH": the prefix of messages */
};

/* Opens and locks the image at path (read-only or not), recognising its
 * format; prints a one-line error naming `name` and returns NULL on
 * failure. */
struct disk *disk_open(const char *name, const char *path, bool readonly);
void disk_close(struct disk *d);

/* For the formats. A backing file is opened by disk_open_format, read-only,
 * below the images in `above` (NULL for the disk the user named); format
 * is "raw", "qcow2" or NULL to recognise it. raw_open and qcow2_open take
 * an opened, locked file (qcow2_open closes it on failure). */
#define DISK_MAX_BACKING 16 /* backing files below a disk, at most */
struct disk_chain {
	dev_t dev;
	ino_t ino;
	int depth;                       /* 0: the disk the user named */
	const struct disk_chain *above;  /* the image whose backing file this is */
};
struct disk *disk_open_format(const char *name, const char *path, bool readonly, const char *format,
			      const struct disk_chain *above);
struct disk *raw_open(const char *name, bool probed, int fd, uint64_t size, bool readonly);
struct disk *qcow2_open(const char *name, const char *path, int fd, uint64_t file_size,
			bool readonly, const struct disk_chain *self);

/* Makes a new qcow2 image at path (which must not exist): empty, or a
 * linked clone reading what it has not written from `backing` (recorded as
 * given, with its format, "raw" or "qcow2"). size is rounded up to 512
 * bytes. A one-line error naming `name` and -1 on failure. */
int disk_create_qcow2(const char *name, const char *path, uint64_t size, const char *backing,
		      const char *backing_format);
/* Makes `clone` a linked clone of `template` (opened, its chain checked,
 * as a read-only disk), naming it by its absolute path; size 0: the
 * template's. */
int disk_clone(const char *name, const char *template, const char *clone, uint64_t size);

#endif
