/* nestvm labhost: run a command inside an emulated AMD-V host. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "labhost/labhost.h"
#include "labhost/watchdog.h"
#include "util/log.h"
#include "util/parse.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm labhost [OPTIONS] -- COMMAND [ARGS...]\n"
		"Boots an emulated x86 host with AMD-V and nested KVM (QEMU TCG, Debian's\n"
		"generic kernel), runs COMMAND in it as root in this working directory, and\n"
		"exits with COMMAND's status. The root filesystem is shared read-only; the\n"
		"shared directory is writable.\n"
		"  --memory SIZE       lab host RAM (default 2G)\n"
		"  --cpus N            lab host vCPUs (default 1: see the README's limits)\n"
		"  --kernel-dir DIR    unpacked linux-image-*-amd64 package\n"
		"                      (default %s)\n"
		"  --qemu PATH         QEMU binary (default qemu-system-x86_64 from PATH)\n"
		"  --share DIR         writable directory (default the working directory)\n"
		"  --env NAME=VALUE    set a variable for COMMAND (repeatable)\n"
		"  --timeout SECONDS   stop the lab host after this long (exit status 124)\n"
		"  --freeze-timeout SECONDS\n"
		"                      a lab host whose heartbeat stops this long is frozen:\n"
		"                      stop it (exit status 123; default 30, 0: never)\n"
		"  --keepalive MS      interrupt the lab host this often (default %d; 0: never),\n"
		"                      so QEMU's TCG cannot leave it asleep with an interrupt\n"
		"                      pending (docs/labhost-freeze.md)\n"
		"  --freeze-report FILE\n"
		"                      write a frozen lab host's registers and code here\n"
		"  --tcg-thread multi|single\n"
		"                      QEMU's TCG: a thread per vCPU, or one for all (default multi)\n"
		"  -v, --verbose       also print the tail of the lab host's kernel log\n",
		labhost_default_kernel_dir(), WATCHDOG_KEEPALIVE_MS);
}

int cmd_labhost(int argc, char **argv)
{
	static const struct option options[] = {
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "kernel-dir", required_argument, NULL, 'K' },
		{ "qemu", required_argument, NULL, 'q' },
		{ "share", required_argument, NULL, 's' },
		{ "env", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "freeze-timeout", required_argument, NULL, 'F' },
		{ "freeze-report", required_argument, NULL, 'R' },
		{ "keepalive", required_argument, NULL, 'k' },
		{ "tcg-thread", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct labhost_options opts = {
		.memory = 2ULL << 30,
		.cpus = 1,
		.kernel_dir = labhost_default_kernel_dir(),
		.freeze_s = 30,
		.keepalive_ms = WATCHDOG_KEEPALIVE_MS,
		.tcg_thread = "multi",
	};
	char *env[64];
	uint64_t v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+vh", options, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_size(optarg, &v) < 0 || v < (256ULL << 20)) {
				log_error("labhost: --memory %s: expected a size of at least 256M", optarg);
				return CLI_EXIT_USAGE;
			}
			opts.memory = v;
			break;
		case 'n':
			if (parse_uint(optarg, 1, 64, &v) < 0) {
				log_error("labhost: --cpus %s: expected a number from 1 to 64", optarg);
				return CLI_EXIT_USAGE;
			}
			opts.cpus = (int)v;
			break;
		case 'K': opts.kernel_dir = optarg; break;
		case 'q': opts.qemu = optarg; break;
		case 's': opts.share = optarg; break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				log_error("labhost: --env %s: expected NAME=VALUE", optarg);
				return CLI_EXIT_USAGE;
			}
			if (opts.nenv == 64) {
				log_error("labhost: --env: at most 64 variables");
				return CLI_EXIT_USAGE;
			}
			env[opts.nenv++] = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 1, 86400 * 7, &v) < 0) {
				log_error("labhost: --timeout %s: expected seconds (1 or more)", optarg);
				return CLI_EXIT_USAGE;
			}
			opts.timeout_s = (unsigned)v;
			break;
		case 'F':
			if (parse_uint(optarg, 0, 86400, &v) < 0 || (v && v < 3 * WATCHDOG_BEAT_S)) {
				log_error("labhost: --freeze-timeout %s: expected seconds, 0 or from %d "
					  "to 86400", optarg, 3 * WATCHDOG_BEAT_S);
				return CLI_EXIT_USAGE;
			}
			opts.freeze_s = (unsigned)v;
			break;
		case 'R': opts.freeze_report = optarg; break;
		case 'k':
			if (parse_uint(optarg, 0, 60000, &v) < 0 || (v && v < 10)) {
				log_error("labhost: --keepalive %s: expected milliseconds, 0 or from 10 "
					  "to 60000", optarg);
				return CLI_EXIT_USAGE;
			}
			opts.keepalive_ms = (unsigned)v;
			break;
		case 'T':
			if (strcmp(optarg, "multi") && strcmp(optarg, "single")) {
				log_error("labhost: --tcg-thread %s: expected multi or single", optarg);
				return CLI_EXIT_USAGE;
			}
			opts.tcg_thread = optarg;
			break;
		case 'v': opts.verbose = 1; log_verbosity++; break;
		case 'h': usage(stdout); return 0;
		default:
			log_error("labhost: unknown option or missing value: %s (see 'nestvm labhost --help')",
				  argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	opts.env = env;
	if (optind >= argc) {
		log_error("labhost: no command given: nestvm labhost [OPTIONS] -- COMMAND [ARGS...]");
		return CLI_EXIT_USAGE;
	}
	return labhost_run(&opts, argv + optind);
}
