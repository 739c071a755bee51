#define _GNU_SOURCE
/* Unit tests: the 8250 UART and the test device, driven through the bus
 * the way vCPU exits drive them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/serial8250.h"
#include "devices/testdev.h"
#include "util/hash.h"

static uint8_t in8(struct bus *bus, uint64_t addr)
{
	uint8_t v;
	assert_true(bus_access(bus, addr, &v, 1, false));
	return v;
}

static void out8(struct bus *bus, uint64_t addr, uint8_t v)
{
	assert_true(bus_access(bus, addr, &v, 1, true));
}

static int irq_level = -1;
static void set_irq(void *ctx, int irq, int level)
{
	(void)ctx;
	assert_int_equal(irq, 4);
	irq_level = level;
}

static void uart_transmits_to_its_output(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct bus pio;
	struct serial8250 uart;
	bus_init(&pio, "port");
	serial8250_init(&uart, p[1], 4, set_irq, NULL);
	assert_int_equal(serial8250_attach(&uart, &pio, 0x3f8), 0);
	assert_true(in8(&pio, 0x3fd) & 0x20); /* THR empty */
	const char *msg = "hi\n";
	for (const char *c = msg; *c; c++)
		out8(&pio, 0x3f8, (uint8_t)*c);
	char buf[8] = { 0 };
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	assert_string_equal(buf, msg);
	/* Divisor latch: writes to offset 0 go to DLL, not the output. */
	out8(&pio, 0x3fb, 0x80);
	out8(&pio, 0x3f8, 1);
	assert_int_equal(in8(&pio, 0x3f8), 1);
	out8(&pio, 0x3fb, 0x03);
	out8(&pio, 0x3ff, 0x5a); /* scratch */
	assert_int_equal(in8(&pio, 0x3ff), 0x5a);
	serial8250_destroy(&uart);
	bus_free(&pio);
	close(p[0]);
	close(p[1]);
}

/* The console socket's mirror (--console-socket): every byte goes to the
 * output and to the mirror; a mirror nobody reads (a full non-blocking
 * pipe) loses bytes and never holds the guest, and the output loses none. */
