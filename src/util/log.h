/* Diagnostics: every message is one line on stderr, prefixed "nestvm: ". */
#ifndef NESTVM_UTIL_LOG_H
#define NESTVM_UTIL_LOG_H

extern int log_verbosity; /* 0 = errors and warnings, 1 = info, 2 = debug */

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
