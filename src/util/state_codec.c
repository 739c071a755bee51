#include "util/state_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct state_out *o, const void *data, size_t len)
{
	if (o->failed)
		return;
	if (len > o->cap - o->len) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap - o->len < len)
			cap *= 2;
		uint8_t *grown = realloc(o->buf, cap);
		if (!grown) {
			o->failed = true;
			return;
		}
		o->buf = grown;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

/* Little-endian whatever the host: the bytes are spelled out. */
static void put_le(struct state_out *o, uint64_t v, unsigned bytes)
{
	uint8_t b[8];
	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(o, b, bytes);
}

void state_put_u8(struct state_out *o, uint8_t v) { put_le(o, v, 1); }
void state_put_u16(struct state_out *o, uint16_t v) { put_le(o, v, 2); }
void state_put_u32(struct state_out *o, uint32_t v) { put_le(o, v, 4); }
void state_put_u64(struct state_out *o, uint64_t v) { put_le(o, v, 8); }
void state_put_bool(struct state_out *o, bool v) { put_le(o, v ? 1 : 0, 1); }
void state_put_bytes(struct state_out *o, const void *data, size_t len) { put(o, data, len); }

void state_out_free(struct state_out *o)
{
	free(o->buf);
	*o = (struct state_out){ 0 };
}

void state_in_init(struct state_in *in, const void *data, size_t len)
{
	in->data = data;
	in->len = len;
	in->off = 0;
	in->why[0] = 0;
}

void state_in_fail(struct state_in *in, const char *fmt, ...)
{
	if (in->why[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->why, sizeof(in->why), fmt, ap);
	va_end(ap);
	if (!in->why[0])
		snprintf(in->why, sizeof(in->why), "invalid");
}

bool state_in_failed(const struct state_in *in)
{
	return in->why[0] != 0;
}

static bool take(struct state_in *in, void *dst, size_t len)
{
	if (state_in_failed(in) || len > in->len - in->off) {
		state_in_fail(in, "truncated");
		memset(dst, 0, len);
		return false;
	}
	memcpy(dst, in->data + in->off, len);
	in->off += len;
	return true;
}

static uint64_t get_le(struct state_in *in, unsigned bytes)
{
	uint8_t b[8];
	if (!take(in, b, bytes))
		return 0;
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint8_t state_get_u8(struct state_in *in) { return (uint8_t)get_le(in, 1); }
uint16_t state_get_u16(struct state_in *in) { return (uint16_t)get_le(in, 2); }
uint32_t state_get_u32(struct state_in *in) { return (uint32_t)get_le(in, 4); }
uint64_t state_get_u64(struct state_in *in) { return get_le(in, 8); }

bool state_get_bool(struct state_in *in)
{
	uint8_t v = state_get_u8(in);
	if (v > 1)
		state_in_fail(in, "a flag holds %u (not 0 or 1)", v);
	return v == 1;
}

void state_get_bytes(struct state_in *in, void *dst, size_t len)
{
	take(in, dst, len);
}

int state_in_finish(struct state_in *in)
{
	if (!state_in_failed(in) && in->off != in->len)
		state_in_fail(in, "%zu bytes too many", in->len - in->off);
	return state_in_failed(in) ? -1 : 0;
}
