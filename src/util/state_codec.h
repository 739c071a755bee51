/* A device's saved state, field by field: each field is written with its
 * own width in little-endian order and read back through a bounds-checked
 * cursor, never as a struct's bytes. The saved format therefore does not
 * change when a field moves in a struct, and a file someone crafted can
 * give a field only the values its type can hold (a bool is 0 or 1); a
 * device's load function then checks the ranges its own code relies on. */
#ifndef NESTVM_UTIL_STATE_CODEC_H
#define NESTVM_UTIL_STATE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_out {
	uint8_t *buf;
	size_t len, cap;
	bool failed; /* out of memory: the whole save fails */
};

void state_put_u8(struct state_out *o, uint8_t v);
void state_put_u16(struct state_out *o, uint16_t v);
void state_put_u32(struct state_out *o, uint32_t v);
void state_put_u64(struct state_out *o, uint64_t v);
void state_put_bool(struct state_out *o, bool v);
void state_put_bytes(struct state_out *o, const void *data, size_t len);
void state_out_free(struct state_out *o);

struct state_in {
	const uint8_t *data;
	size_t len, off;
	/* The first problem, for the one-line error: "truncated", or what
	 * state_in_fail() was told. */
	char why[160];
};

void state_in_init(struct state_in *in, const void *data, size_t len);
/* Each getter returns 0 (false) once the input has failed. */
uint8_t state_get_u8(struct state_in *in);
uint16_t state_get_u16(struct state_in *in);
uint32_t state_get_u32(struct state_in *in);
uint64_t state_get_u64(struct state_in *in);
bool state_get_bool(struct state_in *in);  /* fails on anything but 0 or 1 */
void state_get_bytes(struct state_in *in, void *dst, size_t len);
/* Marks the input bad with a reason (the first reason is kept). */
void state_in_fail(struct state_in *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool state_in_failed(const struct state_in *in);
/* 0 if every byte was read and nothing failed; otherwise -1 (with a
 * reason for trailing bytes). */
int state_in_finish(struct state_in *in);

#endif
