#include "boot/boot.h"

#include <stdlib.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/smbios.h"
#include "boot/direct64_abi.h"
#include "boot/elf.h"
#include "util/log.h"

/* Offsets in a Linux bzImage's setup header (Documentation/arch/x86/boot.rst). */
#define BZIMAGE_HDRS_OFFSET 0x202
#define BZIMAGE_HDRS_MAGIC  "HdrS"

/* Linux guests get ACPI tables and may take an initrd. */
static int load_linux(struct guest_mem *mem, const struct boot_config *config,
		      const struct image *kernel, const struct elf_info *elf,
		      struct boot_entry *entry)
{
	if (cpu_apic_id(config->topo, config->ncpus - 1) > 254) {
		log_error("--cpus %d: Linux guests are described with xAPIC IDs, which end at 254",
			  config->ncpus);
		return -1;
	}
	struct image initrd;
	if (config->initrd_path &&
	    image_open(&initrd, "--initrd", config->initrd_path, mem->ram_size) < 0)
		return -1;
	const struct image *rd = config->initrd_path ? &initrd : NULL;
	uint64_t rsdp = acpi_write_tables(mem, config->topo);
	if (config->identity && smbios_write_tables(mem, config->identity) < 0) {
		log_error("the SMBIOS tables do not fit below 1 MiB");
		if (rd)
			image_close(&initrd);
		return -1;
	}
	int r = elf ? pvh_load(mem, config, kernel, elf, rd, rsdp, entry)
		    : linux_load_bzimage(mem, config, kernel, rd, rsdp, entry);
	if (rd)
		image_close(&initrd);
	return r;
}

static int load_elf(struct guest_mem *mem, const struct boot_config *config,
		    const struct image *kernel, struct boot_entry *entry)
{
	struct elf_info info;
	if (elf_parse(kernel, &info) < 0)
		return -1;
	if (info.has_pvh && !info.has_direct64)
		return load_linux(mem, config, kernel, &info, entry);
	if (!info.has_direct64) {
		log_error("%s: ELF file has neither a PVH entry note (Linux vmlinux) nor a "
			  "nestvm entry note (see src/boot/direct64_abi.h)", kernel->name);
		return -1;
	}
	if (info.direct64_version != DIRECT64_ABI_VERSION) {
		log_error("%s: nestvm entry note version %u, this nestvm speaks %u",
			  kernel->name, info.direct64_version, DIRECT64_ABI_VERSION);
		return -1;
	}
	if (config->initrd_path) {
		log_error("--initrd: a direct-entry ELF guest takes no initrd");
		return -1;
	}
	if (elf_load(kernel, mem, DIRECT64_LOAD_MIN) < 0)
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
	struct image kernel;
	if (image_open(&kernel, "--kernel", config->kernel_path, mem->ram_size) < 0)
		return -1;
	uint8_t magic[4];
	int r = -1;
	if (elf_is_elf(&kernel))
		r = load_elf(mem, config, &kernel, entry);
	else if (image_read(&kernel, BZIMAGE_HDRS_OFFSET, magic, 4) == 0 &&
		 memcmp(magic, BZIMAGE_HDRS_MAGIC, 4) == 0)
		r = load_linux(mem, config, &kernel, NULL, entry);
	else
		log_error("%s: not a kernel nestvm can boot (neither ELF nor bzImage)", kernel.name);
	image_close(&kernel);
	return r;
}

int boot_setup_cpu(const struct boot_entry *entry, struct kvm_cpu *cpu)
{
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
