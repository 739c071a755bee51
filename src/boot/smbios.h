/* SMBIOS 3.0 tables (DMTF DSP0134): the machine's identity as firmware
 * gives it. Linux finds the 64-bit entry point by scanning 0xF0000-0xFFFFF
 * and shows the tables in /sys/class/dmi/id (product_uuid, product_serial,
 * sys_vendor, ...), where systemd, cloud-init (NoCloud through the serial:
 * "ds=nocloud;h=HOST;i=ID") and dmidecode read them. */
#ifndef NESTVM_BOOT_SMBIOS_H
#define NESTVM_BOOT_SMBIOS_H

#include <stdint.h>

#include "mem/guest_mem.h"

#define SMBIOS_MAX_STRING 256

struct smbios_identity {
	uint8_t uuid[16];                   /* RFC 9562 byte order */
	char serial[SMBIOS_MAX_STRING];     /* system and chassis serial; "" for none */
};

/* Writes the entry point and the tables (types 0, 1, 2, 3, 32, 127) below
 * 1 MiB. Returns 0, or -1 if they do not fit (cannot happen for strings of
 * the sizes allowed). */
int smbios_write_tables(struct guest_mem *mem, const struct smbios_identity *id);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" to bytes; -1 if malformed. */
int smbios_parse_uuid(const char *text, uint8_t uuid[16]);
void smbios_format_uuid(const uint8_t uuid[16], char out[37]);
/* A random (version 4) UUID. */
void smbios_random_uuid(uint8_t uuid[16]);

#endif
