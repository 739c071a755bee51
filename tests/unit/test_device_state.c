/* Unit tests: device state as snapshots carry it. The field codec
 * (util/state_codec.c), each platform device's save and validated load
 * through the device interface (devices/device.h), the PCI bus's restore
 * of configuration spaces, and state.bin's record parser
 * (vmm/snapshot_format.c). A crafted value must be refused with a reason,
 * never loaded. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "devices/acpi_pm.h"
#include "devices/device.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial8250.h"
#include "util/state_codec.h"
#include "vmm/snapshot_format.h"

static void codec_round_trips_and_refuses_bad_input(void **state)
{
	(void)state;
	struct state_out out = { 0 };
	state_put_u8(&out, 0xab);
	state_put_u16(&out, 0x1234);
	state_put_u32(&out, 0xdeadbeef);
	state_put_u64(&out, 0x0102030405060708ULL);
	state_put_bool(&out, true);
	assert_false(out.failed);
	assert_int_equal(out.len, 1 + 2 + 4 + 8 + 1);
	/* Little-endian whatever the host. */
	assert_int_equal(out.buf[1], 0x34);
	assert_int_equal(out.buf[3], 0xef);

	struct state_in in;
	state_in_init(&in, out.buf, out.len);
	assert_int_equal(state_get_u8(&in), 0xab);
	assert_int_equal(state_get_u16(&in), 0x1234);
	assert_int_equal(state_get_u32(&in), 0xdeadbeef);
	assert_true(state_get_u64(&in) == 0x0102030405060708ULL);
	assert_true(state_get_bool(&in));
	assert_int_equal(state_in_finish(&in), 0);

	/* A flag of 2. */
	out.buf[15] = 2;
	state_in_init(&in, out.buf, out.len);
	state_get_bytes(&in, (uint8_t[15]){ 0 }, 15);
	state_get_bool(&in);
	assert_int_equal(state_in_finish(&in), -1);
	assert_string_equal(in.why, "a flag holds 2 (not 0 or 1)");
	/* Too short: the getter gives 0 and the input is failed. */
	state_in_init(&in, out.buf, 3);
	state_get_u8(&in);
	assert_int_equal(state_get_u32(&in), 0);
	assert_int_equal(state_in_finish(&in), -1);
	assert_string_equal(in.why, "truncated");
	/* Bytes left over. */
	state_in_init(&in, out.buf, out.len);
	state_get_u8(&in);
	assert_int_equal(state_in_finish(&in), -1);
	assert_string_equal(in.why, "15 bytes too many");
	state_out_free(&out);
}

/* Saves a device, lets edit change one byte of its fields, and loads the
 * result into dst; returns what load returned, the reason in why. */
static int save_edit_load(const struct device_ops *ops, void *src, void *dst, long at, uint8_t value,
			  char *why)
{
	struct state_out out = { 0 };
	char err[128];
	assert_int_equal(ops->save(src, &out, err, sizeof(err)), 0);
	if (at >= 0) {
		assert_true((size_t)at < out.len);
		out.buf[at] = value;
	}
	struct state_in in;
	state_in_init(&in, out.buf, out.len);
	int r = ops->load(dst, &in);
	strcpy(why, in.why);
	state_out_free(&out);
	return r;
}

static void rtc_state_round_trips_and_index_is_checked(void **state)
{
	(void)state;
	struct rtc a, b;
	rtc_init(&a);
	rtc_init(&b);
	a.index = 0x32;
	a.cmos[0x40] = 0x99;
	char why[160];
	assert_int_equal(save_edit_load(&rtc_device_ops, &a, &b, -1, 0, why), 0);
	assert_int_equal(b.index, 0x32);
	assert_int_equal(b.cmos[0x40], 0x99);
	/* The index past cmos[]: refused, and b keeps what it had. */
	assert_int_equal(save_edit_load(&rtc_device_ops, &a, &b, 0, 0xff, why), -1);
	assert_string_equal(why, "index 255 out of range");
	assert_int_equal(b.index, 0x32);
	rtc_destroy(&a);
	rtc_destroy(&b);
}

