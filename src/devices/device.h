/* The one interface every device model gives the machine. A device is
 * attached by its own constructor (which needs its own arguments: a port,
 * an image, a tap) and then handed to the machine's device table, which
 * from there on drives it through these operations only: start its
 * threads, quiesce it for a snapshot, save its state, load (and validate)
 * a saved state, and destroy it. The table's order is the order devices
 * are built in, so a snapshot's records line up with a machine built from
 * the same configuration; each record also names its kind. */
#ifndef NESTVM_DEVICES_DEVICE_H
#define NESTVM_DEVICES_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/state_codec.h"

struct device_ops {
	const char *kind; /* "serial", "rtc", "virtio-blk", ...: in records and messages */
	/* Starts worker threads, once the machine is complete. Optional. */
	int (*start)(void *dev);
	/* Stops the device from changing its state or guest memory, with
	 * work in flight finished, until unquiesce. Optional (a device driven
	 * only by vCPU accesses is still while every vCPU is paused). */
	void (*quiesce)(void *dev);
	void (*unquiesce)(void *dev);
	/* Writes the device's state, field by field; quiesced. A device that
	 * cannot be saved now says why (returns -1). Optional: no state. */
	int (*save)(void *dev, struct state_out *out, char *why, size_t whylen);
	/* Reads a state written by save into a freshly attached device,
	 * refusing any value its own code could not have produced
	 * (state_in_fail); runs before the device is started. */
	int (*load)(void *dev, struct state_in *in);
	/* Releases everything the device holds. Optional. */
	void (*destroy)(void *dev);
	/* Called about once a second on the main thread, for work that may
	 * not happen on the device's own thread (connecting a socket again:
	 * workers may not create sockets). Optional. */
	void (*tick)(void *dev, int64_t now_ms);
};

struct device {
	const struct device_ops *ops;
	void *dev;
	const char *name; /* for messages: "--disk a.img", "COM1" */
};

#define DEVICE_TABLE_MAX 48

struct device_table {
	struct device devices[DEVICE_TABLE_MAX];
	int n;
};

/* Appends a device; -1 (with a message) if the table is full. */
int device_table_add(struct device_table *t, const struct device_ops *ops, void *dev,
		     const char *name);
/* Starts every device in order; stops at the first failure. */
int device_table_start(struct device_table *t);
void device_table_quiesce(struct device_table *t);
void device_table_unquiesce(struct device_table *t);
void device_table_tick(struct device_table *t, int64_t now_ms);
/* Destroys every device, last attached first, and empties the table. */
void device_table_destroy(struct device_table *t);

#endif
