#include "vmm/snapshot_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

struct record_header {
	uint32_t tag, index;
	uint64_t len;
};

void state_writer_fail(struct state_writer *w, const char *fmt, ...)
{
	if (w->failed)
		return;
	w->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, w->whylen, fmt, ap);
	va_end(ap);
}

static void write_bytes(struct state_writer *w, const void *data, size_t len)
{
	if (w->failed || !len)
		return;
	if (fwrite(data, len, 1, w->f) != 1) {
		state_writer_fail(w, "writing state.bin: %s", strerror(errno));
		return;
	}
	w->hash = fnv1a64_update(w->hash, data, len);
	w->bytes += len;
}

void state_write_header(struct state_writer *w, uint32_t version)
{
	uint8_t header[STATE_HEADER_BYTES] = STATE_MAGIC;
	memcpy(header + 8, &version, 4);
	write_bytes(w, header, sizeof(header));
}

void state_put_record(struct state_writer *w, uint32_t tag, uint32_t index, const void *data,
		      uint64_t len)
{
	struct record_header h = { tag, index, len };
	write_bytes(w, &h, sizeof(h));
	write_bytes(w, data, len);
}

int state_parse(const uint8_t *data, size_t size, uint32_t version, struct state_records *out,
		char *why, size_t whylen)
{
	*out = (struct state_records){ 0 };
	uint32_t file_version = 0;
	if (size >= STATE_HEADER_BYTES)
		memcpy(&file_version, data + 8, 4);
	if (size < STATE_HEADER_BYTES || memcmp(data, STATE_MAGIC, 8)) {
		snprintf(why, whylen, "state.bin is not nestvm state");
		return -1;
	}
	if (file_version != version) {
		snprintf(why, whylen, "state.bin has version %u; this nestvm reads version %u",
			 file_version, version);
		return -1;
	}
	for (size_t off = STATE_HEADER_BYTES; off < size;) {
		struct record_header h;
		if (size - off < sizeof(h) || (memcpy(&h, data + off, sizeof(h)), h.len > size - off - sizeof(h))) {
			snprintf(why, whylen, "state.bin is truncated");
			state_records_free(out);
			return -1;
		}
		off += sizeof(h);
		/* Bounded: lookups scan the index, and a file of millions of
		 * empty records would make restore crawl. */
		if (out->n == STATE_MAX_RECORDS) {
			snprintf(why, whylen, "state.bin has more than %d records", STATE_MAX_RECORDS);
			state_records_free(out);
			return -1;
		}
		struct state_record *grown = realloc(out->recs, (out->n + 1) * sizeof(*grown));
		if (!grown) {
			snprintf(why, whylen, "out of memory");
			state_records_free(out);
			return -1;
		}
		out->recs = grown;
		out->recs[out->n++] = (struct state_record){ h.tag, h.index, h.len, data + off };
		off += h.len;
	}
	return 0;
}

const struct state_record *state_find(const struct state_records *r, uint32_t tag, uint32_t index)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->recs[i].tag == tag && r->recs[i].index == index)
			return &r->recs[i];
	return NULL;
}

void state_records_free(struct state_records *r)
{
	free(r->recs);
	*r = (struct state_records){ 0 };
}

void state_device_begin(struct state_out *out, const char *kind)
{
	size_t len = strlen(kind);
	state_put_u8(out, (uint8_t)len);
	state_put_bytes(out, kind, len);
}

int state_device_fields(const struct state_record *r, const char *kind, struct state_in *in)
{
	size_t len = strlen(kind);
	if (r->len < 1 + len || r->data[0] != len || memcmp(r->data + 1, kind, len))
		return -1;
	state_in_init(in, r->data + 1 + len, r->len - 1 - len);
	return 0;
}
