/* Option handling shared by the subcommands that run a VM. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "vmm/machine.h"

static int open_output(const char *spec, int *fd)
{
	if (!strcmp(spec, "stdio")) {
		*fd = STDOUT_FILENO;
		return 0;
	}
	if (!strcmp(spec, "none")) {
		*fd = -1;
		return 0;
	}
	bool append = !strncmp(spec, "append:", 7);
	const char *path = append ? spec + 7 : !strncmp(spec, "file:", 5) ? spec + 5 : NULL;
	if (path && *path) {
		*fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
		if (*fd < 0) {
			log_error("--console %s: %s", spec, strerror(errno));
			return -1;
		}
		return 0;
	}
	log_error("--console %s: expected stdio, file:PATH, append:PATH or none", spec);
	return -1;
}

int cli_open_console(const char *spec, const char *socket_path, struct machine_config *config,
		     struct console_socket *cs)
{
	/* A console reader that went away (a closed pipe, a client that left)
	 * must not end the VM: its writes fail with EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	config->console_socket = NULL;
	if (open_output(spec, &config->console_fd) < 0)
		return -1;
	config->console_in_fd = config->console_fd == STDOUT_FILENO ? STDIN_FILENO : -1;
	if (socket_path) {
		if (console_socket_open(cs, socket_path) < 0) {
			cli_close_console(config);
			return -1;
		}
		config->console_socket = cs;
	}
	return 0;
}

void cli_close_console(struct machine_config *config)
{
	if (config->console_fd > STDOUT_FILENO)
		close(config->console_fd);
	config->console_fd = -1;
	if (config->console_socket)
		console_socket_close(config->console_socket);
	config->console_socket = NULL;
}
