/* Unit tests: the control API's protocol (vmm/control.c), run through
 * control_execute() against a fake VM, with no socket and no KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vmm/control.h"

#define CLIENT_FD 5

struct fake_vm {
	bool paused;
	bool pause_fails;      /* a running VM does not pause */
	const char *save_error; /* snapshot_save fails with this, if set */
	int64_t clock;         /* ms; a save takes 350 of them */
	int pauses, resumes, presses, saves;
	char saved_dir[64];
};

static bool fake_is_paused(void *vm)
{
	return ((struct fake_vm *)vm)->paused;
}

static void fake_describe(void *vm, struct control_vm_facts *facts)
{
	(void)vm;
	facts->vcpus = 2;
	facts->memory_bytes = 512ULL << 20;
	facts->nested = true;
	facts->restored = false;
	facts->ndisks = 2;
	facts->disks[0] = "/img/root.raw";
	facts->disks[1] = "/img/data.raw";
}

static int fake_pause(void *vm)
{
	struct fake_vm *f = vm;
	f->pauses++;
	if (!f->paused && f->pause_fails)
		return -1;
	f->paused = true;
	return 0;
}

static void fake_resume(void *vm)
{
	struct fake_vm *f = vm;
	f->resumes++;
	f->paused = false;
}

static void fake_press_power_button(void *vm)
{
	((struct fake_vm *)vm)->presses++;
}

static int fake_snapshot_save(void *vm, const char *dir, uint64_t *bytes, char *why, size_t whylen)
{
	struct fake_vm *f = vm;
	f->saves++;
	assert_true(f->paused);
	snprintf(f->saved_dir, sizeof(f->saved_dir), "%s", dir);
	f->clock += 350;
	if (f->save_error) {
		snprintf(why, whylen, "%s", f->save_error);
		return -1;
	}
	*bytes = 536875008;
	return 0;
}

static int64_t fake_now_ms(void *vm)
{
	return ((struct fake_vm *)vm)->clock;
}

static const struct control_ops fake_ops = {
	.is_paused = fake_is_paused,
	.describe = fake_describe,
	.pause = fake_pause,
	.resume = fake_resume,
	.press_power_button = fake_press_power_button,
	.snapshot_save = fake_snapshot_save,
	.now_ms = fake_now_ms,
};

struct fixture {
	struct control c;
	struct fake_vm vm;
};

