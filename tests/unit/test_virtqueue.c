/* Unit tests: virtqueues and device request handling fed hostile rings
 * straight from "guest" memory (virtio/virtqueue.c, virtio/blk.c). Run
 * under ASan/UBSan: a stray access outside guest RAM fails the test even
 * where the assertions would not. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <stdatomic.h>

#include "virtio/blk.h"
#include "virtio/request_pool.h"
#include "virtio/virtqueue.h"
#include "mem/guest_mem.h"

#define RAM      (4 << 20)
#define QSIZE    16
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define DATA_GPA 0x10000

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

struct fixture {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_chain chain;
	uint16_t avail_idx;
};

static uint8_t *gpa(struct fixture *f, uint64_t a)
{
	return guest_mem_ptr(&f->mem, a, 1);
}

static void put_desc_at(struct fixture *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	uint8_t *d = gpa(f, table + 16 * i);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void put_desc(struct fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	put_desc_at(f, DESC_GPA, i, addr, len, flags, next);
}

/* Makes head available and publishes the new index. */
static void offer(struct fixture *f, uint16_t head)
{
	memcpy(gpa(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % QSIZE)), &head, 2);
	f->avail_idx++;
	memcpy(gpa(f, AVAIL_GPA + 2), &f->avail_idx, 2);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(guest_mem_alloc(&f->mem, RAM, 0), 0);
	f->q.size = QSIZE;
	f->q.desc_gpa = DESC_GPA;
	f->q.avail_gpa = AVAIL_GPA;
	f->q.used_gpa = USED_GPA;
	assert_int_equal(virtq_start(&f->q, &f->mem), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	guest_mem_free(&f->mem);
	free(f);
	return 0;
}

static void good_chain_is_split_by_direction(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, DATA_GPA, 16, F_NEXT, 1);
	put_desc(f, 1, DATA_GPA + 0x100, 512, F_NEXT | F_WRITE, 2);
	put_desc(f, 2, DATA_GPA + 0x400, 1, F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.head, 0);
	assert_int_equal(f->chain.n_out, 1);
	assert_int_equal(f->chain.n_in, 2);
	assert_int_equal(f->chain.out_len, 16);
	assert_int_equal(f->chain.in_len, 513);
	assert_ptr_equal(f->chain.iov[0].iov_base, gpa(f, DATA_GPA));
	virtq_push(&f->q, 0, 513);
	uint16_t used_idx;
	uint32_t id, len;
	memcpy(&used_idx, gpa(f, USED_GPA + 2), 2);
	memcpy(&id, gpa(f, USED_GPA + 4), 4);
	memcpy(&len, gpa(f, USED_GPA + 8), 4);
	assert_int_equal(used_idx, 1);
	assert_int_equal(id, 0);
	assert_int_equal(len, 513);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0); /* empty now */
}

