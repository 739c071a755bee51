/* The lab host's initramfs: busybox, init.sh, and the kernel modules that
 * virtio-9p and KVM need, with their dependencies resolved from each
 * module's .modinfo (the package as unpacked has no modules.dep). */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labhost/labhost.h"
#include "util/cpio.h"
#include "util/file.h"
#include "util/log.h"

extern const char labhost_init_script[];

/* Modules the init script loads, in this order, each after its
 * dependencies. kvm_amd and kvm_intel are loaded by the script itself with
 * nested=1, whichever matches the CPU; their dependencies come first. */
static const char *const wanted_modules[] = { "virtio_pci", "9pnet_virtio", "9p", "tun", "bridge",
					      "kvm_amd", "kvm_intel" };

#define MAX_MODULES 64

struct module {
	char name[64];
	char path[4096];
};

struct module_index {
	struct module *all;
	size_t count, capacity;
};

static struct module_index *walk_index; /* nftw has no context argument */

static void normalize(char *name)
{
	for (; *name; name++)
		if (*name == '-')
			*name = '_';
}

static int index_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	const char *base = path + ftw->base;
	size_t len = strlen(base);
	if (type != FTW_F || len < 4 || strcmp(base + len - 3, ".ko") || len - 3 >= 64)
		return 0;
	struct module_index *idx = walk_index;
	if (idx->count == idx->capacity) {
		size_t cap = idx->capacity ? idx->capacity * 2 : 1024;
		struct module *n = realloc(idx->all, cap * sizeof(*n));
		if (!n)
			return -1;
		idx->all = n;
		idx->capacity = cap;
	}
	struct module *m = &idx->all[idx->count++];
	memcpy(m->name, base, len - 3);
	m->name[len - 3] = '\0';
	normalize(m->name);
	snprintf(m->path, sizeof(m->path), "%s", path);
	return 0;
}

static const struct module *find_module(const struct module_index *idx, const char *name)
{
	for (size_t i = 0; i < idx->count; i++)
		if (!strcmp(idx->all[i].name, name))
			return &idx->all[i];
	return NULL;
}

/* The "depends=" value from a module's .modinfo section, copied into out
 * (empty when it has none). Offsets from the file are bounds-checked. */
static int module_depends(const char *path, char *out, size_t outlen)
{
	uint8_t *f;
	size_t size;
	if (file_read_all("module", path, 64ULL << 20, &f, &size) < 0)
		return -1;
	int r = -1;
	Elf64_Shdr *sh = NULL;
	out[0] = '\0';
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
	if (size < sizeof(*eh) || memcmp(f, ELFMAG, SELFMAG) || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shoff > size || (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size - eh->e_shoff ||
	    eh->e_shstrndx >= eh->e_shnum)
		goto bad;
	/* Section headers are copied out: the file gives no alignment promise. */
	sh = malloc(eh->e_shnum * sizeof(Elf64_Shdr) + 1);
	if (!sh)
		goto bad;
	memcpy(sh, f + eh->e_shoff, eh->e_shnum * sizeof(Elf64_Shdr));
	const Elf64_Shdr *strs = &sh[eh->e_shstrndx];
	if (strs->sh_offset > size || strs->sh_size > size - strs->sh_offset)
		goto bad;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_name >= strs->sh_size)
			goto bad;
		const char *secname = (const char *)f + strs->sh_offset + sh[i].sh_name;
		if (strnlen(secname, strs->sh_size - sh[i].sh_name) != sizeof(".modinfo") - 1 ||
		    strcmp(secname, ".modinfo"))
			continue;
		if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset)
			goto bad;
		const char *p = (const char *)f + sh[i].sh_offset, *end = p + sh[i].sh_size;
		while (p < end) {
			size_t n = strnlen(p, (size_t)(end - p));
			if (n > 8 && !strncmp(p, "depends=", 8) && n - 8 < outlen) {
				memcpy(out, p + 8, n - 8);
				out[n - 8] = '\0';
			}
			p += n + 1;
		}
		r = 0;
		goto done;
	}
	r = 0; /* no .modinfo: no dependencies */
	goto done;
bad:
	log_error("%s: not a readable kernel module", path);
done:
	free(sh);
	free(f);
	return r;
}

struct load_order {
	const struct module *mods[MAX_MODULES];
	size_t count;
};

static int add_with_deps(const struct module_index *idx, const char *name,
			 struct load_order *order, int depth)
{
	const struct module *m = find_module(idx, name);
	if (!m) {
		log_error("labhost: kernel module %s not found in the lab host kernel", name);
		return -1;
	}
	for (size_t i = 0; i < order->count; i++)
		if (order->mods[i] == m)
			return 0;
	if (depth > 16) {
		log_error("labhost: module dependencies of %s loop", name);
		return -1;
	}
	char deps[1024];
	if (module_depends(m->path, deps, sizeof(deps)) < 0)
		return -1;
	for (char *save, *d = strtok_r(deps, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
		normalize(d);
		if (add_with_deps(idx, d, order, depth + 1) < 0)
			return -1;
	}
	if (order->count == MAX_MODULES) {
		log_error("labhost: too many kernel modules");
		return -1;
	}
	order->mods[order->count++] = m;
	return 0;
}

int labhost_build_initramfs(const char *path, const char *modules_dir, const char *busybox)
{
	struct module_index idx = { 0 };
	walk_index = &idx;
	if (nftw(modules_dir, index_file, 32, FTW_PHYS) != 0) {
		log_error("labhost: cannot read kernel modules in %s: %s", modules_dir,
			  strerror(errno));
		free(idx.all);
		return -1;
	}
	struct load_order order = { .count = 0 };
	int r = 0;
	for (size_t i = 0; i < sizeof(wanted_modules) / sizeof(wanted_modules[0]) && !r; i++)
		r = add_with_deps(&idx, wanted_modules[i], &order, 0);
	if (r < 0) {
		free(idx.all);
		return -1;
	}

	struct cpio_writer w;
	if (cpio_create(&w, path) < 0) {
		free(idx.all);
		return -1;
	}
	static const char *const dirs[] = { "bin", "dev", "proc", "sys", "ctl", "root", "lib",
					    "lib/modules" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		cpio_add_dir(&w, dirs[i], 0755);
	cpio_add_chardev(&w, "dev/console", 0600, 5, 1);
	cpio_add_data(&w, "init", 0755, labhost_init_script, strlen(labhost_init_script));
	cpio_add_file(&w, "bin/busybox", 0755, busybox);
	char list[4096] = "";
	size_t used = 0;
	for (size_t i = 0; i < order.count; i++) {
		const struct module *m = order.mods[i];
		char name[128];
		snprintf(name, sizeof(name), "lib/modules/%s.ko", m->name);
		cpio_add_file(&w, name, 0644, m->path);
		/* The script loads the KVM vendor modules itself. */
		if (strcmp(m->name, "kvm_amd") && strcmp(m->name, "kvm_intel"))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\n", m->name);
	}
	cpio_add_data(&w, "modules.list", 0644, list, used);
	free(idx.all);
	return cpio_finish(&w);
}
