#define _GNU_SOURCE
/* Unit tests: the Linux bzImage loader and the ACPI tables, on crafted and
 * corrupted images, under ASan/UBSan. No KVM needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <asm/bootparam.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/boot.h"
#include "boot/smbios.h"
#include "boot/x86.h"

#define SETUP_SECTS 4
#define KERNEL_BYTES 8192
#define IMAGE_SIZE ((SETUP_SECTS + 1) * 512 + KERNEL_BYTES)

/* A minimal bzImage: a valid setup header and a recognisable payload. */
static uint8_t *make_bzimage(void)
{
	uint8_t *f = calloc(1, IMAGE_SIZE);
	struct setup_header *h = (struct setup_header *)(f + 0x1f1);
	h->setup_sects = SETUP_SECTS;
	h->boot_flag = 0xaa55;
	h->jump = 0x66eb; /* jmp 0x268: the header ends at 0x268 */
	f[0x201] = 0x66;
	h->header = 0x53726448;
	h->version = 0x020f;
	h->loadflags = 0x01;
	h->syssize = KERNEL_BYTES / 16;
	h->relocatable_kernel = 1;
	h->kernel_alignment = 0x200000;
	h->xloadflags = 0x1;
	h->cmdline_size = 2047;
	h->initrd_addr_max = 0x7fffffff;
	h->init_size = 0x100000;
	memcpy(f + (SETUP_SECTS + 1) * 512, "KERNEL", 6);
	return f;
}

static int parse(const uint8_t *f, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, f, size);
	struct setup_header h;
	size_t off;
	struct image img;
	image_from_buffer(&img, copy, size, "test");
	int r = linux_parse_bzimage(&img, &h, &off);
	free(copy);
	return r;
}

static struct cpu_topology topo1;

static int load(const uint8_t *f, size_t size, struct guest_mem *mem, const char *cmdline,
		const uint8_t *initrd, size_t initrd_size)
{
	struct boot_config cfg = { .kernel_path = "test", .initrd_path = "initrd",
				   .cmdline = cmdline, .ncpus = 1, .topo = &topo1 };
	struct boot_entry entry;
	struct image kernel, rd;
	image_from_buffer(&kernel, f, size, "test");
	image_from_buffer(&rd, initrd, initrd_size, "initrd");
	int r = linux_load_bzimage(mem, &cfg, &kernel, initrd ? &rd : NULL, 0xe0000, &entry);
	if (r == 0) {
		assert_int_equal(entry.protocol, BOOT_LINUX64);
		assert_true(entry.entry == 0x1000000 + 0x200 || entry.entry == 0x100000 + 0x200);
	}
	return r;
}

static void valid_bzimage_loads(void **state)
{
	(void)state;
	uint8_t *f = make_bzimage();
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 64 << 20, 0), 0);
	uint8_t initrd[5000];
	memset(initrd, 0x77, sizeof(initrd));
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "console=ttyS0", initrd, sizeof(initrd)), 0);
	assert_memory_equal(mem.base + 0x1000000, "KERNEL", 6);
	struct boot_params *bp = (struct boot_params *)(mem.base + X86_ZERO_PAGE_GPA);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_string_equal((char *)mem.base + bp->hdr.cmd_line_ptr, "console=ttyS0");
	/* initrd: page aligned, at the top of RAM, bytes intact. */
	assert_int_equal(bp->hdr.ramdisk_size, sizeof(initrd));
	assert_int_equal(bp->hdr.ramdisk_image % 4096, 0);
	assert_true(bp->hdr.ramdisk_image + sizeof(initrd) <= 64 << 20);
	assert_true(bp->hdr.ramdisk_image >= 0x1000000 + 0x100000);
	assert_memory_equal(mem.base + bp->hdr.ramdisk_image, initrd, sizeof(initrd));
	/* e820: low RAM, reserved BIOS areas, RAM from 1 MiB to the end. */
	assert_int_equal(bp->e820_entries, 4);
	assert_int_equal(bp->e820_table[3].addr, 0x100000);
	assert_int_equal(bp->e820_table[3].addr + bp->e820_table[3].size, 64 << 20);
	assert_int_equal(bp->acpi_rsdp_addr, 0xe0000);
	guest_mem_free(&mem);
	free(f);
}

static void truncations_are_refused(void **state)
{
	(void)state;
	uint8_t *f = make_bzimage();
	for (size_t size = 0; size < IMAGE_SIZE; size += 97)
		assert_int_equal(parse(f, size), -1);
	assert_int_equal(parse(f, IMAGE_SIZE), 0);
	free(f);
}

