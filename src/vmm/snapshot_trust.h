/* Who made a snapshot. A snapshot's manifest names the disks and taps that
 * restore opens for the guest, so a snapshot from someone else could hand
 * the guest any file the user can read or write. nestvm therefore signs
 * every manifest it writes with a key of the user's own (HMAC-SHA-512-256,
 * libsodium's crypto_auth), kept in ${XDG_CONFIG_HOME:-~/.config}/nestvm/
 * snapshot.key (0600, made on first use). A manifest whose signature does
 * not check out restores only if it names no disk and no NIC, or with
 * --trust. The signature covers manifest.json only: state.bin and
 * memory.bin are guest state, which restore validates as it would a
 * guest's own writes. */
#ifndef NESTVM_VMM_SNAPSHOT_TRUST_H
#define NESTVM_VMM_SNAPSHOT_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#define SNAPSHOT_SIGNATURE_FILE "manifest.sig"

/* The signature of text as hex (sig: 65 bytes), with the user's key,
 * made if missing. Fills why and returns -1 if there is no key to use. */
int snapshot_sign(const char *text, size_t len, char *sig, char *why, size_t whylen);

/* true if sig (hex, as read from the file) signs text with the user's key. */
bool snapshot_signed_by_user(const char *text, size_t len, const char *sig);

/* Where the key is (for messages). */
const char *snapshot_key_path(void);

#endif
