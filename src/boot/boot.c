#include "boot/boot.h"

#include <stdlib.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/direct64_abi.h"
#include "boot/elf.h"
#include "util/file.h"
#include "util/log.h"

/* Offsets in a Linux bzImage's setup header (Documentation/arch/x86/boot.rst). */
#define BZIMAGE_HDRS_OFFSET 0x202
#define BZIMAGE_HDRS_MAGIC  "HdrS"

/* Linux guests get ACPI tables and may take an initrd. */
static int load_linux(struct guest_mem *mem, const struct boot_config *config,
		      const uint8_t *file, size_t size, const struct elf_info *elf,
		      struct boot_entry *entry)
{
	if (cpu_apic_id(config->topo, config->ncpus - 1) > 254) {
		log_error("--cpus %d: Linux guests are described with xAPIC IDs, which end at 254",
			  config->ncpus);
		return -1;
	}
	uint8_t *initrd = NULL;
	size_t initrd_size = 0;
	if (config->initrd_path &&
	    file_read_all("--initrd", config->initrd_path, mem->ram_size, &initrd, &initrd_size) < 0)
		return -1;
	uint64_t rsdp = acpi_write_tables(mem, config->topo);
	int r = elf ? pvh_load(mem, config, file, size, elf, initrd, initrd_size, rsdp, entry)
		    : linux_load_bzimage(mem, config, file, size, initrd, initrd_size, rsdp, entry);
	free(initrd);
	return r;
}

static int load_elf(struct guest_mem *mem, const struct boot_config *config,
		    const uint8_t *file, size_t size, struct boot_entry *entry)
{
	const char *name = config->kernel_path;
	struct elf_info info;
	if (elf_parse(file, size, name, &info) < 0)
		return -1;
	if (info.has_pvh && !info.has_direct64)
		return load_linux(mem, config, file, size, &info, entry);
	if (!info.has_direct64) {
		log_error("--kernel %s: ELF file has neither a PVH entry note (Linux vmlinux) nor a "
			  "nestvm entry note (see src/boot/direct64_abi.h)", name);
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
		r = load_linux(mem, config, file, size, NULL, entry);
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
	case BOOT_LINUX64:
		return linux_setup_cpu(cpu, entry->entry);
	case BOOT_PVH:
		return pvh_setup_cpu(cpu, entry->entry);
	}
	return -1;
}
