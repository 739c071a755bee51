/* nestvm lab: labs described in a YAML file (lab/manifest.h, lab/lab.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lab/lab.h"
#include "util/log.h"
#include "util/parse.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm lab up|down|status|reset FILE [OPTIONS]\n"
		"  up FILE       start the lab's networks and nodes (what is not running yet),\n"
		"                each node a linked clone of its template, in dependency order;\n"
		"                returns when every node is healthy, or names those that are not\n"
		"  down FILE     press every node's power button; stop those still running\n"
		"                after the timeout; then the networks\n"
		"  status FILE   each node's state, process, UUID, MACs and console log\n"
		"  reset FILE [NODE]\n"
		"                throw away every node's disk (or NODE's): stopped hard, a fresh\n"
		"                linked clone of its template, started again if it ran; the\n"
		"                identity stays\n"
		"options:\n"
		"  --timeout S       up: seconds a node may take to be healthy (default 300);\n"
		"                    down: seconds nodes get to power off (default 60)\n"
		"  --json            status: one JSON object\n"
		"  --state-dir DIR   where labs keep their state (default\n"
		"                    $XDG_STATE_HOME/nestvm/labs, or ~/.local/state/nestvm/labs)\n");
}

int cmd_lab(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		log_error("lab: expected up, down, status or reset, and the lab's file (see 'nestvm lab --help')");
		return CLI_EXIT_USAGE;
	}
	const char *action = argv[1], *file = argv[2];
	bool up = !strcmp(action, "up"), down = !strcmp(action, "down"),
	     status = !strcmp(action, "status"), reset = !strcmp(action, "reset");
	if (!up && !down && !status && !reset) {
		log_error("lab: unknown action '%s' (expected up, down, status or reset)", action);
		return CLI_EXIT_USAGE;
	}
	struct lab_options opt = { .timeout_s = up || reset ? 300 : 60 };
	const char *node = NULL;
	for (int i = 3; i < argc; i++) {
		uint64_t v;
		if (reset && !node && argv[i][0] != '-') {
			node = argv[i];
		} else if (!strcmp(argv[i], "--json") && status) {
			opt.json = true;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc && !status) {
			if (parse_uint(argv[++i], 1, 86400, &v) < 0) {
				log_error("lab %s --timeout %s: expected seconds from 1 to 86400", action,
					  argv[i]);
				return CLI_EXIT_USAGE;
			}
			opt.timeout_s = (int)v;
		} else if (!strcmp(argv[i], "--state-dir") && i + 1 < argc) {
			opt.state_root = argv[++i];
		} else {
			log_error("lab %s: unknown option '%s'", action, argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	int r = up ? lab_up(file, &opt) : down ? lab_down(file, &opt)
		: reset ? lab_reset(file, node, &opt) : lab_status(file, &opt);
	return r < 0 ? 1 : 0;
}
