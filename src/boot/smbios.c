#define _GNU_SOURCE
#include "boot/smbios.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "mem/pc_layout.h"

#ifndef NESTVM_VERSION
#define NESTVM_VERSION "dev"
#endif

#define ENTRY_BYTES 0x18
#define TABLES_GPA (PC_SMBIOS_GPA + 0x20)
#define TABLES_MAX 0x1000

/* Builds the structure table: each structure is its formatted part, then
 * its strings (each NUL-terminated), then one more NUL (two if it has no
 * strings). */
struct table {
	uint8_t *buf;
	size_t len, cap;
	uint16_t handle;
	bool overflow;
};

static void put(struct table *t, const void *data, size_t len)
{
	if (t->len + len > t->cap) {
		t->overflow = true;
		return;
	}
	memcpy(t->buf + t->len, data, len);
	t->len += len;
}

/* Starts a structure of `len` formatted bytes; returns where its fields
 * start (the header filled in), or NULL once out of room. */
static uint8_t *begin(struct table *t, uint8_t type, uint8_t len)
{
	if (t->len + len > t->cap) {
		t->overflow = true;
		return NULL;
	}
	uint8_t *s = t->buf + t->len;
	memset(s, 0, len);
	s[0] = type;
	s[1] = len;
	s[2] = (uint8_t)t->handle;
	s[3] = (uint8_t)(t->handle >> 8);
	t->handle++;
	t->len += len;
	return s;
}

/* The strings, in order (string 1 first); NULL or "" ends them early, so
 * a structure's string numbers must skip empty ones (see str_index). */
static void end(struct table *t, const char *const *strings, int n)
{
	int any = 0;
	for (int i = 0; i < n; i++)
		if (strings[i] && strings[i][0]) {
			put(t, strings[i], strlen(strings[i]) + 1);
			any = 1;
		}
	put(t, "\0", any ? 1 : 2);
}

/* String number of strings[i] (1-based among the non-empty ones); 0: none. */
static uint8_t str_index(const char *const *strings, int i)
{
	if (!strings[i] || !strings[i][0])
		return 0;
	uint8_t n = 0;
	for (int k = 0; k <= i; k++)
		if (strings[k] && strings[k][0])
			n++;
	return n;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

int smbios_write_tables(struct guest_mem *mem, const struct smbios_identity *id)
{
	uint8_t *entry = guest_mem_ptr(mem, PC_SMBIOS_GPA, ENTRY_BYTES);
	uint8_t *buf = guest_mem_ptr(mem, TABLES_GPA, TABLES_MAX);
	if (!entry || !buf)
		return -1;
	struct table t = { .buf = buf, .cap = TABLES_MAX };
	const char *vendor = "nestvm", *product = "nestvm VM";

	/* Type 0, BIOS information (2.4 layout). There is no BIOS: the
	 * characteristics say so, and the extension bytes mark a virtual
	 * machine (byte 2, bit 4), which systemd-detect-virt and others read. */
	{
		const char *s[] = { vendor, NESTVM_VERSION, "12/01/2026" };
		uint8_t *p = begin(&t, 0, 0x18);
		if (p) {
			p[4] = str_index(s, 0);
			p[5] = str_index(s, 1);
			put16(p + 6, 0xe800); /* starting segment: the usual 64 KiB below 1 MiB */
			p[8] = str_index(s, 2);
			p[9] = 0;             /* ROM size: 64 KiB */
			p[10] = 1 << 3;       /* characteristics not supported */
			p[0x13] = 1 << 4;     /* a virtual machine */
			p[0x14] = p[0x15] = 0;
			p[0x16] = p[0x17] = 0xff;
		}
		end(&t, s, 3);
	}
	/* Type 1, system information (2.4 layout): the UUID and serial. The
	 * UUID's first three fields are little-endian here (7.2.1). */
	{
		const char *s[] = { vendor, product, NESTVM_VERSION, id->serial, "nestvm" };
		uint8_t *p = begin(&t, 1, 0x1b);
		if (p) {
			p[4] = str_index(s, 0);
			p[5] = str_index(s, 1);
			p[6] = str_index(s, 2);
			p[7] = str_index(s, 3);
			const uint8_t *u = id->uuid;
			uint8_t le[16] = { u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6] };
			memcpy(le + 8, u + 8, 8);
			memcpy(p + 8, le, 16);
			p[0x18] = 6;          /* woken by the power switch */
			p[0x19] = 0;          /* no SKU */
			p[0x1a] = str_index(s, 4);
		}
		end(&t, s, 5);
	}
	/* Type 2, baseboard. */
	{
		const char *s[] = { vendor, product };
		uint8_t *p = begin(&t, 2, 0x0f);
		if (p) {
			p[4] = str_index(s, 0);
			p[5] = str_index(s, 1);
			p[9] = 1;             /* a hosting board */
			put16(p + 0x0b, 3);   /* in the chassis, handle 3 */
			p[0x0d] = 0x0a;       /* motherboard */
		}
		end(&t, s, 2);
	}
	/* Type 3, chassis (2.7 layout, no contained elements). */
	{
		const char *s[] = { vendor, id->serial };
		uint8_t *p = begin(&t, 3, 0x16);
		if (p) {
			p[4] = str_index(s, 0);
			p[5] = 1;             /* other */
			p[7] = str_index(s, 1);
			p[9] = p[0xa] = p[0xb] = 3; /* boot-up, power, thermal: safe */
			p[0xc] = 2;           /* security: unknown */
		}
		end(&t, s, 2);
	}
	/* Type 32, system boot information: no errors. */
	{
		begin(&t, 32, 0x0b);
		end(&t, NULL, 0);
	}
	/* Type 127, end of table. */
	{
		begin(&t, 127, 4);
		end(&t, NULL, 0);
	}
	if (t.overflow)
		return -1;

	memset(entry, 0, ENTRY_BYTES);
	memcpy(entry, "_SM3_", 5);
	entry[6] = ENTRY_BYTES;
	entry[7] = 3;  /* SMBIOS 3.0 */
	entry[8] = 0;
	entry[9] = 0;  /* docrev */
	entry[10] = 1; /* entry point revision: 3.0 */
	uint32_t max = (uint32_t)t.len;
	memcpy(entry + 12, &max, 4);
	uint64_t addr = TABLES_GPA;
	memcpy(entry + 16, &addr, 8);
	entry[5] = checksum(entry, ENTRY_BYTES);
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int smbios_parse_uuid(const char *text, uint8_t uuid[16])
{
	if (strlen(text) != 36)
		return -1;
	for (int i = 0, b = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (text[i++] != '-')
				return -1;
			continue;
		}
		int hi = hex_digit(text[i]), lo = hex_digit(text[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		uuid[b++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return 0;
}

void smbios_format_uuid(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

void smbios_random_uuid(uint8_t uuid[16])
{
	if (getrandom(uuid, 16, 0) != 16) {
		/* getrandom does not fail for 16 bytes once the pool is ready */
		memset(uuid, 0, 16);
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC variant */
}