static void looping_chain_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, DATA_GPA, 8, F_NEXT, 1);
	put_desc(f, 1, DATA_GPA, 8, F_NEXT, 0); /* back to 0: a cycle */
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	assert_true(f->q.broken);
	/* A broken queue stays broken: no more processing until a reset. */
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void self_loop_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 3, DATA_GPA, 8, F_NEXT | F_WRITE, 3);
	offer(f, 3);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void buffer_outside_ram_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, RAM - 8, 16, 0, 0); /* runs past the end of RAM */
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void wrapping_address_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, UINT64_MAX - 4, 0x1000, F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void next_past_the_table_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, DATA_GPA, 8, F_NEXT, QSIZE); /* one past the end */
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void head_past_the_table_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	offer(f, 0xffff);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void index_jump_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	uint16_t idx = QSIZE + 1; /* more available than the ring holds */
	memcpy(gpa(f, AVAIL_GPA + 2), &idx, 2);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void readable_after_writable_breaks_the_queue(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, DATA_GPA, 8, F_NEXT | F_WRITE, 1);
	put_desc(f, 1, DATA_GPA + 8, 8, 0, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void indirect_table_is_followed_and_checked(void **state)
{
	struct fixture *f = *state;
	uint64_t table = 0x8000;
	put_desc_at(f, table, 0, DATA_GPA, 16, F_NEXT, 1);
	put_desc_at(f, table, 1, DATA_GPA + 0x100, 1, F_WRITE, 0);
	put_desc(f, 0, table, 32, F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.n_out, 1);
	assert_int_equal(f->chain.n_in, 1);

	/* An indirect table that names another indirect table. */
	put_desc_at(f, table, 0, table, 32, F_INDIRECT, 0);
	put_desc(f, 1, table, 32, F_INDIRECT, 0);
	offer(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void indirect_loop_and_bad_lengths_break_the_queue(void **state)
{
	struct fixture *f = *state;
	uint64_t table = 0x8000;
	put_desc_at(f, table, 0, DATA_GPA, 16, F_NEXT, 1);
	put_desc_at(f, table, 1, DATA_GPA, 16, F_NEXT, 0); /* loops inside the table */
	put_desc(f, 0, table, 32, F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);

	struct fixture *g = f;
	virtq_reset(&g->q);
	g->q.size = QSIZE, g->q.desc_gpa = DESC_GPA, g->q.avail_gpa = AVAIL_GPA, g->q.used_gpa = USED_GPA;
	assert_int_equal(virtq_start(&g->q, &g->mem), 0);
	g->avail_idx = 0;
	memset(gpa(g, AVAIL_GPA), 0, 4);
	put_desc(g, 0, table, 24, F_INDIRECT, 0); /* not a multiple of 16 */
	offer(g, 0);
	assert_int_equal(virtq_pop(&g->q, &g->chain), -1);
}

static void rings_outside_ram_are_refused(void **state)
{
	struct fixture *f = *state;
	struct virtq q = { .size = QSIZE, .desc_gpa = RAM - 16, .avail_gpa = AVAIL_GPA,
			   .used_gpa = USED_GPA };
	assert_int_equal(virtq_start(&q, &f->mem), -1);
	q.desc_gpa = DESC_GPA + 8; /* misaligned */
	assert_int_equal(virtq_start(&q, &f->mem), -1);
	q.desc_gpa = DESC_GPA;
	q.size = 3; /* not a power of two */
	assert_int_equal(virtq_start(&q, &f->mem), -1);
	q.size = 1024; /* larger than offered */
	assert_int_equal(virtq_start(&q, &f->mem), -1);
	q.size = QSIZE;
	assert_int_equal(virtq_start(&q, &f->mem), 0);
}

static void event_index_suppresses_interrupts(void **state)
{
	struct fixture *f = *state;
	f->q.event_idx = true;
	uint16_t used_event = 1; /* interrupt once used passes 1 */
	memcpy(gpa(f, AVAIL_GPA + 4 + 2 * QSIZE), &used_event, 2);
	put_desc(f, 0, DATA_GPA, 8, F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	virtq_push(&f->q, 0, 8);
	assert_true(virtq_needs_interrupt(&f->q)); /* first interrupt always goes */
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	virtq_push(&f->q, 0, 8);
	assert_true(virtq_needs_interrupt(&f->q)); /* used went 1 -> 2, past 1 */
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	virtq_push(&f->q, 0, 8);
	assert_false(virtq_needs_interrupt(&f->q)); /* the driver asked for none */
	/* Arming publishes avail_event so the driver knows when to kick. */
	assert_false(virtq_arm_notify(&f->q));
	uint16_t avail_event;
	memcpy(&avail_event, gpa(f, USED_GPA + 4 + 8 * QSIZE), 2);
	assert_int_equal(avail_event, 3);
}

/* --- virtio-blk requests ---------------------------------------------- */

static void open_disk(struct virtio_blk *blk, char *path, bool readonly)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct virtio_blk_options opt = { .readonly = readonly };
	strcpy(opt.path, path);
	strcpy(opt.serial, "SERIAL-1");
	assert_int_equal(virtio_blk_open(blk, &opt), 0);
}

static void blk_request(struct fixture *f, struct virtio_blk *blk, uint32_t type, uint64_t sector,
			uint32_t data_len, bool data_writable, uint8_t *status, uint32_t *used)
{
	uint8_t hdr[16] = { 0 };
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(gpa(f, DATA_GPA), hdr, 16);
	put_desc(f, 0, DATA_GPA, 16, F_NEXT, 1);
	put_desc(f, 1, DATA_GPA + 0x1000, data_len, F_NEXT | (data_writable ? F_WRITE : 0), 2);
	put_desc(f, 2, DATA_GPA + 0x100, 1, F_WRITE, 0);
	*gpa(f, DATA_GPA + 0x100) = 0xee;
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	*used = virtio_blk_request(blk, &f->chain);
	*status = *gpa(f, DATA_GPA + 0x100);
}

static void blk_reads_writes_and_refuses_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	open_disk(&blk, path, false);
	uint8_t status;
	uint32_t used;

	memset(gpa(f, DATA_GPA + 0x1000), 0x5a, 4096);
	blk_request(f, &blk, 1 /* OUT */, 8, 4096, false, &status, &used);
	assert_int_equal(status, 0);
	assert_int_equal(used, 1);
	memset(gpa(f, DATA_GPA + 0x1000), 0, 4096);
	blk_request(f, &blk, 0 /* IN */, 8, 4096, true, &status, &used);
	assert_int_equal(status, 0);
	assert_int_equal(used, 4097);
	assert_int_equal(*gpa(f, DATA_GPA + 0x1000 + 4095), 0x5a);

	/* Past the end of the 1 MiB disk, or overflowing the sector math. */
	blk_request(f, &blk, 0, 2047, 1024, true, &status, &used);
	assert_int_equal(status, 1);
	blk_request(f, &blk, 1, UINT64_MAX / 256, 512, false, &status, &used);
	assert_int_equal(status, 1);
	/* A read whose data buffer the device may not write. */
	blk_request(f, &blk, 0, 0, 512, false, &status, &used);
	assert_int_equal(status, 1);
	/* Not a whole number of sectors. */
	blk_request(f, &blk, 1, 0, 100, false, &status, &used);
	assert_int_equal(status, 1);
	/* Unknown request type. */
	blk_request(f, &blk, 99, 0, 512, true, &status, &used);
	assert_int_equal(status, 2);
	/* GET_ID answers the serial. */
	blk_request(f, &blk, 8, 0, 20, true, &status, &used);
	assert_int_equal(status, 0);
	assert_memory_equal(gpa(f, DATA_GPA + 0x1000), "SERIAL-1", 9);

	/* A chain without a status byte gets no answer at all. */
	put_desc(f, 0, DATA_GPA, 16, 0, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(virtio_blk_request(&blk, &f->chain), 0);
	/* Nor one with a short header. */
	put_desc(f, 0, DATA_GPA, 8, F_NEXT, 1);
	put_desc(f, 1, DATA_GPA + 0x100, 1, F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(virtio_blk_request(&blk, &f->chain), 0);

	virtio_blk_close(&blk);
	unlink(path);
}

static void blk_readonly_refuses_writes_and_discards(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	open_disk(&blk, path, true);
	uint8_t status;
	uint32_t used;
	blk_request(f, &blk, 1, 0, 512, false, &status, &used);
	assert_int_equal(status, 1);
	blk_request(f, &blk, 11 /* DISCARD */, 0, 16, false, &status, &used);
	assert_int_equal(status, 1);
	virtio_blk_close(&blk);
	unlink(path);
}

static void blk_discard_punches_a_hole(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	open_disk(&blk, path, false);
	uint8_t status;
	uint32_t used;
	memset(gpa(f, DATA_GPA + 0x1000), 0x77, 65536);
	blk_request(f, &blk, 1, 0, 65536, false, &status, &used);
	assert_int_equal(status, 0);
	struct { uint64_t sector; uint32_t n, flags; } seg = { 0, 128, 0 };
	memcpy(gpa(f, DATA_GPA + 0x1000), &seg, sizeof(seg));
	blk_request(f, &blk, 11, 0, 16, false, &status, &used);
	assert_int_equal(status, 0);
	uint8_t buf[512];
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), 512);
	close(fd);
	for (int i = 0; i < 512; i++)
		assert_int_equal(buf[i], 0);
	/* Segments beyond the disk, and unknown flags, fail. */
	seg = (typeof(seg)){ 2040, 128, 0 };
	memcpy(gpa(f, DATA_GPA + 0x1000), &seg, sizeof(seg));
	blk_request(f, &blk, 13, 0, 16, false, &status, &used);
	assert_int_equal(status, 1);
	seg = (typeof(seg)){ 0, 8, 0x80 };
	memcpy(gpa(f, DATA_GPA + 0x1000), &seg, sizeof(seg));
	blk_request(f, &blk, 13, 0, 16, false, &status, &used);
	assert_int_equal(status, 1);
	virtio_blk_close(&blk);
	unlink(path);
}

/* fdatasync() as the device model sees it: counted, and failing on
 * demand (this definition wins over libc's at link time). */
static int fdatasync_calls, fdatasync_fail;

int fdatasync(int fd)
{
	fdatasync_calls++;
	if (fdatasync_fail) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

#define VIRTIO_BLK_F_FLUSH (1ULL << 9)

/* A driver without FLUSH gets write-through: every write is synced before
 * it completes. With FLUSH, writes wait for the driver's flush. */
static void blk_write_through_without_flush(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	open_disk(&blk, path, false);
	uint8_t status;
	uint32_t used;
	fdatasync_calls = fdatasync_fail = 0;
	blk.vdev.driver_features = VIRTIO_BLK_F_FLUSH;
	blk_request(f, &blk, 1 /* OUT */, 0, 4096, false, &status, &used);
	assert_int_equal(status, 0);
	assert_int_equal(fdatasync_calls, 0);
	blk.vdev.driver_features = 0;
	blk_request(f, &blk, 1, 0, 4096, false, &status, &used);
	assert_int_equal(status, 0);
	assert_int_equal(fdatasync_calls, 1);
	/* A write whose sync fails is not reported done. */
	fdatasync_fail = 1;
	blk_request(f, &blk, 1, 0, 4096, false, &status, &used);
	assert_int_equal(status, 1);
	fdatasync_fail = 0;
	virtio_blk_close(&blk);
	unlink(path);
}

/* One failed fdatasync fails every later flush: the pages it could not
 * write may be gone, and a later sync that succeeds does not bring them
 * back. */
static void blk_failed_flush_is_remembered(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	open_disk(&blk, path, false);
	blk.vdev.driver_features = VIRTIO_BLK_F_FLUSH;
	uint8_t status;
	uint32_t used;
	fdatasync_calls = fdatasync_fail = 0;
	blk_request(f, &blk, 4 /* FLUSH */, 0, 0, false, &status, &used);
	assert_int_equal(status, 0);
	fdatasync_fail = 1;
	blk_request(f, &blk, 1, 0, 4096, false, &status, &used);
	assert_int_equal(status, 0); /* writeback: the write itself is fine */
	blk_request(f, &blk, 4, 0, 0, false, &status, &used);
	assert_int_equal(status, 1);
	fdatasync_fail = 0;
	blk_request(f, &blk, 4, 0, 0, false, &status, &used);
	assert_int_equal(status, 1);
	virtio_blk_close(&blk);
	unlink(path);
}

/* The limits the device advertises (seg_max 254 data buffers, size_max
 * 1 MiB each) are enforced: a request beyond them fails with IOERR instead
 * of running for as long as 1024 buffers of guest RAM take. */
#define INDIRECT_GPA 0x20000
#define SHARED_GPA   0x100000

static void blk_indirect_read(struct fixture *f, struct virtio_blk *blk, unsigned segments,
			      uint32_t seg_len, uint8_t *status, uint32_t *used)
{
	uint8_t hdr[16] = { 0 }; /* IN, sector 0 */
	memcpy(gpa(f, DATA_GPA), hdr, 16);
	put_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 16, F_NEXT, 1);
	for (unsigned i = 1; i <= segments; i++) /* every buffer the same guest pages */
		put_desc_at(f, INDIRECT_GPA, i, SHARED_GPA, seg_len, F_NEXT | F_WRITE,
			    (uint16_t)(i + 1));
	put_desc_at(f, INDIRECT_GPA, segments + 1, DATA_GPA + 0x100, 1, F_WRITE, 0);
	put_desc(f, 0, INDIRECT_GPA, 16 * (segments + 2), F_INDIRECT, 0);
	*gpa(f, DATA_GPA + 0x100) = 0xee;
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	*used = virtio_blk_request(blk, &f->chain);
	*status = *gpa(f, DATA_GPA + 0x100);
}

static void blk_enforces_seg_max_and_size_max(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk blk;
	char path[] = "/tmp/nestvm-unit-disk.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 512 << 20), 0); /* sparse */
	close(fd);
	struct virtio_blk_options opt = { 0 };
	strcpy(opt.path, path);
	assert_int_equal(virtio_blk_open(&blk, &opt), 0);
	uint8_t status;
	uint32_t used;
	blk_indirect_read(f, &blk, 254, 512, &status, &used);
	assert_int_equal(status, 0);
	assert_int_equal(used, 254 * 512 + 1);
	blk_indirect_read(f, &blk, 255, 512, &status, &used);
	assert_int_equal(status, 1);
	assert_int_equal(used, 1);
	blk_indirect_read(f, &blk, 1, 1 << 20, &status, &used);
	assert_int_equal(status, 0);
	blk_indirect_read(f, &blk, 1, (1 << 20) + 512, &status, &used);
	assert_int_equal(status, 1);
	/* 1000 buffers of 2 MiB: 2000 MiB asked of a 4 MiB guest. */
	blk_indirect_read(f, &blk, 1000, 2 << 20, &status, &used);
	assert_int_equal(status, 1);
	virtio_blk_close(&blk);
	unlink(path);
}

/* --- the transport's worker loop ------------------------------------- */

static sem_t handler_entered, handler_release;

static uint32_t blocking_handler(struct virtio_dev *vd, struct virtq_chain *chain)
{
	(void)vd, (void)chain;
	sem_post(&handler_entered);
	sem_wait(&handler_release);
	return 7;
}

static uint32_t quick_handler(struct virtio_dev *vd, struct virtq_chain *chain)
{
	(void)vd, (void)chain;
	return 3;
}

static void *serve_on_worker(void *arg)
{
	struct virtio_dev *vd = arg;
	static struct virtq_chain chain;
	pthread_mutex_lock(&vd->lock);
	virtio_serve_queue(vd, 0, &chain, blocking_handler);
	pthread_mutex_unlock(&vd->lock);
	return NULL;
}

/* Lets the blocked request finish a while later, after queueing a second
 * request behind it. */
static struct fixture *releaser_fixture;
static uint16_t used_when_released;

static uint16_t used_index(struct fixture *f);

static void *release_later(void *arg)
{
	(void)arg;
	usleep(200 * 1000);
	used_when_released = used_index(releaser_fixture); /* still in flight: 0 */
	offer(releaser_fixture, 0);
	sem_post(&handler_release);
	return NULL;
}

static uint16_t used_index(struct fixture *f)
{
	uint16_t idx;
	memcpy(&idx, gpa(f, USED_GPA + 2), 2);
	return idx;
}

/* A transport with one enabled queue over the fixture's ring, no KVM and
 * no worker: the tests drive it by hand. */
static struct virtio_dev *unit_device(struct fixture *f)
{
	struct virtio_dev *vd = calloc(1, sizeof(*vd));
	assert_non_null(vd);
	vd->name = "unit";
	vd->num_queues = 1;
	vd->queues[0].vq = f->q;
	vd->queues[0].enabled = true;
	vd->queues[0].kick_fd = -1;
	vd->queues[0].vector = VIRTIO_NO_VECTOR;
	pthread_mutex_init(&vd->lock, NULL);
	pthread_cond_init(&vd->idle, NULL);
	return vd;
}

static void free_unit_device(struct virtio_dev *vd)
{
	pthread_mutex_destroy(&vd->lock);
	pthread_cond_destroy(&vd->idle);
	free(vd);
}

/* A request's I/O runs without the device lock (a vCPU's register access
 * must not wait for a slow disk); a quiesce waits for it to end and keeps
 * new ones from starting until unquiesce. */
static void worker_releases_the_lock_during_a_request(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = unit_device(f);
	sem_init(&handler_entered, 0, 0);
	sem_init(&handler_release, 0, 0);
	put_desc(f, 0, DATA_GPA, 16, 0, 0);
	offer(f, 0);

	pthread_t worker, releaser;
	assert_int_equal(pthread_create(&worker, NULL, serve_on_worker, vd), 0);
	sem_wait(&handler_entered);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	assert_int_equal(pthread_mutex_timedlock(&vd->lock, &deadline), 0);
	assert_true(vd->in_flight);
	pthread_mutex_unlock(&vd->lock);

	releaser_fixture = f;
	assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
	virtio_pci_quiesce(vd); /* returns once the request in flight is done */
	pthread_join(releaser, NULL);
	assert_int_equal(used_when_released, 0);
	/* The quiesce returned after the first request completed, and the
	 * worker did not start the second. */
	assert_false(vd->in_flight);
	assert_int_equal(used_index(f), 1);
	pthread_join(worker, NULL);
	struct virtq_chain *chain = &f->chain;
	virtio_serve_queue(vd, 0, chain, quick_handler); /* lock held by the quiesce */
	assert_int_equal(used_index(f), 1);
	virtio_pci_unquiesce(vd);
	pthread_mutex_lock(&vd->lock);
	virtio_serve_queue(vd, 0, chain, quick_handler);
	pthread_mutex_unlock(&vd->lock);
	assert_int_equal(used_index(f), 2);
	uint32_t len;
	memcpy(&len, gpa(f, USED_GPA + 4 + 8 * 1 + 4), 4);
	assert_int_equal(len, 3);
	free_unit_device(vd);
}

/* --- requests in flight (virtio/request_pool.c) ------------------------ */

#define POOL_THREADS 4
#define POOL_REQUESTS 12

static atomic_int pool_entered;
static atomic_bool pool_waited_too_long;
static sem_t pool_go; /* the first group may finish */

/* Waits (at most 5 s) until `want` requests are inside a handler at once. */
static void wait_for_entered(int want)
{
	for (int i = 0; atomic_load(&pool_entered) < want; i++) {
		if (i == 5000) {
			atomic_store(&pool_waited_too_long, true);
			return;
		}
		usleep(1000);
	}
}

/* Request i (its number in its first buffer) returns only once every
 * request of its group of POOL_THREADS is inside a handler too: it can
 * only finish if they run at the same time. */
static uint32_t group_handler(struct virtio_dev *vd, struct virtq_chain *chain)
{
	(void)vd;
	uint32_t i;
	memcpy(&i, chain->iov[0].iov_base, 4);
	atomic_fetch_add(&pool_entered, 1);
	int group_end = (int)(i / POOL_THREADS + 1) * POOL_THREADS;
	wait_for_entered(group_end);
	if (i < POOL_THREADS)
		sem_wait(&pool_go);
	return 100 + i;
}

static void *release_once_quiesced(void *arg)
{
	struct virtio_dev *vd = arg;
	/* quiesce sets quiesced, then waits on idle with the lock released. */
	for (;;) {
		pthread_mutex_lock(&vd->lock);
		bool q = vd->quiesced;
		pthread_mutex_unlock(&vd->lock);
		if (q)
			break;
		usleep(1000);
	}
	for (int i = 0; i < POOL_THREADS; i++)
		sem_post(&pool_go);
	return NULL;
}

/* A pool of POOL_THREADS threads serves that many requests at once; more
 * wait for a free slot and are taken as slots free up; a quiesce waits for
 * every request in flight and lets none start; each chain comes back with
 * its own length. */
static void pool_runs_requests_at_once_and_quiesce_waits_for_all(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vd = unit_device(f);
	vd->status = VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	atomic_store(&pool_entered, 0);
	atomic_store(&pool_waited_too_long, false);
	sem_init(&pool_go, 0, 0);
	for (uint32_t i = 0; i < POOL_REQUESTS; i++) {
		memcpy(gpa(f, DATA_GPA + 0x100 * i), &i, 4);
		put_desc(f, i, DATA_GPA + 0x100 * i, 16, 0, 0);
		offer(f, (uint16_t)i);
	}
	struct virtio_pool *pool = virtio_pool_create(vd, POOL_THREADS, POOL_THREADS, group_handler);
	assert_non_null(pool);
	pthread_mutex_lock(&vd->lock);
	virtio_pool_serve(pool, 0); /* takes the first POOL_THREADS: no more slots */
	assert_int_equal(vd->in_flight, POOL_THREADS);
	pthread_mutex_unlock(&vd->lock);

	pthread_t releaser;
	assert_int_equal(pthread_create(&releaser, NULL, release_once_quiesced, vd), 0);
	virtio_pci_quiesce(vd); /* returns once the first group is back */
	pthread_join(releaser, NULL);
	assert_int_equal(vd->in_flight, 0);
	assert_int_equal(used_index(f), POOL_THREADS);
	virtio_pci_unquiesce(vd);

	pthread_mutex_lock(&vd->lock);
	virtio_pool_serve(pool, 0);
	pthread_mutex_unlock(&vd->lock);
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&vd->lock); /* the pool writes the ring under it */
		uint16_t used = used_index(f);
		pthread_mutex_unlock(&vd->lock);
		if (used == POOL_REQUESTS)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&vd->lock);
	assert_false(atomic_load(&pool_waited_too_long));
	assert_int_equal(used_index(f), POOL_REQUESTS);
	/* Every chain came back once, with its own length. */
	bool seen[POOL_REQUESTS] = { false };
	for (unsigned k = 0; k < POOL_REQUESTS; k++) {
		uint32_t id, len;
		memcpy(&id, gpa(f, USED_GPA + 4 + 8 * k), 4);
		memcpy(&len, gpa(f, USED_GPA + 4 + 8 * k + 4), 4);
		assert_true(id < POOL_REQUESTS);
		assert_false(seen[id]);
		seen[id] = true;
		assert_int_equal(len, 100 + id);
	}
	pthread_mutex_unlock(&vd->lock);
	uint64_t handled;
	unsigned most;
	virtio_pool_stats(pool, &handled, &most);
	assert_int_equal(handled, POOL_REQUESTS);
	assert_int_equal(most, POOL_THREADS);
	virtio_pool_destroy(pool);
	sem_destroy(&pool_go);
	free_unit_device(vd);
}

