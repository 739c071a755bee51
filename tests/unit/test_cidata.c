/* Unit tests: the cloud-init seed image (lab/cidata.c). What it writes is
 * read back by isoinfo (Debian's genisoimage), a reader that is not
 * libisofs: the volume label cloud-init looks for, and each file under its
 * own name (Rock Ridge) with its bytes; a path that cannot be written is
 * refused with nothing left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab/cidata.h"

static char dir[64];

/* The output of a shell command, whole. */
static char *output_of(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = 0;
	assert_int_equal(pclose(p), 0);
	return buf;
}

static void files_read_back_by_name(void **state)
{
	(void)state;
	char path[128], cmd[512];
	snprintf(path, sizeof(path), "%s/seed.iso", dir);
	/* Bigger than a sector, and with bytes a YAML file could hold. */
	char *big = malloc(5000);
	assert_non_null(big);
	for (int i = 0; i < 4999; i++)
		big[i] = (char)('a' + i % 26);
	big[4999] = 0;
	const struct cidata_file files[] = {
		{ "meta-data", "instance-id: 1234\nlocal-hostname: hv1\n" },
		{ "user-data", big },
		{ "network-config", "" },
	};
	assert_int_equal(cidata_write(path, files, 3), 0);
	snprintf(cmd, sizeof(cmd), "isoinfo -d -i %s", path);
	assert_non_null(strstr(output_of(cmd), "Volume id: CIDATA"));
	assert_non_null(strstr(output_of(cmd), "Rock Ridge"));
	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), "isoinfo -R -i %s -x /%s", path, files[i].name);
		assert_string_equal(output_of(cmd), files[i].content);
	}
	snprintf(cmd, sizeof(cmd), "%s.new", path);
	assert_int_equal(access(cmd, F_OK), -1); /* renamed into place */
	free(big);
}

static void unwritable_path_is_refused(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/missing/seed.iso", dir);
	const struct cidata_file f = { "meta-data", "instance-id: x\n" };
	assert_int_equal(cidata_write(path, &f, 1), -1);
	assert_int_equal(access(path, F_OK), -1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nestvm-unit-cidata.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(files_read_back_by_name),
		cmocka_unit_test(unwritable_path_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
