/* Snapshots: everything needed to resume a paused VM in a new process.
 *
 * A snapshot is a directory:
 *   manifest.json  format name and version, the machine's configuration,
 *                  each disk's path, size and content fingerprint, and a
 *                  checksum of each other file
 *   state.bin      tagged binary records: per vCPU the registers, special
 *                  registers, XSAVE area, XCRs, MSRs, local APIC, pending
 *                  events, MP state, debug registers and KVM's nested state;
 *                  the irqchips, PIT and kvmclock; every device's state
 *   memory.bin     guest RAM as a sparse file: pages never touched or all
 *                  zeros are holes
 *   manifest.sig   the user's signature of manifest.json (snapshot_trust.h)
 * The format is versioned; every file is checksummed (FNV-1a, 64-bit). */
#ifndef NESTVM_VMM_SNAPSHOT_H
#define NESTVM_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

struct machine;
struct machine_config;

#define SNAPSHOT_VERSION 2

/* Writes a snapshot of the paused machine into dir: absent, empty, or an
 * earlier snapshot. The new one is written and fsynced beside it first and
 * only then swapped into place, so a failed or interrupted save leaves the
 * earlier snapshot whole. On failure fills why with one line. */
int snapshot_save(struct machine *m, const char *dir, uint64_t *bytes, char *why, size_t whylen);

/* Reads dir/manifest.json into config (disks checked against their
 * fingerprints unless force). A manifest that names disks or NICs must be
 * signed by this user (vmm/snapshot_trust.h) unless trust. Prints one-line
 * errors. */
int snapshot_read_config(const char *dir, bool force, bool trust, struct machine_config *config);

/* Loads memory, vCPU, irqchip and device state into a machine created
 * from snapshot_read_config()'s configuration. */
int snapshot_restore(struct machine *m, const char *dir);

/* Content fingerprint of a disk image (size and allocated data). */
int snapshot_disk_fingerprint(const char *path, uint64_t *size, uint64_t *fingerprint);

/* The images below a disk (its backing chain, nearest first): hashing a
 * template of many GiB at every snapshot would cost seconds, so each is
 * known by its absolute path, inode, size and modification time (a copy
 * put in its place keeping the time is another inode); the writable layer
 * on top has the content fingerprint. Returns how many (at most max), or
 * -1 if one cannot be examined. */
struct disk;
struct snapshot_disk_layer {
	char path[PATH_MAX];
	uint64_t size, inode;
	int64_t mtime_ns;
};
int snapshot_disk_chain(const struct disk *d, struct snapshot_disk_layer *out, int max);

#endif
