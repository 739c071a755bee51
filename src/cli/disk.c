/* nestvm disk: makes disk images. `clone` makes linked clones of a
 * template (qcow2 overlays that read what they have not written from it),
 * `create` an empty qcow2 image; both as `qemu-img create -f qcow2` makes
 * them, so QEMU's tools and QEMU itself use them too. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/disk.h"
#include "cli/cli.h"
#include "util/log.h"
#include "util/parse.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm disk clone [--size SIZE] TEMPLATE CLONE...\n"
		"       nestvm disk create --size SIZE IMAGE...\n"
		"clone:  makes each CLONE a linked clone of TEMPLATE (raw or qcow2, itself\n"
		"        possibly a clone): a qcow2 image that reads what it has not written\n"
		"        from TEMPLATE, which it names by its absolute path. Its size is\n"
		"        TEMPLATE's unless --size says otherwise. TEMPLATE is checked as a\n"
		"        disk would be, and must not be open for writing by a VM.\n"
		"create: makes each IMAGE an empty qcow2 image of SIZE bytes (K, M, G, T).\n"
		"An existing file is never overwritten.\n");
}

int cmd_disk(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "clone") && strcmp(argv[1], "create"))) {
		if (argc >= 2)
			log_error("disk: unknown action '%s' (expected clone or create)", argv[1]);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	bool clone = !strcmp(argv[1], "clone");
	uint64_t size = 0;
	bool sized = false;
	int i = 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (parse_size(argv[++i], &size) < 0 || size == 0) {
				log_error("disk %s --size %s: expected a size such as 2G", argv[1], argv[i]);
				return CLI_EXIT_USAGE;
			}
			sized = true;
		} else {
			log_error("disk %s: unknown option '%s'", argv[1], argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	int need = clone ? 2 : 1;
	if (argc - i < need || (!clone && !sized)) {
		log_error(clone ? "disk clone: expected TEMPLATE and at least one CLONE"
				: "disk create: expected --size SIZE and at least one IMAGE");
		return CLI_EXIT_USAGE;
	}
	char name[PATH_MAX + 32];
	if (!clone) {
		for (; i < argc; i++) {
			snprintf(name, sizeof(name), "disk create %s", argv[i]);
			if (disk_create_qcow2(name, argv[i], size, NULL, NULL) < 0)
				return 1;
		}
		return 0;
	}
	const char *template = argv[i++];
	snprintf(name, sizeof(name), "disk clone %s", template);
	for (; i < argc; i++) {
		if (disk_clone(name, template, argv[i], sized ? size : 0) < 0)
			return 1;
	}
	return 0;
}
