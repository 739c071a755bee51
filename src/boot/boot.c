#include "boot/boot.h"

#include <stdlib.h>
#include <string.h>

#include "boot/direct64_abi.h"
#include "boot/elf.h"
#include "util/file.h"
#include "util/log.h"

/* Offsets in a Linux bzImage's setup header (Documentation/arch/x86/boot.rst). */
#define BZIMAGE_HDRS_OFFSET 0x202
#define BZIMAGE_HDRS_MAGIC  "HdrS"

static int load_elf(struct guest_mem *mem, const struct boot_config *config,
		    const uint8_t *file, size_t size, struct boot_entry *entry)
{
	const char *name = config->kernel_path;
	struct elf_info info;
	if (elf_parse(file, size, name, &info) < 0)
		return -1;
	if (!info.has_direct64) {
		if (info.has_pvh)
			log_error("--kernel %s: Linux vmlinux (PVH entry) is not supported yet; "
				  "only nestvm direct-entry ELF guests boot", name);
		else
			log_error("--kernel %s: ELF file has no nestvm entry note "
				  "(see src/boot/direct64_abi.h)", name);
		return -1;
	}
	if (info.direct64_version != DIRECT64_ABI_VERSION) {
		log_error("--kernel %s: nestvm entry note version %u, this nestvm speaks %u",
			  name, info.direct64_version, DIRECT64_ABI_VERSION);
		return -1;
	}
	if (config->initrd_path) {
		log_error("--initrd: a direct-entry ELF guest takes no initrd");
		return -1;
	}
	if (elf_load(file, size, name, mem, DIRECT64_LOAD_MIN) < 0)
		return -1;
	if (direct64_setup_memory(mem, config->cmdline, config->ncpus) < 0)
		return -1;
	entry->protocol = BOOT_DIRECT64;
	entry->entry = info.entry;
	return 0;
}

int boot_load(struct guest_mem *mem, const struct boot_config *config,
	      struct boot_entry *entry)
{
	uint8_t *file;
	size_t size;
	if (file_read_all("--kernel", config->kernel_path, mem->ram_size, &file, &size) < 0)
		return -1;
	int r = -1;
	if (elf_is_elf(file, size))
		r = load_elf(mem, config, file, size, entry);
	else if (size >= BZIMAGE_HDRS_OFFSET + 4 &&
		 memcmp(file + BZIMAGE_HDRS_OFFSET, BZIMAGE_HDRS_MAGIC, 4) == 0)
		log_error("--kernel %s: Linux bzImage is not supported yet", config->kernel_path);
	else
		log_error("--kernel %s: not a kernel nestvm can boot (neither ELF nor bzImage)",
			  config->kernel_path);
	free(file);
	return r;
}

int boot_setup_cpu(const struct boot_entry *entry, struct kvm_cpu *cpu, int ncpus)
{
	(void)ncpus;
	switch (entry->protocol) {
	case BOOT_DIRECT64:
		return direct64_setup_cpu(cpu, entry->entry);
	}
	return -1;
}
