/* Unit tests: the ELF loader (boot/elf.c) on crafted and corrupted images.
 * Run under ASan/UBSan: a read outside the buffer fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "boot/direct64_abi.h"
#include "boot/elf.h"

#define LOAD_ADDR 0x100000
#define PAYLOAD "payload bytes"

struct elf_image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh;
	char name[8];
	uint32_t desc;
	char payload[sizeof(PAYLOAD)];
};

static struct elf_image *make_image(void)
{
	struct elf_image *im = calloc(1, sizeof(*im));
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_ident[EI_VERSION] = EV_CURRENT;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_X86_64;
	im->eh.e_entry = LOAD_ADDR;
	im->eh.e_phoff = offsetof(struct elf_image, ph);
	im->eh.e_phentsize = sizeof(Elf64_Phdr);
	im->eh.e_phnum = 2;
	im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = offsetof(struct elf_image, payload),
				  .p_paddr = LOAD_ADDR, .p_filesz = sizeof(PAYLOAD),
				  .p_memsz = 8192 };
	im->ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = offsetof(struct elf_image, nh),
				  .p_filesz = sizeof(Elf64_Nhdr) + 8 + 4 };
	im->nh = (Elf64_Nhdr){ .n_namesz = 7, .n_descsz = 4, .n_type = DIRECT64_NOTE_TYPE };
	memcpy(im->name, "nestvm", 7);
	im->desc = DIRECT64_ABI_VERSION;
	memcpy(im->payload, PAYLOAD, sizeof(PAYLOAD));
	return im;
}

static int parse(struct elf_image *im, size_t size, struct elf_info *info)
{
	/* Copy to an exactly-sized heap buffer so ASan sees any overread. */
	uint8_t *buf = malloc(size);
	memcpy(buf, im, size);
	struct image img;
	image_from_buffer(&img, buf, size, "test");
	int r = elf_parse(&img, info);
	free(buf);
	return r;
}

static int load(struct elf_image *im, struct guest_mem *mem)
{
	struct image img;
	image_from_buffer(&img, im, sizeof(*im), "test");
	return elf_load(&img, mem, LOAD_ADDR);
}

static void valid_image_loads(void **state)
{
	(void)state;
	struct elf_image *im = make_image();
	struct elf_info info;
	assert_int_equal(parse(im, sizeof(*im), &info), 0);
	assert_true(info.has_direct64);
	assert_int_equal(info.direct64_version, DIRECT64_ABI_VERSION);
	assert_false(info.has_pvh);
	assert_int_equal(info.entry, LOAD_ADDR);
	assert_int_equal(info.load_low, LOAD_ADDR);
	assert_int_equal(info.load_high, LOAD_ADDR + 8192);

	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 4 << 20, 0), 0);
	memset(mem.base + LOAD_ADDR, 0xaa, 8192);
	assert_int_equal(load(im, &mem), 0);
	assert_memory_equal(mem.base + LOAD_ADDR, PAYLOAD, sizeof(PAYLOAD));
	for (size_t i = sizeof(PAYLOAD); i < 8192; i++)
		assert_int_equal(mem.base[LOAD_ADDR + i], 0); /* tail zeroed */
	guest_mem_free(&mem);
	free(im);
}

static void pvh_note_is_recognised(void **state)
{
	(void)state;
	struct elf_image *im = make_image();
	memcpy(im->name, "Xen", 4);
	im->nh.n_namesz = 4;
	im->nh.n_type = 18; /* XEN_ELFNOTE_PHYS32_ENTRY */
	im->ph[1].p_filesz = sizeof(Elf64_Nhdr) + 4 + 4;
	im->desc = 0x1000000;
	/* With namesz 4 the descriptor starts right after the name. */
	memmove((uint8_t *)im->name + 4, &im->desc, 4);
	struct elf_info info;
	assert_int_equal(parse(im, sizeof(*im), &info), 0);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, 0x1000000);
	assert_false(info.has_direct64);
	free(im);
}

