/* What the test guest's files share: port and MMIO access, COM1 output,
 * the command line, and how a check is reported. */
#ifndef NESTVM_GUEST_GUEST_H
#define NESTVM_GUEST_GUEST_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t mmio_read64(uint64_t addr)
{
	return *(volatile uint64_t *)addr;
}

static inline void mmio_write64(uint64_t addr, uint64_t v)
{
	*(volatile uint64_t *)addr = v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

void putc_serial(char c);
void puts_serial(const char *s);
void put_dec(uint64_t v);
void put_hex(uint64_t v);
__attribute__((noreturn)) void guest_exit(uint8_t status);
const char *cmdline_arg(const char *key);
int word_is(const char *s, const char *word);
uint64_t parse_dec(const char *s); /* 0 for NULL */
/* Prints "ok: WHAT" or "FAILED: WHAT"; returns 1 on failure. */
int check(int ok, const char *what);

/* guest/virtio.c: a minimal virtio-pci driver, polled, at CPL3. */
__attribute__((noreturn)) void test_virtio_blk(void);
__attribute__((noreturn)) void test_virtio_blk_records(void);
__attribute__((noreturn)) void test_virtio_rng(void);
__attribute__((noreturn)) void test_virtio_net(void);

#endif
