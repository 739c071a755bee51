#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"

static const char *kvm_device_path(void)
{
	const char *p = getenv("NESTVM_KVM_DEVICE");
	return p && *p ? p : "/dev/kvm";
}

int kvm_host_open(struct kvm_host *host)
{
	const char *path = kvm_device_path();
	memset(host, 0, sizeof(*host));
	host->fd = open(path, O_RDWR | O_CLOEXEC);
	if (host->fd < 0) {
		int e = errno;
		if (e == ENOENT)
			log_error("%s: no such device: KVM is not available on this host "
				  "(load kvm_intel or kvm_amd, or run 'nestvm doctor')", path);
		else if (e == EACCES || e == EPERM)
			log_error("%s: permission denied: add this user to the 'kvm' group "
				  "or run as root", path);
		else
			log_error("%s: %s", path, strerror(e));
		return -1;
	}
	int version = ioctl(host->fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		log_error("%s: KVM API version %d, nestvm needs %d", path, version,
			  KVM_API_VERSION);
		goto fail;
	}
	host->vcpu_mmap_size = ioctl(host->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (host->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		log_error("%s: KVM_GET_VCPU_MMAP_SIZE: %s", path, strerror(errno));
		goto fail;
	}
	host->max_vcpus = kvm_host_cap(host, KVM_CAP_MAX_VCPUS);
	if (host->max_vcpus <= 0)
		host->max_vcpus = kvm_host_cap(host, KVM_CAP_NR_VCPUS);
	if (host->max_vcpus <= 0)
		host->max_vcpus = 4; /* the documented minimum when neither cap exists */
	return 0;
fail:
	close(host->fd);
	host->fd = -1;
	return -1;
}

void kvm_host_close(struct kvm_host *host)
{
	if (host->fd >= 0)
		close(host->fd);
	host->fd = -1;
}

int kvm_host_cap(struct kvm_host *host, long cap)
{
	int r = ioctl(host->fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

const char *kvm_host_backend(void)
{
	static const char *const modules[] = { "kvm_pvm", "kvm_intel", "kvm_amd" };
	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "/sys/module/%s", modules[i]);
		if (access(path, F_OK) == 0)
			return modules[i];
	}
	return "unknown";
}

struct kvm_cpuid2 *kvm_host_supported_cpuid(struct kvm_host *host)
{
	/* Grow the buffer until KVM stops answering E2BIG. */
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c) {
			log_error("out of memory for CPUID table");
			return NULL;
		}
		c->nent = n;
		if (ioctl(host->fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int e = errno;
		free(c);
		if (e != E2BIG) {
			log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
			return NULL;
		}
	}
	log_error("KVM_GET_SUPPORTED_CPUID: table too large");
	return NULL;
}

int kvm_guest_create(struct kvm_host *host, struct kvm_guest *guest)
{
	guest->host = host;
	pthread_mutex_init(&guest->route_lock, NULL);
	guest->msi_count = 0;
	guest->fd = ioctl(host->fd, KVM_CREATE_VM, 0);
	if (guest->fd < 0) {
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void kvm_guest_close(struct kvm_guest *guest)
{
	if (guest->fd >= 0)
		close(guest->fd);
	guest->fd = -1;
	pthread_mutex_destroy(&guest->route_lock);
}

int kvm_guest_set_memory(struct kvm_guest *guest, uint32_t slot, uint64_t gpa,
			 uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};
	if (ioctl(guest->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		log_error("KVM_SET_USER_MEMORY_REGION (slot %u, 0x%llx+0x%llx): %s", slot,
			  (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_guest_create_irqchip(struct kvm_guest *guest)
{
	if (ioctl(guest->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		log_error("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_guest_create_pit(struct kvm_guest *guest)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(guest->fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_error("KVM_CREATE_PIT2: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Rebuilds the whole GSI routing table: KVM_SET_GSI_ROUTING replaces it, so
 * the PC routes are repeated next to every MSI route. Caller holds
 * route_lock. */
static int apply_routes(struct kvm_guest *guest)
{
	enum { IOAPIC_PINS = 24, PIC_PINS = 16 };
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + (IOAPIC_PINS + PIC_PINS + KVM_MAX_MSI_ROUTES) *
							  sizeof(struct kvm_irq_routing_entry));
	if (!r) {
		log_error("out of memory for IRQ routing");
		return -1;
	}
	for (uint32_t gsi = 0; gsi < PIC_PINS; gsi++) {
		struct kvm_irq_routing_entry *e = &r->entries[r->nr++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		e->u.irqchip.pin = gsi % 8;
	}
	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue; /* pin 2 belongs to GSI 0 */
		struct kvm_irq_routing_entry *e = &r->entries[r->nr++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = gsi == 0 ? 2 : gsi;
	}
	for (uint32_t i = 0; i < guest->msi_count; i++) {
		if (!guest->msi[i].valid)
			continue;
		struct kvm_irq_routing_entry *e = &r->entries[r->nr++];
		e->gsi = KVM_FIRST_MSI_GSI + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)guest->msi[i].address;
		e->u.msi.address_hi = (uint32_t)(guest->msi[i].address >> 32);
		e->u.msi.data = guest->msi[i].data;
	}
	int ret = ioctl(guest->fd, KVM_SET_GSI_ROUTING, r);
	free(r);
	if (ret < 0) {
		log_error("KVM_SET_GSI_ROUTING: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_guest_set_pc_irq_routing(struct kvm_guest *guest)
{
	pthread_mutex_lock(&guest->route_lock);
	int r = apply_routes(guest);
	pthread_mutex_unlock(&guest->route_lock);
	return r;
}

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
	int r = 0;
	if (gsi < KVM_FIRST_MSI_GSI || i >= guest->msi_count) {
		r = -1;
	} else if (guest->msi[i].valid != valid || guest->msi[i].address != address ||
		   guest->msi[i].data != data) {
		guest->msi[i].valid = valid;
		guest->msi[i].address = address;
		guest->msi[i].data = data;
		r = apply_routes(guest);
	}
	pthread_mutex_unlock(&guest->route_lock);
	return r;
}

int kvm_guest_irqfd(struct kvm_guest *guest, int gsi, int fd, bool assign)
{
	struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = (uint32_t)gsi,
				 .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	if (ioctl(guest->fd, KVM_IRQFD, &req) < 0) {
		log_error("KVM_IRQFD (GSI %d): %s", gsi, strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_guest_mmio_eventfd(struct kvm_guest *guest, uint64_t addr, int fd, bool assign)
{
	/* Length 0 matches writes of any size (KVM_CAP_IOEVENTFD_ANY_LENGTH);
	 * without it, drivers' 16-bit notify writes are what we match. */
	uint32_t len = kvm_host_cap(guest->host, KVM_CAP_IOEVENTFD_ANY_LENGTH) ? 0 : 2;
	struct kvm_ioeventfd req = { .addr = addr, .len = len, .fd = fd,
				     .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN };
	if (ioctl(guest->fd, KVM_IOEVENTFD, &req) < 0) {
		log_error("KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr, strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_guest_irq_line(struct kvm_guest *guest, uint32_t irq, int level)
{
	struct kvm_irq_level line = { .irq = irq, .level = level };
	if (ioctl(guest->fd, KVM_IRQ_LINE, &line) < 0) {
		log_error("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
		return -1;
	}
	return 0;
}

int kvm_cpu_create(struct kvm_guest *guest, int index, uint32_t id, struct kvm_cpu *cpu)
{
	memset(cpu, 0, sizeof(*cpu));
	cpu->index = index;
	cpu->fd = ioctl(guest->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (cpu->fd < 0) {
		log_error("KVM_CREATE_VCPU %d: %s", index, strerror(errno));
		return -1;
	}
	cpu->run_size = (size_t)guest->host->vcpu_mmap_size;
	cpu->run = mmap(NULL, cpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu->fd, 0);
	if (cpu->run == MAP_FAILED) {
		log_error("mmap of vCPU %d run area: %s", index, strerror(errno));
		close(cpu->fd);
		cpu->fd = -1;
		cpu->run = NULL;
		return -1;
	}
	return 0;
}

void kvm_cpu_close(struct kvm_cpu *cpu)
{
	if (cpu->run)
		munmap(cpu->run, cpu->run_size);
	if (cpu->fd >= 0)
		close(cpu->fd);
	cpu->run = NULL;
	cpu->fd = -1;
}

int kvm_cpu_run(struct kvm_cpu *cpu)
{
	if (ioctl(cpu->fd, KVM_RUN, 0) == 0)
		return 0;
	if (errno == EINTR || errno == EAGAIN)
		return 1;
	log_error("vCPU %d: KVM_RUN: %s", cpu->index, strerror(errno));
	return -1;
}

#define KVM_CPU_IOCTL(name, req, type, qual)                                      \
	int name(struct kvm_cpu *cpu, qual type *arg)                             \
	{                                                                         \
		if (ioctl(cpu->fd, req, arg) < 0) {                               \
			log_error("vCPU %d: " #req ": %s", cpu->index, strerror(errno)); \
			return -1;                                                \
		}                                                                 \
		return 0;                                                         \
	}

KVM_CPU_IOCTL(kvm_cpu_get_regs, KVM_GET_REGS, struct kvm_regs, )
KVM_CPU_IOCTL(kvm_cpu_set_regs, KVM_SET_REGS, struct kvm_regs, const)
KVM_CPU_IOCTL(kvm_cpu_get_sregs, KVM_GET_SREGS, struct kvm_sregs, )
KVM_CPU_IOCTL(kvm_cpu_set_sregs, KVM_SET_SREGS, struct kvm_sregs, const)
KVM_CPU_IOCTL(kvm_cpu_set_cpuid, KVM_SET_CPUID2, struct kvm_cpuid2, const)
KVM_CPU_IOCTL(kvm_cpu_set_mp_state, KVM_SET_MP_STATE, struct kvm_mp_state, const)

int kvm_host_ioctl(struct kvm_host *host, unsigned long req, void *arg, const char *what)
{
	int r = ioctl(host->fd, req, arg);
	if (r < 0)
		log_error("%s: %s", what, strerror(errno));
	return r;
}

int kvm_guest_ioctl(struct kvm_guest *guest, unsigned long req, void *arg, const char *what)
{
	int r = ioctl(guest->fd, req, arg);
	if (r < 0)
		log_error("%s: %s", what, strerror(errno));
	return r;
}

int kvm_cpu_ioctl(struct kvm_cpu *cpu, unsigned long req, void *arg, const char *what)
{
	int r = ioctl(cpu->fd, req, arg);
	if (r < 0)
		log_error("vCPU %d: %s: %s", cpu->index, what, strerror(errno));
	return r;
}

struct kvm_msr_list *kvm_host_msr_index_list(struct kvm_host *host)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	for (int attempt = 0; attempt < 4; attempt++) {
		/* The first call fails with E2BIG and says how many there are. */
		if (ioctl(host->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
			break;
		struct kvm_msr_list *list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
		if (!list)
			break;
		list->nmsrs = probe.nmsrs;
		if (ioctl(host->fd, KVM_GET_MSR_INDEX_LIST, list) == 0)
			return list;
		probe.nmsrs = list->nmsrs;
		free(list);
		if (errno != E2BIG)
			break;
	}
	log_error("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	return NULL;
}

int kvm_cpu_get_msr(struct kvm_cpu *cpu, uint32_t index, uint64_t *value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} one = { .hdr.nmsrs = 1, .entry.index = index };
	if (ioctl(cpu->fd, KVM_GET_MSRS, &one) != 1)
		return -1;
	*value = one.entry.data;
	return 0;
}