static int uart_irq_level;
static void uart_irq(void *ctx, int irq, int level)
{
	(void)ctx, (void)irq;
	uart_irq_level = level;
}

static void serial_state_round_trips_and_fifo_is_checked(void **state)
{
	(void)state;
	struct serial8250 a, b;
	serial8250_init(&a, -1, 4, NULL, NULL);
	serial8250_init(&b, -1, 4, uart_irq, NULL);
	a.ier = 1; /* receive interrupts on */
	assert_int_equal(serial8250_receive(&a, (const uint8_t *)"hi", 2), 2);
	char why[160];
	uart_irq_level = 0;
	assert_int_equal(save_edit_load(&serial8250_device_ops, &a, &b, -1, 0, why), 0);
	assert_int_equal(b.rx_count, 2);
	assert_memory_equal(b.rx + b.rx_head, "hi", 2);
	assert_int_equal(uart_irq_level, 1); /* the line follows the loaded state */
	/* The THR flag (after 9 registers) as 2; then the FIFO head (after
	 * the flag and 64 bytes) past the FIFO. */
	assert_int_equal(save_edit_load(&serial8250_device_ops, &a, &b, 9, 2, why), -1);
	assert_string_equal(why, "a flag holds 2 (not 0 or 1)");
	assert_int_equal(save_edit_load(&serial8250_device_ops, &a, &b, 10 + SERIAL_RX_FIFO, 64, why), -1);
	assert_string_equal(why, "receive FIFO at 64 holding 2 bytes (it has 64)");
	serial8250_destroy(&a);
	serial8250_destroy(&b);
}

static int sci_level = -1;
static void set_sci(void *ctx, int level)
{
	(void)ctx;
	sci_level = level;
}

static void acpi_pm_recomputes_its_sci(void **state)
{
	(void)state;
	struct acpi_pm a, b;
	acpi_pm_init(&a, 5, NULL, NULL, NULL);
	acpi_pm_init(&b, 5, NULL, set_sci, NULL);
	a.en = 0x100; /* power button enabled */
	acpi_pm_power_button(&a);
	char why[160];
	assert_int_equal(save_edit_load(&acpi_pm_device_ops, &a, &b, -1, 0, why), 0);
	assert_int_equal(b.sts & 0x100, 0x100);
	assert_int_equal(sci_level, 1);
	acpi_pm_destroy(&a);
	acpi_pm_destroy(&b);
}

static int bars_changed_calls;
static void bars_changed(struct pci_device *dev)
{
	(void)dev;
	bars_changed_calls++;
}

static void make_bus(struct pci_bus *bus, struct pci_device *dev)
{
	pci_bus_init(bus);
	memset(dev, 0, sizeof(*dev));
	dev->config[0] = 0xf4, dev->config[1] = 0x1a;
	dev->bar_size[0] = 0x4000;
	dev->bars_changed = bars_changed;
	assert_int_equal(pci_bus_add(bus, dev, "unit"), 1);
}

/* The bus restores what a guest could have written (command, BARs within
 * their size) through the guest's own path, and refuses the rest. */
