/* The tier-1 test guest. It runs entirely at CPL3 (see direct64_abi.h) and
 * reports through COM1 and the nestvm test device. The command line picks
 * the scenario: "test=NAME [arg=VALUE]". */
#include <stdint.h>

#include "boot/direct64_abi.h"
#include "devices/testdev_abi.h"
#include "guest.h"

#define COM1 0x3f8
#define UNASSIGNED_MMIO (TESTDEV_MMIO_BASE + 0x10000)

static const struct direct64_bootinfo *boot;
static volatile uint64_t cpus_arrived;
static volatile uint64_t cpu_mask;

/* Initialised data and zeroed bss: the "memory" test checks that nestvm's
 * ELF loader put both in place. */
static const uint32_t data_pattern[4] = { 0xdeadbeef, 0x01234567, 0x89abcdef, 0xfeedface };
static uint64_t data_rw = 0x5a5a5a5a5a5a5a5aULL;
static uint8_t big_buffer[1 << 20] __attribute__((aligned(4096)));

void putc_serial(char c)
{
	while (!(inb(COM1 + 5) & 0x20)) /* wait for THR empty */
		;
	outb(COM1, (uint8_t)c);
}

void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

void put_dec(uint64_t v)
{
	char buf[21];
	int i = 20;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_serial(buf + i);
}

void put_hex(uint64_t v)
{
	puts_serial("0x");
	for (int shift = 60; shift >= 0; shift -= 4)
		putc_serial("0123456789abcdef"[(v >> shift) & 0xf]);
}

__attribute__((noreturn)) void guest_exit(uint8_t status)
{
	outb(TESTDEV_EXIT_PORT, status);
	for (;;) /* nestvm stops this vCPU */
		__asm__ volatile("pause");
}

static __attribute__((noreturn)) void park(void)
{
	for (;;)
		__asm__ volatile("pause");
}

/* Value of "key=" on the command line, or NULL. */
const char *cmdline_arg(const char *key)
{
	const char *s = (const char *)boot->cmdline_gpa;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *k = key;
		const char *p = s;
		while (*k && *p == *k)
			p++, k++;
		if (!*k && *p == '=')
			return p + 1;
		while (*s && *s != ' ')
			s++;
	}
	return 0;
}

int word_is(const char *s, const char *word)
{
	while (*word && *s == *word)
		s++, word++;
	return !*word && (*s == ' ' || *s == 0);
}

