/* libFuzzer: a guest's virtqueue and virtio-blk requests. The input is the
 * queue's size and the driver's features, then guest memory from address 0
 * (descriptor table, rings and buffers, all guest-written); every chain the
 * queue yields is executed against a small disk image. ASan/UBSan catch any
 * access outside guest RAM or the image. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem/guest_mem.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/virtqueue.h"

#define RAM (1 << 20)
#define SHOWN (64 * 1024) /* the part of RAM the input fills */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static struct virtio_blk blk;
	static int ready;
	if (!ready) {
		log_verbosity = -1;
		char path[] = "/tmp/nestvm-fuzz-disk.XXXXXX";
		int fd = mkstemp(path);
		if (fd < 0 || ftruncate(fd, 256 * 1024) < 0 || guest_mem_alloc(&mem, RAM, 0) < 0)
			abort();
		close(fd);
		struct virtio_blk_options opt = { .serial = "FUZZ" };
		strcpy(opt.path, path);
		if (virtio_blk_open(&blk, &opt) < 0)
			abort();
		unlink(path);
		ready = 1;
	}
	if (size < 10)
		return 0;
	uint16_t qsize;
	uint64_t features;
	memcpy(&qsize, data, 2);
	memcpy(&features, data + 2, 8);
	data += 10, size -= 10;
	memset(mem.base, 0, SHOWN);
	memcpy(mem.base, data, size < SHOWN ? size : SHOWN);
	blk.vdev.driver_features = features;
	struct virtq q = { .size = (uint16_t)(1u << (qsize % 9)), .desc_gpa = 0x1000,
			   .avail_gpa = 0x3000 + (qsize >> 12), .used_gpa = 0x4000 };
	if (virtq_start(&q, &mem) < 0)
		return 0;
	static struct virtq_chain chain;
	for (int i = 0; i < 64; i++) {
		if (virtq_pop(&q, &chain) != 1)
			break;
		uint32_t len = virtio_blk_request(&blk, &chain);
		virtq_push(&q, chain.head, len);
		virtq_needs_interrupt(&q);
	}
	virtq_arm_notify(&q);
	return 0;
}