static void every_truncation_is_refused_or_safe(void **state)
{
	(void)state;
	struct elf_image *im = make_image();
	struct elf_info info;
	/* Cut anywhere before the payload ends: headers or segment data are
	 * missing, so parsing must fail. */
	for (size_t size = 0; size < offsetof(struct elf_image, payload) + sizeof(PAYLOAD); size++)
		assert_int_equal(parse(im, size, &info), -1);
	free(im);
}

static void corrupted_headers_are_refused(void **state)
{
	(void)state;
	struct elf_info info;
	struct elf_image *im;
#define EXPECT_BAD(mutation)                                    \
	im = make_image();                                      \
	mutation;                                               \
	assert_int_equal(parse(im, sizeof(*im), &info), -1);    \
	free(im)
	EXPECT_BAD(im->eh.e_ident[0] = 0);
	EXPECT_BAD(im->eh.e_ident[EI_CLASS] = ELFCLASS32);
	EXPECT_BAD(im->eh.e_ident[EI_DATA] = ELFDATA2MSB);
	EXPECT_BAD(im->eh.e_machine = EM_AARCH64);
	EXPECT_BAD(im->eh.e_type = ET_DYN);
	EXPECT_BAD(im->eh.e_phentsize = 10);
	EXPECT_BAD(im->eh.e_phnum = 0);
	EXPECT_BAD(im->eh.e_phnum = 0xffff);
	EXPECT_BAD(im->eh.e_phoff = UINT64_MAX - 8);
	EXPECT_BAD(im->eh.e_phoff = sizeof(*im) - 8);
	EXPECT_BAD(im->ph[0].p_offset = UINT64_MAX);
	EXPECT_BAD(im->ph[0].p_filesz = UINT64_MAX);
	EXPECT_BAD(im->ph[0].p_filesz = sizeof(*im));
	EXPECT_BAD(im->ph[0].p_memsz = 1); /* smaller than filesz */
	EXPECT_BAD(im->ph[0].p_paddr = UINT64_MAX - 100);
	EXPECT_BAD(im->ph[0].p_type = PT_NULL); /* nothing to load */
	EXPECT_BAD(im->ph[1].p_filesz = 1000);
	EXPECT_BAD(im->nh.n_namesz = 0xffffffff);
	EXPECT_BAD(im->nh.n_descsz = 0xfffffff0);
	EXPECT_BAD(im->nh.n_descsz = 2); /* nestvm note with a wrong size */
#undef EXPECT_BAD
}

static void segments_outside_ram_are_refused(void **state)
{
	(void)state;
	struct guest_mem mem;
	assert_int_equal(guest_mem_alloc(&mem, 4 << 20, 0), 0);
	struct elf_image *im = make_image();
	struct elf_info info;

	im->ph[0].p_paddr = (4 << 20) - 4096; /* runs past the end of RAM */
	assert_int_equal(parse(im, sizeof(*im), &info), 0);
	assert_int_equal(load(im, &mem), -1);

	im->ph[0].p_paddr = 0x1000; /* below the load minimum: nestvm's area */
	assert_int_equal(load(im, &mem), -1);

	im->ph[0].p_paddr = 0xfe000000; /* in the MMIO hole */
	assert_int_equal(load(im, &mem), -1);
	free(im);
	guest_mem_free(&mem);
}

static void random_corruption_never_crashes(void **state)
{
	(void)state;
	struct elf_image *base = make_image();
	srand(12345);
	for (int round = 0; round < 20000; round++) {
		struct elf_image *im = malloc(sizeof(*im));
		memcpy(im, base, sizeof(*im));
		int flips = 1 + rand() % 4;
		for (int i = 0; i < flips; i++)
			((uint8_t *)im)[rand() % sizeof(*im)] ^= (uint8_t)(1u << (rand() % 8));
		struct elf_info info;
		(void)parse(im, sizeof(*im), &info);
		free(im);
	}
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_image_loads),
		cmocka_unit_test(pvh_note_is_recognised),
		cmocka_unit_test(every_truncation_is_refused_or_safe),
		cmocka_unit_test(corrupted_headers_are_refused),
		cmocka_unit_test(segments_outside_ram_are_refused),
		cmocka_unit_test(random_corruption_never_crashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
