/* The PC keyboard controller, reduced to what guests use it for without a
 * keyboard: the status register and the CPU reset command (0xfe to port
 * 0x64), one of the ways Linux reboots. */
#ifndef NESTVM_DEVICES_I8042_H
#define NESTVM_DEVICES_I8042_H

#include "devices/bus.h"

struct i8042 {
	void (*reset)(void *ctx);
	void *ctx;
};

int i8042_attach(struct i8042 *kbc, struct bus *pio, void (*reset)(void *ctx), void *ctx);

#endif
