#define _GNU_SOURCE
#include "vmm/machine.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "boot/acpi.h"
#include "kvm/cpuid.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sandbox.h"
#include "vmm/snapshot.h"

/* Signal that kicks a vCPU thread out of KVM_RUN. Its handler does nothing:
 * the interrupted ioctl returning EINTR is the point. */
#define SIG_VCPU_KICK SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

static void testdev_exit(void *ctx, int status)
{
	machine_request_stop(ctx, status);
}

static void stop(struct machine *m, int status, bool reboot)
{
	pthread_mutex_lock(&m->lock);
	if (!atomic_load(&m->stopping)) {
		m->exit_status = status;
		m->reboot_requested = reboot;
		atomic_store(&m->stopping, true);
		pthread_mutex_lock(&m->pause_lock);
		pthread_cond_broadcast(&m->pause_cond); /* parked vCPUs must leave */
		pthread_mutex_unlock(&m->pause_lock);
		uint64_t one = 1;
		if (write(m->stop_fd, &one, sizeof(one)) < 0) {
			/* eventfd writes fail only on counter overflow: the main
			 * thread is already awake. */
		}
	}
	pthread_mutex_unlock(&m->lock);
}

void machine_request_stop(struct machine *m, int status)
{
	stop(m, status, false);
}

void machine_request_reboot(struct machine *m)
{
	stop(m, 0, true);
}

static void pm_event(void *ctx, enum acpi_pm_event ev)
{
	if (ev == ACPI_PM_POWEROFF)
		machine_request_stop(ctx, 0);
	else
		machine_request_reboot(ctx);
}

static void kbc_reset(void *ctx)
{
	machine_request_reboot(ctx);
}

static void set_irq(void *ctx, int irq, int level)
{
	struct machine *m = ctx;
	kvm_guest_irq_line(&m->kvm, (uint32_t)irq, level);
}

static int add_virtio(struct machine *m, struct virtio_dev *vd)
{
	return device_table_add(&m->devices, virtio_pci_device_ops(vd), vd, vd->name);
}

/* virtio devices, in PCI slot order: disks, NICs, then the RNG. Each goes
 * into the device table once attached; one that fails on the way is
 * released here. */
static int create_virtio_devices(struct machine *m)
{
	const struct machine_config *config = &m->config;
	for (int i = 0; i < config->ndisks; i++) {
		struct virtio_blk *blk = calloc(1, sizeof(*blk));
		if (!blk) {
			log_error("out of memory for a disk");
			return -1;
		}
		blk->disk = NULL;
		if (virtio_blk_open(blk, &config->disks[i]) < 0) {
			free(blk);
			return -1;
		}
		if (virtio_blk_attach(blk, &m->kvm, &m->mem, &m->pci) < 0 || add_virtio(m, &blk->vdev) < 0) {
			virtio_pci_destroy(&blk->vdev);
			virtio_blk_close(blk);
			free(blk);
			return -1;
		}
		m->disks[i] = blk;
	}
	for (int i = 0; i < config->nnics; i++) {
		struct virtio_net *net = calloc(1, sizeof(*net));
		if (!net) {
			log_error("out of memory for a NIC");
			return -1;
		}
		net->tap_fd = -1;
		if (virtio_net_open(net, &config->nics[i]) < 0) {
			free(net);
			return -1;
		}
		if (virtio_net_attach(net, &m->kvm, &m->mem, &m->pci) < 0 || add_virtio(m, &net->vdev) < 0) {
			virtio_pci_destroy(&net->vdev);
			virtio_net_close(net);
			free(net);
			return -1;
		}
		m->nics[i] = net;
	}
	if (config->rng) {
		struct virtio_rng *rng = calloc(1, sizeof(*rng));
		if (!rng) {
			log_error("out of memory for the RNG");
			return -1;
		}
		if (virtio_rng_attach(rng, &m->kvm, &m->mem, &m->pci) < 0 || add_virtio(m, &rng->vdev) < 0) {
			virtio_pci_destroy(&rng->vdev);
			free(rng);
			return -1;
		}
		m->rng = rng;
	}
	return 0;
}

static void set_sci(void *ctx, int level)
{
	set_irq(ctx, ACPI_SCI_IRQ, level);
}

/* The PC platform, then the virtio devices. The PCI bus comes first in the
 * device table: its configuration spaces are restored before the devices
 * behind them. */
