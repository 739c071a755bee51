/* A fake of src/kvm/kvm.c for unit tests and fuzz harnesses.
 *
 * Why it exists: device models reach KVM only through the kvm_guest_*
 * calls of kvm/kvm.h (virtio-pci's MSI-X routes, irqfds and notify
 * ioeventfds; the legacy devices' interrupt lines). To test and fuzz them
 * they need a VM, and a real one cannot be had there: the unit and fuzz
 * tiers run where /dev/kvm may be missing, a fuzzer cannot create a VM per
 * input, and real KVM would not tell the test what the device asked of it.
 * This file stands in for the whole of kvm/kvm.h with no ioctls at all: it
 * records what was asked (MSI routes in struct kvm_guest as the real layer
 * keeps them, bound irqfds and ioeventfds, IRQ line levels in kvm_fake),
 * refuses what KVM would refuse (counting it in kvm_fake.errors, so that a
 * test or fuzzer can insist it never happens), and can be told to fail.
 * Devices' own eventfds stay real: a test reads an irqfd to see whether
 * an interrupt was delivered, and a kick eventfd to see a notification.
 *
 * How it is linked (Makefile): the files in tests/fake/ go into
 * build/asan/libfake.a and build/fuzz/libfake.a, which every unit test and
 * fuzz harness links ahead of the core's libcore.a. The linker takes an
 * archive member only for a symbol still undefined when it gets there, so
 * a test that calls a kvm_fake_* function pulls this object in, whose
 * kvm_* definitions then keep libcore.a's kvm.o out; a test that does not
 * gets the real kvm.o, as before. This file defines every function of
 * kvm/kvm.h so that nothing can need kvm.o beside it (that would be a
 * duplicate-symbol link error, never a silent mix of the two).
 *
 * Not faked: vCPUs (kvm_cpu_create and the ioctls fail) and the system's
 * CPUID and MSR lists. The host and the VM "open" with file descriptor
 * numbers no real file has. */
#include "kvm_fake.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

struct kvm_fake kvm_fake;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

void kvm_fake_reset(void)
{
	pthread_mutex_lock(&fake_lock);
	memset(&kvm_fake, 0, sizeof(kvm_fake));
	pthread_mutex_unlock(&fake_lock);
}

const struct kvm_msi_route *kvm_fake_msi_route(const struct kvm_guest *guest, int gsi)
{
	uint32_t i = (uint32_t)gsi - KVM_FIRST_MSI_GSI;
	if (gsi < KVM_FIRST_MSI_GSI || i >= guest->msi_count)
		return NULL;
	return &guest->msi[i];
}

int kvm_fake_irqfd_gsi(int fd)
{
	int gsi = -1;
	pthread_mutex_lock(&fake_lock);
	for (unsigned i = 0; i < kvm_fake.nirqfds; i++)
		if (kvm_fake.irqfds[i].fd == fd)
			gsi = kvm_fake.irqfds[i].gsi;
	pthread_mutex_unlock(&fake_lock);
	return gsi;
}

bool kvm_fake_ioeventfd_bound(uint64_t addr, int fd)
{
	bool bound = false;
	pthread_mutex_lock(&fake_lock);
	for (unsigned i = 0; i < kvm_fake.nioeventfds; i++)
		if (kvm_fake.ioeventfds[i].addr == addr && kvm_fake.ioeventfds[i].fd == fd)
			bound = true;
	pthread_mutex_unlock(&fake_lock);
	return bound;
}

unsigned kvm_fake_ioeventfd_count(int fd)
{
	unsigned n = 0;
	pthread_mutex_lock(&fake_lock);
	for (unsigned i = 0; i < kvm_fake.nioeventfds; i++)
		n += kvm_fake.ioeventfds[i].fd == fd;
	pthread_mutex_unlock(&fake_lock);
	return n;
}

/* A call KVM would refuse: counted, and failed as the real layer fails. */
static int refuse(const char *what, int err)
{
	kvm_fake.errors++;
	log_error("%s: %s", what, strerror(err));
	errno = err;
	return -1;
}

/* --- the system and the VM -------------------------------------------- */

int kvm_host_open(struct kvm_host *host)
{
	memset(host, 0, sizeof(*host));
	host->fd = KVM_FAKE_SYSTEM_FD;
	host->vcpu_mmap_size = 4096;
	host->max_vcpus = 1;
	return 0;
}

void kvm_host_close(struct kvm_host *host)
{
	host->fd = -1;
}

int kvm_host_cap(struct kvm_host *host, long cap)
{
	(void)host, (void)cap;
	return 0; /* no optional capability */
}

const char *kvm_host_backend(void)
{
	return "unknown";
}

struct kvm_cpuid2 *kvm_host_supported_cpuid(struct kvm_host *host)
{
	(void)host;
	log_error("KVM_GET_SUPPORTED_CPUID: not available in the fake KVM");
	return NULL;
}

struct kvm_msr_list *kvm_host_msr_index_list(struct kvm_host *host)
{
	(void)host;
	log_error("KVM_GET_MSR_INDEX_LIST: not available in the fake KVM");
	return NULL;
}

