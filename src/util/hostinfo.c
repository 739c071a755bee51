#include "util/hostinfo.h"

#include <stdio.h>
#include <string.h>

uint64_t host_meminfo(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	char line[256];
	uint64_t result = 0;
	size_t flen = strlen(field);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kib;
		if (!strncmp(line, field, flen) && line[flen] == ':' &&
		    sscanf(line + flen + 1, "%llu", &kib) == 1) {
			result = (uint64_t)kib * 1024;
			break;
		}
	}
	fclose(f);
	return result;
}
