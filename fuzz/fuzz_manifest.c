/* libFuzzer: a snapshot's manifest.json as restore reads it
 * (snapshot_read_config): JSON from anyone, into the machine's
 * configuration. The input is the manifest; it is unsigned, so one naming
 * disks or NICs must be refused (no file is opened for it), and anything
 * accepted must be a configuration nestvm could build. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

static char dir[64], path[96];

static void remove_files(void)
{
	unlink(path);
	rmdir(dir); /* fails, harmlessly, if the key was written there */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		log_verbosity = -1;
		/* In memory where there is a tmpfs: a file rewritten on a disk
		 * file system per input costs a writeback on every close. */
		const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(dir, sizeof(dir), "%s/nestvm-fuzz-manifest.%d", tmp, (int)getpid());
		snprintf(path, sizeof(path), "%s/manifest.json", dir);
		/* A key of the fuzzer's own, never the user's. */
		setenv("XDG_CONFIG_HOME", dir, 1);
		if (mkdir(dir, 0700) < 0)
			abort();
		atexit(remove_files);
	}
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, size, 1, f) != 1) || fclose(f) != 0)
		abort();
	struct machine_config c;
	memset(&c, 0, sizeof(c));
	if (snapshot_read_config(dir, false, false, &c) == 0) {
		if (c.ndisks || c.nnics)
			abort(); /* an unsigned manifest may not open anything */
		if (c.ncpus < 1 || c.ncpus > 1024 || c.ram_size == 0 || c.cores_per_socket < 0 ||
		    c.cores_per_socket > c.ncpus)
			abort();
	}
	return 0;
}