static int create_devices(struct machine *m)
{
	bus_init(&m->pio, "port");
	bus_init(&m->mmio, "MMIO");
	pci_bus_init(&m->pci);
	serial8250_init(&m->com1, m->config.console_fd, SERIAL_COM1_IRQ, set_irq, m);
	if (m->config.console_socket)
		m->com1.mirror_fd = m->config.console_socket->mirror_fd;
	acpi_pm_init(&m->pm, ACPI_S5_SLP_TYP, pm_event, set_sci, m);
	rtc_init(&m->rtc);
	struct device_table *t = &m->devices;
	if (device_table_add(t, &pci_bus_device_ops, &m->pci, "PCI bus") < 0 ||
	    device_table_add(t, &serial8250_device_ops, &m->com1, "COM1") < 0 ||
	    device_table_add(t, &acpi_pm_device_ops, &m->pm, "ACPI PM") < 0 ||
	    device_table_add(t, &rtc_device_ops, &m->rtc, "RTC") < 0)
		return -1;
	if (pci_bus_attach(&m->pci, &m->pio, &m->mmio) < 0 ||
	    serial8250_attach(&m->com1, &m->pio, SERIAL_COM1_BASE) < 0 ||
	    acpi_pm_attach(&m->pm, &m->pio) < 0 || i8042_attach(&m->kbc, &m->pio, kbc_reset, m) < 0 ||
	    rtc_attach(&m->rtc, &m->pio) < 0)
		return -1;
	if (m->config.test_device) {
		testdev_init(&m->testdev, &m->mem, testdev_exit, m);
		if (device_table_add(t, &testdev_device_ops, &m->testdev, "test device") < 0 ||
		    testdev_attach(&m->testdev, &m->pio, &m->mmio) < 0)
			return -1;
	}
	return create_virtio_devices(m);
}

