/* cloud-init's NoCloud seed disk: an ISO 9660 image with the volume label
 * "cidata" (with Rock Ridge, so its files keep names such as meta-data),
 * which cloud-init finds by that label and reads meta-data, user-data and
 * network-config from. Made with libisofs, the library xorriso is built on. */
#ifndef NESTVM_LAB_CIDATA_H
#define NESTVM_LAB_CIDATA_H

#include <stddef.h>

struct cidata_file {
	const char *name;    /* in the image's root directory */
	const char *content; /* written as it is */
};

/* Writes the image to path (through path.new, renamed when complete).
 * Returns 0, or -1 after one line naming path and what failed. */
int cidata_write(const char *path, const struct cidata_file *files, size_t nfiles);

#endif
