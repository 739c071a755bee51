#include "boot/elf.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "boot/direct64_abi.h"
#include "util/log.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Notes larger than this are not what nestvm looks for. */
#define MAX_NOTE_SEGMENT (64 * 1024)

bool elf_is_elf(const struct image *img)
{
	uint8_t magic[SELFMAG];
	return image_read(img, 0, magic, SELFMAG) == 0 && memcmp(magic, ELFMAG, SELFMAG) == 0;
}

/* Reads program header i; false if the table does not fit in the file. */
static bool phdr_at(const struct image *img, const Elf64_Ehdr *eh, unsigned i, Elf64_Phdr *ph)
{
	uint64_t off = eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr);
	return off >= eh->e_phoff && image_read(img, off, ph, sizeof(*ph)) == 0;
}

static int parse_notes(const uint8_t *p, uint64_t len, const char *name, struct elf_info *info)
{
	while (len >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p, sizeof(nh));
		uint64_t namesz = ((uint64_t)nh.n_namesz + 3) & ~3ULL;
		uint64_t descsz = ((uint64_t)nh.n_descsz + 3) & ~3ULL;
		if (namesz > len - sizeof(nh) || descsz > len - sizeof(nh) - namesz) {
			log_error("%s: ELF note runs past its segment", name);
			return -1;
		}
		const char *nname = (const char *)p + sizeof(nh);
		const uint8_t *desc = p + sizeof(nh) + namesz;
		if (nh.n_namesz == 4 && memcmp(nname, "Xen", 4) == 0 &&
		    nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (nh.n_descsz != 4 && nh.n_descsz != 8) {
				log_error("%s: PVH entry note has a bad size (%u)", name, nh.n_descsz);
				return -1;
			}
			uint64_t entry = 0;
			memcpy(&entry, desc, nh.n_descsz);
			info->has_pvh = true;
			info->pvh_entry = entry;
		} else if (nh.n_namesz == sizeof(DIRECT64_NOTE_NAME) &&
			   memcmp(nname, DIRECT64_NOTE_NAME, sizeof(DIRECT64_NOTE_NAME)) == 0 &&
			   nh.n_type == DIRECT64_NOTE_TYPE) {
			if (nh.n_descsz != 4) {
				log_error("%s: nestvm entry note has a bad size (%u)", name,
					  nh.n_descsz);
				return -1;
			}
			memcpy(&info->direct64_version, desc, 4);
			info->has_direct64 = true;
		}
		p += sizeof(nh) + namesz + descsz;
		len -= sizeof(nh) + namesz + descsz;
	}
	return 0;
}

int elf_parse(const struct image *img, struct elf_info *info)
{
	const char *name = img->name;
	memset(info, 0, sizeof(*info));
	if (!elf_is_elf(img)) {
		log_error("%s: not an ELF file", name);
		return -1;
	}
	Elf64_Ehdr ehdr, *eh = &ehdr;
	if (image_read(img, 0, eh, sizeof(*eh)) < 0) {
		log_error("%s: truncated ELF header", name);
		return -1;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64) {
		log_error("%s: not a 64-bit x86 ELF file", name);
		return -1;
	}
	if (eh->e_type != ET_EXEC) {
		log_error("%s: ELF file is not an executable (e_type %u)", name, eh->e_type);
		return -1;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0) {
		log_error("%s: ELF file has no usable program headers", name);
		return -1;
	}
	info->entry = eh->e_entry;
	info->load_low = UINT64_MAX;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr phdr, *ph = &phdr;
		if (!phdr_at(img, eh, i, ph)) {
			log_error("%s: ELF program headers run past the end of the file", name);
			return -1;
		}
		if (ph->p_type != PT_LOAD && ph->p_type != PT_NOTE)
			continue;
		if (ph->p_offset > img->size || ph->p_filesz > img->size - ph->p_offset) {
			log_error("%s: ELF segment %u runs past the end of the file", name, i);
			return -1;
		}
		if (ph->p_type == PT_NOTE) {
			if (ph->p_filesz > MAX_NOTE_SEGMENT) {
				log_error("%s: ELF note segment %u is implausibly large", name, i);
				return -1;
			}
			uint8_t *notes = malloc(ph->p_filesz + 1);
			int r = notes && image_read(img, ph->p_offset, notes, ph->p_filesz) == 0
					? parse_notes(notes, ph->p_filesz, name, info)
					: (log_error("%s: cannot read ELF notes", name), -1);
			free(notes);
			if (r < 0)
				return -1;
			continue;
		}
		if (ph->p_filesz > ph->p_memsz || ph->p_paddr + ph->p_memsz < ph->p_paddr) {
			log_error("%s: ELF segment %u has bad sizes", name, i);
			return -1;
		}
		if (ph->p_memsz == 0)
			continue;
		if (ph->p_paddr < info->load_low)
			info->load_low = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > info->load_high)
			info->load_high = ph->p_paddr + ph->p_memsz;
	}
	if (info->load_high == 0) {
		log_error("%s: ELF file has nothing to load", name);
		return -1;
	}
	return 0;
}

int elf_load(const struct image *img, struct guest_mem *mem, uint64_t min_paddr)
{
	const char *name = img->name;
	Elf64_Ehdr ehdr, *eh = &ehdr;
	if (image_read(img, 0, eh, sizeof(*eh)) < 0)
		return -1;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr phdr, *ph = &phdr;
		if (!phdr_at(img, eh, i, ph) || ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		uint8_t *dst = guest_mem_ptr(mem, ph->p_paddr, ph->p_memsz);
		if (ph->p_paddr < min_paddr || !dst) {
			log_error("%s: ELF segment %u (0x%llx+0x%llx) does not fit in guest RAM "
				  "above 0x%llx; try a larger --memory", name, i,
				  (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz,
				  (unsigned long long)min_paddr);
			return -1;
		}
		if (ph->p_filesz > ph->p_memsz ||
		    image_read(img, ph->p_offset, dst, ph->p_filesz) < 0) {
			log_error("%s: cannot read ELF segment %u", name, i);
			return -1;
		}
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	return 0;
}
