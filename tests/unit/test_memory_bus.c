/* Unit tests: guest memory bounds (vmm/guest_mem.c) and the I/O bus
 * (devices/bus.c), the two places guest-chosen addresses are decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/bus.h"
#include "mem/guest_mem.h"

static void small_guest_is_one_region(void **state)
{
	(void)state;
	struct guest_mem m;
	assert_int_equal(guest_mem_alloc(&m, 16 << 20, 0), 0);
	assert_int_equal(m.nregions, 1);
	assert_non_null(guest_mem_ptr(&m, 0, 16 << 20));
	assert_non_null(guest_mem_ptr(&m, (16 << 20) - 1, 1));
	assert_non_null(guest_mem_ptr(&m, 16 << 20, 0));
	assert_null(guest_mem_ptr(&m, (16 << 20) - 1, 2));
	assert_null(guest_mem_ptr(&m, 16 << 20, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&m, 4096, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, UINT64_MAX - 10, 100)); /* wraps */
	guest_mem_free(&m);
}

static void large_guest_skips_the_mmio_hole(void **state)
{
	(void)state;
	struct guest_mem m;
	uint64_t size = 5ULL << 30; /* reserved, never touched */
	assert_int_equal(guest_mem_alloc(&m, size, 0), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[0].size, GUEST_MMIO_HOLE_START);
	assert_int_equal(m.regions[1].gpa, GUEST_MMIO_HOLE_END);
	assert_int_equal(m.regions[1].size, size - GUEST_MMIO_HOLE_START);
	assert_non_null(guest_mem_ptr(&m, GUEST_MMIO_HOLE_START - 8, 8));
	assert_null(guest_mem_ptr(&m, GUEST_MMIO_HOLE_START - 8, 16));
	assert_null(guest_mem_ptr(&m, GUEST_MMIO_HOLE_START, 1));
	assert_null(guest_mem_ptr(&m, 0xfe000000, 8));
	assert_ptr_equal(guest_mem_ptr(&m, GUEST_MMIO_HOLE_END, 8), m.base + GUEST_MMIO_HOLE_START);
	assert_null(guest_mem_ptr(&m, GUEST_MMIO_HOLE_END + size - GUEST_MMIO_HOLE_START, 1));
	guest_mem_free(&m);
}

/* KVM can map guest RAM with huge pages only if it starts on a huge-page
 * boundary of our address space; the slack reserved for that is given back. */
static void guest_ram_starts_on_a_huge_page_boundary(void **state)
{
	(void)state;
	const uint64_t sizes[] = { 16 << 20, (16 << 20) + 4096, 5ULL << 30 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct guest_mem m;
		assert_int_equal(guest_mem_alloc(&m, sizes[i], 0), 0);
		assert_int_equal((uintptr_t)m.base % GUEST_MEM_ALIGN, 0);
		m.base[sizes[i] - 1] = 1; /* the last byte is ours */
		errno = 0;
		assert_int_equal(msync(m.base + sizes[i], 4096, MS_ASYNC), -1);
		assert_int_equal(errno, ENOMEM); /* the page after it is not */
		guest_mem_free(&m);
	}
}

struct recorder {
	uint64_t offset;
	uint32_t len;
	int writes, reads;
};

static void record(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct recorder *r = opaque;
	r->offset = offset;
	r->len = len;
	if (is_write)
		r->writes++;
	else {
		r->reads++;
		memset(data, 0x42, len);
	}
}

static void bus_dispatch(void **state)
{
	(void)state;
	struct bus bus;
	struct recorder a = { 0 }, b = { 0 };
	bus_init(&bus, "port");
	assert_int_equal(bus_register(&bus, 0x3f8, 8, record, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x100, 4, record, &b, "b"), 0);
	uint8_t data[8];
	assert_true(bus_access(&bus, 0x3fd, data, 1, false));
	assert_int_equal(a.offset, 5);
	assert_int_equal(data[0], 0x42);
	assert_true(bus_access(&bus, 0x100, data, 4, true));
	assert_int_equal(b.writes, 1);
	/* Straddling the end of a range, or hitting nothing: not decoded. */
	assert_false(bus_access(&bus, 0x102, data, 4, false));
	assert_int_equal(b.reads, 0);
	assert_int_equal(data[0], 0xff);
	assert_false(bus_access(&bus, 0x500, data, 2, false));
	assert_int_equal(data[1], 0xff);
	assert_false(bus_access(&bus, UINT64_MAX, data, 8, true));
	bus_free(&bus);
}

static void bus_refuses_overlaps(void **state)
{
	(void)state;
	struct bus bus;
	struct recorder a = { 0 };
	bus_init(&bus, "MMIO");
	assert_int_equal(bus_register(&bus, 0x1000, 0x1000, record, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x1fff, 1, record, &a, "b"), -1);
	assert_int_equal(bus_register(&bus, 0x0, 0x1001, record, &a, "c"), -1);
	assert_int_equal(bus_register(&bus, 0x2000, 0, record, &a, "empty"), -1);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, record, &a, "wrap"), -1);
	assert_int_equal(bus_register(&bus, 0x2000, 1, record, &a, "d"), 0);
	for (int i = 0; i < 100; i++) /* growth */
		assert_int_equal(bus_register(&bus, 0x10000 + (uint64_t)i * 16, 16, record, &a, "e"), 0);
	assert_int_equal(bus.count, 102);
	bus_free(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(small_guest_is_one_region),
		cmocka_unit_test(large_guest_skips_the_mmio_hole),
		cmocka_unit_test(guest_ram_starts_on_a_huge_page_boundary),
		cmocka_unit_test(bus_dispatch),
		cmocka_unit_test(bus_refuses_overlaps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
