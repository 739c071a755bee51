/* libFuzzer: the control API's protocol (vmm/control.c) on any request
 * lines, against a fake VM that records what it was asked to do.
 *
 * The input is split at '\n' into request lines run in order (so that a
 * shutdown can meet a second one), once for each kind of fake VM below;
 * then the whole input is run once more as a single line. Each reply is
 * checked against what the protocol promises (vmm/control.h), with the
 * request judged independently of control.c; any broken promise aborts. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vmm/control.h"

#define CLIENT_FD 7    /* who asks; control_execute() never touches it */
#define MAX_LINES 64   /* per input, to keep one input fast */
#define CLOCK_STEP 7   /* ms the fake clock moves per reading */

struct fake_vm {
	/* Behaviour, fixed per pass. */
	bool pause_fails;  /* a running VM does not pause (paused ones do) */
	bool save_fails;
	/* State. */
	bool paused;
	bool button_pressed;
	int64_t clock, last_clock;
	/* Calls, counted per request. */
	int describes, pauses, resumes, presses, saves;
};

static const char *const fake_disks[] = { "/img/root.raw", "/img/data \"quoted\".raw" };

static bool fake_is_paused(void *vm)
{
	return ((struct fake_vm *)vm)->paused;
}

static void fake_describe(void *vm, struct control_vm_facts *facts)
{
	((struct fake_vm *)vm)->describes++;
	facts->vcpus = 3;
	facts->memory_bytes = 3ULL << 30;
	facts->nested = true;
	facts->restored = false;
	facts->ndisks = 2;
	facts->disks[0] = fake_disks[0];
	facts->disks[1] = fake_disks[1];
}

static int fake_pause(void *vm)
{
	struct fake_vm *f = vm;
	f->pauses++;
	if (f->paused)
		return 0;
	if (f->pause_fails)
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
	struct fake_vm *f = vm;
	f->presses++;
	f->button_pressed = true;
}

static int fake_snapshot_save(void *vm, const char *dir, uint64_t *bytes, char *why, size_t whylen)
{
	struct fake_vm *f = vm;
	f->saves++;
	/* A save only ever runs on a paused VM. */
	if (!f->paused || !dir)
		abort();
	if (f->save_fails) {
		snprintf(why, whylen, "%s: fake failure", dir);
		return -1;
	}
	*bytes = 4096;
	return 0;
}

static int64_t fake_now_ms(void *vm)
{
	struct fake_vm *f = vm;
	f->clock += CLOCK_STEP;
	f->last_clock = f->clock;
	return f->clock;
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

#define CHECK(cond)                                                               \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "fuzz_control: broken promise: %s (line %d)\n", \
				#cond, __LINE__);                                 \
			abort();                                                  \
		}                                                                 \
	} while (0)

/* Whether s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), decoding each character. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char b = s[i];
		int follow;
		uint32_t cp, min;
		if (b < 0x80) {
			i++;
			continue;
		} else if ((b & 0xe0) == 0xc0) {
			follow = 1, cp = b & 0x1f, min = 0x80;
		} else if ((b & 0xf0) == 0xe0) {
			follow = 2, cp = b & 0x0f, min = 0x800;
		} else if ((b & 0xf8) == 0xf0) {
			follow = 3, cp = b & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < (size_t)follow)
			return false;
		for (int k = 1; k <= follow; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += (size_t)follow + 1;
	}
	return true;
}

/* The reply as a JSON object, after checking its form: exactly one line,
 * no control characters, valid UTF-8, strict JSON, an object with an "ok"
 * boolean; a refusal has an "error" string and nothing else. */
static json_object *parse_reply(const char *reply)
{
	size_t len = strlen(reply);
	CHECK(len >= 3 && reply[len - 1] == '\n');
	for (size_t i = 0; i + 1 < len; i++)
		CHECK((unsigned char)reply[i] >= 0x20);
	CHECK(utf8_valid((const unsigned char *)reply, len));
	static json_tokener *tok; /* kept: fewer allocations, faster runs */
	if (!tok) {
		tok = json_tokener_new();
		CHECK(tok);
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	}
	json_tokener_reset(tok);
	json_object *o = json_tokener_parse_ex(tok, reply, (int)len - 1);
	CHECK(o && json_tokener_get_error(tok) == json_tokener_success);
	CHECK(json_tokener_get_parse_end(tok) == len - 1);
	CHECK(json_object_is_type(o, json_type_object));
	json_object *ok, *err;
	CHECK(json_object_object_get_ex(o, "ok", &ok) && json_object_is_type(ok, json_type_boolean));
	if (!json_object_get_boolean(ok)) {
		CHECK(json_object_object_length(o) == 2);
		CHECK(json_object_object_get_ex(o, "error", &err) &&
		      json_object_is_type(err, json_type_string) && json_object_get_string_len(err) > 0);
	} else {
		CHECK(!json_object_object_get_ex(o, "error", NULL));
	}
	return o;
}

