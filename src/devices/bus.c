#include "devices/bus.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus_free(struct bus *bus)
{
	free(bus->ranges);
	bus_init(bus, bus->name);
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn access,
		 void *opaque, const char *name)
{
	if (len == 0 || base + len < base) {
		log_error("%s: bad %s range 0x%llx+0x%llx", name, bus->name,
			  (unsigned long long)base, (unsigned long long)len);
		return -1;
	}
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len) {
			log_error("%s: %s range 0x%llx+0x%llx overlaps %s", name, bus->name,
				  (unsigned long long)base, (unsigned long long)len, r->name);
			return -1;
		}
	}
	if (bus->count == bus->capacity) {
		unsigned cap = bus->capacity ? bus->capacity * 2 : 8;
		struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));
		if (!n) {
			log_error("out of memory registering %s", name);
			return -1;
		}
		bus->ranges = n;
		bus->capacity = cap;
	}
	bus->ranges[bus->count++] = (struct bus_range){ base, len, access, opaque, name };
	return 0;
}

bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write)
{
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (addr >= r->base && addr - r->base < r->len) {
			if (len > r->len - (addr - r->base))
				break;
			r->access(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
