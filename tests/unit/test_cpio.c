/* Unit tests: the newc cpio writer, checked by GNU cpio reading it back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cpio.h"

static void archive_lists_back(void **state)
{
	(void)state;
	char dir[] = "/tmp/nestvm-cpio-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], cmd[512];
	snprintf(path, sizeof(path), "%s/test.cpio", dir);
	struct cpio_writer w;
	assert_int_equal(cpio_create(&w, path), 0);
	cpio_add_dir(&w, "bin", 0755);
	cpio_add_data(&w, "bin/hello", 0755, "#!/bin/sh\necho hi\n", 18);
	cpio_add_data(&w, "odd", 0644, "abc", 3); /* needs padding */
	cpio_add_data(&w, "empty", 0644, "", 0);
	cpio_add_symlink(&w, "sh", "bin/hello");
	cpio_add_chardev(&w, "console", 0600, 5, 1);
	assert_int_equal(cpio_finish(&w), 0);

	snprintf(cmd, sizeof(cmd), "cpio -itv --quiet < %s", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char out[4096] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_non_null(strstr(out, "drwxr-xr-x"));
	assert_non_null(strstr(out, " bin/hello\n"));
	assert_non_null(strstr(out, " odd\n"));
	assert_non_null(strstr(out, " empty\n"));
	assert_non_null(strstr(out, " sh -> bin/hello\n"));
	assert_non_null(strstr(out, "crw-------"));

	snprintf(cmd, sizeof(cmd), "cd %s && cpio -id --quiet odd bin/hello < test.cpio && "
		 "test \"$(cat odd)\" = abc && grep -q 'echo hi' bin/hello", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void unwritable_path_fails(void **state)
{
	(void)state;
	struct cpio_writer w;
	assert_int_equal(cpio_create(&w, "/nonexistent/dir/x.cpio"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(archive_lists_back),
		cmocka_unit_test(unwritable_path_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
