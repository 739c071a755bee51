#define _GNU_SOURCE
#include "util/sandbox.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "util/log.h"

#define ALLOW(name) SCMP_SYS(name)

/* Every thread: memory (malloc, and the sanitizers' runtime), futexes,
 * signals it is sent, time, logging, its own end. */
static const int common_calls[] = {
	ALLOW(read), ALLOW(write), ALLOW(writev), ALLOW(close), ALLOW(lseek),
	ALLOW(futex), ALLOW(exit), ALLOW(exit_group), ALLOW(restart_syscall),
	ALLOW(rt_sigreturn), ALLOW(rt_sigprocmask), ALLOW(sigaltstack),
	ALLOW(mmap), ALLOW(munmap), ALLOW(mprotect), ALLOW(madvise), ALLOW(mremap),
	ALLOW(brk), ALLOW(clock_gettime), ALLOW(clock_nanosleep), ALLOW(nanosleep),
	ALLOW(gettid), ALLOW(getpid), ALLOW(tgkill), ALLOW(sched_yield),
	ALLOW(fstat), ALLOW(newfstatat), ALLOW(getrandom),
};

/* A device worker: its queues' eventfds, its image (reads, writes, flushes,
 * holes), tap or switch socket (send and receive on it: never a new
 * socket, which the main thread connects), random numbers for virtio-rng. */
static const int worker_calls[] = {
	ALLOW(epoll_wait), ALLOW(epoll_pwait), ALLOW(epoll_ctl), ALLOW(readv), ALLOW(sendto),
	ALLOW(recvfrom),
	ALLOW(preadv), ALLOW(pwritev), ALLOW(pread64), ALLOW(pwrite64),
	ALLOW(fdatasync), ALLOW(fsync), ALLOW(fallocate),
	/* glibc's qsort asks for the machine's memory size before it sorts a
	 * large array: a qcow2 commit sorts its pending table entries. */
	ALLOW(sysinfo),
};

/* nestvm switch, once it listens: clients come and go, frames move, the
 * control API answers, its sockets are removed at the end. */
static const int switch_calls[] = {
	ALLOW(poll), ALLOW(ppoll), ALLOW(accept4), ALLOW(recvfrom), ALLOW(sendto),
	ALLOW(unlink), ALLOW(rt_sigaction),
	ALLOW(recvmsg), /* an interface uplink's frames with their VLAN auxdata */
};

/* nestvm switch --nat: libslirp opens a socket per guest connection
 * (TCP, UDP, ICMP echo), listens for forwards, and reads resolv.conf for
 * the DNS forwarder; only IPv4 sockets (below), only reading files. */
static const int nat_calls[] = {
	ALLOW(connect), ALLOW(bind), ALLOW(listen), ALLOW(setsockopt), ALLOW(getsockopt),
	ALLOW(getsockname), ALLOW(getpeername), ALLOW(shutdown), ALLOW(recvmsg), ALLOW(sendmsg),
	ALLOW(fcntl), ALLOW(accept), ALLOW(readv),
};

/* The main thread: everything a reboot needs to build the machine again,
 * snapshots, the console and the control socket. Not: exec, fork, ptrace,
 * mounts, modules, new network sockets other than what a tap needs. */
static const int main_calls[] = {
	ALLOW(readv), ALLOW(pread64), ALLOW(pwrite64), ALLOW(preadv), ALLOW(pwritev),
	ALLOW(open), ALLOW(openat), ALLOW(stat), ALLOW(lstat), ALLOW(statx),
	ALLOW(access), ALLOW(faccessat), ALLOW(faccessat2), ALLOW(readlink),
	ALLOW(readlinkat), ALLOW(getcwd), ALLOW(getdents64), ALLOW(fcntl), ALLOW(dup),
	ALLOW(dup3), ALLOW(ioctl), ALLOW(flock), ALLOW(ftruncate), ALLOW(fallocate),
	ALLOW(fsync), ALLOW(fdatasync), ALLOW(mkdir), ALLOW(mkdirat), ALLOW(rmdir),
	ALLOW(unlink), ALLOW(unlinkat), ALLOW(rename), ALLOW(renameat), ALLOW(renameat2),
	ALLOW(poll), ALLOW(ppoll), ALLOW(epoll_create1), ALLOW(epoll_ctl), ALLOW(epoll_wait),
	ALLOW(epoll_pwait), ALLOW(eventfd2), ALLOW(signalfd4), ALLOW(rt_sigaction),
	ALLOW(accept4), ALLOW(recvfrom), ALLOW(sendto), ALLOW(recvmsg), ALLOW(sendmsg),
	ALLOW(shutdown), ALLOW(bind), ALLOW(listen), ALLOW(connect), ALLOW(set_robust_list), ALLOW(rseq), ALLOW(sched_getaffinity),
	ALLOW(prlimit64), ALLOW(getrlimit), ALLOW(uname), ALLOW(getuid), ALLOW(geteuid),
	ALLOW(umask), ALLOW(membarrier), ALLOW(sysinfo),
};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* Test builds: a sanitizer's report reads /proc/self/maps and may start a
 * symbolizer, from whichever thread found the bug. Without these the
 * report would be lost to the seccomp message. Release builds never have
 * them. */
