#define _GNU_SOURCE
#include "labhost/labhost.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "util/hostinfo.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"
#include "labhost/watchdog.h"

/* Room QEMU needs beyond guest RAM (TCG's code buffer, devices, itself). */
#define QEMU_OVERHEAD (512ULL << 20)
/* File descriptors the QEMU child finds its stdout/stderr sockets on. */
#define CHILD_OUT_FD 100
#define CHILD_ERR_FD 101
#define CHILD_BEAT_FD 102     /* the heartbeat serial port (ttyS3) */
#define CHILD_MONITOR_FD 103  /* QEMU's human monitor */

const char *labhost_default_kernel_dir(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("NESTVM_LABHOST_KERNEL_DIR");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return ".cache/kernels/generic";
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	if (path_fmt(path, sizeof(path), "%s/.cache/kernels/generic", exe) < 0)
		return ".cache/kernels/generic";
	return path;
}

static int find_in_path(const char *name, char *out, size_t outlen)
{
	if (strchr(name, '/')) {
		snprintf(out, outlen, "%s", name);
		return access(out, X_OK);
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		snprintf(out, outlen, "%.*s/%s", (int)len, path, name);
		if (access(out, X_OK) == 0)
			return 0;
		path += len + (path[len] == ':');
	}
	return -1;
}

/* The single boot/vmlinuz-* and lib/modules/<version> of an unpacked
 * linux-image package. */
static int find_kernel(const char *dir, char *vmlinuz, size_t vlen, char *modules, size_t mlen)
{
	const char *fetch = "fetch Debian's generic kernel with 'make kernels' "
			    "(scripts/fetch-kernel.sh generic) or pass --kernel-dir";
	char boot[PATH_MAX];
	if (path_fmt(boot, sizeof(boot), "%s/boot", dir) < 0)
		return -1;
	DIR *d = opendir(boot);
	if (!d) {
		log_error("labhost: no lab host kernel in %s: %s", dir, fetch);
		return -1;
	}
	struct dirent *e;
	char version[256] = "";
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vmlinuz-", 8) && strlen(e->d_name + 8) < sizeof(version))
			snprintf(version, sizeof(version), "%s", e->d_name + 8);
	closedir(d);
	if (!version[0]) {
		log_error("labhost: no boot/vmlinuz-* in %s: %s", dir, fetch);
		return -1;
	}
	char probe[PATH_MAX];
	if (path_fmt(vmlinuz, vlen, "%s/vmlinuz-%s", boot, version) < 0 ||
	    path_fmt(modules, mlen, "%s/lib/modules/%s", dir, version) < 0 ||
	    path_fmt(probe, sizeof(probe), "%s/kernel/fs/9p/9p.ko", modules) < 0)
		return -1;
	if (access(probe, R_OK) != 0) {
		log_error("labhost: kernel %s has no 9p module (Debian's -cloud kernels lack it); "
			  "use the generic linux-image-*-amd64: %s", version, fetch);
		return -1;
	}
	return 0;
}

/* busybox must be static: it runs before any library is reachable. */
static int find_busybox(char *out, size_t outlen)
{
	static const char *const candidates[] = { "/bin/busybox", "/usr/bin/busybox" };
	for (size_t i = 0; i < 2; i++) {
		uint8_t *f;
		size_t size;
		if (access(candidates[i], X_OK) != 0)
			continue;
		if (file_read_all("busybox", candidates[i], 64ULL << 20, &f, &size) < 0)
			return -1;
		const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
		int is_static = size >= sizeof(*eh) && !memcmp(f, ELFMAG, SELFMAG) &&
				eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phoff <= size &&
				(uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) <= size - eh->e_phoff;
		for (unsigned j = 0; is_static && j < eh->e_phnum; j++)
			if (((const Elf64_Phdr *)(f + eh->e_phoff))[j].p_type == PT_INTERP)
				is_static = 0;
		free(f);
		if (is_static) {
			snprintf(out, outlen, "%s", candidates[i]);
			return 0;
		}
	}
	log_error("labhost: no static busybox found; install it with "
		  "'apt-get install busybox-static'");
	return -1;
}