static void corrupted_headers_are_refused(void **state)
{
	(void)state;
	uint8_t *f;
	struct setup_header *h;
#define EXPECT_BAD(mutation)                               \
	f = make_bzimage();                                \
	h = (struct setup_header *)(f + 0x1f1);            \
	mutation;                                          \
	assert_int_equal(parse(f, IMAGE_SIZE), -1);        \
	free(f)
	EXPECT_BAD(h->header ^= 1);
	EXPECT_BAD(h->boot_flag = 0);
	EXPECT_BAD(h->version = 0x0204);
	EXPECT_BAD(h->xloadflags = 0);
	EXPECT_BAD(h->loadflags = 0);
	EXPECT_BAD(h->setup_sects = 200);   /* setup larger than the file */
	EXPECT_BAD(h->syssize = 0);
	EXPECT_BAD(h->syssize = 0xffffffff);
	EXPECT_BAD(h->init_size = 0);
	EXPECT_BAD(h->init_size = 16);      /* smaller than the kernel */
	EXPECT_BAD(h->kernel_alignment = 0x300000);
	EXPECT_BAD(h->kernel_alignment = 0);
#undef EXPECT_BAD
	(void)h;
}

static void guest_too_small_or_initrd_too_big(void **state)
{
	(void)state;
	uint8_t *f = make_bzimage();
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 16 << 20, 0), 0);
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "", NULL, 0), -1); /* < 32 MiB */
	guest_mem_free(&mem);

	assert_int_equal(guest_mem_alloc(&mem, 32 << 20, 0), 0);
	size_t big = 30 << 20; /* would overlap the kernel at 16 MiB */
	uint8_t *initrd = calloc(1, big);
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "", initrd, big), -1);
	free(initrd);
	/* init_size beyond RAM */
	((struct setup_header *)(f + 0x1f1))->init_size = 64 << 20;
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "", NULL, 0), -1);
	guest_mem_free(&mem);
	free(f);
}

static void command_line_limit(void **state)
{
	(void)state;
	uint8_t *f = make_bzimage();
	((struct setup_header *)(f + 0x1f1))->cmdline_size = 10;
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 64 << 20, 0), 0);
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "0123456789", NULL, 0), 0);
	assert_int_equal(load(f, IMAGE_SIZE, &mem, "0123456789a", NULL, 0), -1);
	guest_mem_free(&mem);
	free(f);
}

static void random_corruption_never_crashes(void **state)
{
	(void)state;
	uint8_t *base = make_bzimage();
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 64 << 20, 0), 0);
	srand(4242);
	for (int round = 0; round < 5000; round++) {
		uint8_t *f = malloc(IMAGE_SIZE);
		memcpy(f, base, IMAGE_SIZE);
		for (int i = 0; i < 3; i++) /* flips inside the setup header */
			f[0x1f1 + rand() % 0x77] ^= (uint8_t)(1u << (rand() % 8));
		if (parse(f, IMAGE_SIZE) == 0)
			(void)load(f, IMAGE_SIZE, &mem, "x", NULL, 0);
		free(f);
	}
	guest_mem_free(&mem);
	free(base);
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	while (len--)
		s += *p++;
	return s;
}

static void acpi_tables_are_consistent(void **state)
{
	(void)state;
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 64 << 20, 0), 0);
	struct cpu_topology topo;
	cpu_topology_init(&topo, 6, 3); /* two sockets of three cores */
	uint64_t rsdp = acpi_write_tables(&mem, &topo);
	const uint8_t *r = mem.base + rsdp;
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(sum(r, 36), 0);
	uint64_t xsdt;
	memcpy(&xsdt, r + 24, 8);
	const uint8_t *x = mem.base + xsdt;
	uint32_t xlen;
	memcpy(&xlen, x + 4, 4);
	assert_int_equal(sum(x, xlen), 0);
	int found_madt = 0, found_fadt = 0;
	for (uint32_t off = 36; off < xlen; off += 8) {
		uint64_t t;
		memcpy(&t, x + off, 8);
		const uint8_t *tab = mem.base + t;
		uint32_t len;
		memcpy(&len, tab + 4, 4);
		assert_int_equal(sum(tab, len), 0);
		if (!memcmp(tab, "APIC", 4)) {
			found_madt = 1;
			/* Local APIC entries carry the topology's APIC IDs: 0,1,2,4,5,6. */
			const uint8_t expect[] = { 0, 1, 2, 4, 5, 6 };
			for (int i = 0; i < 6; i++) {
				assert_int_equal(tab[44 + 8 * i], 0);
				assert_int_equal(tab[44 + 8 * i + 3], expect[i]);
			}
		}
		if (!memcmp(tab, "FACP", 4)) {
			found_fadt = 1;
			uint64_t dsdt;
			memcpy(&dsdt, tab + 140, 8);
			const uint8_t *d = mem.base + dsdt;
			uint32_t dlen;
			memcpy(&dlen, d + 4, 4);
			assert_memory_equal(d, "DSDT", 4);
			assert_int_equal(sum(d, dlen), 0);
			assert_non_null(memmem(d, dlen, "_S5_", 4));
		}
	}
	assert_true(found_madt && found_fadt);
	guest_mem_free(&mem);
}

