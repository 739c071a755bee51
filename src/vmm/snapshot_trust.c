#define _GNU_SOURCE
#include "vmm/snapshot_trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *snapshot_key_path(void)
{
	static char path[PATH_MAX];
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		snprintf(path, sizeof(path), "%s/nestvm/snapshot.key", xdg);
	else
		snprintf(path, sizeof(path), "%s/.config/nestvm/snapshot.key", home && *home ? home : ".");
	return path;
}

static int read_key(uint8_t key[crypto_auth_KEYBYTES])
{
	int fd = open(snapshot_key_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, key, crypto_auth_KEYBYTES);
	close(fd);
	return n == crypto_auth_KEYBYTES ? 0 : -1;
}

/* mkdir -p for the key's directory, private to the user. */
static int make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = 0;
		int r = mkdir(path, 0700);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

static int load_or_make_key(uint8_t key[crypto_auth_KEYBYTES], char *why, size_t whylen)
{
	if (sodium_init() < 0) {
		snprintf(why, whylen, "libsodium does not initialise");
		return -1;
	}
	if (read_key(key) == 0)
		return 0;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", snapshot_key_path());
	crypto_auth_keygen(key);
	/* O_EXCL: two VMs making the key at once keep the first one. */
	int fd = make_parents(path) < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST && read_key(key) == 0)
			return 0;
		snprintf(why, whylen, "cannot create the snapshot key %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = write(fd, key, crypto_auth_KEYBYTES);
	if (n != crypto_auth_KEYBYTES || fsync(fd) < 0) {
		snprintf(why, whylen, "cannot write the snapshot key %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

int snapshot_sign(const char *text, size_t len, char *sig, char *why, size_t whylen)
{
	uint8_t key[crypto_auth_KEYBYTES], mac[crypto_auth_BYTES];
	if (load_or_make_key(key, why, whylen) < 0)
		return -1;
	crypto_auth(mac, (const uint8_t *)text, len, key);
	sodium_memzero(key, sizeof(key));
	sodium_bin2hex(sig, 2 * crypto_auth_BYTES + 1, mac, sizeof(mac));
	return 0;
}

bool snapshot_signed_by_user(const char *text, size_t len, const char *sig)
{
	uint8_t key[crypto_auth_KEYBYTES], mac[crypto_auth_BYTES];
	size_t got = 0;
	if (sodium_init() < 0 || !sig ||
	    sodium_hex2bin(mac, sizeof(mac), sig, strlen(sig), " \n", &got, NULL) < 0 ||
	    got != sizeof(mac) || read_key(key) < 0)
		return false;
	bool ok = crypto_auth_verify(mac, (const uint8_t *)text, len, key) == 0;
	sodium_memzero(key, sizeof(key));
	return ok;
}
