/* Guest physical memory: one anonymous mapping split around the 32-bit
 * MMIO hole, below every user of it (boot, devices, virtio, the VMM; the
 * VMM hands its regions to KVM). All host access to guest memory goes through guest_mem_ptr(),
 * which checks that the whole range lies inside RAM: guest-supplied
 * addresses are never trusted. */
#ifndef NESTVM_MEM_GUEST_MEM_H
#define NESTVM_MEM_GUEST_MEM_H

#include <stdint.h>

#include "mem/pc_layout.h"

/* RAM above this address is moved above 4 GiB, leaving room for MMIO. */
#define GUEST_MMIO_HOLE_START PC_MMIO_HOLE_START
#define GUEST_MMIO_HOLE_END   PC_MMIO_HOLE_END
/* Guest RAM starts on this boundary in nestvm's address space (huge pages). */
#define GUEST_MEM_ALIGN       (2ULL << 20)

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
void guest_mem_free(struct guest_mem *mem);

/* Host pointer to [gpa, gpa+len), or NULL unless the range lies entirely
 * inside one RAM region. */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

#endif