/* The n-th string (1-based) of the SMBIOS structure at p; NULL if absent. */
static const char *smbios_string(const uint8_t *p, uint8_t n)
{
	if (n == 0)
		return NULL;
	const char *str = (const char *)p + p[1];
	for (uint8_t i = 1; i < n; i++) {
		if (!*str)
			return NULL;
		str += strlen(str) + 1;
	}
	return *str ? str : NULL;
}

/* The SMBIOS 3.0 entry point where Linux scans for it, with a good
 * checksum, pointing at structures that walk to the end-of-table marker:
 * the UUID in SMBIOS byte order (as Linux turns it back into
 * product_uuid), the serial as system and chassis serial, and the
 * virtual-machine bit. */
static void smbios_tables_describe_the_machine(void **state)
{
	(void)state;
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 64 << 20, 0), 0);
	struct smbios_identity id = { .serial = "ds=nocloud;h=hv1;i=lab-hv1" };
	assert_int_equal(smbios_parse_uuid("0f1E2d3c-4b5a-5968-8776-a5b4c3d2e1f0", id.uuid), 0);
	uint8_t bad[16];
	assert_int_equal(smbios_parse_uuid("0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f", bad), -1);
	assert_int_equal(smbios_parse_uuid("0f1e2d3c+4b5a-5968-8776-a5b4c3d2e1f0", bad), -1);
	assert_int_equal(smbios_parse_uuid("0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1fg", bad), -1);
	char text[37];
	smbios_format_uuid(id.uuid, text);
	assert_string_equal(text, "0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0");
	assert_int_equal(smbios_write_tables(&mem, &id), 0);

	const uint8_t *e = guest_mem_ptr(&mem, 0xf0000, 0x18);
	assert_memory_equal(e, "_SM3_", 5);
	uint8_t sum = 0;
	for (int i = 0; i < e[6]; i++)
		sum = (uint8_t)(sum + e[i]);
	assert_int_equal(sum, 0);
	assert_int_equal(e[7], 3);
	uint32_t max;
	uint64_t addr;
	memcpy(&max, e + 12, 4);
	memcpy(&addr, e + 16, 8);
	assert_true(addr >= 0xf0000 && addr + max <= 0x100000);
	const uint8_t *p = guest_mem_ptr(&mem, addr, max), *endp = p + max;
	bool seen[128] = { false };
	while (p < endp) {
		assert_true(p[1] >= 4 && p + p[1] < endp);
		uint8_t type = p[0];
		seen[type & 127] = true;
		if (type == 0)
			assert_int_equal(p[0x13] & 0x10, 0x10); /* a virtual machine */
		if (type == 1) {
			const uint8_t want[16] = { 0x3c, 0x2d, 0x1e, 0x0f, 0x5a, 0x4b, 0x68, 0x59,
						   0x87, 0x76, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0 };
			assert_memory_equal(p + 8, want, 16);
			assert_string_equal(smbios_string(p, p[7]), id.serial);
			assert_string_equal(smbios_string(p, p[4]), "nestvm");
		}
		if (type == 3)
			assert_string_equal(smbios_string(p, p[7]), id.serial);
		/* past the formatted part and the strings' double NUL */
		const uint8_t *q = p + p[1];
		while (q + 1 < endp && (q[0] || q[1]))
			q++;
		p = q + 2;
		if (type == 127)
			break;
	}
	assert_ptr_equal(p, endp);
	for (int t = 0; t < 4; t++)
		assert_true(seen[t]);
	assert_true(seen[32] && seen[127]);

	/* no serial: the string is left out, its number is 0 */
	struct smbios_identity plain = { { 0 }, "" };
	assert_int_equal(smbios_write_tables(&mem, &plain), 0);
	memcpy(&addr, e + 16, 8);
	p = guest_mem_ptr(&mem, addr, 64);
	p += p[1];
	while (p[0] || p[1])
		p++;
	p += 2; /* type 1 */
	assert_int_equal(p[0], 1);
	assert_int_equal(p[7], 0);
	guest_mem_free(&mem);
}

int main(void)
{
	cpu_topology_init(&topo1, 1, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_bzimage_loads),
		cmocka_unit_test(truncations_are_refused),
		cmocka_unit_test(corrupted_headers_are_refused),
		cmocka_unit_test(guest_too_small_or_initrd_too_big),
		cmocka_unit_test(command_line_limit),
		cmocka_unit_test(random_corruption_never_crashes),
		cmocka_unit_test(acpi_tables_are_consistent),
		cmocka_unit_test(smbios_tables_describe_the_machine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
