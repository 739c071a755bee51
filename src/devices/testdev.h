/* The nestvm test device model; its guest interface is in testdev_abi.h. */
#ifndef NESTVM_DEVICES_TESTDEV_H
#define NESTVM_DEVICES_TESTDEV_H

#include <pthread.h>
#include <stdint.h>

#include "devices/bus.h"
#include "mem/guest_mem.h"

#include "devices/testdev_abi.h"

struct testdev {
	pthread_mutex_t lock;
	const struct guest_mem *mem;
	void (*request_exit)(void *ctx, int status);
	void *ctx;
	uint64_t scratch, buf_addr, buf_len, checksum, buf_fault, writes;
};

void testdev_init(struct testdev *dev, const struct guest_mem *mem,
		  void (*request_exit)(void *ctx, int status), void *ctx);
int testdev_attach(struct testdev *dev, struct bus *pio, struct bus *mmio);
void testdev_destroy(struct testdev *dev);

/* Its entry in the machine's device table (devices/device.h). */
extern const struct device_ops testdev_device_ops;

#endif