static bool reply_ok(json_object *o)
{
	json_object *ok;
	json_object_object_get_ex(o, "ok", &ok);
	return json_object_get_boolean(ok);
}

static const char *reply_str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool reply_error_is(json_object *o, const char *msg)
{
	const char *e = reply_str(o, "error");
	return !reply_ok(o) && e && !strcmp(e, msg);
}

static bool reply_error_starts(json_object *o, const char *prefix)
{
	const char *e = reply_str(o, "error");
	return !reply_ok(o) && e && !strncmp(e, prefix, strlen(prefix));
}

static bool reply_state_is(json_object *o, bool paused)
{
	const char *st = reply_str(o, "state");
	return reply_ok(o) && st && !strcmp(st, paused ? "paused" : "running");
}

/* What the request is, judged here rather than by control.c. json-c's
 * lenient parser is the reference (the protocol promises to use it):
 * trailing bytes after a complete value are ignored. */
struct request {
	bool valid_json;
	json_object *obj; /* the whole request when valid_json */
	const char *command; /* when an object with a "command" string */
};

static struct request judge(const char *line, size_t len)
{
	struct request r = { 0 };
	if (len >= CONTROL_LINE_MAX)
		return r;
	static json_tokener *tok;
	if (!tok)
		CHECK((tok = json_tokener_new()));
	json_tokener_reset(tok);
	r.obj = json_tokener_parse_ex(tok, line, (int)len);
	r.valid_json = r.obj && json_tokener_get_error(tok) == json_tokener_success;
	json_object *cmd;
	if (r.valid_json && json_object_is_type(r.obj, json_type_object) &&
	    json_object_object_get_ex(r.obj, "command", &cmd) && json_object_is_type(cmd, json_type_string))
		r.command = json_object_get_string(cmd);
	return r;
}

