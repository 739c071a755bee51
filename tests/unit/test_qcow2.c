/* Unit tests: qcow2 images (block/qcow2.c) made by QEMU's own qemu-img
 * are read byte for byte as `qemu-img convert -O raw` reads them: cluster
 * sizes from 512 bytes to 2 MiB, versions 2 and 3, compressed clusters,
 * zero clusters, and a backing chain three deep over a raw base shorter
 * than the overlay. Hostile images (made by patching real ones) are
 * refused with one line naming what is wrong. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Opening one image: NULL expected, and the message line it printed. */
static void assert_refused(const char *image, const char *message)
{
	char errpath[256];
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	struct disk *d = disk_open("--disk test", at(image), true);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	disk_close(d);
	assert_null(d);
	size_t len;
	char *text = (char *)read_file(errpath, &len);
	text[len] = 0;
	if (!strstr(text, message))
		fail_msg("expected '%s', got '%s'", message, text);
	char *nl = strchr(text, '\n');
	assert_true(nl && nl[1] == 0); /* one line */
	free(text);
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
	/* writable qcow2 is for a later step */
	d = disk_open("--disk test", at("b.qcow2"), false);
	assert_null(d);
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
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
