/* nestvm template build debian DIR: a lab template made from Debian's
 * packages with mmdebstrap: a Debian system with systemd, openssh-server and
 * cloud-init, this nestvm inside (so a node can nest), its kernel and initrd
 * beside a qcow2 disk. The template is sealed (no machine-id, no ssh host
 * keys: every clone makes its own at first boot) and takes its identity
 * from the lab's cloud-init seed disk (lab/cidata.h).
 *
 * Two stages, so that a new nestvm does not cost a new Debian:
 *   - the base system: mmdebstrap does the work as the user running it (its
 *     unshare mode without root), writing an ext2 image with genext2fs. It
 *     is kept in the cache, by its recipe (suite, mirror, packages), with
 *     the downloaded packages;
 *   - the template: a copy of the base, this nestvm written into it by
 *     debugfs (no mount, no root), a journal and the size asked for from
 *     e2fsprogs, and the qcow2 from qemu-img. Done again only when the
 *     base or this nestvm changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/file.h"
#include "util/log.h"
#include "util/parse.h"

/* What a Debian lab node needs, on top of mmdebstrap's apt variant. */
static const char base_packages[] =
	"systemd-sysv,udev,dbus,openssh-server,cloud-init,linux-image-cloud-amd64,ifupdown,"
	"isc-dhcp-client,netbase,iproute2,iputils-ping,cpio,kmod,procps,less,sudo";

/* Bumped when the recipe below changes, so cached templates are rebuilt. */
#define RECIPE_VERSION "1"

/* The kernel command line a node of this template boots with. */
static const char debian_cmdline[] = "console=ttyS0 root=/dev/vda rw net.ifnames=0";

/* Run by mmdebstrap in the new system's root ($1) once its packages are in.
 * NESTVM_TPL_* come through the environment, so that no path needs quoting. */
static const char seal_hook[] =
	/* Packages for the next build; kept out of the image. */
	"mkdir -p \"$NESTVM_TPL_CACHE\" && "
	"for f in \"$1\"/var/cache/apt/archives/*.deb; do [ -e \"$f\" ] || continue; "
	"  [ -e \"$NESTVM_TPL_CACHE/${f##*/}\" ] || cp \"$f\" \"$NESTVM_TPL_CACHE/\"; done; "
	"rm -f \"$1\"/var/cache/apt/archives/*.deb && "
	/* Sealed: every clone makes its own machine-id (systemd, at first boot)
	 * and ssh host keys (cloud-init), and its own instance state. */
	"rm -f \"$1\"/etc/ssh/ssh_host_* \"$1\"/var/lib/dbus/machine-id && "
	": > \"$1\"/etc/machine-id && rm -rf \"$1\"/var/lib/cloud/* && "
	"echo localhost > \"$1\"/etc/hostname && "
	"printf '127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > \"$1\"/etc/hosts && "
	"printf '/dev/vda / ext4 errors=remount-ro 0 1\\n' > \"$1\"/etc/fstab && "
	/* Only the seed disk: no waiting for cloud metadata servers. */
	"printf 'datasource_list: [ NoCloud, None ]\\n' > \"$1\"/etc/cloud/cloud.cfg.d/90-nestvm.cfg && "
	"cp \"$1\"/boot/vmlinuz-* \"$NESTVM_TPL_WORK/vmlinuz\" && "
	"cp \"$1\"/boot/initrd.img-* \"$NESTVM_TPL_WORK/initrd.img\" && "
	/* Inner nodes: the lab's nestvm-lab disk, unpacked and started at boot
	 * (README, lab inner nodes). */
	"mkdir -p \"$1\"/usr/local/lib/nestvm && "
	"printf '%s\\n' '#!/bin/sh' "
	"'# Starts the inner nodes a lab gives this node on its nestvm-lab disk,' "
	"'# in a tmpfs of its own: /run is noexec.' "
	"'for b in /sys/block/vd*; do' "
	"'  [ \"$(cat $b/serial 2>/dev/null)\" = nestvm-lab ] || continue' "
	"'  mkdir -p /run/nestvm-lab && mount -t tmpfs -o mode=755 nestvm-lab /run/nestvm-lab || exit 1' "
	"'  cd /run/nestvm-lab && cpio -id --quiet < /dev/${b##*/} || exit 1' "
	"'  exec sh up.sh' "
	"'done' > \"$1\"/usr/local/lib/nestvm/lab-inner && "
	"chmod 755 \"$1\"/usr/local/lib/nestvm/lab-inner && "
	"printf '%s\\n' '[Unit]' 'Description=nestvm lab: inner nodes' "
	"'After=network.target systemd-modules-load.service' "
	"'[Service]' 'Type=oneshot' 'RemainAfterExit=yes' "
	"'ExecStart=/usr/local/lib/nestvm/lab-inner' "
	"'ExecStop=/bin/sh -c \"[ ! -f /run/nestvm-lab/down.sh ] || sh /run/nestvm-lab/down.sh\"' "
	"'StandardOutput=journal+console' 'TimeoutStartSec=infinity' "
	"'[Install]' 'WantedBy=multi-user.target' > \"$1\"/etc/systemd/system/nestvm-lab.service && "
	"ln -sf /etc/systemd/system/nestvm-lab.service "
	"\"$1\"/etc/systemd/system/multi-user.target.wants/nestvm-lab.service";

