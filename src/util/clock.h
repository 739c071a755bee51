#ifndef NESTVM_UTIL_CLOCK_H
#define NESTVM_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock, for timeouts. */
static inline int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Nanoseconds on the monotonic clock. */
static inline int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* When main() began (monotonic_ns), for nestvm's own startup time. */
extern int64_t process_start_ns;

#endif
