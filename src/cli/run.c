/* nestvm run: boot one VM in this process. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/hostinfo.h"
#include "util/log.h"
#include "util/parse.h"
#include "vmm/machine.h"

#define DEFAULT_MEMORY (512ULL << 20)
#define MAX_CPUS 1024

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm run --kernel FILE [OPTIONS]\n"
		"  --kernel FILE          Linux bzImage, Linux vmlinux (PVH), or a nestvm\n"
		"                         direct-entry ELF guest\n"
		"  --initrd FILE          initial ramdisk (Linux)\n"
		"  --cmdline STRING       kernel command line\n"
		"  --memory SIZE          guest RAM, e.g. 512M, 2G (default 512M)\n"
		"  --cpus N               number of vCPUs (default 1)\n"
		"  --cores-per-socket N   vCPUs per socket (default: all in one socket)\n"
		"  --cpu-model host|compat\n"
		"                         host: all KVM supports here; compat: an x86-64-v2\n"
		"                         baseline a guest can keep on other hosts (default host)\n"
		"  --on-reboot restart|exit\n"
		"                         what a guest reboot does (default restart)\n"
		"  --console stdio|file:PATH|append:PATH|none\n"
		"                         where the serial console (COM1) goes (default stdio;\n"
		"                         stdin is its input, Ctrl-A x quits on a terminal)\n"
		"  --console-socket PATH  also serve the console on this UNIX socket, to one\n"
		"                         client at a time ('nestvm console PATH')\n"
		"  --nested               expose AMD-V/VT-x so the guest can run its own VMs\n"
		"                         (guest RAM is then allocated up front: static memory)\n"
		"  --disk PATH[,readonly][,serial=ID]\n"
		"                         attach a raw or qcow2 disk image as virtio-blk\n"
		"                         (repeatable; a sparse file stays thin; locked while\n"
		"                         in use)\n"
		"  --net tap=IFNAME[,mac=MAC]\n"
		"                         attach a virtio-net NIC to a tap device, created if\n"
		"                         absent (repeatable; default MAC: 02:... derived from\n"
		"                         IFNAME, stable across runs)\n"
		"  --net switch=PATH[,port=NAME][,mac=MAC]\n"
		"                         attach a NIC to a port of 'nestvm switch' (or any\n"
		"                         QEMU stream socket) at PATH, or at PATH.NAME for a\n"
		"                         named port; no root needed\n"
		"  --rng                  attach virtio-rng (host random numbers)\n"
		"  --uuid UUID            the machine's SMBIOS UUID (/sys/class/dmi/id/product_uuid;\n"
		"                         default: a random one each run)\n"
		"  --serial TEXT          its SMBIOS system and chassis serial number, e.g.\n"
		"                         'ds=nocloud;h=HOST;i=ID' for cloud-init (default: none)\n"
		"  --api-socket PATH      serve the control API (JSON lines) on this UNIX\n"
		"                         socket: see 'nestvm ctl'\n"
		"  --test-device          attach the nestvm test device (exit port 0xf4, MMIO\n"
		"                         at 0xfe000000) used by the test guest\n"
		"  -v, --verbose          more messages (repeat for debug)\n");
}

int cmd_run(int argc, char **argv)
{
	static const struct option options[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' },
		{ "console-socket", required_argument, NULL, 'O' },
		{ "test-device", no_argument, NULL, 'T' },
		{ "nested", no_argument, NULL, 'N' },
		{ "cores-per-socket", required_argument, NULL, 'S' },
		{ "cpu-model", required_argument, NULL, 'M' },
		{ "on-reboot", required_argument, NULL, 'R' },
		{ "disk", required_argument, NULL, 'D' },
		{ "net", required_argument, NULL, 'E' },
		{ "rng", no_argument, NULL, 'G' },
		{ "uuid", required_argument, NULL, 'U' },
		{ "serial", required_argument, NULL, 's' },
		{ "api-socket", required_argument, NULL, 'A' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct machine_config config = {
		.ram_size = DEFAULT_MEMORY,
		.ncpus = 1,
		.cmdline = "",
		.console_fd = STDOUT_FILENO,
		.console_in_fd = -1,
	};
	bool restart_on_reboot = true, uuid_set = false;
	const char *console = "stdio", *console_socket = NULL;
	int c;
	uint64_t v;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+vh", options, NULL)) != -1) {
		switch (c) {
		case 'k': config.kernel = optarg; break;
		case 'i': config.initrd = optarg; break;
		case 'c': config.cmdline = optarg; break;
		case 'm':
			if (parse_size(optarg, &v) < 0 || v == 0) {
				log_error("--memory %s: expected a size such as 512M or 2G", optarg);
				return CLI_EXIT_USAGE;
			}
			if (v % 4096) {
				log_error("--memory %s: must be a multiple of 4 KiB", optarg);
				return CLI_EXIT_USAGE;
			}
			config.ram_size = v;
			break;
		case 'n':
			if (parse_uint(optarg, 1, MAX_CPUS, &v) < 0) {
				log_error("--cpus %s: expected a number from 1 to %d", optarg, MAX_CPUS);
				return CLI_EXIT_USAGE;
			}
			config.ncpus = (int)v;
			break;
		case 'C': console = optarg; break;
		case 'O': console_socket = optarg; break;
		case 'T': config.test_device = true; break;
		case 'N': config.nested = true; break;
		case 'S':
			if (parse_uint(optarg, 1, MAX_CPUS, &v) < 0) {
				log_error("--cores-per-socket %s: expected a number from 1 to %d", optarg,
					  MAX_CPUS);
				return CLI_EXIT_USAGE;
			}
			config.cores_per_socket = (int)v;
			break;
		case 'M':
			if (!strcmp(optarg, "host"))
				config.cpu_model = CPU_MODEL_HOST;
			else if (!strcmp(optarg, "compat"))
				config.cpu_model = CPU_MODEL_COMPAT;
			else {
				log_error("--cpu-model %s: expected host or compat", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'R':
			if (!strcmp(optarg, "restart") || !strcmp(optarg, "exit"))
				restart_on_reboot = !strcmp(optarg, "restart");
			else {
				log_error("--on-reboot %s: expected restart or exit", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'D':
			if (config.ndisks == MACHINE_MAX_DISKS) {
				log_error("--disk %s: at most %d disks", optarg, MACHINE_MAX_DISKS);
				return CLI_EXIT_USAGE;
			}
			if (virtio_blk_parse(optarg, &config.disks[config.ndisks]) < 0)
				return CLI_EXIT_USAGE;
			config.ndisks++;
			break;
		case 'E':
			if (config.nnics == MACHINE_MAX_NICS) {
				log_error("--net %s: at most %d NICs", optarg, MACHINE_MAX_NICS);
				return CLI_EXIT_USAGE;
			}
			if (virtio_net_parse(optarg, &config.nics[config.nnics]) < 0)
				return CLI_EXIT_USAGE;
			config.nnics++;
			break;
		case 'G': config.rng = true; break;
		case 'U':
			if (smbios_parse_uuid(optarg, config.identity.uuid) < 0) {
				log_error("--uuid %s: expected a UUID such as "
					  "123e4567-e89b-42d3-a456-426614174000", optarg);
				return CLI_EXIT_USAGE;
			}
			uuid_set = true;
			break;
		case 's':
			if (strlen(optarg) >= sizeof(config.identity.serial)) {
				log_error("--serial: longer than %d characters",
					  (int)sizeof(config.identity.serial) - 1);
				return CLI_EXIT_USAGE;
			}
			strcpy(config.identity.serial, optarg);
			break;
		case 'A': config.api_socket = optarg; break;
		case 'v': log_verbosity++; break;
		case 'h': usage(stdout); return 0;
		default:
			if (optopt)
				log_error("run: option -%c needs a value or is unknown (see 'nestvm run --help')", optopt);
			else
				log_error("run: unknown option %s (see 'nestvm run --help')", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("run: unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if (!uuid_set)
		smbios_random_uuid(config.identity.uuid);
	if (!config.kernel) {
		log_error("run: --kernel FILE is required");
		return CLI_EXIT_USAGE;
	}
	uint64_t host_total = host_meminfo("MemTotal");
	if (host_total && config.ram_size > host_total) {
		char want[32], have[32];
		log_error("--memory %s: more than this host's %s of RAM",
			  format_size(config.ram_size, want, sizeof(want)),
			  format_size(host_total, have, sizeof(have)));
		return CLI_EXIT_USAGE;
	}
	if (config.cores_per_socket > config.ncpus) {
		log_error("--cores-per-socket %d: more than --cpus %d", config.cores_per_socket,
			  config.ncpus);
		return CLI_EXIT_USAGE;
	}
	struct console_socket cs;
	if (cli_open_console(console, console_socket, &config, &cs) < 0)
		return CLI_EXIT_USAGE;

	int status;
	for (;;) {
		/* A reboot builds the machine anew: memory, devices and vCPUs
		 * start from power-on state, as on a real reset. */
		struct machine m;
		bool rebooted = false;
		if (machine_create(&m, &config) < 0) {
			status = MACHINE_EXIT_ERROR;
		} else {
			status = machine_run(&m);
			rebooted = m.reboot_requested;
		}
		machine_destroy(&m);
		if (!rebooted)
			break;
		if (!restart_on_reboot) {
			log_info("the guest rebooted: exiting (--on-reboot exit)");
			break;
		}
		log_info("the guest rebooted: restarting it");
	}
	cli_close_console(&config);
	return status;
}
