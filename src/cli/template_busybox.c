/* nestvm template build busybox DIR: a small lab template for fast labs
 * and tests. No disk: Debian's cloud kernel, and an initramfs holding a
 * static busybox, this nestvm (so a node can nest), the kernel modules a
 * lab node needs and an /init that makes a busybox system a lab node:
 *   - its hostname from the NoCloud serial a lab gives it (h=NAME);
 *   - every NIC up, the first one's address by DHCP;
 *   - the inner nodes on its nestvm-lab disk started (README: inner nodes);
 *   - a shell on the console (nestvm lab console), "nestvm-node: ready"
 *     when all that is done, for a health check;
 *   - the ACPI power button: inner nodes down, then power off.
 * It takes a second to build; it is built again only when its recipe (the
 * kernel, busybox, this nestvm, the init) changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/cpio.h"
#include "util/file.h"
#include "util/log.h"

/* The modules of a lab node: virtio devices, the power button and its
 * input events, and KVM for a nested node (the other vendor's fails to
 * load, quietly). Their dependencies come from modules.dep. */
static const char *const node_modules[] = { "virtio_pci", "virtio_net", "virtio_blk", "virtio_rng",
					    "button",     "evdev",      "kvm_amd",    "kvm_intel" };

static const char node_init[] =
	"#!/bin/busybox sh\n"
	"# /init of a nestvm busybox lab node (nestvm template build busybox)\n"
	"/bin/busybox --install -s /bin\n"
	"export PATH=/bin\n"
	"mount -t devtmpfs dev /dev\n"
	"exec 0</dev/console 1>/dev/console 2>&1\n"
	"mount -t proc proc /proc\n"
	"mount -t sysfs sys /sys\n"
	"mount -t tmpfs tmp /tmp\n"
	"mount -t tmpfs run /run\n"
	"while read -r m; do\n"
	"\t[ -n \"$m\" ] && insmod \"/lib/modules/$m.ko\" 2> /dev/null\n"
	"done < /lib/modules/load.order\n"
	"# Its name from the NoCloud serial a lab gives it: ds=nocloud;h=NAME;i=ID\n"
	"host=$(tr ';' '\\n' < /sys/class/dmi/id/product_serial 2> /dev/null | sed -n 's/^h=//p')\n"
	"hostname \"${host:-nestvm}\"\n"
	"ip link set lo up\n"
	"# Every NIC up; the first of its own (a lab's uplink NICs for inner\n"
	"# nodes have MACs starting 06:, and no address) takes one by DHCP\n"
	"nic=\n"
	"for n in /sys/class/net/eth*; do\n"
	"\t[ -e \"$n\" ] || continue\n"
	"\tip link set \"${n##*/}\" up\n"
	"\tcase $(cat \"$n/address\") in 06:*) ;; *) nic=${nic:-${n##*/}} ;; esac\n"
	"done\n"
	"cat > /run/udhcpc.sh << 'EOF'\n"
	"#!/bin/sh\n"
	"case $1 in\n"
	"bound|renew)\n"
	"\tip addr flush dev \"$interface\"\n"
	"\tip addr add \"$ip/$mask\" dev \"$interface\"\n"
	"\t[ -z \"$router\" ] || ip route replace default via \"${router%% *}\"\n"
	"\t[ -z \"$dns\" ] || for d in $dns; do echo \"nameserver $d\"; done > /etc/resolv.conf ;;\n"
	"esac\n"
	"EOF\n"
	"chmod 755 /run/udhcpc.sh\n"
	"# Its address: tried for 10 s, then in the background\n"
	"[ -z \"$nic\" ] || udhcpc -i \"$nic\" -b -t 5 -T 2 -s /run/udhcpc.sh \\\n"
	"\t-x \"hostname:$(hostname)\" > /dev/null 2>&1\n"
	"echo \"nestvm-node: $(hostname) address $(ip -4 -o addr show \"${nic:-eth0}\" 2> /dev/null | awk '{ print $4 }')\"\n"
	"# Inner nodes: the lab's nestvm-lab disk, unpacked and started\n"
	"for b in /sys/block/vd*; do\n"
	"\t[ \"$(cat \"$b/serial\" 2> /dev/null)\" = nestvm-lab ] || continue\n"
	"\tmkdir -p /run/nestvm-lab\n"
	"\t(cd /run/nestvm-lab && cpio -id < \"/dev/${b##*/}\" 2> /dev/null && sh up.sh)\n"
	"done\n"
	"# A shell on the console (nestvm lab console NODE)\n"
	"(while :; do setsid cttyhack sh -l; sleep 1; done) &\n"
	"echo 'nestvm-node: ready'\n"
	"# The ACPI power button (any event of the one input device) powers it off\n"
	"dev=$(ls /dev/input/event* 2> /dev/null | head -n 1)\n"
	"if [ -n \"$dev\" ]; then dd if=\"$dev\" bs=24 count=1 > /dev/null 2>&1; else\n"
	"\twhile :; do sleep 3600; done; fi\n"
	"echo 'nestvm-node: powering off'\n"
	"[ ! -f /run/nestvm-lab/down.sh ] || sh /run/nestvm-lab/down.sh\n"
	"sync\n"
	"poweroff -f\n";