/* Puts the cached packages where apt looks first. */
static const char cache_hook[] =
	"mkdir -p \"$1\"/var/cache/apt/archives && "
	"for f in \"$NESTVM_TPL_CACHE\"/*.deb; do [ -e \"$f\" ] && cp \"$f\" \"$1\"/var/cache/apt/archives/; done; true";

struct debian_options {
	const char *suite, *mirror, *include, *dir, *cache;
	uint64_t size;
	bool force;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nestvm template build debian [OPTIONS] DIR\n"
		"       nestvm template build busybox [OPTIONS] DIR (its own --help)\n"
		"  Builds a Debian lab template into DIR with mmdebstrap: vmlinuz, initrd.img,\n"
		"  disk.qcow2 and template.yaml (the lines for a lab file's templates:).\n"
		"  systemd, openssh-server, cloud-init and this nestvm inside; sealed (no\n"
		"  machine-id or ssh host keys). Rebuilt only when its recipe changed.\n"
		"options:\n"
		"  --suite NAME     Debian release (default bookworm)\n"
		"  --mirror URL     Debian mirror (default http://deb.debian.org/debian)\n"
		"  --include PKGS   more packages, separated by commas\n"
		"  --size SIZE      the disk's size (default 4G)\n"
		"  --cache DIR      downloaded packages and base systems (default\n"
		"                   $XDG_CACHE_HOME/nestvm/debian, or ~/.cache/nestvm/debian)\n"
		"  --force          build even if DIR holds this recipe's template\n");
}

