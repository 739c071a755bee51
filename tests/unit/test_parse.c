/* Unit tests: value parsing (util/parse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/parse.h"

static void sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("2G", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
}

static void bad_sizes(void **state)
{
	(void)state;
	uint64_t v = 123;
	const char *bad[] = { "", "M", "-1G", "1.5G", "12Q", "1GG", "99999999999999999999",
			      "20000000T", " 1G", "1G ", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(parse_size(bad[i], &v), -1);
		assert_int_equal(v, 123);
	}
	assert_int_equal(parse_size(NULL, &v), -1);
}

static void uints(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_uint("4", 1, 8, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_uint("0", 1, 8, &v), -1);
	assert_int_equal(parse_uint("9", 1, 8, &v), -1);
	assert_int_equal(parse_uint("4x", 1, 8, &v), -1);
	assert_int_equal(parse_uint("-4", 0, 8, &v), -1);
	assert_int_equal(parse_uint("", 0, 8, &v), -1);
}

static void format(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(format_size(512ULL << 20, buf, sizeof(buf)), "512 MiB");
	assert_string_equal(format_size(3ULL << 29, buf, sizeof(buf)), "1.5 GiB");
	assert_string_equal(format_size(100, buf, sizeof(buf)), "100 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes),
		cmocka_unit_test(bad_sizes),
		cmocka_unit_test(uints),
		cmocka_unit_test(format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
