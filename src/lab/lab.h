/* A lab's life (nestvm lab): up, status, down, from its manifest
 * (lab/manifest.h) and its state directory.
 *
 * Every network is a `nestvm switch` process and every node a `nestvm run`
 * process, started detached (their own session, output into the state
 * directory), so a lab outlives the command that brought it up and no
 * root is needed. The state directory, one per lab name, holds state.json
 * (what runs, with its process IDs and identities), the lab's seed, each
 * node's console log and its linked clone of its template's disk, and the
 * sockets. Identity derives from the seed and the node's name: a version 5
 * UUID, locally administered MACs, the hostname (the node's name) and an
 * SMBIOS serial for cloud-init's NoCloud; so it is stable across up and
 * down, and differs between labs. */
#ifndef NESTVM_LAB_LAB_H
#define NESTVM_LAB_LAB_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "lab/manifest.h"

struct lab_options {
	const char *state_root; /* NULL: $XDG_STATE_HOME/nestvm/labs or ~/.local/state/... */
	int timeout_s;          /* up: per node, to be healthy; down: the power button's grace */
	bool json;              /* status */
};

/* Starts what is not running, in dependency order, and waits for each node
 * to be healthy; 0 when all are. */
int lab_up(const char *file, const struct lab_options *opt);
/* Presses every node's power button (all at once), stops what has not
 * powered off after the timeout, then the networks. */
int lab_down(const char *file, const struct lab_options *opt);
/* Throws away the disk of every node (or of the one named): stopped hard,
 * a fresh linked clone of its template, started again if it ran; the
 * identity stays. */
int lab_reset(const char *file, const char *only, const struct lab_options *opt);
/* Prints every node's and network's state (JSON with opt->json). */
int lab_status(const char *file, const struct lab_options *opt);

/* The console socket of a running node (for nestvm lab console). */
int lab_console_socket(const char *file, const char *node, const struct lab_options *opt,
		       char path[PATH_MAX]);
/* nestvm lab snapshot save|restore|delete NAME, or list (snap NULL): save
 * pauses every node, then saves each (memory, devices, and a copy of its
 * disk) and lets them all go on; restore stops the lab's nodes hard and
 * brings every saved node back running from where it was saved. */
int lab_snapshot(const char *file, const char *action, const char *snap,
		 const struct lab_options *opt);

/* Identity (exposed for tests): a version 5 UUID and a MAC from the lab's
 * seed and a node's name (and NIC index). */
void lab_node_uuid(const char *seed, const char *node, uint8_t uuid[16]);
void lab_node_mac(const char *seed, const char *node, int nic, uint8_t mac[6]);

#endif
