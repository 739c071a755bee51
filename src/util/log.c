#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int log_verbosity;

static void log_line(const char *prefix, const char *fmt, va_list ap)
{
	/* Build the whole line first so that lines from different threads do
	 * not interleave: one write(2) per message. */
	char line[1024];
	int n = snprintf(line, sizeof(line), "nestvm: %s", prefix);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	size_t len = strlen(line);
	if (len == sizeof(line) - 1)
		line[len - 1] = '\n';
	else
		line[len++] = '\n', line[len] = '\0';
	/* write(2), not stdio: a first use of a stdio stream may ask whether
	 * it is a terminal (an ioctl), which a sandboxed thread may not do. */
	(void)!write(STDERR_FILENO, line, len);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	if (log_verbosity < 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	if (log_verbosity < 2)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}