#define CMDLINE "console=ttyS0 quiet panic=-1"

struct busybox_options {
	const char *dir, *kernel_dir, *busybox;
	bool force;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm template build busybox [OPTIONS] DIR\n"
		"  Builds a small lab template into DIR: vmlinuz (Debian's cloud kernel),\n"
		"  initrd.img (busybox, this nestvm, modules, a lab node's /init) and\n"
		"  template.yaml. Rebuilt only when its recipe changed.\n"
		"options:\n"
		"  --kernel-dir DIR  an unpacked linux-image-cloud-amd64 package (default\n"
		"                    $NESTVM_TEMPLATE_KERNEL_DIR, else .cache/kernels/cloud\n"
		"                    beside this nestvm: scripts/fetch-kernel.sh cloud)\n"
		"  --busybox PATH    a static busybox (default /bin/busybox: busybox-static)\n"
		"  --force           build even if DIR holds this recipe's template\n");
}

static const char *default_kernel_dir(char *buf, size_t len)
{
	const char *env = getenv("NESTVM_TEMPLATE_KERNEL_DIR");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return ".cache/kernels/cloud";
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	return path_fmt(buf, len, "%s/.cache/kernels/cloud", exe) == 0 ? buf : ".cache/kernels/cloud";
}

/* A module's name as modprobe compares them: '-' and '_' alike. */
static bool same_module(const char *file, const char *name)
{
	size_t n = strlen(name);
	if (strlen(file) != n + 3 || strcmp(file + n, ".ko"))
		return false;
	for (size_t i = 0; i < n; i++)
		if (file[i] != name[i] && !((file[i] == '-' || file[i] == '_') && (name[i] == '-' || name[i] == '_')))
			return false;
	return true;
}

struct module_list {
	char paths[64][PATH_MAX]; /* in load order */
	int n;
};

/* Every module file under the modules directory, found in one walk (a
 * 9p or NFS share makes each walk slow): nftw takes no context. */
static struct {
	char (*paths)[PATH_MAX];
	size_t n, cap;
	bool failed;
} all_modules;

static int index_module(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	size_t len = strlen(path + ftw->base);
	if (flag != FTW_F || len < 4 || strcmp(path + ftw->base + len - 3, ".ko"))
		return 0;
	if (all_modules.n == all_modules.cap) {
		size_t cap = all_modules.cap ? 2 * all_modules.cap : 1024;
		void *p = realloc(all_modules.paths, cap * sizeof(*all_modules.paths));
		if (!p) {
			all_modules.failed = true;
			return 1;
		}
		all_modules.paths = p;
		all_modules.cap = cap;
	}
	snprintf(all_modules.paths[all_modules.n++], PATH_MAX, "%s", path);
	return 0;
}

/* The path of module name, from the index; NULL if there is none. */
static const char *module_path(const char *name)
{
	for (size_t i = 0; i < all_modules.n; i++) {
		const char *base = strrchr(all_modules.paths[i], '/');
		if (same_module(base ? base + 1 : all_modules.paths[i], name))
			return all_modules.paths[i];
	}
	return NULL;
}

/* Adds module name after the modules it depends on (its .modinfo's
 * depends=, as modprobe would read it from modules.dep, which the
 * unpacked package does not have). */
static int add_module(struct module_list *ml, const char *moddir, const char *name, int depth)
{
	char path[PATH_MAX];
	const char *found = module_path(name);
	if (depth > 16 || !found) {
		log_error("template: module %s not found under %s", name, moddir);
		return -1;
	}
	snprintf(path, sizeof(path), "%s", found);
	for (int i = 0; i < ml->n; i++)
		if (!strcmp(ml->paths[i], path))
			return 0;
	uint8_t *ko;
	size_t len;
	if (file_read_all("template: --kernel-dir", path, 64 << 20, &ko, &len) < 0)
		return -1;
	const uint8_t *d = memmem(ko, len, "depends=", 8);
	char deps[1024] = "";
	if (d) {
		const uint8_t *end = memchr(d, 0, len - (size_t)(d - ko));
		size_t n = end ? (size_t)(end - d) - 8 : 0;
		if (n >= sizeof(deps))
			n = 0;
		memcpy(deps, d + 8, n);
		deps[n] = 0;
	}
	free(ko);
	char *save = NULL;
	for (char *dep = strtok_r(deps, ",", &save); dep; dep = strtok_r(NULL, ",", &save))
		if (add_module(ml, moddir, dep, depth + 1) < 0)
			return -1;
	if (ml->n == 64) {
		log_error("template: more than 64 modules");
		return -1;
	}
	snprintf(ml->paths[ml->n++], sizeof(ml->paths[0]), "%s", path);
	return 0;
}

