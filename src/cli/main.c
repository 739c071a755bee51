#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/clock.h"
#include "util/log.h"

#ifndef NESTVM_VERSION
#define NESTVM_VERSION "dev"
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "boot a VM" },
	{ "restore", cmd_restore, "resume a VM from a snapshot" },
	{ "console", cmd_console, "attach this terminal to a VM's console socket" },
	{ "ctl", cmd_ctl, "control a running VM or switch through its API socket" },
	{ "lab", cmd_lab, "bring up, inspect and take down labs described in a YAML file" },
	{ "template", cmd_template, "build a Debian lab template (mmdebstrap)" },
	{ "disk", cmd_disk, "make linked clones of a template, or empty qcow2 images" },
	{ "switch", cmd_switch, "run a userspace Ethernet switch for VMs (no root needed)" },
	{ "doctor", cmd_doctor, "check this host for running and nesting VMs" },
	{ "labhost", cmd_labhost, "run a command inside an emulated AMD-V host (QEMU TCG)" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: nestvm COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-10s %s\n", "version", "print the version");
	fprintf(out, "\n'nestvm COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	process_start_ns = monotonic_ns();
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(name, "version") || !strcmp(name, "--version")) {
		printf("nestvm %s\n", NESTVM_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	log_error("unknown command '%s' (try 'nestvm help')", name);
	return CLI_EXIT_USAGE;
}
