#include "util/clock.h"

/* Set first thing in main(); 0 in programs without it (the tests). */
int64_t process_start_ns;