int kvm_guest_create(struct kvm_host *host, struct kvm_guest *guest)
{
	memset(guest, 0, sizeof(*guest));
	guest->host = host;
	pthread_mutex_init(&guest->route_lock, NULL);
	guest->fd = KVM_FAKE_VM_FD;
	return 0;
}

void kvm_guest_close(struct kvm_guest *guest)
{
	guest->fd = -1;
	pthread_mutex_destroy(&guest->route_lock);
}

int kvm_guest_set_memory(struct kvm_guest *guest, uint32_t slot, uint64_t gpa, uint64_t size,
			 void *hva)
{
	(void)guest, (void)slot, (void)gpa, (void)size, (void)hva;
	return 0;
}

int kvm_guest_create_irqchip(struct kvm_guest *guest)
{
	(void)guest;
	return 0;
}

int kvm_guest_create_pit(struct kvm_guest *guest)
{
	(void)guest;
	return 0;
}

int kvm_guest_set_pc_irq_routing(struct kvm_guest *guest)
{
	(void)guest;
	pthread_mutex_lock(&fake_lock);
	kvm_fake.route_updates++;
	pthread_mutex_unlock(&fake_lock);
	return 0;
}

/* --- interrupts: what devices use -------------------------------------- */

int kvm_guest_alloc_msi_gsi(struct kvm_guest *guest)
{
	pthread_mutex_lock(&guest->route_lock);
	int gsi = -1;
	if (guest->msi_count < KVM_MAX_MSI_ROUTES)
		gsi = (int)(KVM_FIRST_MSI_GSI + guest->msi_count++);
	else
		log_error("out of MSI interrupt routes (%d)", KVM_MAX_MSI_ROUTES);
	pthread_mutex_unlock(&guest->route_lock);
	return gsi;
}

int kvm_guest_set_msi_route(struct kvm_guest *guest, int gsi, bool valid, uint64_t address,
			    uint32_t data)
{
	uint32_t i = (uint32_t)gsi - KVM_FIRST_MSI_GSI;
	pthread_mutex_lock(&guest->route_lock);
	pthread_mutex_lock(&fake_lock);
	int r = 0;
	if (gsi < KVM_FIRST_MSI_GSI || i >= guest->msi_count) {
		r = refuse("KVM_SET_GSI_ROUTING (a GSI never allocated)", EINVAL);
	} else if (guest->msi[i].valid != valid || guest->msi[i].address != address ||
		   guest->msi[i].data != data) {
		if (kvm_fake.fail_msi_route) {
			log_error("KVM_SET_GSI_ROUTING: %s", strerror(ENOMEM));
			errno = ENOMEM;
			r = -1;
		} else {
			guest->msi[i] = (struct kvm_msi_route){ valid, address, data };
			kvm_fake.route_updates++;
		}
	}
	pthread_mutex_unlock(&fake_lock);
	pthread_mutex_unlock(&guest->route_lock);
	return r;
}