#define SANITIZER_CALLS ALLOW(open), ALLOW(openat), ALLOW(readlink), ALLOW(readlinkat), \
	ALLOW(getdents), ALLOW(getdents64), ALLOW(prctl), ALLOW(sched_getaffinity), ALLOW(clone), \
	ALLOW(clone3), \
	ALLOW(execve), ALLOW(wait4), ALLOW(pipe2), ALLOW(dup2), ALLOW(dup3), ALLOW(fcntl), \
	ALLOW(kill), ALLOW(getppid), ALLOW(uname), ALLOW(prlimit64), ALLOW(getrlimit), \
	ALLOW(setrlimit), ALLOW(rt_sigaction), ALLOW(ptrace), ALLOW(stat), ALLOW(lstat), \
	ALLOW(gettimeofday) /* ThreadSanitizer's thread start */
static const int sanitizer_calls[] = { SANITIZER_CALLS };
#endif

static __thread const char *thread_class = "a thread";

static void forbidden(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	char line[200];
	int n = snprintf(line, sizeof(line),
			 "nestvm: seccomp: %s made system call %d, which it may not make there; "
			 "stopping (a nestvm bug: please report it)\n",
			 thread_class, si->si_syscall);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line));
	syscall(SYS_exit_group, 70);
}

int sandbox_enabled(void)
{
	const char *e = getenv("NESTVM_SECCOMP");
	return !(e && !strcmp(e, "off"));
}

static int add_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = calls[i] < 0 ? 0 : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

int sandbox_check(void)
{
	if (!sandbox_enabled())
		return 0;
	if (seccomp_api_get() < 1) {
		log_error("seccomp: this kernel cannot confine threads (seccomp filters); "
			  "NESTVM_SECCOMP=off runs without (not recommended)");
		return -1;
	}
	return 0;
}

void sandbox_enter(enum sandbox_class cls)
{
	if (!sandbox_enabled())
		return;
	static const char *names[] = { "a vCPU thread", "a device worker thread", "the main thread",
				       "the switch", "the switch" };
	thread_class = names[cls];
	struct sigaction sa = { .sa_sigaction = forbidden, .sa_flags = SA_SIGINFO };
	sigaction(SIGSYS, &sa, NULL);

	/* NESTVM_SECCOMP=kill: the kernel kills and logs (audit, dmesg) instead
	 * of our handler reporting: for a forbidden call made where signals
	 * are blocked (a sanitizer's helper thread, say). */
	const char *mode = getenv("NESTVM_SECCOMP");
	bool kill_mode = mode && !strcmp(mode, "kill");
	scmp_filter_ctx ctx = seccomp_init(kill_mode ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP);
	int r = ctx ? add_all(ctx, common_calls, N(common_calls)) : -1;
#ifdef SANITIZER_CALLS
	if (r == 0)
		r = add_all(ctx, sanitizer_calls, N(sanitizer_calls));
#endif
	switch (cls) {
	case SANDBOX_VCPU:
		/* KVM's own ioctls (type 0xAE): run, and registers for messages;
		 * TUNSETOFFLOAD alone of the tap's: the guest's driver setting a
		 * NIC's offloads, which the vCPU that wrote the status register
		 * applies (not all of type 'T', which holds the terminal's
		 * TIOCSTI: keystrokes pushed into the user's shell); and the
		 * device worker's epoll set, armed or disarmed the same way. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, (uint64_t)KVMIO << 8));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_EQ, (uint64_t)TUNSETOFFLOAD, 0));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(epoll_ctl), 0);
		break;
	case SANDBOX_WORKER:
		if (r == 0)
			r = add_all(ctx, worker_calls, N(worker_calls));
		break;
	case SANDBOX_SWITCH:
		if (r == 0)
			r = add_all(ctx, switch_calls, N(switch_calls));
		break;
	case SANDBOX_SWITCH_NAT:
		if (r == 0)
			r = add_all(ctx, switch_calls, N(switch_calls));
		if (r == 0)
			r = add_all(ctx, nat_calls, N(nat_calls));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
		/* Files only for reading: never created, truncated or written. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
					     SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
					     SCMP_A1(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY));
		/* ioctl: FIONREAD (libslirp sizing a datagram) and TCGETS
		 * (glib's isatty when it logs); not the terminal's TIOCSTI. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_EQ, (uint64_t)FIONREAD, 0));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_EQ, (uint64_t)TCGETS, 0));
		break;
	case SANDBOX_MAIN:
		if (r == 0)
			r = add_all(ctx, main_calls, N(main_calls));
		/* A thread started after this (a reboot's vCPUs and workers)
		 * confines itself further: no_new_privs and a filter of its own,
		 * which can only take calls away. (Sanitizer builds allow all of
		 * prctl already.) */
#ifndef SANITIZER_CALLS
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
					     SCMP_A0(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0));
#endif
		if (r == 0) /* every seccomp() operation only ever narrows */
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 0);
#ifndef SANITIZER_CALLS
		/* Threads, never processes: clone must carry CLONE_THREAD. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
					     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
		/* glibc tries clone3 first; ENOSYS sends it back to clone,
		 * whose flags a filter can see. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
#endif
		/* A reboot opens the API socket again (AF_UNIX) and brings a tap
		 * up through an AF_INET socket; no other kind of socket. */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
		break;
	}
	if (r == 0)
		r = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	if (r < 0) {
		log_error("seccomp: cannot confine %s: %s", names[cls], strerror(r < 0 ? -r : EINVAL));
		syscall(SYS_exit_group, 70);
	}
}
