/* nestvm restore: resume a snapshot (see vmm/snapshot.h) in this process. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm restore DIR [OPTIONS]\n"
		"Resumes the VM saved in snapshot DIR ('nestvm ctl PATH snapshot DIR'), with\n"
		"the same memory, vCPUs, devices and disks; the guest goes on where it was.\n"
		"  --api-socket PATH      serve the control API on this UNIX socket\n"
		"  --console stdio|file:PATH|append:PATH|none\n"
		"                         where the serial console goes (default stdio)\n"
		"  --console-socket PATH  also serve the console on this UNIX socket\n"
		"  --force                restore even if a disk changed since the snapshot\n"
		"  --trust                open the disks and NICs a snapshot names even if this\n"
		"                         user's nestvm did not make it (check them first)\n"
		"  -v, --verbose          more messages\n");
}

int cmd_restore(int argc, char **argv)
{
	static const struct option options[] = {
		{ "api-socket", required_argument, NULL, 'A' },
		{ "console", required_argument, NULL, 'C' },
		{ "console-socket", required_argument, NULL, 'O' },
		{ "force", no_argument, NULL, 'F' },
		{ "trust", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct machine_config config = { .console_in_fd = -1, .cmdline = "" };
	const char *console = "stdio", *console_socket = NULL;
	bool force = false, trust = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
		switch (c) {
		case 'A': config.api_socket = optarg; break;
		case 'C': console = optarg; break;
		case 'O': console_socket = optarg; break;
		case 'F': force = true; break;
		case 'T': trust = true; break;
		case 'v': log_verbosity++; break;
		case 'h': usage(stdout); return 0;
		default:
			log_error("restore: unknown option %s (see 'nestvm restore --help')", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		log_error("restore: expected one snapshot directory (see 'nestvm restore --help')");
		return CLI_EXIT_USAGE;
	}
	const char *dir = argv[optind];
	if (snapshot_read_config(dir, force, trust, &config) < 0)
		return MACHINE_EXIT_ERROR;
	config.restore_dir = dir;
	struct console_socket cs;
	if (cli_open_console(console, console_socket, &config, &cs) < 0)
		return CLI_EXIT_USAGE;
	struct machine m;
	int status = MACHINE_EXIT_ERROR;
	if (machine_create(&m, &config) == 0) {
		log_debug("restored %s", dir);
		status = machine_run(&m);
		/* There is no kernel to boot again: a reboot ends the VM. */
		if (m.reboot_requested)
			log_info("the restored guest rebooted: exiting");
	}
	machine_destroy(&m);
	cli_close_console(&config);
	return status;
}