/* vCPUs from the CPUID table the model and nesting choice give. */
static int create_vcpus(struct machine *m, const struct kvm_cpuid2 *supported)
{
	const struct machine_config *config = &m->config;
	struct kvm_cpuid2 *cpuid = cpuid_build(supported, config->cpu_model, &m->topo,
					       kvm_host_backend());
	if (!cpuid)
		return -1;
	nested_apply(cpuid, supported, config->nested);
	if (kvm_host_cap(&m->host, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		cpuid_offer_tsc_deadline(cpuid);
	m->vcpus = calloc((size_t)config->ncpus, sizeof(*m->vcpus));
	if (!m->vcpus) {
		log_error("out of memory for %d vCPUs", config->ncpus);
		free(cpuid);
		return -1;
	}
	for (int i = 0; i < config->ncpus; i++)
		m->vcpus[i].cpu.fd = -1;
	int r = 0;
	for (int i = 0; i < config->ncpus && r == 0; i++) {
		struct vcpu *v = &m->vcpus[i];
		v->machine = m;
		if (kvm_cpu_create(&m->kvm, i, cpu_apic_id(&m->topo, i), &v->cpu) < 0 ||
		    cpuid_apply(cpuid, &m->topo, &v->cpu) < 0 ||
		    (config->nested && nested_setup_vcpu(&m->host, &v->cpu, m->nested.kind) < 0) ||
		    (!config->restore_dir && boot_setup_cpu(&m->boot, &v->cpu) < 0))
			r = -1;
	}
	free(cpuid);
	return r;
}

/* Everything after /dev/kvm is open and its supported CPUID is known. */
/* Every RAM region of mem as a KVM memory slot. */
static int guest_mem_register(struct guest_mem *mem, struct kvm_guest *guest)
{
	for (int i = 0; i < mem->nregions; i++) {
		struct guest_mem_region *r = &mem->regions[i];
		if (kvm_guest_set_memory(guest, (uint32_t)i, r->gpa, r->size, r->hva) < 0)
			return -1;
	}
	return 0;
}

static int build(struct machine *m, const struct kvm_cpuid2 *supported)
{
	const struct machine_config *config = &m->config;
	nested_probe(supported, kvm_host_backend(), &m->nested);
	if (config->nested && m->nested.kind == NESTED_NONE) {
		log_error("--nested: cannot expose hardware virtualization: %s; fix: %s",
			  m->nested.reason, m->nested.fix);
		return -1;
	}
	if (kvm_guest_create(&m->host, &m->kvm) < 0 ||
	    guest_mem_alloc(&m->mem, config->ram_size, config->nested) < 0 ||
	    guest_mem_register(&m->mem, &m->kvm) < 0 || kvm_guest_create_irqchip(&m->kvm) < 0 ||
	    kvm_guest_set_pc_irq_routing(&m->kvm) < 0 || kvm_guest_create_pit(&m->kvm) < 0)
		return -1;
	cpu_topology_init(&m->topo, config->ncpus, config->cores_per_socket);
	if (create_devices(m) < 0)
		return -1;
	struct boot_config boot = {
		.kernel_path = config->kernel,
		.initrd_path = config->initrd,
		.cmdline = config->cmdline,
		.ncpus = config->ncpus,
		.topo = &m->topo,
		.identity = &config->identity,
	};
	/* A restored machine's memory already holds its kernel. */
	if (!config->restore_dir && boot_load(&m->mem, &boot, &m->boot) < 0)
		return -1;
	if (create_vcpus(m, supported) < 0)
		return -1;
	return config->restore_dir ? snapshot_restore(m, config->restore_dir) : 0;
}

int machine_create(struct machine *m, const struct machine_config *config)
{
	memset(m, 0, sizeof(*m));
	m->config = *config;
	m->host.fd = m->kvm.fd = m->stop_fd = -1;
	control_init(&m->control);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->pause_lock, NULL);
	pthread_cond_init(&m->pause_cond, NULL);

	m->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (m->stop_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -1;
	}
	if (kvm_host_open(&m->host) < 0)
		return -1;
	if (config->ncpus > m->host.max_vcpus) {
		log_error("--cpus %d: this host's KVM allows at most %d vCPUs per VM",
			  config->ncpus, m->host.max_vcpus);
		return -1;
	}
	struct kvm_cpuid2 *supported = kvm_host_supported_cpuid(&m->host);
	if (!supported)
		return -1;
	int r = build(m, supported);
	free(supported);
	return r;
}

/* Kicks every vCPU out of KVM_RUN until all threads have left their loop,
 * then joins them. immediate_exit covers a kick that lands just before a
 * thread enters KVM_RUN; repeating the kick covers kernels without it. */
static void stop_vcpus(struct machine *m)
{
	int n = m->config.ncpus;
	for (int i = 0; i < n; i++)
		if (m->vcpus[i].cpu.run)
			m->vcpus[i].cpu.run->immediate_exit = 1;
	int64_t warned = monotonic_ms();
	for (;;) {
		bool all = true;
		for (int i = 0; i < n; i++) {
			struct vcpu *v = &m->vcpus[i];
			if (v->thread_started && !atomic_load(&v->exited)) {
				all = false;
				pthread_kill(v->thread, SIG_VCPU_KICK);
			}
		}
		if (all)
			break;
		if (monotonic_ms() - warned > 5000) {
			log_warn("waiting for vCPU threads to stop");
			warned = monotonic_ms();
		}
		usleep(1000);
	}
	for (int i = 0; i < n; i++)
		if (m->vcpus[i].thread_started) {
			pthread_join(m->vcpus[i].thread, NULL);
			m->vcpus[i].thread_started = false;
		}
}

int machine_run(struct machine *m)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIG_VCPU_KICK, &sa, NULL); /* no SA_RESTART: KVM_RUN must return */

	/* Termination signals are taken by the main thread through a signalfd;
	 * vCPU threads inherit the mask and never see them. */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	sigset_t old;
	pthread_sigmask(SIG_BLOCK, &term, &old);
	int sfd = signalfd(-1, &term, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return MACHINE_EXIT_ERROR;
	}

	if (sandbox_check() < 0 || device_table_start(&m->devices) < 0)
		machine_request_stop(m, MACHINE_EXIT_ERROR);
	if (m->config.api_socket && control_open(&m->control, m->config.api_socket) < 0)
		machine_request_stop(m, MACHINE_EXIT_ERROR);
	for (int i = 0; i < m->config.ncpus && !atomic_load(&m->stopping); i++) {
		struct vcpu *v = &m->vcpus[i];
		int e = pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (e) {
			log_error("cannot start vCPU %d thread: %s", i, strerror(e));
			machine_request_stop(m, MACHINE_EXIT_ERROR);
			break;
		}
		v->thread_started = true;
	}
	/* Setup is done: from here the main thread makes only the calls its
	 * work needs (a reboot's rebuild included). Once per process: filters
	 * stack, they are never lifted. */
	static bool main_confined;
	if (!main_confined) {
		sandbox_enter(SANDBOX_MAIN);
		main_confined = true;
	}

	console_open(&m->console, m->config.console_in_fd);
	bool input_open = m->config.console_in_fd >= 0;
	int64_t next_tick = monotonic_ms() + 1000;
	while (!atomic_load(&m->stopping)) {
		/* Input the UART could not take yet is retried every 10 ms; while
		 * nestvm holds as much as it can, the terminal is not polled (it
		 * would be readable at once, for ever: a busy loop). */
		struct console_socket *cs = m->config.console_socket;
		bool held = console_flush(&m->console, &m->com1);
		if (cs)
			held |= console_flush(&cs->in, &m->com1);
		bool room = m->console.npending < sizeof(m->console.pending);
		struct pollfd fds[3 + 2 + 1 + CONTROL_MAX_CLIENTS] = {
			{ .fd = m->stop_fd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
			{ .fd = input_open && room ? m->console.in_fd : -1, .events = POLLIN },
		};
		int ncs = cs ? console_socket_pollfds(cs, fds + 3) : 0;
		int nctl = control_pollfds(&m->control, fds + 3 + ncs, 1 + CONTROL_MAX_CLIENTS);
		int timeout = control_timeout(&m->control);
		if (held && (timeout < 0 || timeout > 10))
			timeout = 10;
		/* Devices' periodic work (devices/device.h: tick) at least once a second. */
		int64_t now = monotonic_ms();
		if (now >= next_tick) {
			device_table_tick(&m->devices, now);
			next_tick = now + 1000;
		}
		if (timeout < 0 || timeout > next_tick - now)
			timeout = (int)(next_tick - now);
		if (poll(fds, (nfds_t)(3 + ncs + nctl), timeout) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				log_info("signal %u: stopping the VM", si.ssi_signo);
				machine_request_stop(m, 128 + (int)si.ssi_signo);
			}
		}
		if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			enum console_result r = console_input(&m->console, &m->com1);
			if (r == CONSOLE_EOF)
				input_open = false;
			if (r == CONSOLE_QUIT) {
				log_info("Ctrl-A x: stopping the VM");
				machine_request_stop(m, 0);
			}
		}
		if (cs)
			console_socket_handle(cs, fds + 3, ncs, &m->com1);
		control_handle(&m->control, m, fds + 3 + ncs, nctl);
		control_tick(&m->control, m);
	}
	control_vm_ended(&m->control);
	stop_vcpus(m);
	console_restore_terminal();
	close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&m->lock);
	int status = m->exit_status;
	pthread_mutex_unlock(&m->lock);
	return status;
}

