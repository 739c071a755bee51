/* ELF64 x86-64 executables: validation, entry notes, and loading into guest
 * memory. Every offset and size read from the file is checked against the
 * file and against guest RAM before use. */
#ifndef NESTVM_BOOT_ELF_H
#define NESTVM_BOOT_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/image.h"
#include "mem/guest_mem.h"

struct elf_info {
	uint64_t entry;          /* e_entry */
	bool has_pvh;            /* Xen PVH 32-bit entry note (Linux vmlinux) */
	uint64_t pvh_entry;
	bool has_direct64;       /* nestvm direct 64-bit entry note */
	uint32_t direct64_version;
	uint64_t load_low, load_high; /* guest-physical span of PT_LOAD segments */
};

/* True if the image starts with the ELF magic. */
bool elf_is_elf(const struct image *img);

/* Validates headers and notes. */
int elf_parse(const struct image *img, struct elf_info *info);

/* Copies PT_LOAD segments to their physical addresses (zeroing the tail of
 * each), refusing any below min_paddr or outside RAM. Call after elf_parse. */
int elf_load(const struct image *img, struct guest_mem *mem, uint64_t min_paddr);

#endif