static void uart_mirror_never_blocks(void **state)
{
	(void)state;
	int out[2], mirror[2];
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe2(mirror, O_NONBLOCK), 0);
	struct bus pio;
	struct serial8250 uart;
	bus_init(&pio, "port");
	serial8250_init(&uart, out[1], 4, set_irq, NULL);
	uart.mirror_fd = mirror[1];
	assert_int_equal(serial8250_attach(&uart, &pio, 0x3f8), 0);
	out8(&pio, 0x3f8, 'x');
	char c = 0;
	assert_int_equal(read(out[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	assert_int_equal(read(mirror[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	/* fill the mirror's pipe, then transmit more than it holds: this
	 * returns (a blocking write would hang the test) */
	int size = fcntl(mirror[1], F_GETPIPE_SZ);
	assert_true(size > 0);
	assert_int_equal(fcntl(out[1], F_SETPIPE_SZ, 1 << 20) >= size + 16, 1);
	char *junk = calloc(1, (size_t)size);
	assert_int_equal(write(mirror[1], junk, (size_t)size), size);
	for (int i = 0; i < 16; i++)
		out8(&pio, 0x3f8, (uint8_t)('a' + i));
	char got[16];
	assert_int_equal(read(out[0], got, sizeof(got)), 16);
	assert_memory_equal(got, "abcdefghijklmnop", 16);
	free(junk);
	serial8250_destroy(&uart);
	bus_free(&pio);
	close(out[0]), close(out[1]), close(mirror[0]), close(mirror[1]);
}

static void uart_receives_and_interrupts(void **state)
{
	(void)state;
	struct bus pio;
	struct serial8250 uart;
	bus_init(&pio, "port");
	serial8250_init(&uart, -1, 4, set_irq, NULL);
	assert_int_equal(serial8250_attach(&uart, &pio, 0x3f8), 0);
	out8(&pio, 0x3f9, 0x01); /* enable receive interrupts */
	assert_int_equal(irq_level, 0);
	assert_int_equal(serial8250_receive(&uart, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(irq_level, 1);
	assert_int_equal(in8(&pio, 0x3fa) & 0x0f, 0x04); /* IIR: data available */
	assert_true(in8(&pio, 0x3fd) & 0x01);
	assert_int_equal(in8(&pio, 0x3f8), 'a');
	assert_int_equal(in8(&pio, 0x3f8), 'b');
	assert_false(in8(&pio, 0x3fd) & 0x01);
	assert_int_equal(irq_level, 0);
	/* A full FIFO takes no more. */
	uint8_t lots[100];
	memset(lots, 'x', sizeof(lots));
	assert_int_equal(serial8250_receive(&uart, lots, sizeof(lots)), SERIAL_RX_FIFO);
	/* Loopback: transmitted bytes come back as input. */
	out8(&pio, 0x3fa, 0x02); /* clear the receive FIFO */
	out8(&pio, 0x3fc, 0x10);
	out8(&pio, 0x3f8, 'z');
	assert_int_equal(in8(&pio, 0x3f8), 'z');
	serial8250_destroy(&uart);
	bus_free(&pio);
}

static int exit_status = -1;
static void request_exit(void *ctx, int status)
{
	(void)ctx;
	exit_status = status;
}

static uint64_t rd64(struct bus *mmio, uint64_t reg)
{
	uint64_t v;
	assert_true(bus_access(mmio, TESTDEV_MMIO_BASE + reg, (uint8_t *)&v, 8, false));
	return v;
}

static void wr64(struct bus *mmio, uint64_t reg, uint64_t v)
{
	assert_true(bus_access(mmio, TESTDEV_MMIO_BASE + reg, (uint8_t *)&v, 8, true));
}

static void testdev_checks_guest_buffers(void **state)
{
	(void)state;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct testdev dev;
	assert_int_equal(guest_mem_alloc(&mem, 1 << 20, 0), 0);
	bus_init(&pio, "port");
	bus_init(&mmio, "MMIO");
	testdev_init(&dev, &mem, request_exit, NULL);
	assert_int_equal(testdev_attach(&dev, &pio, &mmio), 0);

	assert_int_equal(rd64(&mmio, TESTDEV_REG_ID), TESTDEV_ID);
	memcpy(mem.base + 0x1000, "hello", 5);
	wr64(&mmio, TESTDEV_REG_BUF_ADDR, 0x1000);
	wr64(&mmio, TESTDEV_REG_BUF_LEN, 5);
	wr64(&mmio, TESTDEV_REG_CHECKSUM, 1);
	assert_int_equal(rd64(&mmio, TESTDEV_REG_BUF_FAULT), 0);
	assert_int_equal(rd64(&mmio, TESTDEV_REG_CHECKSUM), fnv1a64("hello", 5));
	/* Hostile buffers: past the end, wrapping, huge. */
	uint64_t bad[][2] = { { (1 << 20) - 2, 5 }, { UINT64_MAX - 1, 4 }, { 0, UINT64_MAX } };
	for (size_t i = 0; i < 3; i++) {
		wr64(&mmio, TESTDEV_REG_BUF_ADDR, bad[i][0]);
		wr64(&mmio, TESTDEV_REG_BUF_LEN, bad[i][1]);
		wr64(&mmio, TESTDEV_REG_CHECKSUM, 1);
		assert_int_equal(rd64(&mmio, TESTDEV_REG_BUF_FAULT), 1);
	}
	/* Read-only registers ignore writes; straddling accesses are not decoded. */
	wr64(&mmio, TESTDEV_REG_BUF_FAULT, 0);
	assert_int_equal(rd64(&mmio, TESTDEV_REG_BUF_FAULT), 1);
	uint8_t four[4];
	assert_true(bus_access(&mmio, TESTDEV_MMIO_BASE + 6, four, 4, false));
	assert_int_equal(four[0], 0xff);
	uint8_t status = 42;
	assert_true(bus_access(&pio, TESTDEV_EXIT_PORT, &status, 1, true));
	assert_int_equal(exit_status, 42);
	testdev_destroy(&dev);
	bus_free(&pio);
	bus_free(&mmio);
	guest_mem_free(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uart_transmits_to_its_output),
		cmocka_unit_test(uart_mirror_never_blocks),
		cmocka_unit_test(uart_receives_and_interrupts),
		cmocka_unit_test(testdev_checks_guest_buffers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
