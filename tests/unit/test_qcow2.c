/* Unit tests: qcow2 images (block/qcow2.c) made by QEMU's own qemu-img
 * are read byte for byte as `qemu-img convert -O raw` reads them: cluster
 * sizes from 512 bytes to 2 MiB, versions 2 and 3, compressed clusters,
 * zero clusters, and a backing chain three deep over a raw base shorter
 * than the overlay. Hostile images (made by patching real ones) are
 * refused with one line naming what is wrong.
 *
 * Writing (block/qcow2_write.c): random writes, zeroes and discards, made
 * the same way to a raw copy, leave images that `qemu-img check` finds
 * clean and `qemu-img compare` finds equal to the copy; 20 rounds of
 * SIGKILL to a process writing and flushing leave at most leaks, and
 * every write it saw flushed. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/disk.h"
#include "util/log.h"

static char dir[128];

static const char *at(const char *name)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

/* Runs a shell command (qemu-img, qemu-io) and asserts it succeeded. */
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[2400];
	if (snprintf(full, sizeof(full), "cd %s && { %s; } > /dev/null 2>&1", dir, cmd) >= (int)sizeof(full))
		fail_msg("command too long: %s", cmd);
	if (system(full) != 0)
		fail_msg("command failed: %s", cmd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The whole disk through disk_open, in reads of odd sizes that straddle
 * clusters, against qemu-img's own raw conversion of it. */
static void assert_reads_like_qemu(const char *image)
{
	sh("qemu-img convert -O raw %s expected.raw", image);
	size_t len;
	uint8_t *expected = read_file(at("expected.raw"), &len);
	struct disk *d = disk_open("--disk test", at(image), true);
	assert_non_null(d);
	assert_string_equal(d->format, "qcow2");
	assert_int_equal(d->size, len);
	uint8_t *got = malloc(len + (2 << 20));
	assert_non_null(got);
	memset(got, 0xee, len + (2 << 20));
	static const size_t steps[] = { 512, 3584, 65536 + 512, 1 << 20 };
	uint64_t off = 0;
	for (unsigned i = 0; off < len; i++) {
		size_t n = steps[i % 4];
		/* two buffers per read: the boundary between them moves too */
		size_t first = n / 3;
		struct iovec iov[2] = { { got + off, first }, { got + off + first, n - first } };
		assert_int_equal(d->ops->read(d, iov, 2, off), 0);
		off += n;
	}
	/* the reads past the end of the disk were zeros */
	for (uint64_t i = len; i < off; i++)
		assert_int_equal(got[i], 0);
	assert_memory_equal(got, expected, len);
	free(got);
	free(expected);
	disk_close(d);
}

/* 3 MiB of content: patterns, a run of zeros, a hole, data at the end. */
static void make_content(const char *name)
{
	uint8_t *buf = calloc(1, 3 << 20);
	assert_non_null(buf);
	for (size_t i = 0; i < (1 << 20); i++)
		buf[i] = (uint8_t)(i * 7 + i / 4096);
	memset(buf + (1 << 20) + 123, 0x5a, 70000);
	memset(buf + (3 << 20) - 4096, 0xc3, 4096);
	int fd = open(at(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, 3 << 20), 3 << 20);
	close(fd);
	free(buf);
}

static void reads_every_cluster_size_and_version(void **state)
{
	(void)state;
	make_content("content.raw");
	static const char *sizes[] = { "512", "4k", "64k", "2M" };
	for (unsigned i = 0; i < 4; i++) {
		for (int compat3 = 0; compat3 < 2; compat3++) {
			sh("qemu-img convert -f raw -O qcow2 -o cluster_size=%s,compat=%s content.raw img.qcow2",
			   sizes[i], compat3 ? "1.1" : "0.10");
			assert_reads_like_qemu("img.qcow2");
		}
	}
}

static void reads_compressed_clusters(void **state)
{
	(void)state;
	make_content("content.raw");
	sh("qemu-img convert -c -f raw -O qcow2 content.raw comp.qcow2");
	assert_reads_like_qemu("comp.qcow2");
	sh("qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compat=0.10 content.raw comp2.qcow2");
	assert_reads_like_qemu("comp2.qcow2");
}

/* raw base (1 MiB) <- qcow2 (2 MiB) <- qcow2 <- qcow2 (4 MiB), with
 * writes, zeroed ranges and discards at every level; the names relative,
 * so they resolve against each overlay's own directory. */
static void reads_a_backing_chain_three_deep(void **state)
{
	(void)state;
	sh("mkdir -p sub && qemu-img create -f raw sub/base.raw 1M && "
	   "qemu-io -f raw -c 'write -P 0x11 0 1M' sub/base.raw");
	sh("qemu-img create -f qcow2 -b base.raw -F raw sub/l1.qcow2 2M && "
	   "qemu-io -c 'write -P 0x22 64k 64k' -c 'write -z 256k 64k' -c 'write -P 0x23 1536k 4k' "
	   "sub/l1.qcow2");
	sh("qemu-img create -f qcow2 -b sub/l1.qcow2 -F qcow2 l2.qcow2 3M && "
	   "qemu-io -c 'write -P 0x33 100k 10k' -c 'discard 0 64k' l2.qcow2");
	sh("qemu-img create -f qcow2 -o cluster_size=4k -b l2.qcow2 -F qcow2 top.qcow2 4M && "
	   "qemu-io -c 'write -P 0x44 3M 8k' -c 'write -z 70k 8k' top.qcow2");
	assert_reads_like_qemu("top.qcow2");
}

/* Opens one image; what it printed goes to *text (one line expected). */
static struct disk *open_quoting(const char *image, bool readonly, const char *message)
{
	char errpath[256];
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	struct disk *d = disk_open("--disk test", at(image), readonly);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	size_t len;
	char *text = (char *)read_file(errpath, &len);
	text[len] = 0;
	if (!strstr(text, message))
		fail_msg("expected '%s', got '%s'", message, text);
	char *nl = strchr(text, '\n');
	assert_true(nl && nl[1] == 0); /* one line */
	free(text);
	return d;
}

/* Opening one image: NULL expected, and the message line it printed. */
static void assert_refused(const char *image, const char *message)
{
	struct disk *d = open_quoting(image, true, message);
	disk_close(d);
	assert_null(d);
}

static void patch(const char *image, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(at(image), O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void patch32(const char *image, uint64_t off, uint32_t v)
{
	v = htobe32(v);
	patch(image, off, &v, 4);
}

static void patch64(const char *image, uint64_t off, uint64_t v)
{
	v = htobe64(v);
	patch(image, off, &v, 8);
}

/* A fresh 1 MiB version-3 image with 64 KiB clusters and data at 0:
 * header cluster, L1 at 0x30000 (qemu-img's layout: refcount table,
 * refcount block, L1, L2, data). */
static void fresh(const char *name)
{
	sh("qemu-img create -f qcow2 %s 1M && qemu-io -c 'write -P 0x66 0 64k' %s", name, name);
}

static uint64_t be64_in(const char *image, uint64_t off)
{
	size_t len;
	uint8_t *b = read_file(at(image), &len);
	uint64_t v;
	memcpy(&v, b + off, 8);
	free(b);
	return be64toh(v);
}

static void refuses_hostile_images(void **state)
{
	(void)state;
	fresh("h.qcow2");
	uint64_t l1 = be64_in("h.qcow2", 40);
	uint64_t l2 = be64_in("h.qcow2", l1) & 0x00fffffffffffe00ULL;
	assert_true(l1 != 0 && l2 != 0);

	patch32("h.qcow2", 20, 30); /* cluster_bits */
	assert_refused("h.qcow2", "cluster_bits 30 is out of range");
	fresh("h.qcow2");
	patch32("h.qcow2", 36, 1u << 20); /* L1 entries far beyond the file */
	assert_refused("h.qcow2", "L1 table at");
	fresh("h.qcow2");
	patch64("h.qcow2", 40, 1ULL << 40); /* L1 offset past the end */
	assert_refused("h.qcow2", "is not inside the file");
	fresh("h.qcow2");
	patch64("h.qcow2", l1, 0x8000000000000000ULL | (1ULL << 40)); /* L2 past the end */
	assert_refused("h.qcow2", "L1 entry 0 points to 0x10000000000, not a whole cluster");
	fresh("h.qcow2");
	patch64("h.qcow2", l1, 0x8000000000000000ULL | 0x200); /* L2 table in the header */
	assert_refused("h.qcow2", "L1 entry 0 points to 0x200, into the header");
	fresh("h.qcow2");
	patch64("h.qcow2", 24, 1ULL << 30); /* 1 GiB: two L1 entries of 512 MiB each... */
	patch32("h.qcow2", 36, 2);
	patch64("h.qcow2", l1 + 8, 0x8000000000000000ULL | l2); /* ...on one L2 table */
	assert_refused("h.qcow2", "two L1 entries point to the same L2 table");
	fresh("h.qcow2");
	patch64("h.qcow2", l2, 0x8000000000000000ULL | 1ULL << 40); /* data past the end */
	assert_refused("h.qcow2", "entry 0: a data cluster past the end of the file");
	fresh("h.qcow2");
	patch64("h.qcow2", l2 + 8, 0x8000000000000000ULL | 0x200); /* data in the header */
	assert_refused("h.qcow2", "entry 1: a misaligned cluster offset");
	fresh("h.qcow2");
	patch64("h.qcow2", l2 + 8, 0x201); /* a zero cluster "preallocated" in the header */
	assert_refused("h.qcow2", "entry 1: a misaligned cluster offset");
	fresh("h.qcow2");
	patch64("h.qcow2", l2 + 16, 0x4000000000000000ULL | 1ULL << 50); /* compressed, past the end */
	assert_refused("h.qcow2", "entry 2: a compressed cluster past the end of the file");
	fresh("h.qcow2");
	patch64("h.qcow2", l2, 0x8000000000000000ULL | 0x10000); /* into the refcount table */
	/* 0x10000 is a cluster of metadata, not the header: allowed to read */
	struct disk *d = disk_open("--disk test", at("h.qcow2"), true);
	assert_non_null(d);
	disk_close(d);
	fresh("h.qcow2");
	patch64("h.qcow2", 72, 1ULL << 5); /* unknown incompatible feature */
	assert_refused("h.qcow2", "unknown incompatible qcow2 features 0x20");
	fresh("h.qcow2");
	patch64("h.qcow2", 72, 1ULL << 2);
	assert_refused("h.qcow2", "external data file");
	fresh("h.qcow2");
	patch64("h.qcow2", 72, 1ULL << 4);
	assert_refused("h.qcow2", "extended L2 entries");
	fresh("h.qcow2");
	patch32("h.qcow2", 32, 1);
	assert_refused("h.qcow2", "encrypted qcow2 images are not supported");
	fresh("h.qcow2");
	patch32("h.qcow2", 4, 4);
	assert_refused("h.qcow2", "qcow2 version 4 is not supported");
	sh("qemu-img create -f qcow2 -o compression_type=zstd z.qcow2 1M || "
	   "{ qemu-img create -f qcow2 z.qcow2 1M && printf '\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x08' | "
	   "dd of=z.qcow2 bs=1 seek=72 conv=notrunc && printf '\\x01' | dd of=z.qcow2 bs=1 seek=104 conv=notrunc; }");
	assert_refused("z.qcow2", "zstd-compressed qcow2 clusters are not supported");
	/* backing names: outside the first cluster, a loop, too deep, no format */
	sh("qemu-img create -f qcow2 b.qcow2 1M && qemu-img create -f qcow2 -b b.qcow2 -F qcow2 o.qcow2 1M");
	patch64("o.qcow2", 8, 0xfffc); /* 7 bytes from 0xfffc cross into the second cluster */
	assert_refused("o.qcow2", "the backing file's name lies outside the first cluster");
	sh("qemu-img create -f qcow2 -b b.qcow2 -F qcow2 loop.qcow2 1M");
	uint64_t name_off = be64_in("loop.qcow2", 8);
	patch32("loop.qcow2", 16, 10);
	patch("loop.qcow2", name_off, "loop.qcow2", 10);
	assert_refused("loop.qcow2", "the backing chain loops back to an image above it");
	sh("qemu-img create -f qcow2 c0.qcow2 1M && for i in $(seq 1 17); do "
	   "qemu-img create -f qcow2 -b c$((i - 1)).qcow2 -F qcow2 c$i.qcow2 1M || exit 1; done");
	assert_refused("c17.qcow2", "more than 16 backing files below the disk");
	d = disk_open("--disk test", at("c16.qcow2"), true); /* 16 below it: allowed */
	assert_non_null(d);
	disk_close(d);
	/* a kernel file as a raw backing file: /proc/self/mem would be
	 * nestvm's own memory */
	sh("qemu-img create -f qcow2 -u -b /proc/self/mem -F raw mem.qcow2 1M");
	assert_refused("mem.qcow2", "a backing file must be a regular file");
	sh("qemu-img create -f qcow2 -b b.qcow2 -F qcow2 nf.qcow2 1M");
	/* the backing format extension made unknown (ignored) */
	uint8_t unknown[4] = { 0x12, 0x34, 0x56, 0x78 };
	{
		size_t len;
		uint8_t *b = read_file(at("nf.qcow2"), &len);
		uint8_t want[4] = { 0xe2, 0x79, 0x2a, 0xca };
		uint8_t *ext = memmem(b, 4096, want, 4);
		assert_non_null(ext);
		patch("nf.qcow2", (uint64_t)(ext - b), unknown, 4);
		free(b);
	}
	assert_refused("nf.qcow2", "has no recorded format; set it with qemu-img rebase");
	/* a raw image holding a qcow2 header as a backing file stays raw when
	 * the overlay says raw */
	sh("qemu-img create -f qcow2 -b b.qcow2 -F raw asraw.qcow2 1M");
	d = disk_open("--disk test", at("asraw.qcow2"), true);
	assert_non_null(d);
	disk_close(d);
	/* refcount blocks: two at one offset, one on the L1 table */
	fresh("h.qcow2");
	uint64_t rt = be64_in("h.qcow2", 48);
	uint64_t rb = be64_in("h.qcow2", rt);
	patch64("h.qcow2", rt + 8, rb);
	assert_refused("h.qcow2", "two refcount blocks overlap at");
	fresh("h.qcow2");
	patch64("h.qcow2", rt + 8, l1);
	assert_refused("h.qcow2", "refcount block 1 at 0x30000 overlaps the L1 table");
	fresh("h.qcow2");
	patch64("h.qcow2", 48, 1ULL << 40);
	assert_refused("h.qcow2", "refcount table at 0x10000000000 (1 clusters) is not inside the file");
	fresh("h.qcow2");
	patch32("h.qcow2", 96, 7);
	assert_refused("h.qcow2", "refcount_order 7 is out of range");
}

/* A raw disk reads zeros past the size it had when opened, even where
 * the file has grown since (a backing file under a larger overlay). */
static void raw_reads_stop_at_the_disk_size(void **state)
{
	(void)state;
	sh("head -c 1024 /dev/zero | tr '\\0' 'a' > grow.raw");
	struct disk *d = disk_open("--disk test", at("grow.raw"), true);
	assert_non_null(d);
	assert_int_equal(d->size, 1024);
	sh("head -c 4096 /dev/zero | tr '\\0' 'b' >> grow.raw");
	uint8_t buf[3000];
	memset(buf, 0xee, sizeof(buf));
	struct iovec iov[2] = { { buf, 1000 }, { buf + 1000, 2000 } };
	assert_int_equal(d->ops->read(d, iov, 2, 24), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf[i], 'a');
	for (int i = 1000; i < 3000; i++)
		assert_int_equal(buf[i], 0);
	disk_close(d);
}

/* A raw image whose format was guessed: the guest may not write a qcow2
 * magic into its first sector (the next open would read the image as
 * qcow2, with a backing file of the guest's choosing). */
static void probed_raw_refuses_a_qcow2_magic(void **state)
{
	(void)state;
	sh("truncate -s 1M guest.raw");
	struct disk *d = disk_open("--disk test", at("guest.raw"), false);
	assert_non_null(d);
	assert_string_equal(d->format, "raw");
	uint8_t sector[512] = "QFI\xfb";
	struct iovec iov = { sector, sizeof(sector) };
	assert_int_equal(d->ops->write(d, &iov, 1, 0), -1);
	iov = (struct iovec){ sector, sizeof(sector) };
	assert_int_equal(d->ops->write(d, &iov, 1, 512), 0); /* elsewhere it is data */
	sector[0] = 'X';
	iov = (struct iovec){ sector, sizeof(sector) };
	assert_int_equal(d->ops->write(d, &iov, 1, 0), 0);
	disk_close(d);
}

/* ---- writing ---- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* The exit status of a shell command, its output kept in `out`. */
static int sh_status(const char *fmt, ...)
{
	char cmd[2048], full[2400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd %s && { %s; } > out 2>&1", dir, cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void print_out(void)
{
	size_t len;
	char *text = (char *)read_file(at("out"), &len);
	fprintf(stderr, "%.*s", (int)len, text);
	free(text);
}

/* qemu-img check: 0 clean, 3 leaks only (returned), anything else fails. */
static unsigned checked_leaks(const char *image, bool leaks_allowed)
{
	int st = sh_status("qemu-img check --output=json %s", image);
	if (st != 0 && !(st == 3 && leaks_allowed)) {
		print_out();
		fail_msg("qemu-img check %s: exit status %d", image, st);
	}
	size_t len;
	char *text = (char *)read_file(at("out"), &len);
	text[len] = 0;
	char *leaks = strstr(text, "\"leaks\":");
	unsigned n = leaks ? (unsigned)strtoul(leaks + 8, NULL, 10) : 0;
	free(text);
	return n;
}

struct write_case {
	const char *what, *make; /* the shell that makes w.qcow2 */
	bool table_grows;        /* the refcount table must move */
};

/* Random writes, zeroes and discards through the disk, mirrored into
 * mirror.raw; reads compared on the way; then qemu-img's verdicts. */
static void assert_writes_like_a_raw_mirror(const struct write_case *c)
{
	sh("rm -f w.qcow2 mirror.raw base*.qcow2 base.raw");
	sh("%s", c->make);
	sh("qemu-img convert -O raw w.qcow2 mirror.raw");
	uint64_t table = be64_in("w.qcow2", 48);
	struct disk *d = disk_open("--disk test", at("w.qcow2"), false);
	if (!d)
		fail_msg("%s: cannot open w.qcow2 for writing", c->what);
	assert_false(d->readonly);
	int mirror = open(at("mirror.raw"), O_RDWR);
	assert_true(mirror >= 0);
	uint64_t size = d->size;
	size_t max = 300 << 10;
	uint8_t *buf = malloc(max), *got = malloc(max), *want = malloc(max);
	assert_non_null(buf);
	assert_non_null(got);
	assert_non_null(want);
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int op = 0; op < 400; op++) {
		uint64_t r = rnd();
		uint64_t len = 512 * (1 + rnd() % (max / 512));
		uint64_t off = 512 * (rnd() % (size / 512));
		if (len > size - off)
			len = size - off;
		struct iovec iov[2];
		switch (r % 8) {
		case 0: case 1: case 2: case 3: { /* write, in two buffers */
			for (uint64_t i = 0; i < len; i++)
				buf[i] = (uint8_t)(op * 31 + i / 512);
			iov[0] = (struct iovec){ buf, len / 3 };
			iov[1] = (struct iovec){ buf + len / 3, len - len / 3 };
			assert_int_equal(d->ops->write(d, iov, 2, off), 0);
			assert_int_equal(pwrite(mirror, buf, len, (off_t)off), (ssize_t)len);
			break;
		}
		case 4: /* write zeroes */
			assert_int_equal(d->ops->zero(d, off, len, true), 0);
			memset(buf, 0, len);
			assert_int_equal(pwrite(mirror, buf, len, (off_t)off), (ssize_t)len);
			break;
		case 5: /* discard: each byte is what it was, or zero (never the
			 * backing file's) */
			assert_int_equal(d->ops->zero(d, off, len, false), 0);
			iov[0] = (struct iovec){ got, len };
			assert_int_equal(d->ops->read(d, iov, 1, off), 0);
			assert_int_equal(pread(mirror, want, len, (off_t)off), (ssize_t)len);
			for (uint64_t i = 0; i < len; i++)
				if (got[i] != want[i] && got[i] != 0)
					fail_msg("%s: after a discard at %#llx, byte %llu is %#x, not %#x or 0",
						 c->what, (unsigned long long)off, (unsigned long long)i,
						 got[i], want[i]);
			assert_int_equal(pwrite(mirror, got, len, (off_t)off), (ssize_t)len);
			break;
		case 6:
			assert_int_equal(d->ops->flush(d), 0);
			break;
		default: /* read back */
			iov[0] = (struct iovec){ got, len };
			assert_int_equal(d->ops->read(d, iov, 1, off), 0);
			assert_int_equal(pread(mirror, want, len, (off_t)off), (ssize_t)len);
			if (memcmp(got, want, len))
				fail_msg("%s: read at %#llx (%llu bytes) differs from the mirror", c->what,
					 (unsigned long long)off, (unsigned long long)len);
		}
	}
	disk_close(d);
	close(mirror);
	free(buf);
	free(got);
	free(want);
	assert_int_equal(checked_leaks("w.qcow2", false), 0);
	if (c->table_grows && be64_in("w.qcow2", 48) == table)
		fail_msg("%s: the refcount table did not grow", c->what);
	if (sh_status("qemu-img compare -f raw -F qcow2 mirror.raw w.qcow2") != 0) {
		print_out();
		fail_msg("%s: qemu-img compare: the image differs from the mirror", c->what);
	}
	/* and nestvm reads back what qemu-img does */
	assert_reads_like_qemu("w.qcow2");
}

static void writes_match_a_raw_mirror(void **state)
{
	(void)state;
	make_content("content.raw");
	static const struct write_case cases[] = {
		{ "v3, 64 KiB clusters", "qemu-img create -f qcow2 w.qcow2 4M", false },
		{ "v2, 64 KiB clusters", "qemu-img create -f qcow2 -o compat=0.10 w.qcow2 4M", false },
		/* 512-byte clusters: a refcount block counts 128 KiB, the first
		 * table 8 MiB: new blocks and a table that grows */
		{ "v3, 512-byte clusters", "qemu-img create -f qcow2 -o cluster_size=512 w.qcow2 64M", true },
		{ "v3, 2 MiB clusters", "qemu-img create -f qcow2 -o cluster_size=2M w.qcow2 7M", false },
		{ "v3 with data, unaligned size",
		  "qemu-img convert -O qcow2 -o cluster_size=4k content.raw w.qcow2 && "
		  "qemu-img resize w.qcow2 3148288", false },
		{ "compressed v3 (copy-on-write from compressed clusters)",
		  "qemu-img convert -c -O qcow2 -o cluster_size=4k content.raw w.qcow2", false },
		{ "compressed v2", "qemu-img convert -c -O qcow2 -o compat=0.10 content.raw w.qcow2", false },
		{ "v3 overlay over a compressed qcow2 base",
		  "qemu-img convert -c -O qcow2 -o cluster_size=4k content.raw base.qcow2 && "
		  "qemu-img create -f qcow2 -o cluster_size=16k -b base.qcow2 -F qcow2 w.qcow2", false },
		{ "v2 overlay over a shorter raw base",
		  "head -c 1000000 content.raw > base.raw && "
		  "qemu-img create -f qcow2 -o compat=0.10 -b base.raw -F raw w.qcow2 3M", false },
		{ "v3 overlay, 2 deep",
		  "qemu-img convert -O qcow2 content.raw base0.qcow2 && "
		  "qemu-img create -f qcow2 -b base0.qcow2 -F qcow2 base1.qcow2 && "
		  "qemu-io -c 'write -P 0x77 100k 300k' base1.qcow2 && "
		  "qemu-img create -f qcow2 -o cluster_size=4k -b base1.qcow2 -F qcow2 w.qcow2", false },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_writes_like_a_raw_mirror(&cases[i]);
}

/* What QEMU made and nestvm must not write: opened read-only with a line
 * that says why, or refused with the fix. And a template in use by clones
 * cannot be opened for writing. */
static void opens_read_only_or_refuses_what_it_cannot_write(void **state)
{
	(void)state;
	fresh("h.qcow2");
	patch64("h.qcow2", 72, 1ULL << 1); /* corrupt */
	struct disk *d = open_quoting("h.qcow2", false, "opened read-only: it is marked corrupt");
	assert_non_null(d);
	assert_true(d->readonly);
	uint8_t sector[512] = { 1 };
	struct iovec iov = { sector, sizeof(sector) };
	assert_int_equal(d->ops->write(d, &iov, 1, 0), -1);
	disk_close(d);
	fresh("h.qcow2");
	sh("qemu-img snapshot -c snap h.qcow2");
	d = open_quoting("h.qcow2", false, "opened read-only: it has internal snapshots");
	assert_non_null(d);
	disk_close(d);
	sh("qemu-img create -f qcow2 -o refcount_bits=64 r64.qcow2 1M");
	d = open_quoting("r64.qcow2", false, "opened read-only: its refcounts are not 16 bits wide");
	assert_non_null(d);
	disk_close(d);
	fresh("h.qcow2");
	patch64("h.qcow2", 72, 1ULL << 0); /* dirty */
	d = open_quoting("h.qcow2", false, "repair it with qemu-img check -r all");
	assert_null(d);
	d = disk_open("--disk test", at("h.qcow2"), true); /* reading it is fine */
	assert_non_null(d);
	disk_close(d);
	/* bitmaps (an autoclear feature) are declared stale by a write */
	fresh("h.qcow2");
	patch64("h.qcow2", 88, 1);
	d = disk_open("--disk test", at("h.qcow2"), false);
	assert_non_null(d);
	disk_close(d);
	assert_int_equal(be64_in("h.qcow2", 88), 0);
	/* a template and two linked clones, both running */
	sh("qemu-img create -f qcow2 t.qcow2 1M && qemu-io -c 'write -P 0x31 0 1M' t.qcow2 && "
	   "qemu-img create -f qcow2 -b t.qcow2 -F qcow2 k1.qcow2 && "
	   "qemu-img create -f qcow2 -b t.qcow2 -F qcow2 k2.qcow2");
	struct disk *k1 = disk_open("--disk k1", at("k1.qcow2"), false);
	struct disk *k2 = disk_open("--disk k2", at("k2.qcow2"), false);
	assert_non_null(k1);
	assert_non_null(k2);
	d = open_quoting("t.qcow2", false, "the image is in use by another process");
	assert_null(d);
	memset(sector, 0x41, sizeof(sector));
	iov = (struct iovec){ sector, sizeof(sector) };
	assert_int_equal(k1->ops->write(k1, &iov, 1, 4096), 0);
	iov = (struct iovec){ sector, sizeof(sector) };
	assert_int_equal(k2->ops->read(k2, &iov, 1, 4096), 0);
	assert_int_equal(sector[0], 0x31); /* the other clone still sees the template */
	disk_close(k1);
	disk_close(k2);
}

/* Hostile tables met while writing: a compressed entry laid over the L1
 * table is rewritten without freeing the table; refcount blocks that count
 * every cluster past the end of the file as used are skipped a block at a
 * time. Either way the write lands and reads back. */
static void hostile_tables_while_writing(void **state)
{
	(void)state;
	fresh("h.qcow2");
	uint64_t l1 = be64_in("h.qcow2", 40);
	uint64_t l2 = be64_in("h.qcow2", l1) & 0x00fffffffffffe00ULL;
	/* guest cluster 1: "compressed", one sector at the L1 table */
	patch64("h.qcow2", l2 + 8, 0x4000000000000000ULL | l1);
	uint8_t *buf = malloc(65536), *back = malloc(65536);
	assert_non_null(buf);
	assert_non_null(back);
	memset(buf, 0x7e, 65536);
	struct disk *d = disk_open("--disk test", at("h.qcow2"), false);
	assert_non_null(d);
	struct iovec iov = { buf, 65536 };
	assert_int_equal(d->ops->write(d, &iov, 1, 65536), 0);
	assert_int_equal(d->ops->flush(d), 0);
	disk_close(d);
	assert_int_equal(be64_in("h.qcow2", l1) & 0x00fffffffffffe00ULL, l2); /* L1 intact */
	d = disk_open("--disk test", at("h.qcow2"), true);
	assert_non_null(d);
	iov = (struct iovec){ back, 65536 };
	assert_int_equal(d->ops->read(d, &iov, 1, 65536), 0);
	assert_memory_equal(back, buf, 65536);
	disk_close(d);
	/* every refcount of the first block's range made 1: the next free
	 * cluster is in the range after, where a new block goes */
	fresh("h.qcow2");
	uint64_t rb = be64_in("h.qcow2", be64_in("h.qcow2", 48));
	size_t n = 65536 / 2;
	uint16_t *ones = malloc(n * 2);
	assert_non_null(ones);
	for (size_t i = 0; i < n; i++)
		ones[i] = htobe16(1);
	patch("h.qcow2", rb, ones, n * 2);
	free(ones);
	d = disk_open("--disk test", at("h.qcow2"), false);
	assert_non_null(d);
	iov = (struct iovec){ buf, 65536 };
	assert_int_equal(d->ops->write(d, &iov, 1, 3 * 65536), 0);
	assert_int_equal(d->ops->flush(d), 0);
	iov = (struct iovec){ back, 65536 };
	assert_int_equal(d->ops->read(d, &iov, 1, 3 * 65536), 0);
	assert_memory_equal(back, buf, 65536);
	disk_close(d);
	struct stat st;
	assert_int_equal(stat(at("h.qcow2"), &st), 0);
	assert_true((uint64_t)st.st_size > (2ULL << 30)); /* past the 2 GiB the first block counts */
	free(buf);
	free(back);
}

/* nestvm and QEMU see each other's images in use (QEMU's byte locks). */
static void locks_like_qemu(void **state)
{
	(void)state;
	sh("rm -f lb.qcow2 lc.qcow2 && qemu-img create -f qcow2 lb.qcow2 1M && "
	   "qemu-img create -f qcow2 -b lb.qcow2 -F qcow2 lc.qcow2");
	/* nestvm runs a clone: qemu-img cannot open the clone, nor write the
	 * template; it may read the template */
	struct disk *d = disk_open("--disk lc", at("lc.qcow2"), false);
	assert_non_null(d);
	if (sh_status("qemu-img info lc.qcow2") == 0)
		fail_msg("qemu-img info opened a clone nestvm is writing");
	if (sh_status("qemu-io -c 'write 0 4k' lb.qcow2") == 0)
		fail_msg("qemu-io wrote the template under nestvm's clone");
	assert_int_equal(sh_status("qemu-img info lb.qcow2"), 0);
	disk_close(d);
	assert_int_equal(sh_status("qemu-img info lc.qcow2"), 0);
	/* qemu-io writes the clone: nestvm cannot open it, nor write the
	 * template */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (chdir(dir) == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			execlp("qemu-io", "qemu-io", "-c", "sleep 20000", "lc.qcow2", (char *)NULL);
		}
		_exit(127);
	}
	/* until qemu-io holds its write lock (looked at, not taken: a
	 * qemu-img run here would hold locks qemu-io's open could trip on) */
	int probe = open(at("lc.qcow2"), O_RDONLY);
	assert_true(probe >= 0);
	for (int i = 0; i < 200; i++) {
		struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 101, .l_len = 1 };
		assert_int_equal(fcntl(probe, F_OFD_GETLK, &l), 0);
		if (l.l_type != F_UNLCK)
			break;
		usleep(50000);
	}
	close(probe);
	d = open_quoting("lc.qcow2", true, "in use by another process (a VM or qemu-img has it open for writing)");
	assert_null(d);
	d = open_quoting("lb.qcow2", false, "in use by another process (a VM or qemu-img that has it open does not allow writing)");
	assert_null(d);
	d = disk_open("--disk lb", at("lb.qcow2"), true); /* reading the template is fine */
	assert_non_null(d);
	disk_close(d);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	d = disk_open("--disk lc", at("lc.qcow2"), false);
	assert_non_null(d);
	disk_close(d);
}

/* The crash test's child: from generation `from` on, writes generation g
 * (64 KiB less a little, at a place of its own, not cluster-aligned) and,
 * every few, flushes and says the last generation flushed on `report`. */
#define SLOT (96 << 10)
static void write_generations(const char *image, uint64_t from, int report)
{
	struct disk *d = disk_open("--disk crash", image, false);
	if (!d)
		_exit(2);
	uint8_t *buf = malloc(SLOT);
	for (uint64_t g = from;; g++) {
		uint64_t len = (64 << 10) - 512 * (g % 7), off = g * SLOT + 512 * (g % 13);
		if (off + len > d->size)
			_exit(3);
		memset(buf, (int)(g % 251) + 1, len);
		memcpy(buf, &g, 8);
		struct iovec iov = { buf, len };
		if (d->ops->write(d, &iov, 1, off) < 0)
			_exit(4);
		if (g % 3 == 2) {
			if (d->ops->flush(d) < 0)
				_exit(5);
			if (write(report, &g, 8) != 8)
				_exit(6);
		}
	}
}

/* Generations [from, to] read back whole from the image. */
static void assert_generations(const char *image, uint64_t from, uint64_t to, int round)
{
	struct disk *d = disk_open("--disk check", at(image), true);
	assert_non_null(d);
	uint8_t *buf = malloc(SLOT);
	assert_non_null(buf);
	for (uint64_t h = from; h <= to; h++) {
		uint64_t len = (64 << 10) - 512 * (h % 7), off = h * SLOT + 512 * (h % 13);
		struct iovec iov = { buf, len };
		assert_int_equal(d->ops->read(d, &iov, 1, off), 0);
		uint64_t found;
		memcpy(&found, buf, 8);
		if (found != h)
			fail_msg("round %d: generation %llu, flushed, reads as %llu", round,
				 (unsigned long long)h, (unsigned long long)found);
		for (uint64_t i = 8; i < len; i++)
			if (buf[i] != (uint8_t)((h % 251) + 1))
				fail_msg("round %d: generation %llu, flushed, is torn at byte %llu", round,
					 (unsigned long long)h, (unsigned long long)i);
	}
	free(buf);
	disk_close(d);
}

static void survives_sigkill_while_writing_and_flushing(void **state)
{
	(void)state;
	/* a linked clone with 4 KiB clusters over a compressed base: copy-on-
	 * write from the base, new L2 tables, new refcount blocks */
	make_content("content.raw");
	sh("rm -f c.qcow2 cbase.qcow2 && qemu-img convert -c -O qcow2 content.raw cbase.qcow2 && "
	   "qemu-img create -f qcow2 -o cluster_size=4k -b cbase.qcow2 -F qcow2 c.qcow2 4G");
	/* Each round writes from `next` on: past every generation flushed, so
	 * none is overwritten; those begun and not flushed may be. */
	uint64_t flushed = 0, next = 0, ranges[20][2], n_ranges = 0;
	unsigned leaks = 0;
	srand((unsigned)time(NULL));
	for (int round = 0; round < 20; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			write_generations(at("c.qcow2"), next, p[1]);
		}
		close(p[1]);
		/* let it run, then kill it wherever it is */
		struct timespec t = { 0, (long)(5 + rand() % 60) * 1000000L };
		nanosleep(&t, NULL);
		kill(pid, SIGKILL);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFSIGNALED(st))
			fail_msg("round %d: the writer exited with status %d", round, WEXITSTATUS(st));
		uint64_t g;
		bool now = false;
		while (read(p[0], &g, 8) == 8) {
			flushed = g;
			now = true;
		}
		close(p[0]);
		leaks += checked_leaks("c.qcow2", true);
		if (now) {
			assert_generations("c.qcow2", next, flushed, round);
			ranges[n_ranges][0] = next;
			ranges[n_ranges++][1] = flushed;
		}
		next = (now ? flushed : next) + 4;
	}
	assert_true(n_ranges > 0);
	/* and the first rounds' are there still */
	uint64_t total = 0;
	for (uint64_t i = 0; i < n_ranges; i++) {
		assert_generations("c.qcow2", ranges[i][0], ranges[i][1], 20);
		total += ranges[i][1] - ranges[i][0] + 1;
	}
	printf("# crash rounds: 20 (%llu with a flush), generations flushed: %llu, clusters leaked: %u\n",
	       (unsigned long long)n_ranges, (unsigned long long)total, leaks);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/var/tmp/nestvm-unit-%d-qcow2", (int)getpid());
	return mkdir(dir, 0700);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* --- requests at once ----------------------------------------------------- */

#define PAR_THREADS 8
#define PAR_BLOCK 4096
#define PAR_BLOCKS 2048 /* 8 MiB: 16 blocks of 8 threads in each 64 KiB cluster */

struct par_worker {
	struct disk *d;
	int mirror;
	unsigned id;
	uint64_t seed;
	char failure[200];
};

static uint64_t par_rnd(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return *s;
}

/* Thread id owns blocks id, id + 8, ...: each cluster is shared by all
 * threads, so allocations (the image's lock alone) and writes in place
 * (the lock shared) and reads meet in the same clusters. */
static void *par_work(void *arg)
{
	struct par_worker *w = arg;
	uint8_t buf[PAR_BLOCK], got[PAR_BLOCK], want[PAR_BLOCK];
	for (int op = 0; op < 700 && !w->failure[0]; op++) {
		uint64_t r = par_rnd(&w->seed);
		uint64_t block = (r >> 8) % (PAR_BLOCKS / PAR_THREADS) * PAR_THREADS + w->id;
		uint64_t off = block * PAR_BLOCK;
		struct iovec iov = { buf, PAR_BLOCK };
		switch (r % 20) {
		default: /* write */
			for (unsigned i = 0; i < PAR_BLOCK; i++)
				buf[i] = (uint8_t)(w->id * 37 + op + i / 512);
			if (w->d->ops->write(w->d, &iov, 1, off) < 0)
				snprintf(w->failure, sizeof(w->failure), "write: %s", strerror(errno));
			else if (pwrite(w->mirror, buf, PAR_BLOCK, (off_t)off) != PAR_BLOCK)
				snprintf(w->failure, sizeof(w->failure), "mirror write");
			break;
		case 0: case 1: case 2: case 3: case 4: /* read back */
			iov.iov_base = got;
			if (w->d->ops->read(w->d, &iov, 1, off) < 0 ||
			    pread(w->mirror, want, PAR_BLOCK, (off_t)off) != PAR_BLOCK)
				snprintf(w->failure, sizeof(w->failure), "read: %s", strerror(errno));
			else if (memcmp(got, want, PAR_BLOCK))
				snprintf(w->failure, sizeof(w->failure),
					 "thread %u, op %d: block %llu reads other than written", w->id,
					 op, (unsigned long long)block);
			break;
		case 5: case 6:
			if (w->d->ops->flush(w->d) < 0)
				snprintf(w->failure, sizeof(w->failure), "flush: %s", strerror(errno));
			break;
		case 7: /* write zeroes: part of a cluster, so written as zeros */
			memset(buf, 0, PAR_BLOCK);
			if (w->d->ops->zero(w->d, off, PAR_BLOCK, true) < 0 ||
			    pwrite(w->mirror, buf, PAR_BLOCK, (off_t)off) != PAR_BLOCK)
				snprintf(w->failure, sizeof(w->failure), "zero: %s", strerror(errno));
			break;
		}
	}
	return NULL;
}

/* Requests in flight reach the disk from several threads at once (the
 * device's pool): eight threads write, read back, zero and flush an
 * overlay's shared clusters; every read sees what its thread wrote, and
 * qemu-img finds the image clean and equal to a raw mirror. */
static void threads_write_read_and_flush_at_once(void **state)
{
	(void)state;
	sh("rm -f pbase.qcow2 p.qcow2 pmirror.raw && qemu-img create -f qcow2 pbase.qcow2 8M && "
	   "qemu-io -c 'write -P 0x5a 0 8M' pbase.qcow2 && "
	   "qemu-img create -f qcow2 -b pbase.qcow2 -F qcow2 p.qcow2 && "
	   "qemu-io -c 'write -P 0x11 1M 1M' p.qcow2 && "
	   "qemu-img convert -O raw p.qcow2 pmirror.raw");
	struct disk *d = disk_open("--disk test", at("p.qcow2"), false);
	assert_non_null(d);
	assert_false(d->readonly);
	int mirror = open(at("pmirror.raw"), O_RDWR);
	assert_true(mirror >= 0);
	struct par_worker w[PAR_THREADS];
	pthread_t t[PAR_THREADS];
	for (unsigned i = 0; i < PAR_THREADS; i++) {
		w[i] = (struct par_worker){ .d = d, .mirror = mirror, .id = i,
					    .seed = 0x9e3779b97f4a7c15ULL * (i + 1) };
		assert_int_equal(pthread_create(&t[i], NULL, par_work, &w[i]), 0);
	}
	for (unsigned i = 0; i < PAR_THREADS; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < PAR_THREADS; i++)
		if (w[i].failure[0])
			fail_msg("%s", w[i].failure);
	disk_close(d);
	close(mirror);
	assert_int_equal(checked_leaks("p.qcow2", false), 0);
	if (sh_status("qemu-img compare -f raw -F qcow2 pmirror.raw p.qcow2") != 0) {
		print_out();
		fail_msg("qemu-img compare: the image differs from the mirror");
	}
}

/* --- new images ------------------------------------------------------------ */

/* disk_create_qcow2 makes what qemu-img create makes: a clean image that
 * reads as its template, takes writes without touching the template, and
 * that QEMU's tools read too; an existing file is never overwritten. */
static void creates_clones_qemu_accepts(void **state)
{
	(void)state;
	sh("rm -f ctpl.qcow2 ctpl.raw cl*.qcow2 cempty.qcow2 && qemu-img create -q -f qcow2 ctpl.qcow2 3M && "
	   "qemu-io -c 'write -P 0x3c 0 1M' -c 'write -P 0x77 2M 512k' ctpl.qcow2 >/dev/null && "
	   "qemu-img convert -O raw ctpl.qcow2 ctpl.raw");
	char tpl[256];
	snprintf(tpl, sizeof(tpl), "%s", at("ctpl.qcow2"));
	assert_int_equal(disk_create_qcow2("t", at("cl1.qcow2"), 3 << 20, tpl, "qcow2"), 0);
	assert_int_equal(disk_create_qcow2("t", at("cl2.qcow2"), 5 << 20, tpl, "qcow2"), 0);
	assert_int_equal(disk_create_qcow2("t", at("cempty.qcow2"), 3 << 20, NULL, NULL), 0);
	assert_int_equal(checked_leaks("cl1.qcow2", false), 0);
	assert_int_equal(checked_leaks("cl2.qcow2", false), 0);
	assert_int_equal(checked_leaks("cempty.qcow2", false), 0);
	sh("qemu-img info cl1.qcow2 | grep -q 'backing file format: qcow2' && "
	   "qemu-img info cl2.qcow2 | grep -q 'virtual size: 5 MiB' && "
	   "qemu-img compare -q ctpl.qcow2 cl1.qcow2 && qemu-img compare -q ctpl.raw cl1.qcow2");
	assert_reads_like_qemu("cl2.qcow2");
	assert_reads_like_qemu("cempty.qcow2");
	/* nestvm writes a clone; the template does not change */
	struct disk *d = disk_open("--disk test", at("cl1.qcow2"), false);
	assert_non_null(d);
	assert_false(d->readonly);
	uint8_t buf[4096];
	memset(buf, 0xa5, sizeof(buf));
	struct iovec iov = { buf, sizeof(buf) };
	assert_int_equal(d->ops->write(d, &iov, 1, 4096), 0);
	assert_int_equal(d->ops->flush(d), 0);
	disk_close(d);
	assert_int_equal(checked_leaks("cl1.qcow2", false), 0);
	sh("qemu-img compare -q ctpl.qcow2 ctpl.raw && qemu-io -c 'read -P 0xa5 4k 4k' "
	   "-c 'read -P 0x3c 8k 4k' cl1.qcow2 > /dev/null");
	/* never over an existing file, nor with a backing name QEMU would refuse */
	char path[256], msg[300];
	snprintf(path, sizeof(path), "%s", at("cl1.qcow2"));
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	int r = disk_create_qcow2("t", path, 1 << 20, tpl, "qcow2");
	char long_name[1100];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	int r2 = disk_create_qcow2("t", at("cl3.qcow2"), 1 << 20, long_name, "raw");
	dup2(saved, 2);
	close(saved);
	close(devnull);
	assert_int_equal(r, -1);
	assert_int_equal(r2, -1);
	snprintf(msg, sizeof(msg), "test -e %s", at("cl3.qcow2"));
	assert_int_not_equal(system(msg), 0);
	assert_int_equal(checked_leaks("cl1.qcow2", false), 0); /* not overwritten */
}

int main(void)
{
	if (system("qemu-img --version > /dev/null 2>&1 && qemu-io --version > /dev/null 2>&1") != 0) {
		printf("SKIP: test_qcow2: qemu-img and qemu-io are missing (make deps installs qemu-utils)\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_every_cluster_size_and_version),
		cmocka_unit_test(reads_compressed_clusters),
		cmocka_unit_test(reads_a_backing_chain_three_deep),
		cmocka_unit_test(refuses_hostile_images),
		cmocka_unit_test(probed_raw_refuses_a_qcow2_magic),
		cmocka_unit_test(raw_reads_stop_at_the_disk_size),
		cmocka_unit_test(writes_match_a_raw_mirror),
		cmocka_unit_test(opens_read_only_or_refuses_what_it_cannot_write),
		cmocka_unit_test(locks_like_qemu),
		cmocka_unit_test(hostile_tables_while_writing),
		cmocka_unit_test(survives_sigkill_while_writing_and_flushing),
		cmocka_unit_test(threads_write_read_and_flush_at_once),
		cmocka_unit_test(creates_clones_qemu_accepts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
