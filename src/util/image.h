/* A file read piece by piece, so kernels and initrds go straight from the
 * file into guest memory without a copy on nestvm's heap. An image can also
 * wrap a buffer (for tests). Every read is bounds-checked here, so parsers
 * never index past the end of the file. */
#ifndef NESTVM_UTIL_IMAGE_H
#define NESTVM_UTIL_IMAGE_H

#include <stdint.h>

struct image {
	int fd;             /* -1 when backed by buf */
	const uint8_t *buf;
	uint64_t size;
	const char *name;   /* "--kernel PATH": the prefix of messages */
	char name_buf[512];
};

/* Opens a regular file no larger than max_size; prints the error. */
int image_open(struct image *img, const char *option, const char *path, uint64_t max_size);
void image_from_buffer(struct image *img, const void *buf, uint64_t size, const char *name);
void image_close(struct image *img);
/* Reads [off, off+len) into dst; -1 (without a message) if the image is
 * shorter or the read fails. */
int image_read(const struct image *img, uint64_t off, void *dst, uint64_t len);

#endif
