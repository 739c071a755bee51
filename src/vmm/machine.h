/* A virtual machine: KVM VM, guest memory, devices and vCPU threads, from
 * creation to the exit status nestvm returns. */
#ifndef NESTVM_VMM_MACHINE_H
#define NESTVM_VMM_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"
#include "boot/smbios.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/device.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial8250.h"
#include "devices/testdev.h"
#include "kvm/cpuid.h"
#include "kvm/kvm.h"
#include "nested/nested.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "mem/guest_mem.h"

/* Exit status when nestvm ends a VM because of an error (triple fault,
 * unhandled exit, KVM failure). */
#define MACHINE_EXIT_ERROR 1

#define MACHINE_MAX_DISKS 16
#define MACHINE_MAX_NICS  8

struct machine_config {
	uint64_t ram_size;
	int ncpus;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	int cores_per_socket;      /* 0: all vCPUs in one socket */
	enum cpu_model cpu_model;
	int console_fd;    /* COM1 output; -1 discards it */
	int console_in_fd; /* COM1 input; -1 for none */
	struct console_socket *console_socket; /* --console-socket, or NULL (the caller's) */
	bool test_device;  /* attach devices/testdev */
	bool nested;       /* expose AMD-V/VT-x; implies static memory */
	int ndisks, nnics;
	struct virtio_blk_options disks[MACHINE_MAX_DISKS];
	struct virtio_net_options nics[MACHINE_MAX_NICS];
	bool rng;          /* attach virtio-rng */
	struct smbios_identity identity; /* SMBIOS UUID and serial (Linux guests) */
	const char *api_socket;  /* control API socket, or NULL */
	const char *restore_dir; /* resume this snapshot instead of booting */
};

struct machine;

struct vcpu {
	struct machine *machine;
	struct kvm_cpu cpu;
	pthread_t thread;
	bool thread_started;
	atomic_bool exited;
};

struct machine {
	struct machine_config config;
	struct kvm_host host;
	struct kvm_guest kvm;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct serial8250 com1;
	struct acpi_pm pm;
	struct i8042 kbc;
	struct pci_bus pci;
	struct rtc rtc;
	struct testdev testdev;
	/* Every stateful device, in the order built: what starts, quiesces,
	 * saves, loads and destroys them (devices/device.h). The pointers
	 * below name some of the same devices for their configuration. */
	struct device_table devices;
	struct virtio_blk *disks[MACHINE_MAX_DISKS];
	struct virtio_net *nics[MACHINE_MAX_NICS];
	struct virtio_rng *rng;
	struct console console;
	struct control control;
	struct cpu_topology topo;
	struct nested_support nested;
	struct boot_entry boot;
	struct vcpu *vcpus;
	int stop_fd;            /* eventfd: written once the VM must stop */
	atomic_bool stopping;
	pthread_mutex_t lock;   /* guards exit_status and stopping's first writer */
	int exit_status;
	bool reboot_requested;  /* the guest asked for a reset, not a power-off */

	/* Pause: vCPU threads park between KVM_RUNs until resumed. */
	atomic_bool pause_requested;
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond; /* parked count changed, or resume/stop */
	int parked;
	bool paused;               /* every vCPU parked (main thread only) */
};

int machine_create(struct machine *m, const struct machine_config *config);
/* Runs until the guest or a signal ends the VM; returns nestvm's exit status. */
int machine_run(struct machine *m);
void machine_destroy(struct machine *m);

/* Ends the VM with the given status; the first request wins. Safe from any
 * thread. */
void machine_request_stop(struct machine *m, int status);
/* Ends the VM because the guest reset the machine. */
void machine_request_reboot(struct machine *m);

/* Stops every vCPU between instructions, with pending I/O completed, and
 * returns 0 once all are parked (so their state can be read); resume lets
 * them go on. A vCPU that does not stop within MACHINE_PAUSE_TIMEOUT_MS
 * makes it give up, let every vCPU go on and return -1. Main thread only. */
#define MACHINE_PAUSE_TIMEOUT_MS 10000
int machine_pause(struct machine *m);
void machine_resume(struct machine *m);

/* The vCPU thread body (vmm/vcpu.c). */
void *vcpu_thread(void *arg);

#endif
