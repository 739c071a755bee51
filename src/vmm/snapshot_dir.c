#define _GNU_SOURCE
#include "vmm/snapshot_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const snapshot_files[] = { "manifest.json", "manifest.sig", "state.bin", "memory.bin",
					NULL };

static bool is_snapshot_file(const char *name)
{
	for (int i = 0; snapshot_files[i]; i++)
		if (!strcmp(name, snapshot_files[i]))
			return true;
	return false;
}

/* 1 if dir holds only snapshot files (or nothing), 0 if something else,
 * -1 if it cannot be read. */
static int holds_only_snapshot_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int r = 1;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !is_snapshot_file(e->d_name))
			r = 0;
	closedir(d);
	return r;
}

static void remove_snapshot_dir(const char *dir)
{
	char path[PATH_MAX + 32];
	for (int i = 0; snapshot_files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, snapshot_files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int snapshot_dir_begin(const char *dir, char *work, char *why, size_t whylen)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(why, whylen, "%s exists and is not a directory", dir);
			return -1;
		}
		int only = holds_only_snapshot_files(dir);
		if (only < 0) {
			snprintf(why, whylen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		if (!only) {
			snprintf(why, whylen, "%s holds files that are not a nestvm snapshot's; "
				 "choose another directory", dir);
			return -1;
		}
	} else if (errno != ENOENT) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* Beside dir, so that the final rename stays in one file system. */
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (snprintf(work, PATH_MAX, "%.*s.partial-%d", (int)len, dir, (int)getpid()) >= PATH_MAX) {
		snprintf(why, whylen, "%s: path too long", dir);
		return -1;
	}
	remove_snapshot_dir(work); /* left by a crash of this same pid's predecessor */
	if (mkdir(work, 0700) < 0) {
		snprintf(why, whylen, "%s: %s", work, strerror(errno));
		return -1;
	}
	return 0;
}

int snapshot_dir_write(const char *dir, const char *name, const void *data, size_t len,
		       char *why, size_t whylen)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	const char *p = data;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, whylen, "%s: %s", path, n < 0 ? strerror(errno) : "short write");
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		snprintf(why, whylen, "%s: fsync: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return close(fd);
}

int snapshot_dir_commit(const char *work, const char *dir, char *why, size_t whylen)
{
	if (fsync_path(work) < 0) {
		snprintf(why, whylen, "%s: fsync: %s", work, strerror(errno));
		return -1;
	}
	/* An empty or absent dir is simply replaced; a snapshot there is
	 * swapped with the new one in one step, then removed. */
	rmdir(dir);
	if (rename(work, dir) < 0) {
		if (errno != ENOTEMPTY && errno != EEXIST) {
			snprintf(why, whylen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		if (renameat2(AT_FDCWD, work, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
			/* A file system without RENAME_EXCHANGE: move the old one
			 * aside first (a crash between the two renames leaves it
			 * there, whole, under the .old name). */
			char old[PATH_MAX + 16];
			snprintf(old, sizeof(old), "%s.old", work);
			remove_snapshot_dir(old);
			if (rename(dir, old) < 0 || rename(work, dir) < 0) {
				snprintf(why, whylen, "%s: cannot replace it: %s", dir, strerror(errno));
				return -1;
			}
			remove_snapshot_dir(old);
		} else {
			remove_snapshot_dir(work); /* now the old snapshot */
		}
	}
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	if (fsync_path(dirname(parent)) < 0) {
		snprintf(why, whylen, "%s: fsync of its directory: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

void snapshot_dir_abort(const char *work)
{
	remove_snapshot_dir(work);
}