static int setup(void **state)
{
	log_verbosity = -1;
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	control_init(&fx->c);
	fx->vm.clock = 100000;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Runs one request line of len bytes; returns the reply (freed by the
 * caller), NULL if deferred. */
static char *run_bytes(struct fixture *fx, const char *line, size_t len)
{
	return control_execute(&fx->c, &fake_ops, &fx->vm, CLIENT_FD, line, len);
}

static char *run(struct fixture *fx, const char *line)
{
	return run_bytes(fx, line, strlen(line));
}

/* Runs a request and checks its reply line exactly. */
static void expect_reply(struct fixture *fx, const char *line, const char *reply)
{
	char *got = run(fx, line);
	assert_non_null(got);
	assert_string_equal(got, reply);
	free(got);
}

static void status_reply(void **state)
{
	struct fixture *fx = *state;
	expect_reply(fx, "{\"command\": \"status\"}",
		     "{\"ok\":true,\"state\":\"running\",\"vcpus\":2,\"memory_bytes\":536870912,"
		     "\"nested\":true,\"disks\":[\"/img/root.raw\",\"/img/data.raw\"],"
		     "\"restored\":false}\n");
	assert_int_equal(fx->vm.pauses + fx->vm.resumes + fx->vm.presses + fx->vm.saves, 0);
}

static void pause_and_resume(void **state)
{
	struct fixture *fx = *state;
	expect_reply(fx, "{\"command\":\"pause\"}", "{\"ok\":true,\"state\":\"paused\"}\n");
	assert_true(fx->vm.paused);
	expect_reply(fx, "{\"command\":\"status\"}",
		     "{\"ok\":true,\"state\":\"paused\",\"vcpus\":2,\"memory_bytes\":536870912,"
		     "\"nested\":true,\"disks\":[\"/img/root.raw\",\"/img/data.raw\"],"
		     "\"restored\":false}\n");
	expect_reply(fx, "{\"command\":\"resume\"}", "{\"ok\":true,\"state\":\"running\"}\n");
	assert_false(fx->vm.paused);
	assert_int_equal(fx->vm.pauses, 1);
	assert_int_equal(fx->vm.resumes, 1);
}

static void pause_failure(void **state)
{
	struct fixture *fx = *state;
	fx->vm.pause_fails = true;
	expect_reply(fx, "{\"command\":\"pause\"}",
		     "{\"ok\":false,\"error\":\"the VM did not pause within 10 s (a vCPU is stuck in a "
		     "device)\"}\n");
	assert_false(fx->vm.paused);
}

static void shutdown_deferred(void **state)
{
	struct fixture *fx = *state;
	fx->vm.paused = true; /* a paused guest could not react to the button */
	assert_null(run(fx, "{\"command\":\"shutdown\"}"));
	assert_int_equal(fx->c.shutdown_fd, CLIENT_FD);
	assert_int_equal(fx->c.shutdown_deadline, 100000 + 60 * 1000);
	assert_false(fx->vm.paused);
	assert_int_equal(fx->vm.presses, 1);
}

static void shutdown_timeouts(void **state)
{
	struct fixture *fx = *state;
	const char *bad[] = { "-1", "86401", "1.5", "\"10\"", "true", "null", "[5]",
			      "99999999999999999999", NULL };
	for (int i = 0; bad[i]; i++) {
		char line[128];
		snprintf(line, sizeof(line), "{\"command\":\"shutdown\",\"timeout\":%s}", bad[i]);
		expect_reply(fx, line, "{\"ok\":false,\"error\":\"\\\"timeout\\\" must be whole seconds "
				       "from 0 to 86400\"}\n");
	}
	assert_int_equal(fx->vm.presses, 0);
	assert_int_equal(fx->c.shutdown_fd, -1);
	assert_int_equal(fx->c.shutdown_deadline, 0);

	assert_null(run(fx, "{\"command\":\"shutdown\",\"timeout\":86400}"));
	assert_int_equal(fx->c.shutdown_deadline, 100000 + 86400LL * 1000);
	control_init(&fx->c);
	assert_null(run(fx, "{\"command\":\"shutdown\",\"timeout\":0}"));
	assert_int_equal(fx->c.shutdown_deadline, 100000);
}

static void second_shutdown_refused(void **state)
{
	struct fixture *fx = *state;
	assert_null(run(fx, "{\"command\":\"shutdown\",\"timeout\":5}"));
	fx->vm.clock += 1000;
	expect_reply(fx, "{\"command\":\"shutdown\",\"timeout\":1}",
		     "{\"ok\":false,\"error\":\"a shutdown is already in progress\"}\n");
	assert_int_equal(fx->vm.presses, 1);
	assert_int_equal(fx->c.shutdown_deadline, 100000 + 5000);
	/* The other requests are still answered meanwhile. */
	expect_reply(fx, "{\"command\":\"resume\"}", "{\"ok\":true,\"state\":\"running\"}\n");
}

static void snapshot_reply(void **state)
{
	struct fixture *fx = *state;
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/tmp/snap\"}",
		     "{\"ok\":true,\"dir\":\"/tmp/snap\",\"bytes\":536875008,\"seconds\":0.350}\n");
	assert_string_equal(fx->vm.saved_dir, "/tmp/snap");
	assert_false(fx->vm.paused); /* running before, running after */
	fx->vm.paused = true;
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/tmp/snap\"}",
		     "{\"ok\":true,\"dir\":\"/tmp/snap\",\"bytes\":536875008,\"seconds\":0.350}\n");
	assert_true(fx->vm.paused); /* paused before, paused after */
	assert_int_equal(fx->vm.saves, 2);
}

static void snapshot_errors(void **state)
{
	struct fixture *fx = *state;
	const char *no_dir = "{\"ok\":false,\"error\":\"\\\"dir\\\" (a string) is required\"}\n";
	expect_reply(fx, "{\"command\":\"snapshot\"}", no_dir);
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":7}", no_dir);
	/* A NUL would cut the path short: the snapshot would land elsewhere. */
	const char *bad_dir = "{\"ok\":false,\"error\":\"\\\"dir\\\" must be a non-empty path without "
			      "NUL characters\"}\n";
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/tmp/a\\u0000b\"}", bad_dir);
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"\"}", bad_dir);
	assert_int_equal(fx->vm.pauses, 0);

	fx->vm.pause_fails = true;
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/s\"}",
		     "{\"ok\":false,\"error\":\"the VM did not pause within 10 s (a vCPU is stuck in a "
		     "device); no snapshot taken\"}\n");
	assert_int_equal(fx->vm.saves, 0);

	fx->vm.pause_fails = false;
	fx->vm.save_error = "/s: no space left on device";
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/s\"}",
		     "{\"ok\":false,\"error\":\"/s: no space left on device\"}\n");
	assert_false(fx->vm.paused);
}