void machine_destroy(struct machine *m)
{
	if (m->vcpus) {
		for (int i = 0; i < m->config.ncpus; i++)
			kvm_cpu_close(&m->vcpus[i].cpu);
		free(m->vcpus);
		m->vcpus = NULL;
	}
	control_close(&m->control);
	device_table_destroy(&m->devices);
	memset(m->disks, 0, sizeof(m->disks));
	memset(m->nics, 0, sizeof(m->nics));
	m->rng = NULL;
	bus_free(&m->pio);
	bus_free(&m->mmio);
	kvm_guest_close(&m->kvm);
	guest_mem_free(&m->mem);
	kvm_host_close(&m->host);
	if (m->stop_fd >= 0)
		close(m->stop_fd);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->pause_lock);
	pthread_cond_destroy(&m->pause_cond);
}

int machine_pause(struct machine *m)
{
	if (m->paused)
		return 0;
	atomic_store(&m->pause_requested, true);
	int n = m->config.ncpus;
	int64_t give_up = monotonic_ms() + MACHINE_PAUSE_TIMEOUT_MS;
	for (;;) {
		pthread_mutex_lock(&m->pause_lock);
		int parked = m->parked;
		pthread_mutex_unlock(&m->pause_lock);
		int gone = 0;
		for (int i = 0; i < n; i++)
			if (!m->vcpus[i].thread_started || atomic_load(&m->vcpus[i].exited))
				gone++;
		if (parked + gone >= n)
			break;
		if (monotonic_ms() > give_up) {
			/* A vCPU stuck outside KVM_RUN (in a device, say) would
			 * hold the main loop, and with it signals, the console and
			 * the API, for as long as it is stuck: let the parked ones
			 * go on and report it instead. */
			pthread_mutex_lock(&m->pause_lock);
			atomic_store(&m->pause_requested, false);
			pthread_cond_broadcast(&m->pause_cond);
			pthread_mutex_unlock(&m->pause_lock);
			log_warn("pause: %d of %d vCPUs did not stop within %d s; the VM runs on",
				 n - parked - gone, n, MACHINE_PAUSE_TIMEOUT_MS / 1000);
			return -1;
		}
		/* Kick threads still in KVM_RUN; a HLTed vCPU sleeps in the
		 * kernel until a signal. */
		for (int i = 0; i < n; i++)
			if (m->vcpus[i].thread_started && !atomic_load(&m->vcpus[i].exited))
				pthread_kill(m->vcpus[i].thread, SIG_VCPU_KICK);
		usleep(200);
	}
	m->paused = true;
	return 0;
}

void machine_resume(struct machine *m)
{
	if (!m->paused)
		return;
	pthread_mutex_lock(&m->pause_lock);
	atomic_store(&m->pause_requested, false);
	pthread_cond_broadcast(&m->pause_cond);
	pthread_mutex_unlock(&m->pause_lock);
	m->paused = false;
}
