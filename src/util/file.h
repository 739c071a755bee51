#ifndef NESTVM_UTIL_FILE_H
#define NESTVM_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file of at most max_size bytes. On error prints
 * "OPTION PATH: what is wrong" and returns -1. */
int file_read_all(const char *option, const char *path, uint64_t max_size,
		  uint8_t **data, size_t *size);

/* Writes all of buf, retrying on short writes and EINTR. */
int file_write_all(int fd, const void *buf, size_t len);



/* snprintf for paths: returns -1 (and logs) if the result would not fit. */
int path_fmt(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#endif