static void unknown_command(void **state)
{
	struct fixture *fx = *state;
	expect_reply(fx, "{\"command\":\"reboot-now\"}",
		     "{\"ok\":false,\"error\":\"unknown command \\\"reboot-now\\\" (status, pause, "
		     "resume, shutdown, snapshot)\"}\n");
}

static void not_a_command_object(void **state)
{
	struct fixture *fx = *state;
	const char *expected = "{\"ok\":false,\"error\":\"expected an object with a \\\"command\\\" "
			       "string\"}\n";
	const char *lines[] = { "[1,2]", "\"status\"", "7 ", "{}", "{\"command\":5}",
				"{\"command\":[\"status\"]}", "{\"cmd\":\"status\"}", NULL };
	for (int i = 0; lines[i]; i++)
		expect_reply(fx, lines[i], expected);
	assert_int_equal(fx->vm.pauses + fx->vm.resumes + fx->vm.presses + fx->vm.saves, 0);
}

static void invalid_json(void **state)
{
	struct fixture *fx = *state;
	const char *expected = "{\"ok\":false,\"error\":\"the request is not valid JSON\"}\n";
	/* "null" too: json-c gives it as no object at all. A bare number
	 * answers "not valid JSON" only because json-c waits for more digits
	 * (with a space after it, it is a non-object: see above). */
	const char *lines[] = { "{not json", "", "   ", "{\"command\":\"status\"", "123", "{\"a\":}",
				"null", NULL };
	for (int i = 0; lines[i]; i++)
		expect_reply(fx, lines[i], expected);
}

/* NUL ends json-c's input, so a NUL inside the request leaves it
 * unfinished; one after a complete object is ignored like any trailing
 * bytes. The line need not be NUL-terminated. */
static void embedded_nul(void **state)
{
	struct fixture *fx = *state;
	static const char key[] = "{\"comm\0and\":\"status\"}";
	char *reply = run_bytes(fx, key, sizeof(key) - 1);
	assert_string_equal(reply, "{\"ok\":false,\"error\":\"the request is not valid JSON\"}\n");
	free(reply);

	static const char after[] = "{\"command\":\"pause\"}\0tail";
	reply = run_bytes(fx, after, sizeof(after) - 1);
	assert_string_equal(reply, "{\"ok\":true,\"state\":\"paused\"}\n");
	free(reply);

	char exact[19]; /* {"command":"pause"} with no room for a NUL */
	memcpy(exact, "{\"command\":\"pause\"}", sizeof(exact));
	reply = run_bytes(fx, exact, sizeof(exact));
	assert_string_equal(reply, "{\"ok\":true,\"state\":\"paused\"}\n");
	free(reply);
}

/* An echo of invalid UTF-8 would make the reply invalid JSON: each bad
 * byte comes back as U+FFFD; valid characters as they were. */
static void invalid_utf8_echoed_as_replacement(void **state)
{
	struct fixture *fx = *state;
	expect_reply(fx, "{\"command\":\"\xff\xc3\xa9\xed\xa0\x80\"}",
		     "{\"ok\":false,\"error\":\"unknown command \\\"\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd"
		     "\xef\xbf\xbd\xef\xbf\xbd\\\" (status, pause, resume, shutdown, snapshot)\"}\n");
	expect_reply(fx, "{\"command\":\"snapshot\",\"dir\":\"/tmp/\xe2\x82\"}",
		     "{\"ok\":true,\"dir\":\"/tmp/\xef\xbf\xbd\xef\xbf\xbd\",\"bytes\":536875008,"
		     "\"seconds\":0.350}\n");
	assert_memory_equal(fx->vm.saved_dir, "/tmp/\xe2\x82", 8); /* the dir itself as given */
}

static void line_too_long(void **state)
{
	struct fixture *fx = *state;
	size_t len = CONTROL_LINE_MAX;
	char *line = malloc(len);
	assert_non_null(line);
	memset(line, ' ', len);
	memcpy(line, "{\"command\":\"status\"}", 20);
	char *reply = run_bytes(fx, line, len);
	assert_string_equal(reply, "{\"ok\":false,\"error\":\"request longer than 8191 bytes\"}\n");
	free(reply);
	/* One byte less is what the socket side can hand over. */
	reply = run_bytes(fx, line, len - 1);
	assert_true(!strncmp(reply, "{\"ok\":true,\"state\":\"running\"", 28));
	free(reply);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(status_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(pause_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(pause_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(shutdown_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(shutdown_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(second_shutdown_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(snapshot_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(snapshot_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_command, setup, teardown),
		cmocka_unit_test_setup_teardown(not_a_command_object, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_json, setup, teardown),
		cmocka_unit_test_setup_teardown(embedded_nul, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_utf8_echoed_as_replacement, setup, teardown),
		cmocka_unit_test_setup_teardown(line_too_long, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