static void pci_bus_restores_only_what_a_guest_could_write(void **state)
{
	(void)state;
	struct pci_bus a, b;
	struct pci_device da, db;
	make_bus(&a, &da);
	make_bus(&b, &db);
	pci_put16(&da, PCI_COMMAND, PCI_COMMAND_MEMORY);
	pci_put32(&da, PCI_BAR0, 0xe0000000 | 4); /* 64-bit memory BAR */
	a.address = 0x80000800;
	char why[160];
	bars_changed_calls = 0;
	assert_int_equal(save_edit_load(&pci_bus_device_ops, &a, &b, -1, 0, why), 0);
	assert_int_equal(b.address, 0x80000800);
	assert_true(pci_bar_address(&db, 0) == 0xe0000000);
	assert_true(bars_changed_calls > 0);
	/* Offset 4 + 1 is the slot's config byte 0: the vendor ID. */
	assert_int_equal(save_edit_load(&pci_bus_device_ops, &a, &b, 5, 0x12, why), -1);
	assert_string_equal(why, "slot 1: configuration space a guest could not have written to this device");
	/* A BAR address below its size's alignment could not have been written. */
	assert_int_equal(save_edit_load(&pci_bus_device_ops, &a, &b, 5 + PCI_BAR0 + 1, 0x10, why), -1);
	/* The wrong slot. */
	assert_int_equal(save_edit_load(&pci_bus_device_ops, &a, &b, 4, 7, why), -1);
	assert_string_equal(why, "slot 7 where this machine has a device in slot 1");
	pci_bus_destroy(&a);
	pci_bus_destroy(&b);
}

static void state_records_are_parsed_with_every_length_checked(void **state)
{
	(void)state;
	uint8_t file[16 + 16 + 3 + 16 + 0] = "NVMSNAP1";
	uint32_t version = 7;
	memcpy(file + 8, &version, 4);
	struct { uint32_t tag, index; uint64_t len; } h = { 40, 2, 3 };
	memcpy(file + 16, &h, 16);
	memcpy(file + 32, "abc", 3);
	h = (typeof(h)){ 1, 0, 0 };
	memcpy(file + 35, &h, 16); /* at an odd offset */
	struct state_records recs;
	char why[128];
	assert_int_equal(state_parse(file, sizeof(file), 7, &recs, why, sizeof(why)), 0);
	assert_int_equal(recs.n, 2);
	const struct state_record *r = state_find(&recs, 40, 2);
	assert_non_null(r);
	assert_int_equal(r->len, 3);
	assert_memory_equal(r->data, "abc", 3);
	assert_non_null(state_find(&recs, 1, 0));
	assert_null(state_find(&recs, 40, 0));
	state_records_free(&recs);

	assert_int_equal(state_parse(file, sizeof(file), 8, &recs, why, sizeof(why)), -1);
	assert_string_equal(why, "state.bin has version 7; this nestvm reads version 8");
	assert_int_equal(state_parse(file, sizeof(file) - 1, 7, &recs, why, sizeof(why)), -1);
	assert_string_equal(why, "state.bin is truncated");
	h = (typeof(h)){ 40, 2, UINT64_MAX - 8 }; /* a length that wraps an offset sum */
	memcpy(file + 16, &h, 16);
	assert_int_equal(state_parse(file, sizeof(file), 7, &recs, why, sizeof(why)), -1);
	assert_null(recs.recs);
	assert_int_equal(state_parse(file, 10, 7, &recs, why, sizeof(why)), -1);
	assert_string_equal(why, "state.bin is not nestvm state");
	/* Millions of empty records would make every lookup crawl: bounded. */
	size_t n = STATE_MAX_RECORDS + 1, size = 16 + 16 * n;
	uint8_t *many = calloc(1, size);
	assert_non_null(many);
	memcpy(many, "NVMSNAP1", 8);
	memcpy(many + 8, &version, 4);
	assert_int_equal(state_parse(many, size - 16, 7, &recs, why, sizeof(why)), 0);
	assert_int_equal(recs.n, STATE_MAX_RECORDS);
	state_records_free(&recs);
	assert_int_equal(state_parse(many, size, 7, &recs, why, sizeof(why)), -1);
	assert_string_equal(why, "state.bin has more than 16384 records");
	free(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codec_round_trips_and_refuses_bad_input),
		cmocka_unit_test(rtc_state_round_trips_and_index_is_checked),
		cmocka_unit_test(serial_state_round_trips_and_fifo_is_checked),
		cmocka_unit_test(acpi_pm_recomputes_its_sci),
		cmocka_unit_test(pci_bus_restores_only_what_a_guest_could_write),
		cmocka_unit_test(state_records_are_parsed_with_every_length_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
