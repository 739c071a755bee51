/* libFuzzer: a lab's YAML manifest as `nestvm lab up` loads it
 * (lab_manifest_load): any bytes are refused with a line or loaded into a
 * lab whose every index and order is sound. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab/manifest.h"
#include "util/log.h"

static char path[96];
static struct lab_manifest m;

static void remove_file(void)
{
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path[0]) {
		log_verbosity = -1;
		const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(path, sizeof(path), "%s/nestvm-fuzz-lab.%d.yaml", tmp, (int)getpid());
		atexit(remove_file);
	}
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, size, 1, f) != 1) || fclose(f) != 0)
		abort();
	if (lab_manifest_load(path, 16ULL << 30, &m) < 0)
		return 0;
	if (m.nnodes < 1 || m.nnodes > LAB_MAX_NODES || !m.name[0])
		abort();
	int seen[LAB_MAX_NODES] = { 0 }, pos[LAB_MAX_NODES];
	for (int i = 0; i < m.nnodes; i++) {
		int n = m.order[i];
		if (n < 0 || n >= m.nnodes || seen[n]++)
			abort();
		pos[n] = i;
	}
	uint64_t total = 0;
	for (int i = 0; i < m.nnodes; i++) {
		const struct lab_node *nd = &m.nodes[i];
		total += nd->memory;
		if (nd->template < 0 || nd->template >= m.ntemplates || nd->cpus < 1 ||
		    nd->nnics > LAB_MAX_NICS || nd->ndeps > LAB_MAX_DEPS)
			abort();
		for (int k = 0; k < nd->nnics; k++)
			if (nd->nics[k].network < 0 || nd->nics[k].network >= m.nnetworks)
				abort();
		for (int k = 0; k < nd->ndeps; k++)
			if (nd->deps[k] < 0 || nd->deps[k] >= m.nnodes || pos[nd->deps[k]] >= pos[i])
				abort(); /* a node comes after what it depends on */
	}
	if (total > 16ULL << 30)
		abort();
	return 0;
}
