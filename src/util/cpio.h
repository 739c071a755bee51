/* Writer for the "newc" cpio format that Linux unpacks as an initramfs. */
#ifndef NESTVM_UTIL_CPIO_H
#define NESTVM_UTIL_CPIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cpio_writer {
	FILE *out;
	const char *path; /* for messages */
	uint32_t next_ino;
	int failed;       /* sticky: a write error makes cpio_finish fail */
};

int cpio_create(struct cpio_writer *w, const char *path);
void cpio_add_dir(struct cpio_writer *w, const char *name, uint32_t mode);
void cpio_add_data(struct cpio_writer *w, const char *name, uint32_t mode, const void *data,
		   size_t len);
/* Copies a host file into the archive; returns -1 (with a message) if it
 * cannot be read. */
int cpio_add_file(struct cpio_writer *w, const char *name, uint32_t mode, const char *src);
void cpio_add_symlink(struct cpio_writer *w, const char *name, const char *target);
void cpio_add_chardev(struct cpio_writer *w, const char *name, uint32_t mode,
		      uint32_t major, uint32_t minor);
/* Writes the trailer and closes the file; -1 if anything failed. */
int cpio_finish(struct cpio_writer *w);

#endif
