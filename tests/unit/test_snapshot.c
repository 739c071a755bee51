/* Unit tests: the snapshot's memory file and disk fingerprints
 * (vmm/snapshot_memory.c, vmm/snapshot_disk.c). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/snapshot_dir.h"
#include "vmm/snapshot_memory.h"

#define PAGE 4096

static char *temp_path(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "/var/tmp/nestvm-unit-%d-%s", (int)getpid(), name);
	return path;
}

static void write_file(const char *path, const void *data, size_t len, off_t at)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
	close(fd);
}

/* A size that is not a multiple of 4 KiB: the walk once went round for
 * ever on it (with every vCPU paused during a snapshot). The alarm turns
 * a hang into a failure. Its last, partial page counts. */
static void fingerprint_of_odd_sized_disk(void **state)
{
	(void)state;
	char *path = temp_path("disk4608");
	unlink(path);
	uint8_t data[4608];
	memset(data, 0xab, sizeof(data));
	write_file(path, data, sizeof(data), 0);
	uint64_t size = 0, fp1 = 0, fp2 = 0;
	alarm(20);
	assert_int_equal(snapshot_disk_fingerprint(path, &size, &fp1), 0);
	assert_int_equal(size, 4608);
	data[4600] = 0x01; /* a change in the partial page changes the fingerprint */
	write_file(path, data, sizeof(data), 0);
	assert_int_equal(snapshot_disk_fingerprint(path, &size, &fp2), 0);
	alarm(0);
	assert_true(fp1 != fp2);
	unlink(path);
}

/* Images smaller than a page (the walk's buffer is sized to them): an
 * empty one and a 100-byte one fingerprint, and a byte of the latter
 * counts. */
static void fingerprint_of_tiny_disks(void **state)
{
	(void)state;
	char *path = temp_path("tiny");
	unlink(path);
	write_file(path, "", 0, 0);
	uint64_t size = 1, empty = 0, fp1 = 0, fp2 = 0;
	assert_int_equal(snapshot_disk_fingerprint(path, &size, &empty), 0);
	assert_int_equal(size, 0);
	uint8_t data[100];
	memset(data, 0xab, sizeof(data));
	write_file(path, data, sizeof(data), 0);
	assert_int_equal(snapshot_disk_fingerprint(path, &size, &fp1), 0);
	assert_int_equal(size, 100);
	data[99] = 0xac;
	write_file(path, data, sizeof(data), 0);
	assert_int_equal(snapshot_disk_fingerprint(path, &size, &fp2), 0);
	assert_true(fp1 != fp2 && fp1 != empty);
	unlink(path);
}

/* The same content fingerprints the same, sparse or not; different
 * content does not. */
static void fingerprint_ignores_allocation(void **state)
{
	(void)state;
	char *sparse = strdup(temp_path("sparse")), *dense = strdup(temp_path("dense"));
	unlink(sparse);
	unlink(dense);
	uint8_t page[PAGE];
	memset(page, 0x11, sizeof(page));
	write_file(sparse, page, PAGE, 5 * 1024 * 1024 + 3 * PAGE);
	assert_int_equal(truncate(sparse, 8 * 1024 * 1024 + 100), 0);
	uint8_t *all = calloc(1, 8 * 1024 * 1024 + 100);
	memcpy(all + 5 * 1024 * 1024 + 3 * PAGE, page, PAGE);
	write_file(dense, all, 8 * 1024 * 1024 + 100, 0);
	uint64_t s1, s2, f1, f2;
	alarm(20);
	assert_int_equal(snapshot_disk_fingerprint(sparse, &s1, &f1), 0);
	assert_int_equal(snapshot_disk_fingerprint(dense, &s2, &f2), 0);
	assert_int_equal(s1, s2);
	assert_true(f1 == f2);
	all[7 * 1024 * 1024] = 1;
	write_file(dense, all, 8 * 1024 * 1024 + 100, 0);
	assert_int_equal(snapshot_disk_fingerprint(dense, &s2, &f2), 0);
	alarm(0);
	assert_true(f1 != f2);
	free(all);
	unlink(sparse);
	unlink(dense);
	free(sparse);
	free(dense);
}

