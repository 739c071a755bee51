/* nestvm lab: labs described in a YAML file (lab/manifest.h, lab/lab.h). */
#include <limits.h>
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
		"usage: nestvm lab up|down|status|reset|console|snapshot FILE [ARGS] [OPTIONS]\n"
		"  up FILE       start the lab's networks and nodes (what is not running yet),\n"
		"                each node a linked clone of its template, in dependency order;\n"
		"                returns when every node is healthy, or names those that are not\n"
		"  down FILE     press the nodes' power buttons in reverse dependency order (a\n"
		"                node once the nodes that depend on it are down); stop those\n"
		"                still running after the timeout; then the networks\n"
		"  status FILE   each node's state, process, UUID, MACs, addresses (from the\n"
		"                DHCP leases of NAT networks), console log and socket\n"
		"  reset FILE [NODE]\n"
		"                throw away every node's disk (or NODE's): stopped hard, a fresh\n"
		"                linked clone of its template, started again if it ran; the\n"
		"                identity stays\n"
		"  console FILE NODE\n"
		"                attach this terminal to NODE's serial console; Ctrl-A x leaves\n"
		"                (the node goes on), as in nestvm console\n"
		"  snapshot save|restore|delete FILE NAME, snapshot list FILE (or FILE first)\n"
		"                save: pause every node, then save each (memory, devices and a\n"
		"                copy of its disk), then let them all go on; restore: stop the\n"
		"                lab's nodes and bring every saved node back running from where\n"
		"                it was saved\n"
		"options:\n"
		"  --timeout S       up, reset, snapshot restore: seconds a node may take to be\n"
		"                    healthy (default 300); down: seconds nodes get to power off\n"
		"                    (default 60)\n"
		"  --json            status: one JSON object\n"
		"  --state-dir DIR   where labs keep their state (default\n"
		"                    $XDG_STATE_HOME/nestvm/labs, or ~/.local/state/nestvm/labs)\n");
}

static bool is_snapshot_action(const char *s)
{
	return !strcmp(s, "save") || !strcmp(s, "restore") || !strcmp(s, "delete") || !strcmp(s, "list");
}

int cmd_lab(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		log_error("lab: expected up, down, status, reset, console or snapshot, and the lab's "
			  "file (see 'nestvm lab --help')");
		return CLI_EXIT_USAGE;
	}
	const char *action = argv[1];
	bool up = !strcmp(action, "up"), down = !strcmp(action, "down"),
	     status = !strcmp(action, "status"), reset = !strcmp(action, "reset"),
	     console = !strcmp(action, "console"), snapshot = !strcmp(action, "snapshot");
	if (!up && !down && !status && !reset && !console && !snapshot) {
		log_error("lab: unknown action '%s' (expected up, down, status, reset, console or "
			  "snapshot)", action);
		return CLI_EXIT_USAGE;
	}
	/* Options anywhere after the action; the rest are, in order: the
	 * file, then reset's optional node, console's node; for snapshot its
	 * action (save, restore, delete, list) before or after the file, then
	 * the snapshot's name. */
	struct lab_options opt = { .timeout_s = up || reset || snapshot ? 300 : 60 };
	const char *pos[4];
	int npos = 0;
	for (int i = 2; i < argc; i++) {
		uint64_t v;
		if (argv[i][0] != '-') {
			if (npos == 4) {
				log_error("lab %s: unexpected argument '%s'", action, argv[i]);
				return CLI_EXIT_USAGE;
			}
			pos[npos++] = argv[i];
		} else if (!strcmp(argv[i], "--json") && status) {
			opt.json = true;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc && !status && !console) {
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
	const char *snap_action = NULL;
	if (snapshot) {
		int at = npos > 0 && is_snapshot_action(pos[0]) ? 0
			 : npos > 1 && is_snapshot_action(pos[1]) ? 1 : -1;
		if (at < 0 || npos < 2) {
			log_error("lab snapshot: expected save, restore, delete or list, and the lab's file");
			return CLI_EXIT_USAGE;
		}
		snap_action = pos[at];
		for (int i = at; i < npos - 1; i++) /* the file first, the name after */
			pos[i] = pos[i + 1];
		npos--;
	}
	if (npos == 0) {
		log_error("lab %s: expected the lab's file", action);
		return CLI_EXIT_USAGE;
	}
	const char *file = pos[0], *arg = npos > 1 ? pos[1] : NULL;
	/* The positional argument after the file: reset's optional node,
	 * console's node, a snapshot's name. */
	bool wants_arg = reset || console || (snapshot && strcmp(snap_action, "list"));
	if (npos > (wants_arg ? 2 : 1)) {
		log_error("lab %s: unexpected argument '%s'", action, pos[wants_arg ? 2 : 1]);
		return CLI_EXIT_USAGE;
	}
	if (wants_arg && !arg && !reset) {
		log_error("lab %s: expected %s after the file", snapshot ? "snapshot" : action,
			  console ? "a node's name" : "a snapshot's name");
		return CLI_EXIT_USAGE;
	}
	if (console) {
		char path[PATH_MAX], what[128];
		if (lab_console_socket(file, arg, &opt, path) < 0)
			return 1;
		snprintf(what, sizeof(what), "node %s", arg);
		return cli_console_attach(path, what);
	}
	int r = up ? lab_up(file, &opt) : down ? lab_down(file, &opt)
		: reset ? lab_reset(file, arg, &opt) : snapshot ? lab_snapshot(file, snap_action, arg, &opt)
		: lab_status(file, &opt);
	return r < 0 ? 1 : 0;
}
