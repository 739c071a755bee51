#define _GNU_SOURCE
#include "lab/cidata.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libisofs declares struct burn_source itself where libburn is not used. */
#define LIBISOFS_WITHOUT_LIBBURN yes
#include <libisofs/libisofs.h>

#include "util/log.h"

#define SECTOR 2048

static int add_file(IsoImage *image, const struct cidata_file *f)
{
	size_t len = strlen(f->content);
	/* The stream owns the buffer and frees it; an empty file still needs one. */
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy)
		return ISO_OUT_OF_MEM;
	memcpy(copy, f->content, len);
	IsoStream *stream;
	int r = iso_memory_stream_new(copy, len, &stream);
	if (r < 0) {
		free(copy);
		return r;
	}
	IsoFile *file;
	r = iso_image_add_new_file(image, iso_image_get_root(image), f->name, stream, &file);
	if (r < 0) {
		iso_stream_unref(stream); /* taken by the file only when it is made */
		return r;
	}
	iso_node_set_permissions((IsoNode *)file, 0444);
	return 0;
}

/* Reads the whole image from libisofs's writer thread into fd. */
static int drain(struct burn_source *src, int fd)
{
	unsigned char buf[SECTOR];
	for (;;) {
		int n = src->read_xt(src, buf, SECTOR);
		if (n == 0)
			return 0;
		if (n < 0)
			return -1;
		for (int off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			off += (int)w;
		}
	}
}

int cidata_write(const char *path, const struct cidata_file *files, size_t nfiles)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		log_error("%s: path too long", path);
		return -1;
	}
	static int initialised;
	if (!initialised) {
		if (iso_init() < 0) {
			log_error("%s: libisofs would not start", path);
			return -1;
		}
		/* Its messages would go to stderr under its own name: keep them
		 * out; a failure is reported here, by what it returns. */
		iso_set_msgs_severities("NEVER", "NEVER", "nestvm");
		initialised = 1;
	}
	IsoImage *image = NULL;
	IsoWriteOpts *opts = NULL;
	struct burn_source *src = NULL;
	int fd = -1, r = iso_image_new("cidata", &image);
	if (r >= 0) {
		iso_image_set_volume_id(image, "cidata");
		for (size_t i = 0; i < nfiles && r >= 0; i++)
			r = add_file(image, &files[i]);
	}
	/* Profile 0: plain ISO 9660 level 1 plus Rock Ridge, so Linux sees the
	 * files' own names; the timestamps are those of now. */
	if (r >= 0)
		r = iso_write_opts_new(&opts, 0);
	if (r >= 0)
		r = iso_write_opts_set_rockridge(opts, 1);
	if (r >= 0)
		r = iso_image_create_burn_source(image, opts, &src);
	if (r < 0) {
		log_error("%s: cannot make the cloud-init seed image: %s", path, iso_error_to_msg(r));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("%s: %s", tmp, strerror(errno));
		r = -1;
		goto out;
	}
	if (drain(src, fd) < 0 || fsync(fd) < 0) {
		log_error("%s: cannot write the cloud-init seed image: %s", tmp,
			  errno ? strerror(errno) : "the writer failed");
		r = -1;
		goto out;
	}
	if (rename(tmp, path) < 0) {
		log_error("%s: %s", path, strerror(errno));
		r = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	if (src) {
		/* Waits for the writer thread and releases the source. */
		src->free_data(src);
		free(src);
	}
	if (opts)
		iso_write_opts_free(opts);
	if (image)
		iso_image_unref(image);
	return r < 0 ? -1 : 0;
}