static uint8_t *map_ram(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

/* Touched pages with data come back; zero pages and untouched pages are
 * holes; a memory file that grew after the checks never writes past RAM. */
static void memory_round_trip(void **state)
{
	(void)state;
	const size_t pages = 1024, size = pages * PAGE;
	uint8_t *ram = map_ram(size);
	for (size_t i = 0; i < pages; i += 3)
		memset(ram + i * PAGE, (int)(i % 251) + 1, PAGE);
	memset(ram + 7 * PAGE, 0, PAGE); /* touched, but zeros */
	char *path = temp_path("memory.bin");
	char why[256] = "";
	uint64_t h_save, bytes, h_load;
	assert_int_equal(snapshot_memory_save(ram, size, path, &h_save, &bytes, why, sizeof(why)), 0);
	assert_int_equal(bytes, (uint64_t)((pages + 2) / 3) * PAGE); /* every third page */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)size);
	assert_true((uint64_t)st.st_blocks * 512 < size); /* sparse */

	/* Grow the file past RAM: the load must stop at RAM's end. The page
	 * after RAM is a guard page. */
	uint8_t junk[PAGE];
	memset(junk, 0xee, sizeof(junk));
	write_file(path, junk, PAGE, (off_t)size);
	uint8_t *copy_area = mmap(NULL, size + PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(copy_area != MAP_FAILED);
	assert_int_equal(mprotect(copy_area + size, PAGE, PROT_NONE), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(snapshot_memory_load(copy_area, size, fd, &h_load), 0);
	close(fd);
	assert_true(h_load == h_save);
	assert_memory_equal(copy_area, ram, size);
	munmap(copy_area, size + PAGE);
	munmap(ram, size);
	unlink(path);
}

/* --- swapped-out pages --------------------------------------------------- */

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* The child: RAM bigger than its memory cgroup's limit, so most of it is
 * swapped out (and out of the swap cache), then saved. */
static int swapped_child(const char *cgroup_procs, const char *file)
{
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write_text(cgroup_procs, pid) < 0)
		return 77;
	const size_t pages = 16384, size = pages * PAGE; /* 64 MiB */
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return 2;
	madvise(ram, size, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < pages; i++)
		memset(ram + i * PAGE, (int)(i % 255) + 1, 64);
	unsigned char *vec = malloc(pages);
	size_t resident = 0;
	if (!vec || mincore(ram, size, vec) < 0)
		return 2;
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	fprintf(stderr, "# %zu of %zu pages resident (mincore) before the save\n", resident, pages);
	if (resident > pages / 2)
		return 77; /* nothing was swapped out: the test proves nothing */
	char why[256] = "";
	uint64_t h, bytes;
	if (snapshot_memory_save(ram, size, file, &h, &bytes, why, sizeof(why)) < 0) {
		fprintf(stderr, "# save: %s\n", why);
		return 1;
	}
	int fd = open(file, O_RDONLY);
	uint8_t page[PAGE];
	size_t lost = 0;
	for (size_t i = 0; i < pages; i++)
		if (pread(fd, page, PAGE, (off_t)(i * PAGE)) != PAGE || page[0] != (uint8_t)(i % 255 + 1))
			lost++;
	close(fd);
	fprintf(stderr, "# %zu of %zu pages saved wrong\n", lost, pages);
	return lost ? 1 : 0;
}

/* A swapped-out guest page is saved with its data (mincore() calls it not
 * resident: it used to be saved as zeros). Needs root, swapon and a memory
 * cgroup; without them the test says SKIP and why. */
static void swapped_pages_are_saved(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: swapped pages: needs root (swapon, memory cgroup)\n");
		skip();
	}
