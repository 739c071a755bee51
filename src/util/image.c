#include "util/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/parse.h"

int image_open(struct image *img, const char *option, const char *path, uint64_t max_size)
{
	memset(img, 0, sizeof(*img));
	snprintf(img->name_buf, sizeof(img->name_buf), "%s %s", option, path);
	img->name = img->name_buf;
	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0) {
		log_error("%s: %s", img->name, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(img->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("%s: not a regular file", img->name);
		goto fail;
	}
	if ((uint64_t)st.st_size > max_size) {
		char a[32], b[32];
		log_error("%s: file is %s, larger than the %s it must fit in", img->name,
			  format_size((uint64_t)st.st_size, a, sizeof(a)),
			  format_size(max_size, b, sizeof(b)));
		goto fail;
	}
	img->size = (uint64_t)st.st_size;
	return 0;
fail:
	close(img->fd);
	img->fd = -1;
	return -1;
}

void image_from_buffer(struct image *img, const void *buf, uint64_t size, const char *name)
{
	memset(img, 0, sizeof(*img));
	img->fd = -1;
	img->buf = buf;
	img->size = size;
	img->name = name;
}

void image_close(struct image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	img->fd = -1;
}

int image_read(const struct image *img, uint64_t off, void *dst, uint64_t len)
{
	if (off > img->size || len > img->size - off)
		return -1;
	if (!img->buf) {
		uint8_t *p = dst;
		while (len) {
			ssize_t n = pread(img->fd, p, len, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1; /* an error, or the file shrank under us */
			p += n;
			off += (uint64_t)n;
			len -= (uint64_t)n;
		}
		return 0;
	}
	memcpy(dst, img->buf + off, len);
	return 0;
}
