/* A snapshot directory is written beside its final place and moved there
 * in one step, so a crash or a full disk mid-save never destroys the
 * snapshot that was there before (see vmm/snapshot.h). */
#ifndef NESTVM_VMM_SNAPSHOT_DIR_H
#define NESTVM_VMM_SNAPSHOT_DIR_H

#include <stddef.h>

/* The files a snapshot directory holds; nothing else is ever deleted. */
extern const char *const snapshot_files[];

/* Checks that dir may receive a snapshot (absent, empty, or a snapshot
 * holding only snapshot_files) and creates the work directory beside it,
 * its name in work (PATH_MAX bytes). On failure fills why with one line. */
int snapshot_dir_begin(const char *dir, char *work, char *why, size_t whylen);

/* Writes len bytes of data to dir/name and fsyncs it. */
int snapshot_dir_write(const char *dir, const char *name, const void *data, size_t len,
		       char *why, size_t whylen);

/* Makes work the snapshot at dir: fsyncs it, swaps it into place (the old
 * snapshot is removed only then) and fsyncs the parent directory. */
int snapshot_dir_commit(const char *work, const char *dir, char *why, size_t whylen);

/* Removes the work directory of a save that failed. */
void snapshot_dir_abort(const char *work);

#endif
