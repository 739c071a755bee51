/* nestvm labhost: an emulated AMD-V host (QEMU TCG) running one command.
 *
 * It boots Debian's generic kernel under QEMU's TCG with `-cpu max` (which
 * offers SVM and NPT), loads kvm-amd with nested=1, shares the machine's
 * root filesystem read-only and one directory read-write over virtio-9p,
 * runs the command there as root, relays its stdout and stderr, and
 * returns its exit status. */
#ifndef NESTVM_LABHOST_LABHOST_H
#define NESTVM_LABHOST_LABHOST_H

#include <stdint.h>

/* Exit statuses of labhost itself (the command's own status otherwise). */
#define LABHOST_EXIT_FROZEN  123  /* the lab host froze (no heartbeat) */
#define LABHOST_EXIT_TIMEOUT 124  /* --timeout ran out */
#define LABHOST_EXIT_FAILED  125  /* the lab host could not run the command */

struct labhost_options {
	uint64_t memory;
	int cpus;
	const char *kernel_dir;  /* an unpacked Debian linux-image-*-amd64 package */
	const char *qemu;        /* NULL: qemu-system-x86_64 from PATH */
	const char *share;       /* writable directory; NULL: the working directory */
	unsigned timeout_s;      /* 0: none */
	unsigned freeze_s;       /* heartbeat silence that counts as a freeze; 0: off */
	unsigned keepalive_ms;   /* interval of the watchdog's keepalive byte; 0: none */
	const char *freeze_report; /* where to write a frozen lab host's state; NULL: nowhere */
	char **env;              /* NAME=VALUE strings for the command */
	int nenv;
	int verbose;             /* kernel log to stderr */
	const char *tcg_thread;  /* QEMU's TCG threading: "multi" or "single" */
};

/* Default for --kernel-dir: $NESTVM_LABHOST_KERNEL_DIR, else
 * .cache/kernels/generic beside the nestvm executable. */
const char *labhost_default_kernel_dir(void);

int labhost_run(const struct labhost_options *opts, char **command);

/* Builds the lab host's initramfs at path (labhost/initramfs.c). */
int labhost_build_initramfs(const char *path, const char *modules_dir,
			    const char *busybox);

#endif