#ifdef __SANITIZE_THREAD__
	/* One thread, no races to find; and ThreadSanitizer's shadow memory
	 * alone is over the cgroup's limit. The ASan build runs it. */
	fprintf(stderr, "SKIP: swapped pages: single-threaded, and the 24 MiB cgroup cannot hold "
			"ThreadSanitizer's shadow memory\n");
	skip();
#endif
	char swapfile[256], cg[256], procs[300], limit[300], file[256];
	snprintf(swapfile, sizeof(swapfile), "%s", temp_path("swap"));
	snprintf(file, sizeof(file), "%s", temp_path("swapped-memory.bin"));
	const char *v1 = "/sys/fs/cgroup/memory";
	int is_v1 = access(v1, W_OK) == 0;
	snprintf(cg, sizeof(cg), "%s/nestvm-unit-%d", is_v1 ? v1 : "/sys/fs/cgroup", (int)getpid());
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	snprintf(limit, sizeof(limit), "%s/%s", cg, is_v1 ? "memory.limit_in_bytes" : "memory.max");

	uint8_t *zeros = calloc(1, 1 << 20);
	int fd = open(swapfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 128; i++)
		assert_int_equal(write(fd, zeros, 1 << 20), 1 << 20);
	fsync(fd);
	close(fd);
	free(zeros);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "mkswap -q %s > /dev/null 2>&1", swapfile);
	const char *why_skip = NULL;
	if (system(cmd) != 0)
		why_skip = "mkswap failed";
	else if (swapon(swapfile, 0) < 0)
		why_skip = "swapon refused a swap file here";
	else if (mkdir(cg, 0755) < 0 || write_text(limit, "25165824") < 0)
		why_skip = "no memory cgroup to limit a process with";
	int status = 0;
	if (!why_skip) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(swapped_child(procs, file));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			why_skip = "the kernel swapped nothing out";
	}
	rmdir(cg);
	swapoff(swapfile);
	unlink(swapfile);
	unlink(file);
	if (why_skip) {
		fprintf(stderr, "SKIP: swapped pages: %s\n", why_skip);
		skip();
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void read_text(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* The snapshot directory is replaced whole or not at all, and a
 * directory with anything else in it is never written into. */
static void snapshot_dir_replaces_whole_or_not_at_all(void **state)
{
	(void)state;
	char dir[256], work[PATH_MAX], why[512], path[512], text[64];
	snprintf(dir, sizeof(dir), "%s", temp_path("snapdir"));
	assert_int_equal(snapshot_dir_begin(dir, work, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_write(work, "state.bin", "old", 3, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_commit(work, dir, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/state.bin", dir);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "old");

	/* A save that fails: the old snapshot stays. */
	assert_int_equal(snapshot_dir_begin(dir, work, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_write(work, "state.bin", "half", 4, why, sizeof(why)), 0);
	snapshot_dir_abort(work);
	assert_int_equal(access(work, F_OK), -1);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "old");

	/* One that succeeds replaces it, leaving nothing beside it. */
	assert_int_equal(snapshot_dir_begin(dir, work, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_write(work, "state.bin", "new", 3, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_write(work, "manifest.json", "{}", 2, why, sizeof(why)), 0);
	assert_int_equal(snapshot_dir_commit(work, dir, why, sizeof(why)), 0);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "new");
	assert_int_equal(access(work, F_OK), -1);

	/* A foreign file makes the directory off limits. */
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	write_file(path, "mine", 4, 0);
	assert_int_equal(snapshot_dir_begin(dir, work, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a nestvm snapshot's"));
	unlink(path);
	for (int i = 0; snapshot_files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, snapshot_files[i]);
		unlink(path);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fingerprint_of_odd_sized_disk),
		cmocka_unit_test(fingerprint_of_tiny_disks),
		cmocka_unit_test(fingerprint_ignores_allocation),
		cmocka_unit_test(memory_round_trip),
		cmocka_unit_test(swapped_pages_are_saved),
		cmocka_unit_test(snapshot_dir_replaces_whole_or_not_at_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
