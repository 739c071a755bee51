/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst): a bzImage
 * entered through its 64-bit entry point with a zero page, e820 map,
 * command line and initrd. */
#include <asm/bootparam.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/x86.h"
#include "util/log.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define HDRS_MAGIC          0x53726448 /* "HdrS" */
#define BOOT_FLAG_MAGIC     0xaa55
#define MIN_PROTOCOL        0x020c     /* 2.12: xloadflags and the 64-bit entry */
#define XLF_KERNEL_64_FLAG  0x1
#define LOADED_HIGH_FLAG    0x1
#define CAN_USE_HEAP_FLAG   0x80
#define DEFAULT_LOAD_ADDR   0x1000000  /* 16 MiB: Linux's default physical start */
#define FIXED_LOAD_ADDR     0x100000
#define ENTRY64_OFFSET      0x200
#define LINUX_MIN_RAM       (32ULL << 20)

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Validates the setup header of a bzImage. Fills hdr and the offset of the
 * protected-mode kernel in the file. */
int linux_parse_bzimage(const struct image *img, struct setup_header *hdr,
			size_t *kernel_offset)
{
	const char *name = img->name;
	uint64_t size = img->size;
	uint8_t file[SETUP_HEADER_OFFSET + sizeof(*hdr)];
	if (image_read(img, 0, file, sizeof(file)) < 0) {
		log_error("%s: too small for a bzImage (%llu bytes)", name, (unsigned long long)size);
		return -1;
	}
	/* The header ends where its own jump instruction lands; copy no more
	 * than that and no more than our structure. */
	size_t hdr_end = 0x202 + file[0x201];
	size_t len = hdr_end - SETUP_HEADER_OFFSET;
	if (len > sizeof(*hdr))
		len = sizeof(*hdr);
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr, file + SETUP_HEADER_OFFSET, len);
	if (hdr->header != HDRS_MAGIC || hdr->boot_flag != BOOT_FLAG_MAGIC) {
		log_error("%s: bzImage setup header is corrupted (no HdrS/0xAA55)", name);
		return -1;
	}
	if (hdr->version < MIN_PROTOCOL) {
		log_error("%s: boot protocol %u.%02u is too old (nestvm needs 2.12+)", name,
			  hdr->version >> 8, hdr->version & 0xff);
		return -1;
	}
	if (!(hdr->xloadflags & XLF_KERNEL_64_FLAG) || !(hdr->loadflags & LOADED_HIGH_FLAG)) {
		log_error("%s: not a 64-bit kernel (no 64-bit entry point)", name);
		return -1;
	}
	unsigned setup_sects = hdr->setup_sects ? hdr->setup_sects : 4;
	*kernel_offset = (size_t)(setup_sects + 1) * 512;
	if (*kernel_offset >= size) {
		log_error("%s: bzImage is truncated (setup_sects %u, file %llu bytes)", name,
			  setup_sects, (unsigned long long)size);
		return -1;
	}
	uint64_t syssize = (uint64_t)hdr->syssize * 16;
	if (syssize == 0 || syssize > size - *kernel_offset) {
		log_error("%s: bzImage is truncated (kernel needs %llu bytes after setup, "
			  "file has %llu)", name, (unsigned long long)syssize,
			  (unsigned long long)(size - *kernel_offset));
		return -1;
	}
	if (hdr->init_size == 0 || hdr->init_size < syssize) {
		log_error("%s: bzImage header has a bad init_size", name);
		return -1;
	}
	if (hdr->relocatable_kernel && (hdr->kernel_alignment == 0 ||
					(hdr->kernel_alignment & (hdr->kernel_alignment - 1)))) {
		log_error("%s: bzImage header has a bad kernel_alignment", name);
		return -1;
	}
	return 0;
}

/* Places the initrd as high as it may go: below initrd_addr_max and the
 * end of low RAM, above the kernel's working area. */
