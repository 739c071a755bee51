/* Guest physical memory: one anonymous mapping split around the 32-bit
 * MMIO hole. All host access to guest memory goes through guest_mem_ptr(),
 * which checks that the whole range lies inside RAM: guest-supplied
 * addresses are never trusted. */
#ifndef NESTVM_VMM_GUEST_MEM_H
#define NESTVM_VMM_GUEST_MEM_H

#include <stdint.h>

#include "kvm/kvm.h"

/* RAM above this address is moved above 4 GiB, leaving room for MMIO. */
#define GUEST_MMIO_HOLE_START 0xC0000000ULL
#define GUEST_MMIO_HOLE_END   0x100000000ULL

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	uint64_t ram_size;
	uint8_t *base;
	int nregions;
	struct guest_mem_region regions[2];
};

/* Reserves ram_size bytes; with populate, also allocates every page now
 * (static memory, as nested hosts need) and fails if it cannot. */
int guest_mem_alloc(struct guest_mem *mem, uint64_t ram_size, int populate);
int guest_mem_register(struct guest_mem *mem, struct kvm_guest *guest);
void guest_mem_free(struct guest_mem *mem);

/* Host pointer to [gpa, gpa+len), or NULL unless the range lies entirely
 * inside one RAM region. */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

#endif
