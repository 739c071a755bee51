/* Facts about the host machine nestvm runs on. */
#ifndef NESTVM_UTIL_HOSTINFO_H
#define NESTVM_UTIL_HOSTINFO_H

#include <stdint.h>

/* A field of /proc/meminfo in bytes (e.g. "MemTotal", "MemAvailable"), or 0
 * if it cannot be read. */
uint64_t host_meminfo(const char *field);

#endif
