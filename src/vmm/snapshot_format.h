/* state.bin, the snapshot's binary state: a 16-byte header (magic and
 * format version) and then tagged records, each a header (tag, index,
 * length) and its bytes. Writing goes through a checksumming writer;
 * reading is one pure function from the file's bytes to an index of
 * records, with every length checked against what is left, so that it can
 * be tested and fuzzed without a VM. */
#ifndef NESTVM_VMM_SNAPSHOT_FORMAT_H
#define NESTVM_VMM_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/state_codec.h"

#define STATE_MAGIC "NVMSNAP1"
#define STATE_HEADER_BYTES 16
/* More than a machine of 1024 vCPUs and every device writes. */
#define STATE_MAX_RECORDS 16384

enum state_tag {
	/* per vCPU (index: the vCPU), KVM's own structures */
	T_REGS = 1, T_SREGS, T_XSAVE, T_XCRS, T_MSRS, T_LAPIC, T_EVENTS, T_MPSTATE,
	T_DEBUGREGS, T_NESTED,
	/* the VM's in-kernel devices and clock */
	T_IRQCHIP = 20, T_PIT2, T_CLOCK,
	/* index: the position in the machine's device table; the bytes: the
	 * device's kind (a length byte, then the name) and its own fields */
	T_DEVICE = 40,
};

struct state_writer {
	FILE *f;
	uint64_t hash, bytes;
	bool failed;
	char *why;
	size_t whylen;
};

/* Starts the file: header with version. */
void state_write_header(struct state_writer *w, uint32_t version);
/* Appends one record (nothing once the writer has failed). */
void state_put_record(struct state_writer *w, uint32_t tag, uint32_t index, const void *data,
		      uint64_t len);
/* Marks the save failed with its first reason. */
void state_writer_fail(struct state_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct state_record {
	uint32_t tag, index;
	uint64_t len;
	const uint8_t *data; /* inside the parsed buffer, at any alignment */
};

struct state_records {
	struct state_record *recs;
	size_t n;
};

/* Checks the header (magic, version) and indexes every record of
 * data[0..size). On failure fills why with the reason and returns -1.
 * The records point into data. */
int state_parse(const uint8_t *data, size_t size, uint32_t version, struct state_records *out,
		char *why, size_t whylen);
const struct state_record *state_find(const struct state_records *r, uint32_t tag, uint32_t index);

/* A T_DEVICE record's bytes: the device's kind (a length byte, then the
 * name), then its own fields. state_device_begin() starts out with the
 * kind, for the device's save to append to; state_device_fields() sets
 * in to the fields of a record, or returns -1 if it is not of this kind. */
void state_device_begin(struct state_out *out, const char *kind);
int state_device_fields(const struct state_record *r, const char *kind, struct state_in *in);
void state_records_free(struct state_records *r);

#endif