static void blk_options_are_parsed_and_checked(void **state)
{
	(void)state;
	struct virtio_blk_options o;
	assert_int_equal(virtio_blk_parse("a.img,readonly,serial=XYZ", &o), 0);
	assert_string_equal(o.path, "a.img");
	assert_true(o.readonly);
	assert_string_equal(o.serial, "XYZ");
	assert_int_equal(virtio_blk_parse("a.img,serial=123456789012345678901", &o), -1);
	assert_int_equal(virtio_blk_parse("a.img,bogus", &o), -1);
	assert_int_equal(virtio_blk_parse(",readonly", &o), -1);
	assert_int_equal(virtio_blk_parse("", &o), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(good_chain_is_split_by_direction, setup, teardown),
		cmocka_unit_test_setup_teardown(looping_chain_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(self_loop_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(buffer_outside_ram_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(wrapping_address_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(next_past_the_table_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(head_past_the_table_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(index_jump_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(readable_after_writable_breaks_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(indirect_table_is_followed_and_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(indirect_loop_and_bad_lengths_break_the_queue, setup,
						teardown),
		cmocka_unit_test_setup_teardown(rings_outside_ram_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(event_index_suppresses_interrupts, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_reads_writes_and_refuses_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_readonly_refuses_writes_and_discards, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_discard_punches_a_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_write_through_without_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_failed_flush_is_remembered, setup, teardown),
		cmocka_unit_test_setup_teardown(blk_enforces_seg_max_and_size_max, setup, teardown),
		cmocka_unit_test_setup_teardown(worker_releases_the_lock_during_a_request, setup,
						teardown),
		cmocka_unit_test_setup_teardown(pool_runs_requests_at_once_and_quiesce_waits_for_all,
						setup, teardown),
		cmocka_unit_test(blk_options_are_parsed_and_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