int kvm_guest_irqfd(struct kvm_guest *guest, int gsi, int fd, bool assign)
{
	(void)guest;
	pthread_mutex_lock(&fake_lock);
	int r = 0;
	unsigned at = kvm_fake.nirqfds;
	for (unsigned i = 0; i < kvm_fake.nirqfds; i++)
		if (kvm_fake.irqfds[i].fd == fd)
			at = i;
	if (kvm_fake.fail_irqfd && assign) {
		log_error("KVM_IRQFD (GSI %d): %s", gsi, strerror(ENOMEM));
		errno = ENOMEM;
		r = -1;
	} else if (fd < 0 || gsi < 0) {
		r = refuse("KVM_IRQFD (bad GSI or fd)", EINVAL);
	} else if (assign) {
		if (at < kvm_fake.nirqfds)
			r = refuse("KVM_IRQFD (the eventfd is bound already)", EBUSY);
		else if (kvm_fake.nirqfds == KVM_FAKE_MAX_IRQFDS)
			r = refuse("KVM_IRQFD (more irqfds than the fake holds)", ENOSPC);
		else
			kvm_fake.irqfds[kvm_fake.nirqfds++] = (struct kvm_fake_irqfd){ gsi, fd };
	} else {
		if (at == kvm_fake.nirqfds || kvm_fake.irqfds[at].gsi != gsi)
			r = refuse("KVM_IRQFD deassign (not bound to that GSI)", ENOENT);
		else
			kvm_fake.irqfds[at] = kvm_fake.irqfds[--kvm_fake.nirqfds];
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

int kvm_guest_mmio_eventfd(struct kvm_guest *guest, uint64_t addr, int fd, bool assign)
{
	(void)guest;
	pthread_mutex_lock(&fake_lock);
	int r = 0;
	unsigned at = kvm_fake.nioeventfds;
	bool addr_taken = false;
	for (unsigned i = 0; i < kvm_fake.nioeventfds; i++) {
		if (kvm_fake.ioeventfds[i].addr == addr) {
			addr_taken = true;
			if (kvm_fake.ioeventfds[i].fd == fd)
				at = i;
		}
	}
	bool other_fd = addr_taken && at == kvm_fake.nioeventfds;
	if (kvm_fake.fail_ioeventfd && assign) {
		log_error("KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr, strerror(ENOSPC));
		errno = ENOSPC;
		r = -1;
	} else if (fd < 0) {
		r = refuse("KVM_IOEVENTFD (bad fd)", EINVAL);
	} else if (assign) {
		/* KVM matches on the address (no datamatch here): a second
		 * eventfd at the same address is refused whatever its fd. The
		 * same eventfd twice is the caller's mistake; another one is
		 * a collision (two devices' BARs a guest made overlap). */
		if (other_fd) {
			kvm_fake.collisions++;
			log_error("KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr,
				  strerror(EEXIST));
			errno = EEXIST;
			r = -1;
		} else if (addr_taken) {
			r = refuse("KVM_IOEVENTFD (the eventfd is bound there already)", EEXIST);
		} else if (kvm_fake.nioeventfds == KVM_FAKE_MAX_IOEVENTFDS) {
			r = refuse("KVM_IOEVENTFD (more ioeventfds than the fake holds)", ENOSPC);
		} else {
			kvm_fake.ioeventfds[kvm_fake.nioeventfds++] =
				(struct kvm_fake_ioeventfd){ addr, fd };
		}
	} else {
		if (at == kvm_fake.nioeventfds)
			r = refuse("KVM_IOEVENTFD deassign (not bound there)", ENOENT);
		else
			kvm_fake.ioeventfds[at] = kvm_fake.ioeventfds[--kvm_fake.nioeventfds];
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

int kvm_guest_irq_line(struct kvm_guest *guest, uint32_t irq, int level)
{
	(void)guest;
	pthread_mutex_lock(&fake_lock);
	int r = 0;
	if (irq >= KVM_FAKE_IRQ_LINES) {
		r = refuse("KVM_IRQ_LINE (no such line)", EINVAL);
	} else {
		kvm_fake.irq_level[irq] = level;
		kvm_fake.irq_line_calls++;
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

/* --- anything else fails, as on a host without KVM ---------------------- */

static int no_ioctl(const char *what)
{
	log_error("%s: not available in the fake KVM", what ? what : "ioctl");
	errno = ENOTTY;
	return -1;
}

int kvm_host_ioctl(struct kvm_host *host, unsigned long req, void *arg, const char *what)
{
	(void)host, (void)req, (void)arg;
	return no_ioctl(what);
}

int kvm_guest_ioctl(struct kvm_guest *guest, unsigned long req, void *arg, const char *what)
{
	(void)guest, (void)req, (void)arg;
	return no_ioctl(what);
}

int kvm_cpu_ioctl(struct kvm_cpu *cpu, unsigned long req, void *arg, const char *what)
{
	(void)cpu, (void)req, (void)arg;
	return no_ioctl(what);
}

int kvm_cpu_create(struct kvm_guest *guest, int index, uint32_t id, struct kvm_cpu *cpu)
{
	(void)guest, (void)id;
	memset(cpu, 0, sizeof(*cpu));
	cpu->fd = -1;
	cpu->index = index;
	return no_ioctl("KVM_CREATE_VCPU");
}

void kvm_cpu_close(struct kvm_cpu *cpu)
{
	cpu->fd = -1;
}

int kvm_cpu_run(struct kvm_cpu *cpu)
{
	(void)cpu;
	return no_ioctl("KVM_RUN");
}

int kvm_cpu_get_msr(struct kvm_cpu *cpu, uint32_t index, uint64_t *value)
{
	(void)cpu, (void)index, (void)value;
	return -1; /* silently, as the real one */
}

int kvm_cpu_get_regs(struct kvm_cpu *cpu, struct kvm_regs *regs)
{
	(void)cpu, (void)regs;
	return no_ioctl("KVM_GET_REGS");
}

int kvm_cpu_set_regs(struct kvm_cpu *cpu, const struct kvm_regs *regs)
{
	(void)cpu, (void)regs;
	return no_ioctl("KVM_SET_REGS");
}

int kvm_cpu_get_sregs(struct kvm_cpu *cpu, struct kvm_sregs *sregs)
{
	(void)cpu, (void)sregs;
	return no_ioctl("KVM_GET_SREGS");
}

int kvm_cpu_set_sregs(struct kvm_cpu *cpu, const struct kvm_sregs *sregs)
{
	(void)cpu, (void)sregs;
	return no_ioctl("KVM_SET_SREGS");
}

int kvm_cpu_set_cpuid(struct kvm_cpu *cpu, const struct kvm_cpuid2 *cpuid)
{
	(void)cpu, (void)cpuid;
	return no_ioctl("KVM_SET_CPUID2");
}

int kvm_cpu_set_mp_state(struct kvm_cpu *cpu, const struct kvm_mp_state *state)
{
	(void)cpu, (void)state;
	return no_ioctl("KVM_SET_MP_STATE");
}