uint64_t parse_dec(const char *s)
{
	uint64_t v = 0;
	while (s && *s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

static uint64_t fnv1a64(const uint8_t *p, uint64_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (uint64_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int check(int ok, const char *what)
{
	puts_serial(ok ? "ok: " : "FAILED: ");
	puts_serial(what);
	putc_serial('\n');
	return ok ? 0 : 1;
}

static void test_hello(void)
{
	puts_serial("hello from the nestvm test guest: ");
	put_dec(boot->ncpus);
	puts_serial(" vCPU(s), ");
	put_dec(boot->ram_size >> 20);
	puts_serial(" MiB, cmdline '");
	puts_serial((const char *)boot->cmdline_gpa);
	puts_serial("'\n");
	guest_exit(0);
}

static void test_mmio(void)
{
	int fails = 0;
	uint64_t base = TESTDEV_MMIO_BASE;
	fails += check(mmio_read64(base + TESTDEV_REG_ID) == TESTDEV_ID, "test device identity");
	uint64_t writes0 = mmio_read64(base + TESTDEV_REG_WRITES);
	mmio_write64(base + TESTDEV_REG_SCRATCH, 0x1122334455667788ULL);
	fails += check(mmio_read64(base + TESTDEV_REG_SCRATCH) == 0x1122334455667788ULL,
		       "64-bit scratch write reads back");
	*(volatile uint32_t *)(base + TESTDEV_REG_SCRATCH + 4) = 0xcafef00d;
	fails += check(mmio_read64(base + TESTDEV_REG_SCRATCH) == 0xcafef00d55667788ULL,
		       "32-bit write to the upper half");
	fails += check(*(volatile uint8_t *)(base + TESTDEV_REG_SCRATCH + 1) == 0x77,
		       "byte read");
	fails += check(mmio_read64(base + TESTDEV_REG_WRITES) == writes0 + 2,
		       "device counted both writes");
	fails += check(mmio_read64(UNASSIGNED_MMIO) == ~0ULL, "unassigned MMIO reads all ones");
	fails += check(inb(0x2e8 + 7) == 0xff, "unassigned port reads all ones");
	puts_serial("scratch=");
	put_hex(mmio_read64(base + TESTDEV_REG_SCRATCH));
	putc_serial('\n');
	guest_exit(fails ? 1 : 0);
}

static void test_memory(void)
{
	int fails = 0;
	uint64_t base = TESTDEV_MMIO_BASE;
	fails += check(data_pattern[0] == 0xdeadbeef && data_pattern[3] == 0xfeedface,
		       "initialised data loaded");
	fails += check(data_rw == 0x5a5a5a5a5a5a5a5aULL, "writable data loaded");
	uint64_t nonzero = 0;
	for (uint64_t i = 0; i < sizeof(big_buffer); i++)
		nonzero |= big_buffer[i];
	fails += check(nonzero == 0, "bss is zero");
	uint64_t x = 88172645463325252ULL;
	for (uint64_t i = 0; i < sizeof(big_buffer); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		big_buffer[i] = (uint8_t)x;
	}
	uint64_t mine = fnv1a64(big_buffer, sizeof(big_buffer));
	mmio_write64(base + TESTDEV_REG_BUF_ADDR, (uint64_t)big_buffer);
	mmio_write64(base + TESTDEV_REG_BUF_LEN, sizeof(big_buffer));
	mmio_write64(base + TESTDEV_REG_CHECKSUM, 1);
	uint64_t theirs = mmio_read64(base + TESTDEV_REG_CHECKSUM);
	fails += check(mmio_read64(base + TESTDEV_REG_BUF_FAULT) == 0 && mine == theirs,
		       "nestvm sees the bytes the guest wrote");
	/* A buffer that runs past the end of RAM must be refused, not read. */
	mmio_write64(base + TESTDEV_REG_BUF_ADDR, boot->ram_end - 4096);
	mmio_write64(base + TESTDEV_REG_BUF_LEN, 8192);
	mmio_write64(base + TESTDEV_REG_CHECKSUM, 1);
	fails += check(mmio_read64(base + TESTDEV_REG_BUF_FAULT) == 1,
		       "buffer past the end of RAM refused");
	mmio_write64(base + TESTDEV_REG_BUF_ADDR, ~0ULL - 10);
	mmio_write64(base + TESTDEV_REG_BUF_LEN, 100);
	mmio_write64(base + TESTDEV_REG_CHECKSUM, 1);
	fails += check(mmio_read64(base + TESTDEV_REG_BUF_FAULT) == 1,
		       "wrapping buffer address refused");
	/* The last page of RAM is reachable through the identity map. */
	if (boot->ram_end > 0x100000000ULL) {
		/* RAM above 3 GiB moved past the 32-bit MMIO hole: a buffer
		 * running from RAM into the hole is not RAM. */
		mmio_write64(base + TESTDEV_REG_BUF_ADDR, 0xC0000000ULL - 4096);
		mmio_write64(base + TESTDEV_REG_BUF_LEN, 8192);
		mmio_write64(base + TESTDEV_REG_CHECKSUM, 1);
		fails += check(mmio_read64(base + TESTDEV_REG_BUF_FAULT) == 1,
			       "buffer running into the MMIO hole refused");
	}
	volatile uint64_t *last = (volatile uint64_t *)(boot->ram_end - 8);
	*last = 0x1234;
	fails += check(*last == 0x1234, "last word of RAM writable");
	puts_serial("checksum=");
	put_hex(mine);
	putc_serial('\n');
	guest_exit(fails ? 1 : 0);
}

static uint32_t cpuid_apic_id(void)
{
	uint32_t a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	return b >> 24;
}

static void test_smp(uint64_t index)
{
	uint32_t apic = cpuid_apic_id();
	__atomic_fetch_or(&cpu_mask, apic == index ? 1ULL << index : 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&cpus_arrived, 1, __ATOMIC_SEQ_CST);
	if (index != 0)
		park(); /* keeps spinning until nestvm stops the VM */
	uint64_t start = rdtsc();
	/* Bounded wait: about a minute at the slowest plausible TSC rate. */
	while (__atomic_load_n(&cpus_arrived, __ATOMIC_SEQ_CST) < boot->ncpus &&
	       rdtsc() - start < 60ULL * 1000 * 1000 * 1000)
		__asm__ volatile("pause");
	uint64_t arrived = cpus_arrived;
	uint64_t want_mask = boot->ncpus >= 64 ? ~0ULL : (1ULL << boot->ncpus) - 1;
	puts_serial("smp: ");
	put_dec(arrived);
	puts_serial(" of ");
	put_dec(boot->ncpus);
	puts_serial(" vCPUs ran, APIC IDs ");
	puts_serial(cpu_mask == want_mask ? "match\n" : "do not match\n");
	guest_exit(arrived == boot->ncpus && cpu_mask == want_mask ? 0 : 1);
}

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* What the vCPU is told about virtualization extensions. */
static void test_cpuid(void)
{
	uint32_t a, b, c, d, max_ext;
	cpuid(0x80000000, &max_ext, &b, &c, &d);
	cpuid(1, &a, &b, &c, &d);
	uint32_t vmx = (c >> 5) & 1, hv = (c >> 31) & 1, svm = 0, npt = 0;
	if (max_ext >= 0x80000001) {
		cpuid(0x80000001, &a, &b, &c, &d);
		svm = (c >> 2) & 1;
	}
	if (svm && max_ext >= 0x8000000a) {
		cpuid(0x8000000a, &a, &b, &c, &d);
		npt = d & 1;
	}
	puts_serial("cpuid: svm=");
	put_dec(svm);
	puts_serial(" npt=");
	put_dec(npt);
	puts_serial(" vmx=");
	put_dec(vmx);
	puts_serial(" hypervisor=");
	put_dec(hv);
	putc_serial('\n');
	guest_exit(0);
}

static void test_bad_mmio(void)
{
	puts_serial("touching MMIO with an SSE instruction\n");
	/* paddb xmm0, [rax]: KVM's instruction emulator has no SSE arithmetic,
	 * so the MMIO access cannot be completed. */
	__asm__ volatile("paddb (%0), %%xmm0" : : "r"(TESTDEV_MMIO_BASE) : "memory");
	guest_exit(0);
}

/* CPU-bound work: the same 2-instruction loop the design notes measure. */
static void test_loop(void)
{
	uint64_t n = parse_dec(cmdline_arg("iterations"));
	uint64_t t0 = rdtsc();
	__asm__ volatile("1: dec %0; jnz 1b" : "+r"(n) : : "cc");
	uint64_t t1 = rdtsc();
	puts_serial("loop tsc=");
	put_dec(t1 - t0);
	putc_serial('\n');
	guest_exit(0);
}

/* Port-I/O exit round trips to the test device's exit port's neighbour. */
static void test_pio(void)
{
	uint64_t n = parse_dec(cmdline_arg("iterations"));
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		(void)inb(TESTDEV_EXIT_PORT);
	uint64_t t1 = rdtsc();
	puts_serial("pio tsc=");
	put_dec(t1 - t0);
	putc_serial('\n');
	guest_exit(0);
}

/* Counts forever on the console, about ten lines a second on a 2-3 GHz TSC:
 * the snapshot tests check that a restored guest goes on counting. */
static void test_count(void)
{
	puts_serial("count start\n");
	for (uint64_t i = 0;; i++) {
		puts_serial("count ");
		put_dec(i);
		putc_serial('\n');
		uint64_t t0 = rdtsc();
		while (rdtsc() - t0 < 250ULL * 1000 * 1000)
			__asm__ volatile("pause");
	}
}

/* Reads COM1 and answers each line with "echo: LINE": the console tests
 * check that bytes typed reach the guest, and its answer comes back. */
static void test_echo(void)
{
	char line[128];
	unsigned n = 0;
	puts_serial("echo ready\n");
	for (;;) {
		while (!(inb(COM1 + 5) & 0x01)) /* wait for data ready */
			__asm__ volatile("pause");
		char c = (char)inb(COM1);
		if (c == '\r' || c == '\n') {
			line[n] = 0;
			puts_serial("echo: ");
			puts_serial(line);
			putc_serial('\n');
			n = 0;
		} else if (n < sizeof(line) - 1) {
			line[n++] = c;
		}
	}
}

void guest_main(uint64_t index, const struct direct64_bootinfo *info);

void guest_main(uint64_t index, const struct direct64_bootinfo *info)
{
	boot = info;
	if (info->magic != DIRECT64_MAGIC)
		guest_exit(99);
	const char *test = cmdline_arg("test");
	if (test && word_is(test, "smp"))
		test_smp(index);
	if (index != 0)
		park();
	if (!test || word_is(test, "hello"))
		test_hello();
	if (word_is(test, "mmio"))
		test_mmio();
	if (word_is(test, "memory"))
		test_memory();
	if (word_is(test, "exit"))
		guest_exit((uint8_t)parse_dec(cmdline_arg("status")));
	if (word_is(test, "triplefault"))
		__asm__ volatile("ud2");
	if (word_is(test, "cpuid"))
		test_cpuid();
	if (word_is(test, "badmmio"))
		test_bad_mmio();
	if (word_is(test, "spin")) {
		puts_serial("spinning\n");
		park();
	}
	if (word_is(test, "loop"))
		test_loop();
	if (word_is(test, "pio"))
		test_pio();
	if (word_is(test, "count"))
		test_count();
	if (word_is(test, "echo"))
		test_echo();
	if (word_is(test, "virtio-blk"))
		test_virtio_blk();
	if (word_is(test, "virtio-blk-records"))
		test_virtio_blk_records();
	if (word_is(test, "virtio-rng"))
		test_virtio_rng();
	if (word_is(test, "virtio-net"))
		test_virtio_net();
	if (word_is(test, "reboot")) {
		/* Every boot reboots through the keyboard controller's reset. */
		puts_serial("rebooting\n");
		outb(0x64, 0xfe);
		park();
	}
	puts_serial("unknown test\n");
	guest_exit(98);
}
