/* Parsing of command-line values. Each returns 0 on success and -1 on a
 * malformed value, without printing: callers name the option in the error. */
#ifndef NESTVM_UTIL_PARSE_H
#define NESTVM_UTIL_PARSE_H

#include <stdint.h>

/* "512M", "2G", "1048576", "64K", "1T"; suffixes are binary (K = 1024). */
int parse_size(const char *text, uint64_t *out);

/* A decimal unsigned integer in [min, max]. */
int parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* A MAC address written "52:54:00:12:34:56" (exactly: six pairs of hex
 * digits), into mac. Unicast or not: callers decide. */
int parse_mac(const char *text, uint8_t mac[6]);

/* A dotted-quad IPv4 address, in host byte order. */
int parse_ipv4(const char *text, uint32_t *addr);

/* Human-readable binary size, e.g. "512 MiB", into buf. */
const char *format_size(uint64_t bytes, char *buf, unsigned long len);

#endif