static void hash_file(crypto_generichash_state *st, const char *path)
{
	unsigned char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;
	crypto_generichash_update(st, (const unsigned char *)path, strlen(path) + 1);
	while (fd >= 0 && (r = read(fd, buf, sizeof(buf))) > 0)
		crypto_generichash_update(st, buf, (size_t)r);
	if (fd >= 0)
		close(fd);
}

static int build_busybox(const struct busybox_options *o)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char kbuf[PATH_MAX], dir[PATH_MAX];
	const char *kdir = o->kernel_dir ? o->kernel_dir : default_kernel_dir(kbuf, sizeof(kbuf));
	/* The kernel: KDIR/boot/vmlinuz-VERSION, its modules in
	 * KDIR/lib/modules/VERSION. */
	char pattern[PATH_MAX], vmlinuz[PATH_MAX], moddir[PATH_MAX];
	glob_t g = { 0 };
	if (path_fmt(pattern, sizeof(pattern), "%s/boot/vmlinuz-*", kdir) < 0 ||
	    glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
		log_error("template: --kernel-dir %s: expected one boot/vmlinuz-* (an unpacked "
			  "linux-image-cloud-amd64 package: scripts/fetch-kernel.sh cloud)", kdir);
		globfree(&g);
		return 1;
	}
	snprintf(vmlinuz, sizeof(vmlinuz), "%s", g.gl_pathv[0]);
	globfree(&g);
	const char *version = strrchr(vmlinuz, '/') + strlen("/vmlinuz-");
	/* busybox: static, or it cannot run alone in the initramfs */
	uint8_t *elf = NULL;
	size_t elf_len;
	if (file_read_all("template: --busybox", o->busybox, 64 << 20, &elf, &elf_len) < 0)
		return 1;
	bool dynamic = elf_len < 4 || memcmp(elf, "\177ELF", 4) || memmem(elf, elf_len, "/ld-linux", 9);
	free(elf);
	if (dynamic) {
		log_error("template: --busybox %s: not a static busybox (Debian: apt-get install "
			  "busybox-static)", o->busybox);
		return 1;
	}
	if (path_fmt(moddir, sizeof(moddir), "%s/lib/modules/%s/kernel", kdir, version) < 0)
		return 1;
	struct module_list *ml = calloc(1, sizeof(*ml));
	if (!ml) {
		log_error("template: out of memory");
		return 1;
	}
	int status = 1;
	all_modules.n = 0;
	nftw(moddir, index_module, 16, FTW_PHYS);
	if (all_modules.failed) {
		log_error("template: out of memory");
		goto out;
	}
	for (size_t i = 0; i < sizeof(node_modules) / sizeof(node_modules[0]); i++)
		if (add_module(ml, moddir, node_modules[i], 0) < 0)
			goto out;
	if (!realpath(o->dir, dir) && (mkdir(o->dir, 0755) < 0 || !realpath(o->dir, dir))) {
		log_error("template: %s: %s", o->dir, strerror(errno));
		goto out;
	}
	/* The recipe: the init, the kernel, its modules, busybox and this nestvm. */
	crypto_generichash_state st;
	unsigned char h[32];
	char key[65], stamp[PATH_MAX], old[128] = "";
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)node_init, sizeof(node_init));
	crypto_generichash_update(&st, (const unsigned char *)CMDLINE, sizeof(CMDLINE));
	hash_file(&st, vmlinuz);
	for (int i = 0; i < ml->n; i++)
		hash_file(&st, ml->paths[i]);
	hash_file(&st, o->busybox);
	hash_file(&st, "/proc/self/exe");
	crypto_generichash_final(&st, h, sizeof(h));
	for (int i = 0; i < 32; i++)
		snprintf(key + 2 * i, 3, "%02x", h[i]);
	if (path_fmt(stamp, sizeof(stamp), "%s/recipe", dir) < 0)
		goto out;
	FILE *f = fopen(stamp, "r");
	if (f) {
		if (!fgets(old, sizeof(old), f))
			old[0] = 0;
		fclose(f);
		old[strcspn(old, "\n")] = 0;
	}
	static const char *const outputs[] = { "vmlinuz", "initrd.img", "template.yaml" };
	bool whole = true;
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		char p[PATH_MAX];
		whole &= path_fmt(p, sizeof(p), "%s/%s", dir, outputs[i]) == 0 && access(p, R_OK) == 0;
	}
	if (!o->force && whole && !strcmp(old, key)) {
		printf("template: %s is up to date (recipe %.12s)\n", dir, key);
		status = 0;
		goto out;
	}
	unlink(stamp);
	char initrd[PATH_MAX], tmp[PATH_MAX], kernel[PATH_MAX], yaml[PATH_MAX];
	if (path_fmt(initrd, sizeof(initrd), "%s/initrd.img", dir) < 0 ||
	    path_fmt(tmp, sizeof(tmp), "%s/initrd.img.new", dir) < 0 ||
	    path_fmt(kernel, sizeof(kernel), "%s/vmlinuz", dir) < 0 ||
	    path_fmt(yaml, sizeof(yaml), "%s/template.yaml", dir) < 0)
		goto out;
	struct cpio_writer w;
	if (cpio_create(&w, tmp) < 0)
		goto out;
	static const char *const dirs[] = { "bin", "dev", "etc", "proc", "sys", "tmp", "run", "lib",
					    "lib/modules" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		cpio_add_dir(&w, dirs[i], 0755);
	cpio_add_chardev(&w, "dev/console", 0600, 5, 1);
	cpio_add_data(&w, "init", 0755, node_init, sizeof(node_init) - 1);
	cpio_add_file(&w, "bin/busybox", 0755, o->busybox);
	cpio_add_file(&w, "bin/nestvm", 0755, "/proc/self/exe");
	char order[64 * 64] = "";
	for (int i = 0; i < ml->n; i++) {
		char name[128];
		const char *base = strrchr(ml->paths[i], '/') + 1;
		snprintf(name, sizeof(name), "lib/modules/%.100s", base);
		if (cpio_add_file(&w, name, 0644, ml->paths[i]) < 0) {
			cpio_finish(&w);
			unlink(tmp);
			goto out;
		}
		snprintf(order + strlen(order), sizeof(order) - strlen(order), "%.*s\n",
			 (int)(strlen(base) - 3), base);
	}
	cpio_add_data(&w, "lib/modules/load.order", 0644, order, strlen(order));
	if (cpio_finish(&w) < 0 || chmod(tmp, 0644) < 0 || rename(tmp, initrd) < 0) {
		log_error("template: cannot write %s", initrd);
		unlink(tmp);
		goto out;
	}
	unlink(kernel);
	if (file_copy_sparse(vmlinuz, kernel) < 0 || chmod(kernel, 0644) < 0) {
		log_error("template: %s: %s", kernel, strerror(errno));
		goto out;
	}
	f = fopen(yaml, "w");
	if (!f || fprintf(f,
			  "# A lab file's template for busybox nodes (nestvm template build busybox):\n"
			  "# put it under templates:, under a name of your own. Its nodes say\n"
			  "# 'nestvm-node: ready' on their console once up: health: {console: "
			  "\"nestvm-node: ready\"}\n"
			  "busybox:\n  kernel: %s\n  initrd: %s\n  cmdline: \"%s\"\n",
			  kernel, initrd, CMDLINE) < 0 || fclose(f) != 0) {
		log_error("template: %s: %s", yaml, strerror(errno));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	f = fopen(stamp, "w");
	if (!f || fprintf(f, "%s\nbuilt %ld in %.1f s\n", key, (long)time(NULL), secs) < 0 || fclose(f) != 0) {
		log_error("template: %s: %s", stamp, strerror(errno));
		goto out;
	}
	printf("template: built %s in %.1f s (kernel %s, %d modules; template.yaml has its lines for a "
	       "lab file)\n", dir, secs, version, ml->n);
	status = 0;
out:
	free(all_modules.paths);
	all_modules.paths = NULL;
	all_modules.n = all_modules.cap = 0;
	free(ml);
	return status;
}

int template_build_busybox(int argc, char **argv)
{
	struct busybox_options o = { .busybox = "/bin/busybox" };
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if ((!strcmp(a, "--kernel-dir") || !strcmp(a, "--busybox")) && i + 1 >= argc) {
			log_error("template: %s needs a value", a);
			return CLI_EXIT_USAGE;
		}
		if (!strcmp(a, "--kernel-dir")) {
			o.kernel_dir = argv[++i];
		} else if (!strcmp(a, "--busybox")) {
			o.busybox = argv[++i];
		} else if (!strcmp(a, "--force")) {
			o.force = true;
		} else if (template_dir_arg(a, &o.dir, "nestvm template build busybox --help") < 0) {
			return CLI_EXIT_USAGE;
		}
	}
	if (!o.dir) {
		log_error("template: give the directory to build into");
		return CLI_EXIT_USAGE;
	}
	return build_busybox(&o);
}