/* Runs one line and checks its reply and what the fake VM went through. */
static void run_line(struct control *c, struct fake_vm *f, const char *line, size_t len)
{
	struct request req = judge(line, len);
	struct fake_vm before = *f;
	f->describes = f->pauses = f->resumes = f->presses = f->saves = 0;
	bool shutdown_waiting = c->shutdown_fd >= 0;
	int64_t deadline_before = c->shutdown_deadline;

	char *reply = control_execute(c, &fake_ops, f, CLIENT_FD, line, len);

	const char *cmd = req.command;
	bool calls = f->describes || f->pauses || f->resumes || f->presses || f->saves;
	if (!reply) {
		/* Only an accepted shutdown goes unanswered. */
		CHECK(cmd && !strcmp(cmd, "shutdown") && !shutdown_waiting);
		CHECK(c->shutdown_fd == CLIENT_FD && f->presses == 1 && !f->paused);
		CHECK(!f->pauses && !f->saves && !f->describes);
		int64_t wait = c->shutdown_deadline - f->last_clock;
		CHECK(wait >= 0 && wait <= 86400 * 1000 && wait % 1000 == 0);
		json_object *t;
		if (json_object_object_get_ex(req.obj, "timeout", &t))
			CHECK(wait == json_object_get_int64(t) * 1000);
		else
			CHECK(wait == 60 * 1000);
		json_object_put(req.obj);
		return;
	}
	json_object *o = parse_reply(reply);
	free(reply);
	/* Only an accepted shutdown sets a deadline or names who waits. */
	CHECK(c->shutdown_deadline == deadline_before);
	CHECK((c->shutdown_fd >= 0) == shutdown_waiting);
	CHECK(!f->presses);
	if (!cmd) {
		CHECK(reply_error_is(o, len >= CONTROL_LINE_MAX ? "request longer than 8191 bytes"
				    : !req.valid_json ? "the request is not valid JSON"
				    : "expected an object with a \"command\" string"));
		CHECK(!calls && f->paused == before.paused);
	} else if (!strcmp(cmd, "status")) {
		CHECK(reply_state_is(o, f->paused) && f->describes == 1);
		CHECK(!f->pauses && !f->resumes && !f->saves && f->paused == before.paused);
		json_object *disks, *v;
		CHECK(json_object_object_get_ex(o, "disks", &disks) &&
		      json_object_array_length(disks) == 2);
		for (size_t i = 0; i < 2; i++)
			CHECK(!strcmp(json_object_get_string(json_object_array_get_idx(disks, i)),
				      fake_disks[i]));
		CHECK(json_object_object_get_ex(o, "memory_bytes", &v) &&
		      json_object_get_int64(v) == (int64_t)(3ULL << 30));
	} else if (!strcmp(cmd, "pause")) {
		CHECK(f->pauses == 1 && !f->resumes && !f->saves);
		if (!before.paused && f->pause_fails)
			CHECK(reply_error_is(o, "the VM did not pause within 10 s (a vCPU is stuck in a device)"));
		else
			CHECK(reply_state_is(o, true) && f->paused);
	} else if (!strcmp(cmd, "resume")) {
		CHECK(f->resumes == 1 && !f->pauses && !f->saves);
		CHECK(reply_state_is(o, false) && !f->paused);
	} else if (!strcmp(cmd, "shutdown")) {
		/* Answered at once only when refused, and then untouched. */
		CHECK(!reply_ok(o) && !calls && f->paused == before.paused);
		json_object *t;
		bool bad_timeout = json_object_object_get_ex(req.obj, "timeout", &t) &&
				   (!json_object_is_type(t, json_type_int) ||
				    json_object_get_int64(t) < 0 || json_object_get_int64(t) > 86400);
		if (bad_timeout)
			CHECK(reply_error_is(o, "\"timeout\" must be whole seconds from 0 to 86400"));
		else
			CHECK(shutdown_waiting && reply_error_is(o, "a shutdown is already in progress"));
	} else if (!strcmp(cmd, "snapshot")) {
		/* Whatever happens, the VM ends as paused or running as it was. */
		CHECK(f->paused == before.paused);
		json_object *d;
		const char *dir = json_object_object_get_ex(req.obj, "dir", &d) &&
					  json_object_is_type(d, json_type_string)
				  ? json_object_get_string(d) : NULL;
		if (!dir) {
			CHECK(reply_error_is(o, "\"dir\" (a string) is required") && !calls);
		} else if (!*dir || strlen(dir) != (size_t)json_object_get_string_len(d)) {
			CHECK(reply_error_is(o, "\"dir\" must be a non-empty path without NUL characters") &&
			      !calls);
		} else if (!before.paused && f->pause_fails) {
			CHECK(reply_error_is(o, "the VM did not pause within 10 s (a vCPU is stuck in a "
					     "device); no snapshot taken"));
			CHECK(!f->saves);
		} else if (f->save_fails) {
			CHECK(f->saves == 1 && reply_error_starts(o, ""));
		} else {
			CHECK(f->saves == 1 && reply_ok(o));
			json_object *v;
			CHECK(json_object_object_get_ex(o, "seconds", &v) &&
			      json_object_get_double(v) == CLOCK_STEP / 1000.0);
			CHECK(json_object_object_get_ex(o, "bytes", &v) && json_object_get_int64(v) == 4096);
			CHECK(reply_str(o, "dir") && utf8_valid((const unsigned char *)reply_str(o, "dir"),
								strlen(reply_str(o, "dir"))));
		}
	} else {
		CHECK(reply_error_starts(o, "unknown command \"") && !calls);
		CHECK(f->paused == before.paused);
	}
	json_object_put(o);
	json_object_put(req.obj);
}

/* One kind of fake VM meeting the input's lines in order. */
static void run_pass(const uint8_t *data, size_t size, bool start_paused, bool pause_fails,
		     bool save_fails, bool whole)
{
	static struct control c;
	control_init(&c);
	struct fake_vm f = { .pause_fails = pause_fails, .save_fails = save_fails,
			     .paused = start_paused, .clock = 1000 };
	const char *p = (const char *)data, *end = p + size;
	for (int n = 0; n < MAX_LINES && p <= end; n++) {
		const char *nl = whole ? NULL : memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		run_line(&c, &f, p, len);
		if (!nl)
			break;
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_verbosity = -1;
	run_pass(data, size, false, false, false, false); /* a VM that does as asked */
	run_pass(data, size, false, true, false, false);  /* vCPUs that do not stop */
	run_pass(data, size, true, false, true, false);   /* paused, saves fail */
	run_pass(data, size, false, false, false, true);  /* all of it as one line */
	return 0;
}