/* Runs argv with its output appended to log; 0 when it exits 0. */
static int run_tool(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("template: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char tail[512] = "";
	FILE *f = fopen(log, "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f))
			if (line[0] != '\n')
				snprintf(tail, sizeof(tail), "%s", line);
		fclose(f);
	}
	tail[strcspn(tail, "\n")] = 0;
	log_error("template: %s failed (%s; its output is in %s)%s%s", argv[0],
		  WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "not installed?" : "exit status",
		  log, tail[0] ? ": " : "", tail);
	return -1;
}

static bool have_tool(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "/usr/bin:/bin"), *save = NULL;
	bool found = false;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char p[PATH_MAX];
		found = path_fmt(p, sizeof(p), "%s/%s", d, name) == 0 && access(p, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* Fingerprints, as 64 hex digits: of the base system's recipe, and of the
 * template's (the base's, the size, this nestvm's bytes). */
static void hex(const unsigned char h[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void base_key(const struct debian_options *o, char out[65])
{
	crypto_generichash_state st;
	unsigned char h[32];
	char head[1024];
	int n = snprintf(head, sizeof(head), "recipe %s\nsuite %s\nmirror %s\ninclude %s\n",
			 RECIPE_VERSION, o->suite, o->mirror, o->include ? o->include : "");
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)head, (size_t)n);
	crypto_generichash_update(&st, (const unsigned char *)base_packages, sizeof(base_packages));
	crypto_generichash_update(&st, (const unsigned char *)cache_hook, sizeof(cache_hook));
	crypto_generichash_update(&st, (const unsigned char *)seal_hook, sizeof(seal_hook));
	crypto_generichash_final(&st, h, sizeof(h));
	hex(h, out);
}

static int template_key(const char *base, uint64_t size, char out[65])
{
	crypto_generichash_state st;
	unsigned char h[32], buf[65536];
	char head[128];
	int n = snprintf(head, sizeof(head), "base %s\nsize %llu\n", base, (unsigned long long)size);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)head, (size_t)n);
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("template: /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		crypto_generichash_update(&st, buf, (size_t)r);
	close(fd);
	crypto_generichash_final(&st, h, sizeof(h));
	hex(h, out);
	return 0;
}

/* The first line of path ("" if none). */
static void first_line(const char *path, char *out, size_t len)
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = 0;
	fclose(f);
	out[strcspn(out, "\n")] = 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static int mkdir_p(const char *path)
{
	char p[PATH_MAX];
	if (path_fmt(p, sizeof(p), "%s", path) < 0)
		return -1;
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int default_cache(char *out, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		return path_fmt(out, len, "%s/nestvm/debian", xdg);
	if (home && *home == '/')
		return path_fmt(out, len, "%s/.cache/nestvm/debian", home);
	log_error("template: neither XDG_CACHE_HOME nor HOME is set: give --cache DIR");
	return -1;
}

/* The base system for key in cache/base-KEY/ (root.ext2, vmlinuz,
 * initrd.img), made unless it is there. */
static int build_base(const struct debian_options *o, const char *cache, const char *key,
		      const char *log, char *base, size_t len)
{
	char done[PATH_MAX], work[PATH_MAX], image[PATH_MAX], debs[PATH_MAX], packages[4096];
	if (path_fmt(base, len, "%s/base-%.16s", cache, key) < 0 ||
	    path_fmt(done, sizeof(done), "%s/recipe", base) < 0 ||
	    path_fmt(work, sizeof(work), "%s.new", base) < 0 ||
	    path_fmt(image, sizeof(image), "%s/root.ext2", work) < 0 ||
	    path_fmt(debs, sizeof(debs), "%s/debs", cache) < 0 ||
	    path_fmt(packages, sizeof(packages), "--include=%s%s%s", base_packages,
		     o->include ? "," : "", o->include ? o->include : "") < 0)
		return -1;
	char have[128];
	first_line(done, have, sizeof(have));
	if (!strcmp(have, key)) {
		printf("template: the Debian %s base system is cached (%s)\n", o->suite, base);
		return 0;
	}
	nftw(work, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir_p(work) < 0 || mkdir_p(debs) < 0) {
		log_error("template: %s: %s", work, strerror(errno));
		return -1;
	}
	setenv("NESTVM_TPL_CACHE", debs, 1);
	setenv("NESTVM_TPL_WORK", work, 1);
	printf("template: building the Debian %s base system with mmdebstrap (log: %s)\n", o->suite, log);
	fflush(stdout);
	char setup[sizeof(cache_hook) + 32], customize[sizeof(seal_hook) + 32];
	snprintf(setup, sizeof(setup), "--setup-hook=%s", cache_hook);
	snprintf(customize, sizeof(customize), "--customize-hook=%s", seal_hook);
	char *debootstrap[] = { "mmdebstrap", "--variant=apt", packages, setup, customize,
				(char *)o->suite, image, (char *)o->mirror, NULL };
	if (run_tool(debootstrap, log) < 0)
		return -1;
	FILE *f = NULL;
	if (rename(work, base) < 0 || !(f = fopen(done, "w")) || fprintf(f, "%s\n", key) < 0 ||
	    fclose(f) != 0) {
		log_error("template: %s: %s", base, strerror(errno));
		return -1;
	}
	return 0;
}

static int build_debian(const struct debian_options *o)
{
	static const char *const tools[] = { "mmdebstrap", "genext2fs", "debugfs", "tune2fs",
					     "e2fsck", "resize2fs", "qemu-img" };
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!have_tool(tools[i])) {
			log_error("template: %s is not installed (Debian packages: mmdebstrap, genext2fs, "
				  "e2fsprogs, qemu-utils)", tools[i]);
			return 1;
		}
	char dir[PATH_MAX], bkey[65], tkey[65], stamp[PATH_MAX], cache[PATH_MAX], base[PATH_MAX];
	if (!realpath(o->dir, dir) && (mkdir_p(o->dir) < 0 || !realpath(o->dir, dir))) {
		log_error("template: %s: %s", o->dir, strerror(errno));
		return 1;
	}
	if (o->cache ? path_fmt(cache, sizeof(cache), "%s", o->cache) < 0 : default_cache(cache, sizeof(cache)) < 0)
		return 1;
	if (mkdir_p(cache) < 0) {
		log_error("template: --cache %s: %s", cache, strerror(errno));
		return 1;
	}
	/* One build at a time in DIR, and in the cache (a second waits, then
	 * finds the first's work done). */
	char lock_path[PATH_MAX];
	int lock = -1;
	if (path_fmt(lock_path, sizeof(lock_path), "%s/.lock", cache) == 0)
		lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock < 0) {
		log_error("template: %s: %s", lock_path, strerror(errno));
		return 1;
	}
	if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		printf("template: waiting for another build using %s\n", cache);
		fflush(stdout);
		while (flock(lock, LOCK_EX) < 0 && errno == EINTR)
			;
	}
	base_key(o, bkey);
	if (template_key(bkey, o->size, tkey) < 0 || path_fmt(stamp, sizeof(stamp), "%s/recipe", dir) < 0)
		return 1;
	char old[128];
	first_line(stamp, old, sizeof(old));
	if (!o->force && !strcmp(old, tkey)) {
		printf("template: %s is up to date (recipe %.12s)\n", dir, tkey);
		return 0;
	}
	unlink(stamp); /* a template half replaced is not this recipe's */
	char work[PATH_MAX], log[PATH_MAX], image[PATH_MAX], from[PATH_MAX], size[32], cmds[PATH_MAX];
	if (path_fmt(work, sizeof(work), "%s/.build", dir) < 0 ||
	    path_fmt(log, sizeof(log), "%s/build.log", dir) < 0 ||
	    path_fmt(image, sizeof(image), "%s/root.ext2", work) < 0 ||
	    path_fmt(cmds, sizeof(cmds), "%s/debugfs.cmds", work) < 0)
		return 1;
	unlink(log);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (o->force) {
		char done[PATH_MAX];
		if (path_fmt(done, sizeof(done), "%s/base-%.16s/recipe", cache, bkey) == 0)
			unlink(done);
	}
	if (build_base(o, cache, bkey, log, base, sizeof(base)) < 0)
		return 1;
	nftw(work, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(work, 0755) < 0 || path_fmt(from, sizeof(from), "%s/root.ext2", base) < 0 ||
	    file_copy_sparse(from, image) < 0) {
		log_error("template: %s: %s", image, strerror(errno));
		return 1;
	}
	/* This nestvm, root's, into /usr/local/bin of the image. */
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		log_error("template: /proc/self/exe: %s", strerror(errno));
		return 1;
	}
	self[n] = 0;
	FILE *f = fopen(cmds, "w");
	if (!f || fprintf(f, "cd /usr/local/bin\nwrite %s nestvm\nsif nestvm mode 0100755\n"
			  "sif nestvm uid 0\nsif nestvm gid 0\n", self) < 0 || fclose(f) != 0) {
		log_error("template: %s: %s", cmds, strerror(errno));
		return 1;
	}
	snprintf(size, sizeof(size), "%lluK", (unsigned long long)(o->size >> 10));
	char qcow2[PATH_MAX];
	if (path_fmt(qcow2, sizeof(qcow2), "%s/disk.qcow2", work) < 0)
		return 1;
	char *inject[] = { "debugfs", "-w", "-f", cmds, image, NULL };
	/* ext2 from genext2fs, then a journal, a label, the size asked for. */
	char *journal[] = { "tune2fs", "-j", "-c", "0", "-i", "0", "-L", "nestvm-root", image, NULL };
	char *check[] = { "e2fsck", "-f", "-y", image, NULL };
	char *grow[] = { "resize2fs", image, size, NULL };
	char *convert[] = { "qemu-img", "convert", "-O", "qcow2", image, qcow2, NULL };
	if (run_tool(inject, log) < 0 || run_tool(journal, log) < 0 || run_tool(check, log) < 0 ||
	    run_tool(grow, log) < 0 || run_tool(convert, log) < 0)
		return 1;
	static const char *const outputs[] = { "vmlinuz", "initrd.img", "disk.qcow2" };
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		char src[PATH_MAX], to[PATH_MAX];
		if (path_fmt(src, sizeof(src), "%s/%s", i < 2 ? base : work, outputs[i]) < 0 ||
		    path_fmt(to, sizeof(to), "%s/%s", dir, outputs[i]) < 0)
			return 1;
		unlink(to);
		/* Readable by whoever runs the lab (a copy is made private). */
		if (i < 2 ? file_copy_sparse(src, to) < 0 || chmod(to, 0644) < 0 : rename(src, to) < 0) {
			log_error("template: %s: %s", to, strerror(errno));
			return 1;
		}
	}
	nftw(work, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	char yaml[PATH_MAX];
	if (path_fmt(yaml, sizeof(yaml), "%s/template.yaml", dir) < 0)
		return 1;
	f = fopen(yaml, "w");
	if (!f) {
		log_error("template: %s: %s", yaml, strerror(errno));
		return 1;
	}
	fprintf(f,
		"# A lab file's template for this Debian %s (nestvm template build debian):\n"
		"# put it under templates:, under a name of your own.\n"
		"debian:\n"
		"  kernel: %s/vmlinuz\n  initrd: %s/initrd.img\n  disk: %s/disk.qcow2\n"
		"  cmdline: \"%s\"\n  identity: cloud-init\n",
		o->suite, dir, dir, dir, debian_cmdline);
	if (fclose(f) != 0) {
		log_error("template: %s: %s", yaml, strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	f = fopen(stamp, "w");
	if (!f || fprintf(f, "%s\nbuilt %ld in %.0f s\n", tkey, (long)time(NULL), secs) < 0 ||
	    fclose(f) != 0) {
		log_error("template: %s: %s", stamp, strerror(errno));
		return 1;
	}
	printf("template: built %s in %.0f s (template.yaml has its lines for a lab file)\n", dir, secs);
	return 0;
}

int template_dir_arg(const char *arg, const char **dir, const char *help)
{
	if (arg[0] == '-') {
		log_error("template: unknown option %s (see '%s')", arg, help);
		return -1;
	}
	if (*dir) {
		log_error("template: one directory only (%s and %s)", *dir, arg);
		return -1;
	}
	*dir = arg;
	return 0;
}

int cmd_template(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "build") && !strcmp(argv[2], "busybox"))
		return template_build_busybox(argc - 3, argv + 3);
	if (argc < 3 || strcmp(argv[1], "build") || strcmp(argv[2], "debian")) {
		log_error("template: expected 'build debian|busybox [OPTIONS] DIR' (see 'nestvm "
			  "template --help')");
		return CLI_EXIT_USAGE;
	}
	struct debian_options o = { .suite = "bookworm", .mirror = "http://deb.debian.org/debian",
				    .size = 4ULL << 30 };
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		bool takes = !strcmp(a, "--suite") || !strcmp(a, "--mirror") || !strcmp(a, "--include") ||
			     !strcmp(a, "--size") || !strcmp(a, "--cache");
		if (takes && i + 1 >= argc) {
			log_error("template: %s needs a value", a);
			return CLI_EXIT_USAGE;
		}
		if (!strcmp(a, "--suite")) {
			o.suite = argv[++i];
			for (const char *s = o.suite; *s; s++)
				if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-')) {
					log_error("template: --suite %s: expected a Debian release name such "
						  "as bookworm", o.suite);
					return CLI_EXIT_USAGE;
				}
		} else if (!strcmp(a, "--mirror")) {
			o.mirror = argv[++i];
			if (strncmp(o.mirror, "http://", 7) && strncmp(o.mirror, "https://", 8) &&
			    strncmp(o.mirror, "file:/", 6)) {
				log_error("template: --mirror %s: expected an http://, https:// or file:/ URL",
					  o.mirror);
				return CLI_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--include")) {
			o.include = argv[++i];
			for (const char *s = o.include; *s; s++)
				if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
				      strchr(",.+-:", *s))) {
					log_error("template: --include %s: expected package names separated "
						  "by commas", o.include);
					return CLI_EXIT_USAGE;
				}
		} else if (!strcmp(a, "--size")) {
			if (parse_size(argv[++i], &o.size) < 0 || o.size < (1ULL << 30) ||
			    o.size > (1ULL << 40)) {
				log_error("template: --size %s: expected a size from 1G to 1T", argv[i]);
				return CLI_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--cache")) {
			o.cache = argv[++i];
		} else if (!strcmp(a, "--force")) {
			o.force = true;
		} else if (template_dir_arg(a, &o.dir, "nestvm template --help") < 0) {
			return CLI_EXIT_USAGE;
		}
	}
	if (!o.dir) {
		log_error("template: give the directory to build into");
		return CLI_EXIT_USAGE;
	}
	return build_debian(&o);
}