int linux_load_initrd(struct guest_mem *mem, const struct image *initrd, uint64_t max_addr,
		      uint64_t kernel_end, uint64_t *addr_out)
{
	uint64_t size = initrd->size;
	uint64_t low_end = mem->regions[0].size;
	uint64_t limit = max_addr < low_end ? max_addr + 1 : low_end;
	if (size > limit || ((limit - size) & ~0xfffULL) < kernel_end) {
		log_error("%s: %llu bytes do not fit in guest memory below 0x%llx beside "
			  "the kernel; give the guest more --memory", initrd->name,
			  (unsigned long long)size, (unsigned long long)limit);
		return -1;
	}
	uint64_t addr = (limit - size) & ~0xfffULL;
	if (image_read(initrd, 0, guest_mem_ptr(mem, addr, size), size) < 0) {
		log_error("%s: read failed", initrd->name);
		return -1;
	}
	*addr_out = addr;
	return 0;
}

int linux_load_bzimage(struct guest_mem *mem, const struct boot_config *config,
		       const struct image *kernel, const struct image *initrd, uint64_t rsdp,
		       struct boot_entry *entry)
{
	const char *name = kernel->name;
	struct setup_header hdr;
	size_t koff;
	if (linux_parse_bzimage(kernel, &hdr, &koff) < 0)
		return -1;
	if (mem->ram_size < LINUX_MIN_RAM) {
		log_error("--memory: a Linux guest needs at least 32 MiB");
		return -1;
	}

	/* A relocatable kernel goes at 16 MiB (aligned as it asks); one that
	 * is not must be at 1 MiB, where the protocol fixes code32_start. */
	uint64_t load = hdr.relocatable_kernel ? align_up(DEFAULT_LOAD_ADDR, hdr.kernel_alignment)
					       : FIXED_LOAD_ADDR;
	uint64_t kernel_end = load + hdr.init_size;
	if (!guest_mem_ptr(mem, load, hdr.init_size)) {
		log_error("%s: the kernel needs RAM up to 0x%llx; give the guest more --memory",
			  name, (unsigned long long)kernel_end);
		return -1;
	}
	/* syssize was checked against the file and init_size against RAM. */
	if (image_read(kernel, koff, guest_mem_ptr(mem, load, hdr.init_size),
		       (uint64_t)hdr.syssize * 16) < 0) {
		log_error("%s: read failed", name);
		return -1;
	}

	struct boot_params *bp = guest_mem_ptr(mem, X86_ZERO_PAGE_GPA, sizeof(*bp));
	memset(bp, 0, sizeof(*bp));
	bp->hdr = hdr;
	bp->hdr.type_of_loader = 0xff; /* undefined loader */
	bp->hdr.loadflags |= CAN_USE_HEAP_FLAG;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.code32_start = (uint32_t)load;

	/* Protocols before 2.06 fix the limit at 255 bytes. */
	if (x86_write_cmdline(mem, config->cmdline, hdr.cmdline_size ? hdr.cmdline_size : 255) < 0)
		return -1;
	bp->hdr.cmd_line_ptr = X86_CMDLINE_GPA;

	if (initrd) {
		uint64_t addr;
		if (linux_load_initrd(mem, initrd,
				      hdr.initrd_addr_max ? hdr.initrd_addr_max : 0x37ffffff,
				      kernel_end, &addr) < 0)
			return -1;
		bp->hdr.ramdisk_image = (uint32_t)addr;
		bp->hdr.ramdisk_size = (uint32_t)initrd->size;
	}

	struct x86_memmap_entry map[X86_MEMMAP_MAX];
	int n = x86_memory_map(mem, map);
	for (int i = 0; i < n; i++) {
		bp->e820_table[i].addr = map[i].addr;
		bp->e820_table[i].size = map[i].size;
		bp->e820_table[i].type = map[i].type;
	}
	bp->e820_entries = (uint8_t)n;
	bp->acpi_rsdp_addr = rsdp;

	if (x86_write_identity_map(mem, false) < 0)
		return -1;
	x86_write_gdt(mem);
	entry->protocol = BOOT_LINUX64;
	entry->entry = load + ENTRY64_OFFSET;
	return 0;
}

int linux_setup_cpu(struct kvm_cpu *cpu, uint64_t entry)
{
	/* Only the boot vCPU starts here; the others wait for INIT/SIPI from
	 * the guest, as on real hardware. */
	if (cpu->index != 0)
		return 0;
	if (x86_set_entry_sregs(cpu, X86_LONG64) < 0)
		return -1;
	struct kvm_regs regs = {
		.rip = entry,
		.rsi = X86_ZERO_PAGE_GPA,
		.rflags = 0x2,
	};
	return kvm_cpu_set_regs(cpu, &regs);
}
