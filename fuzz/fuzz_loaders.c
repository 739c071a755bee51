/* libFuzzer: the kernel loaders (bzImage, ELF, PVH) on any file. The input
 * is the kernel image; the initrd is its last 64 bytes. */
#include <asm/bootparam.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "boot/elf.h"
#include "kvm/cpuid.h"
#include "mem/guest_mem.h"
#include "util/image.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static struct cpu_topology topo;
	static int ready;
	if (!ready) {
		log_verbosity = -1;
		if (guest_mem_alloc(&mem, 64 << 20, 0) < 0)
			abort();
		cpu_topology_init(&topo, 2, 0);
		ready = 1;
	}
	struct boot_config cfg = { .kernel_path = "fuzz", .initrd_path = "initrd",
				   .cmdline = "console=ttyS0", .ncpus = 2, .topo = &topo };
	struct image kernel, initrd;
	image_from_buffer(&kernel, data, size, "fuzz");
	image_from_buffer(&initrd, size > 64 ? data + size - 64 : data, size > 64 ? 64 : size,
			  "initrd");
	struct boot_entry entry;
	struct setup_header hdr;
	size_t off;
	if (linux_parse_bzimage(&kernel, &hdr, &off) == 0)
		linux_load_bzimage(&mem, &cfg, &kernel, &initrd, 0xe0000, &entry);
	struct elf_info info;
	if (elf_is_elf(&kernel) && elf_parse(&kernel, &info) == 0) {
		elf_load(&kernel, &mem, 0x100000);
		if (info.has_pvh)
			pvh_load(&mem, &cfg, &kernel, &info, &initrd, 0xe0000, &entry);
	}
	return 0;
}
