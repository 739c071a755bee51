/* Disk benchmark run inside a guest by bench/blk (built static, packed in
 * the guest's initramfs): sequential 1 MiB and random 4 KiB O_DIRECT I/O on
 * a block device as the guest's driver sees it, random I/O with one request
 * in flight and with 32 (32 threads, one request each).
 *   blkbench DEVICE SECONDS
 * Prints "BENCH name value unit" lines. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Sequential pass over the first span bytes; returns MB/s. */
static double sequential(int fd, char *buf, uint64_t span, int write_it)
{
	double t0 = now();
	for (uint64_t off = 0; off < span; off += 1 << 20) {
		ssize_t n = write_it ? pwrite(fd, buf, 1 << 20, (off_t)off)
				     : pread(fd, buf, 1 << 20, (off_t)off);
		if (n != 1 << 20) {
			perror("blkbench: sequential I/O");
			exit(1);
		}
	}
	if (write_it)
		fdatasync(fd);
	return (double)span / (now() - t0) / 1e6;
}

/* Random 4 KiB requests for secs seconds; returns IOPS. */
static double random_io(int fd, char *buf, uint64_t span, double secs, int write_it)
{
	uint64_t blocks = span / 4096, done = 0;
	double t0 = now(), t;
	do {
		for (int i = 0; i < 64; i++, done++) {
			off_t off = (off_t)(next_random() % blocks) * 4096;
			ssize_t n = write_it ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);
			if (n != 4096) {
				perror("blkbench: random I/O");
				exit(1);
			}
		}
		t = now() - t0;
	} while (t < secs);
	return (double)done / t;
}

/* Queue depth 32: threads each keeping one request in flight. */
#define DEPTH 32
struct worker {
	int fd, write_it;
	uint64_t blocks, seed, done;
	double secs;
	char *buf;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	double t0 = now();
	do {
		for (int i = 0; i < 16; i++, w->done++) {
			w->seed ^= w->seed << 13;
			w->seed ^= w->seed >> 7;
			w->seed ^= w->seed << 17;
			off_t off = (off_t)(w->seed % w->blocks) * 4096;
			ssize_t n = w->write_it ? pwrite(w->fd, w->buf, 4096, off)
						: pread(w->fd, w->buf, 4096, off);
			if (n != 4096) {
				perror("blkbench: random I/O");
				exit(1);
			}
		}
	} while (now() - t0 < w->secs);
	return NULL;
}

static double random_io_deep(int fd, uint64_t span, double secs, int write_it)
{
	struct worker w[DEPTH];
	pthread_t t[DEPTH];
	double t0 = now();
	for (int i = 0; i < DEPTH; i++) {
		w[i] = (struct worker){ fd, write_it, span / 4096, next_random() | 1, 0, secs, NULL };
		if (posix_memalign((void **)&w[i].buf, 4096, 4096) || pthread_create(&t[i], NULL, work, &w[i])) {
			fprintf(stderr, "blkbench: cannot start a worker\n");
			exit(1);
		}
		memset(w[i].buf, 0x5a, 4096);
	}
	uint64_t done = 0;
	for (int i = 0; i < DEPTH; i++) {
		pthread_join(t[i], NULL);
		done += w[i].done;
		free(w[i].buf);
	}
	return (double)done / (now() - t0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: blkbench DEVICE SECONDS\n");
		return 2;
	}
	double secs = atof(argv[2]);
	int fd = open(argv[1], O_RDWR | O_DIRECT);
	uint64_t size = 0;
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0) {
		perror(argv[1]);
		return 1;
	}
	char *buf;
	if (posix_memalign((void **)&buf, 4096, 1 << 20))
		return 1;
	memset(buf, 0xa5, 1 << 20);
	uint64_t span = size > (256ULL << 20) ? 256ULL << 20 : size & ~((1ULL << 20) - 1);
	printf("BENCH seq_write %.1f MB/s\n", sequential(fd, buf, span, 1));
	printf("BENCH seq_read %.1f MB/s\n", sequential(fd, buf, span, 0));
	printf("BENCH rand_read_4k %.0f IOPS\n", random_io(fd, buf, span, secs, 0));
	printf("BENCH rand_write_4k %.0f IOPS\n", random_io(fd, buf, span, secs, 1));
	printf("BENCH rand_read_4k_qd32 %.0f IOPS\n", random_io_deep(fd, span, secs, 0));
	printf("BENCH rand_write_4k_qd32 %.0f IOPS\n", random_io_deep(fd, span, secs, 1));
	return 0;
}
