/* Unit tests: the seccomp sandbox (util/sandbox.c). Each class is entered
 * in a child process: what it allows works, a forbidden call stops the
 * process with status 70 and one line, and /proc says the thread is
 * filtered (Seccomp: 2). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sandbox.h"

static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/thread-self/status", "r");
	char line[256];
	int mode = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp:", 8))
			mode = atoi(line + 8);
	if (f)
		fclose(f);
	return mode;
}

/* Runs body in a child confined to cls; returns its wait status. */
static int confined(enum sandbox_class cls, int (*body)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/proc/thread-self/status", O_RDONLY); /* before: opening is not allowed after */
		sandbox_enter(cls);
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			_exit(4);
		buf[n] = 0;
		char *s = strstr(buf, "Seccomp:");
		if (!s || atoi(s + 8) != 2)
			_exit(3);
		_exit(body());
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static int allowed_work(void)
{
	char *p = malloc(1 << 20); /* memory, write and time are every thread's */
	memset(p, 1, 1 << 20);
	free(p);
	return write(STDERR_FILENO, "", 0) == 0 ? 0 : 1;
}

static int make_socket(void)
{
	socket(AF_INET6, SOCK_STREAM, 0); /* forbidden everywhere */
	return 0; /* not reached */
}

static int push_keystroke(void)
{
	char c = 'x';
	ioctl(STDIN_FILENO, TIOCSTI, &c); /* a vCPU may set a tap's offloads, not this */
	return 0;
}

static int run_program(void)
{
	execl("/bin/true", "true", (char *)NULL); /* forbidden everywhere */
	return 0;
}

/* After a reboot the confined main thread starts new vCPU and worker
 * threads, which must still confine themselves further. */
static void *confine_as_vcpu(void *arg)
{
	(void)arg;
	sandbox_enter(SANDBOX_VCPU);
	return (void *)(intptr_t)allowed_work();
}

static int main_starts_a_vcpu(void)
{
	pthread_t t;
	void *ret;
	if (pthread_create(&t, NULL, confine_as_vcpu, NULL) != 0 || pthread_join(t, &ret) != 0)
		return 5;
	return (int)(intptr_t)ret;
}

static void each_class_allows_its_work(void **state)
{
	(void)state;
	if (!sandbox_enabled() || sandbox_check() < 0) {
		fprintf(stderr, "SKIP: sandbox: seccomp is off or missing here\n");
		skip();
	}
	assert_int_equal(seccomp_mode(), 0);
	for (int cls = SANDBOX_VCPU; cls <= SANDBOX_MAIN; cls++) {
		int st = confined((enum sandbox_class)cls, allowed_work);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	int st = confined(SANDBOX_MAIN, main_starts_a_vcpu);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void forbidden_calls_stop_the_process(void **state)
{
	(void)state;
	if (!sandbox_enabled() || sandbox_check() < 0) {
		fprintf(stderr, "SKIP: sandbox: seccomp is off or missing here\n");
		skip();
	}
	for (int cls = SANDBOX_VCPU; cls <= SANDBOX_MAIN; cls++) {
		int st = confined((enum sandbox_class)cls, make_socket);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 70);
	}
	int st = confined(SANDBOX_VCPU, push_keystroke);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 70);
	/* exec: release builds forbid it in every class; the sanitizers' test
	 * builds let a report start a symbolizer, so only check release. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	for (int cls = SANDBOX_VCPU; cls <= SANDBOX_MAIN; cls++) {
		int st = confined((enum sandbox_class)cls, run_program);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 70);
	}
#else
	(void)run_program;
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(each_class_allows_its_work),
		cmocka_unit_test(forbidden_calls_stop_the_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
