#include "util/cpio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/file.h"
#include "util/log.h"

int cpio_create(struct cpio_writer *w, const char *path)
{
	memset(w, 0, sizeof(*w));
	w->path = path;
	w->next_ino = 1;
	w->out = fopen(path, "wbe");
	if (!w->out) {
		log_error("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void pad4(struct cpio_writer *w)
{
	static const char zeros[4];
	long pos = ftell(w->out);
	if (pos < 0 || (pos & 3 && fwrite(zeros, 1, 4 - (size_t)(pos & 3), w->out) == 0))
		w->failed = 1;
}

static void header(struct cpio_writer *w, const char *name, uint32_t mode, uint64_t size,
		   uint32_t rmajor, uint32_t rminor)
{
	size_t namesize = strlen(name) + 1;
	if (size > 0xffffffffULL) {
		log_error("%s: %s is too large for a cpio archive", w->path, name);
		w->failed = 1;
		return;
	}
	/* magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	 * devminor, rdevmajor, rdevminor, namesize, check */
	if (fprintf(w->out, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08zX%08X",
		    w->next_ino++, mode, 0, 0, 1, 0, (uint32_t)size, 0, 0, rmajor, rminor,
		    namesize, 0) < 0 ||
	    fwrite(name, 1, namesize, w->out) != namesize)
		w->failed = 1;
	pad4(w);
}

void cpio_add_dir(struct cpio_writer *w, const char *name, uint32_t mode)
{
	header(w, name, S_IFDIR | mode, 0, 0, 0);
}

void cpio_add_data(struct cpio_writer *w, const char *name, uint32_t mode, const void *data,
		   size_t len)
{
	header(w, name, S_IFREG | mode, len, 0, 0);
	if (len && fwrite(data, 1, len, w->out) != len)
		w->failed = 1;
	pad4(w);
}

int cpio_add_file(struct cpio_writer *w, const char *name, uint32_t mode, const char *src)
{
	uint8_t *data;
	size_t len;
	if (file_read_all(w->path, src, 1ULL << 30, &data, &len) < 0) {
		w->failed = 1;
		return -1;
	}
	cpio_add_data(w, name, mode, data, len);
	free(data);
	return 0;
}

void cpio_add_symlink(struct cpio_writer *w, const char *name, const char *target)
{
	size_t len = strlen(target);
	header(w, name, S_IFLNK | 0777, len, 0, 0);
	if (fwrite(target, 1, len, w->out) != len)
		w->failed = 1;
	pad4(w);
}

void cpio_add_chardev(struct cpio_writer *w, const char *name, uint32_t mode,
		      uint32_t major, uint32_t minor)
{
	header(w, name, S_IFCHR | mode, 0, major, minor);
}

int cpio_finish(struct cpio_writer *w)
{
	header(w, "TRAILER!!!", 0, 0, 0, 0);
	if (fclose(w->out) != 0)
		w->failed = 1;
	w->out = NULL;
	if (w->failed)
		log_error("%s: could not write the archive", w->path);
	return w->failed ? -1 : 0;
}
