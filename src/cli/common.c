/* Option handling shared by the subcommands that run a VM. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"

int cli_open_console(const char *spec, int *fd)
{
	if (!strcmp(spec, "stdio")) {
		*fd = STDOUT_FILENO;
		return 0;
	}
	if (!strcmp(spec, "none")) {
		*fd = -1;
		return 0;
	}
	if (!strncmp(spec, "file:", 5) && spec[5]) {
		*fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (*fd < 0) {
			log_error("--console %s: %s", spec, strerror(errno));
			return -1;
		}
		return 0;
	}
	log_error("--console %s: expected stdio, file:PATH or none", spec);
	return -1;
}

