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
/* The same at an offset; a write that makes no progress fails with ENOSPC. */
int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Reads exactly len bytes at off; a file that ends first fails with EIO. */
int file_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Copies the file at src to a new file dst (refused if it exists), keeping
 * holes: a reflink where the file system can, else the data ranges only.
 * The copy is fsynced. -1 with errno set (dst removed) on error. */
int file_copy_sparse(const char *src, const char *dst);

/* snprintf for paths: returns -1 (and logs) if the result would not fit. */
int path_fmt(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#endif
