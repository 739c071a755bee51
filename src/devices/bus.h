/* Address decoding for port I/O and MMIO exits. Devices register ranges
 * before any vCPU runs; lookups afterwards need no lock. A device serialises
 * its own state. */
#ifndef NESTVM_DEVICES_BUS_H
#define NESTVM_DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* offset is relative to the range's base; len is 1, 2, 4 or 8. */
typedef void (*bus_access_fn)(void *opaque, uint64_t offset, uint8_t *data,
			      uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_access_fn access;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name; /* "port" or "MMIO", for messages */
	struct bus_range *ranges;
	unsigned count;
	unsigned capacity;
};

void bus_init(struct bus *bus, const char *name);
void bus_free(struct bus *bus);
/* Fails (with a message) if the range is empty or overlaps another. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn access,
		 void *opaque, const char *name);
/* Dispatches an access. An access to no device, or one that straddles the
 * end of a device's range, returns false; reads then see all ones, as on a
 * PC bus with nothing decoding the address. */
bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write);

#endif