/* Appends s to the shell script as one single-quoted word. */
static void shell_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}

static int write_job(const char *ctl, const struct labhost_options *opts, const char *share,
		     const char *cwd, char **command)
{
	char path[PATH_MAX];
	FILE *f = NULL;
	if (path_fmt(path, sizeof(path), "%s/job.env", ctl) < 0)
		return -1;
	f = fopen(path, "we");
	if (!f)
		goto fail;
	fputs("SHARE=", f);
	shell_quote(f, share);
	fputc('\n', f);
	if (fclose(f) != 0)
		goto fail;

	if (path_fmt(path, sizeof(path), "%s/job.sh", ctl) < 0)
		return -1;
	f = fopen(path, "we");
	if (!f)
		goto fail;
	/* The host's root is read-only here: per-user configuration (nestvm's
	 * snapshot key, for one) lives in the lab host's /tmp for the run. */
	fputs("export HOME=/root TERM=dumb NESTVM_LABHOST=1 XDG_CONFIG_HOME=/tmp/.config "
	      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", f);
	for (int i = 0; i < opts->nenv; i++) {
		fputs("export ", f);
		shell_quote(f, opts->env[i]);
		fputc('\n', f);
	}
	fputs("cd ", f);
	shell_quote(f, cwd);
	fputs(" || exit 126\nexec", f);
	for (char **a = command; *a; a++) {
		fputc(' ', f);
		shell_quote(f, *a);
	}
	fputc('\n', f);
	if (fclose(f) != 0)
		goto fail;
	return 0;
fail:
	log_error("labhost: cannot write %s: %s", path, strerror(errno));
	return -1;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[PATH_MAX];
			if (path_fmt(p, sizeof(p), "%s/%s", dir, e->d_name) == 0)
				unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Prints the last lines of the lab host's kernel log to stderr. */
static void show_kernel_log_tail(const char *ctl)
{
	char path[PATH_MAX];
	if (path_fmt(path, sizeof(path), "%s/kernel.log", ctl) < 0)
		return;
	uint8_t *log;
	size_t size;
	if (file_read_all("kernel log", path, 64ULL << 20, &log, &size) < 0)
		return;
	size_t start = size, lines = 0;
	while (start > 0 && lines <= 15)
		if (log[--start] == '\n')
			lines++;
	fprintf(stderr, "nestvm: labhost: last lines of the lab host's kernel log:\n");
	fwrite(log + start, 1, size - start, stderr);
	free(log);
}

struct relay {
	int fd;       /* our end of the socket pair */
	int out;      /* where its bytes go */
};

/* Copies what is available; returns false at EOF. */
static bool relay_once(struct relay *r)
{
	char buf[65536];
	ssize_t n = read(r->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	file_write_all(r->out, buf, (size_t)n); /* a closed reader must not stop the job */
	return true;
}

static pid_t spawn_qemu(char **argv, const int child_socks[4])
{
	static const int fixed[4] = { CHILD_OUT_FD, CHILD_ERR_FD, CHILD_BEAT_FD, CHILD_MONITOR_FD };
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* Child: the sockets on fixed descriptors that QEMU's command line
	 * names; stdin from /dev/null; QEMU's own messages on stderr. */
	for (int i = 0; i < 4; i++)
		if (dup2(child_socks[i], fixed[i]) < 0)
			_exit(127);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(STDERR_FILENO, STDOUT_FILENO);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(argv[0], argv);
	fprintf(stderr, "nestvm: labhost: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

#define ADD(...) do { if (argc < 63) { if (asprintf(&argv[argc++], __VA_ARGS__) < 0) return -1; } } while (0)

static int build_qemu_argv(char **argv, const char *qemu, const struct labhost_options *opts,
			   const char *vmlinuz, const char *initrd, const char *ctl,
			   const char *share)
{
	int argc = 0;
	ADD("%s", qemu);
	ADD("-nodefaults"); ADD("-no-user-config"); ADD("-display"); ADD("none");
	ADD("-no-reboot");
	ADD("-machine"); ADD("q35");
	ADD("-accel"); ADD("tcg,thread=%s", opts->tcg_thread);
	ADD("-cpu"); ADD("max");
	ADD("-smp"); ADD("%d", opts->cpus);
	ADD("-m"); ADD("%lluM", (unsigned long long)(opts->memory >> 20));
	ADD("-kernel"); ADD("%s", vmlinuz);
	ADD("-initrd"); ADD("%s", initrd);
	/* ttyS0: the command's stdout, ttyS1: its stderr, ttyS2: the kernel's
	 * console, kept in a file shown when something goes wrong, ttyS3: the
	 * heartbeat (watchdog.h). */
	ADD("-append");
	ADD("console=ttyS2 loglevel=5 panic=-1 nowatchdog nmi_watchdog=0 mitigations=off "
	    "rdinit=/init");
	ADD("-chardev"); ADD("socket,id=out,fd=%d", CHILD_OUT_FD);
	ADD("-serial"); ADD("chardev:out");
	ADD("-chardev"); ADD("socket,id=err,fd=%d", CHILD_ERR_FD);
	ADD("-serial"); ADD("chardev:err");
	ADD("-chardev"); ADD("file,id=klog,path=%s/kernel.log", ctl);
	ADD("-serial"); ADD("chardev:klog");
	ADD("-chardev"); ADD("socket,id=beat,fd=%d", CHILD_BEAT_FD);
	ADD("-serial"); ADD("chardev:beat");
	ADD("-chardev"); ADD("socket,id=mon,fd=%d", CHILD_MONITOR_FD);
	ADD("-mon"); ADD("chardev=mon,mode=readline");
	ADD("-fsdev");
	ADD("local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap");
	ADD("-device"); ADD("virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot");
	ADD("-fsdev"); ADD("local,id=share,path=%s,security_model=none,multidevs=remap", share);
	ADD("-device"); ADD("virtio-9p-pci,fsdev=share,mount_tag=share");
	ADD("-fsdev"); ADD("local,id=ctl,path=%s,security_model=none", ctl);
	ADD("-device"); ADD("virtio-9p-pci,fsdev=ctl,mount_tag=ctl");
	argv[argc] = NULL;
	return argc;
}

/* Waits for QEMU once its output has ended. Closing its chardevs is among
 * the last things it does, so a QEMU that lingers longer than a grace
 * period is stuck in its exit path: it is killed, never waited on forever. */
static int reap(pid_t pid)
{
	int status = -1;
	for (int i = 0; i < 100; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return r == pid ? status : -1;
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
	}
	log_error("labhost: QEMU did not exit 10 s after its output ended; killing it");
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* How supervise() ended when it was not by QEMU's own exit. */
enum stop_reason { STOP_NONE, STOP_TIMEOUT, STOP_FROZEN };

/* Kills QEMU because the watchdog saw the lab host freeze, after taking
 * the evidence it can. */
static void stop_frozen(pid_t pid, const struct watchdog *w, const struct labhost_options *opts)
{
	char what[160];
	watchdog_describe(w, monotonic_ms(), what, sizeof(what));
	log_error("labhost: the lab host froze: %s; stopping it (exit status %d)", what,
		  LABHOST_EXIT_FROZEN);
	if (opts->freeze_report && watchdog_write_report(w, opts->cpus, opts->freeze_report) == 0)
		log_error("labhost: its registers and code, sampled before it was stopped: %s",
			  opts->freeze_report);
	kill(pid, SIGKILL);
}

/* Runs QEMU to completion, relaying output and watching the heartbeat.
 * Returns its wait status, or -1 on error; *why says whether nestvm
 * stopped it (--timeout, or a freeze). */
static int supervise(char **qargv, const struct labhost_options *opts, enum stop_reason *why)
{
	int pairs[4][2];
	for (int i = 0; i < 4; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]) < 0) {
			log_error("labhost: socketpair: %s", strerror(errno));
			while (i-- > 0) {
				close(pairs[i][0]);
				close(pairs[i][1]);
			}
			return -1;
		}
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	sigprocmask(SIG_BLOCK, &term, &old);
	int sfd = signalfd(-1, &term, SFD_CLOEXEC);

	int child_socks[4] = { pairs[0][1], pairs[1][1], pairs[2][1], pairs[3][1] };
	pid_t pid = spawn_qemu(qargv, child_socks);
	for (int i = 0; i < 4; i++)
		close(pairs[i][1]);
	if (pid < 0) {
		log_error("labhost: fork: %s", strerror(errno));
		for (int i = 0; i < 4; i++)
			close(pairs[i][0]);
		if (sfd >= 0)
			close(sfd);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return -1;
	}

	struct relay relays[2] = { { pairs[0][0], STDOUT_FILENO }, { pairs[1][0], STDERR_FILENO } };
	bool open_[3] = { true, true, true };
	struct watchdog dog;
	watchdog_init(&dog, pairs[2][0], pairs[3][0], opts->freeze_s, opts->keepalive_ms,
		      monotonic_ms());
	int64_t deadline = opts->timeout_s ? monotonic_ms() + (int64_t)opts->timeout_s * 1000 : 0;
	*why = STOP_NONE;
	int signals = 0;
	while (open_[0] || open_[1]) {
		struct pollfd fds[4] = {
			{ .fd = open_[0] ? relays[0].fd : -1, .events = POLLIN },
			{ .fd = open_[1] ? relays[1].fd : -1, .events = POLLIN },
			{ .fd = open_[2] ? dog.beat_fd : -1, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		int64_t now = monotonic_ms(), wait = -1;
		if (*why == STOP_NONE) {
			if (deadline)
				wait = deadline > now ? deadline - now : 0;
			int64_t dog_left = watchdog_ms_left(&dog, now);
			if (dog_left >= 0 && (wait < 0 || dog_left < wait))
				wait = dog_left;
			int64_t keepalive = open_[2] ? watchdog_ms_to_keepalive(&dog, now) : -1;
			if (keepalive >= 0 && (wait < 0 || keepalive < wait))
				wait = keepalive;
		}
		int n = poll(fds, 4, (int)wait);
		if (n < 0 && errno != EINTR) {
			log_error("labhost: poll: %s; stopping the lab host", strerror(errno));
			kill(pid, SIGKILL);
			break;
		}
		now = monotonic_ms();
		if (open_[2] && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)))
			open_[2] = watchdog_read_beats(&dog, now);
		if (*why == STOP_NONE && deadline && now >= deadline) {
			log_error("labhost: --timeout %u: the command did not finish in time; "
				  "stopping the lab host", opts->timeout_s);
			kill(pid, SIGKILL);
			*why = STOP_TIMEOUT;
		} else if (*why == STOP_NONE && watchdog_ms_left(&dog, now) == 0) {
			stop_frozen(pid, &dog, opts);
			*why = STOP_FROZEN;
		}
		if (*why == STOP_NONE && open_[2] && watchdog_ms_to_keepalive(&dog, now) == 0)
			watchdog_keepalive(&dog, now);
		for (int i = 0; i < 2; i++)
			if (open_[i] && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				open_[i] = relay_once(&relays[i]);
		if (sfd >= 0 && (fds[3].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				/* QEMU acts on SIGTERM in its main loop; a second
				 * signal does not wait for a stuck one. */
				log_error("labhost: signal %u: stopping the lab host%s", si.ssi_signo,
					  signals ? " now" : "");
				kill(pid, signals++ ? SIGKILL : SIGTERM);
			}
		}
	}
	int status = reap(pid);
	watchdog_summary(&dog);
	for (int i = 0; i < 4; i++)
		close(pairs[i][0]);
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return status;
}

int labhost_run(const struct labhost_options *opts, char **command)
{
	/* A reader of our output that goes away, or QEMU closing its monitor
	 * while we write to it, must give an error, not end nestvm with QEMU
	 * left running unsupervised. */
	signal(SIGPIPE, SIG_IGN);
	char qemu[PATH_MAX], vmlinuz[PATH_MAX], modules[PATH_MAX], busybox[PATH_MAX];
	const char *qemu_name = opts->qemu ? opts->qemu : "qemu-system-x86_64";
	if (find_in_path(qemu_name, qemu, sizeof(qemu)) < 0) {
		if (opts->qemu)
			log_error("labhost: --qemu %s: not an executable file", opts->qemu);
		else
			log_error("labhost: qemu-system-x86_64 not found in PATH; install it with "
				  "'apt-get install qemu-system-x86' or pass --qemu PATH");
		return LABHOST_EXIT_FAILED;
	}
	if (find_kernel(opts->kernel_dir, vmlinuz, sizeof(vmlinuz), modules, sizeof(modules)) < 0 ||
	    find_busybox(busybox, sizeof(busybox)) < 0)
		return LABHOST_EXIT_FAILED;

	uint64_t avail = host_meminfo("MemAvailable");
	if (avail && avail < opts->memory + QEMU_OVERHEAD) {
		char want[32], have[32], need[32];
		log_error("labhost: --memory %s needs about %s free, but this host has only %s "
			  "available; free memory or pass a smaller --memory",
			  format_size(opts->memory, want, sizeof(want)),
			  format_size(opts->memory + QEMU_OVERHEAD, need, sizeof(need)),
			  format_size(avail, have, sizeof(have)));
		return LABHOST_EXIT_FAILED;
	}

	char cwd[PATH_MAX], share[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd))) {
		log_error("labhost: cannot get the working directory: %s", strerror(errno));
		return LABHOST_EXIT_FAILED;
	}
	const char *share_arg = opts->share ? opts->share : cwd;
	struct stat st;
	if (!realpath(share_arg, share) || stat(share, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("labhost: --share %s: not a directory", share_arg);
		return LABHOST_EXIT_FAILED;
	}
	if (!strcmp(share, "/")) {
		log_error("labhost: --share /: the root is shared read-only; pick a directory");
		return LABHOST_EXIT_FAILED;
	}
	if (strchr(share, ',')) {
		log_error("labhost: --share %s: QEMU cannot share a path containing ','", share);
		return LABHOST_EXIT_FAILED;
	}

	const char *tmp = getenv("TMPDIR");
	char ctl[PATH_MAX];
	snprintf(ctl, sizeof(ctl), "%s/nestvm-labhost.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(ctl)) {
		log_error("labhost: cannot create %s: %s", ctl, strerror(errno));
		return LABHOST_EXIT_FAILED;
	}
	int result = LABHOST_EXIT_FAILED;
	char initrd[PATH_MAX + 32];
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio", ctl);
	char *qargv[64] = { 0 };
	if (write_job(ctl, opts, share, cwd, command) < 0 ||
	    labhost_build_initramfs(initrd, modules, busybox) < 0 ||
	    build_qemu_argv(qargv, qemu, opts, vmlinuz, initrd, ctl, share) < 0)
		goto out;
	log_info("labhost: booting %s with %d vCPUs and %llu MiB", vmlinuz, opts->cpus,
		 (unsigned long long)(opts->memory >> 20));

	enum stop_reason why = STOP_NONE;
	int wstatus = supervise(qargv, opts, &why);
	if (why == STOP_TIMEOUT) {
		result = LABHOST_EXIT_TIMEOUT;
		goto out;
	}
	if (why == STOP_FROZEN) {
		show_kernel_log_tail(ctl);
		result = LABHOST_EXIT_FROZEN;
		goto out;
	}
	char status_path[PATH_MAX + 16];
	snprintf(status_path, sizeof(status_path), "%s/status", ctl);
	FILE *f = fopen(status_path, "re");
	int status;
	if (f && fscanf(f, "%d", &status) == 1 && status >= 0 && status <= 255) {
		result = status;
		if (opts->verbose)
			show_kernel_log_tail(ctl);
	} else {
		if (wstatus >= 0 && WIFEXITED(wstatus))
			log_error("labhost: the lab host stopped before the command finished "
				  "(QEMU exit status %d)", WEXITSTATUS(wstatus));
		else if (wstatus >= 0 && WIFSIGNALED(wstatus))
			log_error("labhost: the lab host stopped before the command finished "
				  "(QEMU killed by signal %d)", WTERMSIG(wstatus));
		show_kernel_log_tail(ctl);
	}
	if (f)
		fclose(f);
out:
	for (char **a = qargv; *a; a++)
		free(*a);
	remove_tree(ctl);
	return result;
}
