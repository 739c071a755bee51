#include "mem/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "util/log.h"
#include "util/parse.h"

/* Faults every page in now. MADV_POPULATE_WRITE reports failure (mmap's
 * MAP_POPULATE would not); older kernels without it get each page touched,
 * where running out of memory is fatal instead of reported. */
static int populate_all(uint8_t *p, uint64_t size)
{
	if (madvise(p, size, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	for (uint64_t off = 0; off < size; off += 4096)
		((volatile uint8_t *)p)[off] = 0;
	return 0;
}

int guest_mem_alloc(struct guest_mem *mem, uint64_t ram_size, int populate)
{
	memset(mem, 0, sizeof(*mem));
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate ? 0 : MAP_NORESERVE);
	/* KVM maps guest memory with huge pages only where guest-physical and
	 * host-virtual addresses agree modulo the huge page: RAM that starts
	 * off a 2 MiB boundary in our address space gets 4 KiB mappings in the
	 * EPT/NPT however its THPs are laid out, one fault per 4 KiB page.
	 * mmap aligns only to 4 KiB (Linux before 6.7), so reserve 2 MiB more
	 * and trim. */
	size_t slack = GUEST_MEM_ALIGN;
	uint8_t *raw = mmap(NULL, ram_size + slack, PROT_READ | PROT_WRITE, flags, -1, 0);
	void *p = raw;
	if (raw != MAP_FAILED) {
		uint8_t *start = (uint8_t *)(((uintptr_t)raw + slack - 1) & ~(uintptr_t)(slack - 1));
		uint8_t *tail = (uint8_t *)(((uintptr_t)start + ram_size + 4095) & ~(uintptr_t)4095);
		if (start > raw)
			munmap(raw, (size_t)(start - raw));
		if (raw + ram_size + slack > tail)
			munmap(tail, (size_t)(raw + ram_size + slack - tail));
		p = start;
	}
	if (p == MAP_FAILED) {
		char buf[32];
		log_error("--memory %s: cannot allocate guest memory: %s",
			  format_size(ram_size, buf, sizeof(buf)), strerror(errno));
		return -1;
	}
	/* Guest RAM is big and read sequentially by nobody on the host: keep it
	 * out of core dumps and let THP back it. */
	madvise(p, ram_size, MADV_DONTDUMP);
	madvise(p, ram_size, MADV_HUGEPAGE);
	if (populate && populate_all(p, ram_size) < 0) {
		char buf[32];
		log_error("--memory %s: cannot allocate all of it up front (static memory): %s",
			  format_size(ram_size, buf, sizeof(buf)), strerror(errno));
		munmap(p, ram_size);
		return -1;
	}
	mem->base = p;
	mem->ram_size = ram_size;
	uint64_t low = ram_size < GUEST_MMIO_HOLE_START ? ram_size : GUEST_MMIO_HOLE_START;
	mem->regions[0] = (struct guest_mem_region){ 0, low, mem->base };
	mem->nregions = 1;
	if (ram_size > low) {
		mem->regions[1] = (struct guest_mem_region){ GUEST_MMIO_HOLE_END,
							     ram_size - low, mem->base + low };
		mem->nregions = 2;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->ram_size);
	memset(mem, 0, sizeof(*mem));
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		/* Written to avoid overflow on guest-chosen gpa and len. */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}
