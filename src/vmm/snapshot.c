#define _GNU_SOURCE
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/acpi.h"
#include "util/hash.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/snapshot_dir.h"
#include "vmm/snapshot_memory.h"
#include "vmm/snapshot_trust.h"
#include "util/file.h"

#define STATE_MAGIC "NVMSNAP1"

enum tag {
	T_REGS = 1, T_SREGS, T_XSAVE, T_XCRS, T_MSRS, T_LAPIC, T_EVENTS, T_MPSTATE,
	T_DEBUGREGS, T_NESTED,
	T_IRQCHIP = 20, T_PIT2, T_CLOCK,
	T_SERIAL = 30, T_RTC, T_ACPI_PM, T_PCI_ADDRESS, T_PCI_CONFIG, T_VIRTIO, T_TESTDEV,
};

struct record_header {
	uint32_t tag, index;
	uint64_t len;
};

/* --- writing -------------------------------------------------------------- */

struct writer {
	FILE *f;
	uint64_t hash, bytes;
	bool failed;
	char *why;
	size_t whylen;
};

static void fail(struct writer *w, const char *fmt, ...)
{
	if (w->failed)
		return;
	w->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, w->whylen, fmt, ap);
	va_end(ap);
}

static void put(struct writer *w, uint32_t tag, uint32_t index, const void *data, uint64_t len)
{
	if (w->failed)
		return;
	struct record_header h = { tag, index, len };
	if (fwrite(&h, sizeof(h), 1, w->f) != 1 || (len && fwrite(data, len, 1, w->f) != 1)) {
		fail(w, "writing state.bin: %s", strerror(errno));
		return;
	}
	w->hash = fnv1a64_update(fnv1a64_update(w->hash, &h, sizeof(h)), data, len);
	w->bytes += sizeof(h) + len;
}

/* One vCPU, read with KVM's GET ioctls. */
static void save_vcpu(struct writer *w, struct machine *m, struct kvm_cpu *cpu, void *buf,
		      size_t bufsize)
{
	uint32_t i = (uint32_t)cpu->index;
	struct kvm_host *host = &m->host;
#define GET(req, tag, size) \
	do { \
		if (!w->failed && kvm_cpu_ioctl(cpu, req, buf, #req) < 0) \
			fail(w, "vCPU %u: " #req " failed", i); \
		put(w, tag, i, buf, size); \
	} while (0)
	GET(KVM_GET_REGS, T_REGS, sizeof(struct kvm_regs));
	GET(KVM_GET_SREGS, T_SREGS, sizeof(struct kvm_sregs));
	int xsave_size = kvm_host_cap(host, KVM_CAP_XSAVE2);
	if (xsave_size < (int)sizeof(struct kvm_xsave))
		xsave_size = sizeof(struct kvm_xsave);
	memset(buf, 0, (size_t)xsave_size);
	GET(kvm_host_cap(host, KVM_CAP_XSAVE2) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, T_XSAVE,
	    (uint64_t)xsave_size);
	if (kvm_host_cap(host, KVM_CAP_XCRS))
		GET(KVM_GET_XCRS, T_XCRS, sizeof(struct kvm_xcrs));

	/* MSRs: every one KVM lists as saveable that this vCPU can read. */
	struct kvm_msr_list *list = kvm_host_msr_index_list(host);
	struct kvm_msrs *msrs = list ? calloc(1, sizeof(*msrs) + list->nmsrs * sizeof(struct kvm_msr_entry))
				     : NULL;
	if (!msrs) {
		fail(w, "cannot list the vCPU's MSRs");
	} else {
		for (uint32_t k = 0; k < list->nmsrs; k++) {
			uint64_t value;
			if (kvm_cpu_get_msr(cpu, list->indices[k], &value) == 0)
				msrs->entries[msrs->nmsrs++] =
					(struct kvm_msr_entry){ .index = list->indices[k], .data = value };
		}
		put(w, T_MSRS, i, msrs, sizeof(*msrs) + msrs->nmsrs * sizeof(struct kvm_msr_entry));
	}
	free(list);
	free(msrs);

	GET(KVM_GET_LAPIC, T_LAPIC, sizeof(struct kvm_lapic_state));
	GET(KVM_GET_VCPU_EVENTS, T_EVENTS, sizeof(struct kvm_vcpu_events));
	GET(KVM_GET_MP_STATE, T_MPSTATE, sizeof(struct kvm_mp_state));
	GET(KVM_GET_DEBUGREGS, T_DEBUGREGS, sizeof(struct kvm_debugregs));
	int nested = kvm_host_cap(host, KVM_CAP_NESTED_STATE);
	if (nested > 0 && (size_t)nested <= bufsize) {
		struct kvm_nested_state *ns = buf;
		memset(ns, 0, (size_t)nested);
		ns->size = (uint32_t)nested;
		GET(KVM_GET_NESTED_STATE, T_NESTED, ns->size);
	}
#undef GET
}

static void save_vm(struct writer *w, struct machine *m)
{
	for (uint32_t chip = 0; chip < 3; chip++) {
		struct kvm_irqchip ic = { .chip_id = chip };
		if (!w->failed && kvm_guest_ioctl(&m->kvm, KVM_GET_IRQCHIP, &ic, "KVM_GET_IRQCHIP") < 0)
			fail(w, "KVM_GET_IRQCHIP failed");
		put(w, T_IRQCHIP, chip, &ic, sizeof(ic));
	}
	struct kvm_pit_state2 pit;
	if (!w->failed && kvm_guest_ioctl(&m->kvm, KVM_GET_PIT2, &pit, "KVM_GET_PIT2") < 0)
		fail(w, "KVM_GET_PIT2 failed");
	put(w, T_PIT2, 0, &pit, sizeof(pit));
	struct kvm_clock_data clock = { 0 };
	if (!w->failed && kvm_guest_ioctl(&m->kvm, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK") < 0)
		fail(w, "KVM_GET_CLOCK failed");
	clock.flags = 0; /* restore the guest's clock value, not a host time */
	put(w, T_CLOCK, 0, &clock, sizeof(clock));
}

/* Plain-data tails of the device structures: from field first to the end
 * of field last. */
#define RANGE(obj, first, last) \
	(const uint8_t *)&(obj)->first, \
	(offsetof(__typeof__(*(obj)), last) + sizeof((obj)->last) - offsetof(__typeof__(*(obj)), first))

static struct virtio_dev *virtio_at(struct machine *m, int k)
{
	if (k < m->config.ndisks)
		return &m->disks[k]->vdev;
	k -= m->config.ndisks;
	if (k < m->config.nnics)
		return &m->nics[k]->vdev;
	k -= m->config.nnics; /* (once forgotten: with a NIC the RNG was never saved) */
	return k == 0 && m->rng ? &m->rng->vdev : NULL;
}

static void save_devices(struct writer *w, struct machine *m)
{
	pthread_mutex_lock(&m->com1.lock);
	put(w, T_SERIAL, 0, RANGE(&m->com1, ier, rx_count));
	pthread_mutex_unlock(&m->com1.lock);
	pthread_mutex_lock(&m->rtc.lock);
	put(w, T_RTC, 0, RANGE(&m->rtc, index, cmos));
	pthread_mutex_unlock(&m->rtc.lock);
	pthread_mutex_lock(&m->pm.lock);
	put(w, T_ACPI_PM, 0, RANGE(&m->pm, sts, sci_level));
	pthread_mutex_unlock(&m->pm.lock);
	if (m->config.test_device) {
		pthread_mutex_lock(&m->testdev.lock);
		put(w, T_TESTDEV, 0, RANGE(&m->testdev, scratch, writes));
		pthread_mutex_unlock(&m->testdev.lock);
	}
	/* The PCI bus and virtio device locks are held by snapshot_save(). */
	put(w, T_PCI_ADDRESS, 0, &m->pci.address, sizeof(m->pci.address));
	for (uint32_t s = 1; s < PCI_SLOTS; s++)
		if (m->pci.slots[s])
			put(w, T_PCI_CONFIG, s, m->pci.slots[s]->config, 256);
	struct virtio_dev *vd;
	for (int k = 0; (vd = virtio_at(m, k)); k++) {
		if (vd->status & VIRTIO_STATUS_NEEDS_RESET)
			fail(w, "%s cannot be saved: its driver broke a queue and it needs a reset",
			     vd->name);
		struct virtio_pci_state st;
		virtio_pci_save(vd, &st);
		put(w, T_VIRTIO, (uint32_t)k, &st, sizeof(st));
	}
}

/* Device workers must not touch guest memory or queue state while the
 * snapshot is taken (a frame arriving on a tap would): hold the bus lock,
 * then every device's lock, as the vCPU paths do. A worker in the middle
 * of a request finishes it first. */
static void quiesce_devices(struct machine *m, bool hold)
{
	struct virtio_dev *vd;
	if (hold)
		pthread_mutex_lock(&m->pci.lock);
	for (int k = 0; (vd = virtio_at(m, k)); k++) {
		if (hold)
			pthread_mutex_lock(&vd->lock);
		else
			pthread_mutex_unlock(&vd->lock);
	}
	if (!hold)
		pthread_mutex_unlock(&m->pci.lock);
}

static json_object *config_json(struct machine *m, struct writer *w)
{
	const struct machine_config *c = &m->config;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)c->ram_size));
	json_object_object_add(o, "vcpus", json_object_new_int(c->ncpus));
	json_object_object_add(o, "cores_per_socket", json_object_new_int(c->cores_per_socket));
	json_object_object_add(o, "cpu_model", json_object_new_string(c->cpu_model == CPU_MODEL_COMPAT ? "compat" : "host"));
	json_object_object_add(o, "nested", json_object_new_boolean(c->nested));
	json_object_object_add(o, "test_device", json_object_new_boolean(c->test_device));
	json_object_object_add(o, "rng", json_object_new_boolean(c->rng));
	json_object *disks = json_object_new_array();
	for (int i = 0; i < c->ndisks; i++) {
		json_object *d = json_object_new_object();
		char abs[PATH_MAX];
		const char *p = realpath(c->disks[i].path, abs) ? abs : c->disks[i].path;
		uint64_t size = 0, fp = 0;
		/* Flush first: the fingerprint is of what the image holds, and a
		 * snapshot is only as durable as its disks. */
		if (!c->disks[i].readonly && fdatasync(m->disks[i]->fd) < 0)
			fail(w, "--disk %s: flush failed: %s", p, strerror(errno));
		if (snapshot_disk_fingerprint(p, &size, &fp) < 0)
			fail(w, "--disk %s: cannot read it for its fingerprint", p);
		char hex[17];
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)fp);
		json_object_object_add(d, "path", json_object_new_string(p));
		json_object_object_add(d, "readonly", json_object_new_boolean(c->disks[i].readonly));
		json_object_object_add(d, "serial", json_object_new_string(c->disks[i].serial));
		json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(d, "fingerprint", json_object_new_string(hex));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	json_object *nics = json_object_new_array();
	for (int i = 0; i < c->nnics; i++) {
		json_object *n = json_object_new_object();
		char mac[18];
		const uint8_t *a = m->nics[i]->opt.mac;
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
		json_object_object_add(n, "tap", json_object_new_string(c->nics[i].ifname));
		json_object_object_add(n, "mac", json_object_new_string(mac));
		json_object_array_add(nics, n);
	}
	json_object_object_add(o, "nics", nics);
	return o;
}

static json_object *hex64(uint64_t v)
{
	char hex[17];
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)v);
	return json_object_new_string(hex);
}

int snapshot_save(struct machine *m, const char *target, uint64_t *bytes, char *why, size_t whylen)
{
	struct writer w = { .hash = FNV1A64_SEED, .why = why, .whylen = whylen };
	/* Everything goes into a work directory beside target first: a failed
	 * or interrupted save leaves the snapshot that was there untouched. */
	char dir[PATH_MAX];
	if (snapshot_dir_begin(target, dir, why, whylen) < 0)
		return -1;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/state.bin", dir);
	w.f = fopen(path, "wbe");
	if (!w.f) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		snapshot_dir_abort(dir);
		return -1;
	}
	char header[16] = STATE_MAGIC;
	uint32_t version = SNAPSHOT_VERSION;
	memcpy(header + 8, &version, 4);
	fwrite(header, sizeof(header), 1, w.f);
	w.hash = fnv1a64_update(w.hash, header, sizeof(header));
	size_t bufsize = 1 << 20;
	void *buf = calloc(1, bufsize);
	if (!buf)
		fail(&w, "out of memory");
	quiesce_devices(m, true);
	save_vm(&w, m);
	for (int i = 0; i < m->config.ncpus && !w.failed; i++)
		save_vcpu(&w, m, &m->vcpus[i].cpu, buf, bufsize);
	save_devices(&w, m);
	free(buf);
	if (fflush(w.f) != 0 || fsync(fileno(w.f)) < 0)
		fail(&w, "%s: %s", path, strerror(errno));
	fclose(w.f);
	uint64_t state_hash = w.hash, state_bytes = w.bytes + sizeof(header);

	uint64_t mem_hash = 0, mem_bytes = 0;
	snprintf(path, sizeof(path), "%s/memory.bin", dir);
	if (!w.failed && snapshot_memory_save(m->mem.base, m->mem.ram_size, path, &mem_hash,
					      &mem_bytes, why, whylen) < 0)
		w.failed = true;
	/* Disks are fingerprinted before any worker may write again. */
	json_object *machine = config_json(m, &w);
	quiesce_devices(m, false);
	json_object *manifest = json_object_new_object();
	json_object_object_add(manifest, "format", json_object_new_string("nestvm-snapshot"));
	json_object_object_add(manifest, "version", json_object_new_int(SNAPSHOT_VERSION));
	json_object_object_add(manifest, "nestvm", json_object_new_string(NESTVM_VERSION));
	json_object_object_add(manifest, "machine", machine);
	json_object *files = json_object_new_object();
	json_object *f = json_object_new_object();
	json_object_object_add(f, "bytes", json_object_new_int64((int64_t)state_bytes));
	json_object_object_add(f, "fnv1a64", hex64(state_hash));
	json_object_object_add(files, "state.bin", f);
	f = json_object_new_object();
	json_object_object_add(f, "size", json_object_new_int64((int64_t)m->mem.ram_size));
	json_object_object_add(f, "data_bytes", json_object_new_int64((int64_t)mem_bytes));
	json_object_object_add(f, "fnv1a64", hex64(mem_hash));
	json_object_object_add(files, "memory.bin", f);
	json_object_object_add(manifest, "files", files);
	if (!w.failed) {
		const char *text = json_object_to_json_string_ext(
			manifest, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		char sig[2 * 32 + 2], sigwhy[256];
		bool is_signed = false;
		if (snapshot_dir_write(dir, "manifest.json", text, strlen(text), why, whylen) < 0)
			w.failed = true;
		else if (snapshot_sign(text, strlen(text), sig, sigwhy, sizeof(sigwhy)) == 0)
			is_signed = true;
		else
			log_warn("snapshot %s is not signed (%s): restoring it will need --trust if it "
				 "has disks or NICs", target, sigwhy);
		if (is_signed) {
			strcat(sig, "\n");
			if (snapshot_dir_write(dir, SNAPSHOT_SIGNATURE_FILE, sig, strlen(sig), why, whylen) < 0)
				w.failed = true;
		}
	}
	json_object_put(manifest);
	if (!w.failed && snapshot_dir_commit(dir, target, why, whylen) < 0)
		w.failed = true;
	if (w.failed) {
		snapshot_dir_abort(dir);
		return -1;
	}
	*bytes = state_bytes + mem_bytes;
	return 0;
}

/* --- reading ------------------------------------------------------------ */

/* Reads and checks dir/manifest.json; is_signed (if not NULL) tells
 * whether it carries this user's signature (vmm/snapshot_trust.h). */
static json_object *read_manifest(const char *dir, bool *is_signed)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	struct stat st;
	if (stat(path, &st) < 0) {
		log_error("snapshot %s: not a nestvm snapshot (no manifest.json)", dir);
		return NULL;
	}
	uint8_t *text = NULL;
	size_t len = 0;
	if (file_read_all("snapshot", path, 16 << 20, &text, &len) < 0)
		return NULL;
	json_tokener *tok = json_tokener_new();
	json_object *m = tok ? json_tokener_parse_ex(tok, (const char *)text, (int)len) : NULL;
	if (m && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(m);
		m = NULL;
	}
	if (tok)
		json_tokener_free(tok);
	if (is_signed) {
		char sigpath[PATH_MAX + 32];
		uint8_t *sig = NULL;
		size_t siglen = 0;
		snprintf(sigpath, sizeof(sigpath), "%s/" SNAPSHOT_SIGNATURE_FILE, dir);
		struct stat sst;
		*is_signed = false;
		if (stat(sigpath, &sst) == 0 &&
		    file_read_all("snapshot", sigpath, 4096, &sig, &siglen) == 0) {
			char hex[4097];
			memcpy(hex, sig, siglen);
			hex[siglen] = 0;
			*is_signed = snapshot_signed_by_user((const char *)text, len, hex);
		}
		free(sig);
	}
	free(text);
	json_object *v;
	if (!m || !json_object_is_type(m, json_type_object)) {
		log_error("snapshot %s: manifest.json is corrupted (not valid JSON)", dir);
		json_object_put(m);
		return NULL;
	}
	if (!json_object_object_get_ex(m, "format", &v) ||
	    strcmp(json_object_get_string(v), "nestvm-snapshot")) {
		log_error("snapshot %s: manifest.json is not a nestvm snapshot manifest", dir);
		json_object_put(m);
		return NULL;
	}
	if (!json_object_object_get_ex(m, "version", &v) || json_object_get_int(v) != SNAPSHOT_VERSION) {
		log_error("snapshot %s: format version %s; this nestvm reads version %d", dir,
			  v ? json_object_get_string(v) : "missing", SNAPSHOT_VERSION);
		json_object_put(m);
		return NULL;
	}
	return m;
}

/* json path helpers: NULL or the member of the expected type */
static json_object *member(json_object *o, const char *key, json_type type)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

static uint64_t parse_hex(json_object *v)
{
	return v ? strtoull(json_object_get_string(v), NULL, 16) : 0;
}

int snapshot_read_config(const char *dir, bool force, bool trust, struct machine_config *c)
{
	bool is_signed = false;
	json_object *man = read_manifest(dir, &is_signed);
	if (!man)
		return -1;
	json_object *mc = member(man, "machine", json_type_object);
	json_object *mem = member(mc, "memory_bytes", json_type_int);
	json_object *cpus = member(mc, "vcpus", json_type_int);
	json_object *disks = member(mc, "disks", json_type_array);
	json_object *nics = member(mc, "nics", json_type_array);
	if (!mem || !cpus || !disks || !nics || json_object_get_int64(mem) <= 0 ||
	    json_object_get_int(cpus) < 1 || json_object_get_int(cpus) > 1024 ||
	    json_object_array_length(disks) > MACHINE_MAX_DISKS ||
	    json_object_array_length(nics) > MACHINE_MAX_NICS) {
		log_error("snapshot %s: manifest.json is corrupted (machine section)", dir);
		json_object_put(man);
		return -1;
	}
	/* Disks and taps are opened for the guest: only a manifest this user
	 * signed, or one the user vouches for, may name them. */
	if (!is_signed && !trust &&
	    (json_object_array_length(disks) > 0 || json_object_array_length(nics) > 0)) {
		json_object *d0 = json_object_array_length(disks) > 0
					  ? member(json_object_array_get_idx(disks, 0), "path", json_type_string)
					  : NULL;
		log_error("snapshot %s: it was not made by this user's nestvm (no valid signature with %s) "
			  "and it names %s%s; check them, then restore with --trust", dir, snapshot_key_path(),
			  d0 ? "disks to open, first " : "NICs to open",
			  d0 ? json_object_get_string(d0) : "");
		json_object_put(man);
		return -1;
	}
	c->ram_size = (uint64_t)json_object_get_int64(mem);
	c->ncpus = json_object_get_int(cpus);
	json_object *v;
	c->cores_per_socket = (v = member(mc, "cores_per_socket", json_type_int)) ? json_object_get_int(v) : 0;
	c->cpu_model = (v = member(mc, "cpu_model", json_type_string)) &&
				       !strcmp(json_object_get_string(v), "compat")
			       ? CPU_MODEL_COMPAT : CPU_MODEL_HOST;
	c->nested = (v = member(mc, "nested", json_type_boolean)) && json_object_get_boolean(v);
	c->test_device = (v = member(mc, "test_device", json_type_boolean)) && json_object_get_boolean(v);
	c->rng = (v = member(mc, "rng", json_type_boolean)) && json_object_get_boolean(v);
	int r = 0;
	c->ndisks = (int)json_object_array_length(disks);
	for (int i = 0; i < c->ndisks && r == 0; i++) {
		json_object *d = json_object_array_get_idx(disks, (size_t)i);
		json_object *path = member(d, "path", json_type_string);
		json_object *size = member(d, "size", json_type_int);
		if (!path || !size || strlen(json_object_get_string(path)) >= sizeof(c->disks[i].path)) {
			log_error("snapshot %s: manifest.json is corrupted (disk %d)", dir, i);
			r = -1;
			break;
		}
		struct virtio_blk_options *o = &c->disks[i];
		memset(o, 0, sizeof(*o));
		strcpy(o->path, json_object_get_string(path));
		o->readonly = (v = member(d, "readonly", json_type_boolean)) && json_object_get_boolean(v);
		if ((v = member(d, "serial", json_type_string)))
			snprintf(o->serial, sizeof(o->serial), "%s", json_object_get_string(v));
		uint64_t now_size, now_fp;
		if (snapshot_disk_fingerprint(o->path, &now_size, &now_fp) < 0) {
			log_error("snapshot %s: disk %s is missing or unreadable%s", dir, o->path,
				  force ? "" : " (the snapshot belongs to it)");
			r = -1;
		} else if (now_size != (uint64_t)json_object_get_int64(size) ||
			   now_fp != parse_hex(member(d, "fingerprint", json_type_string))) {
			if (force) {
				log_warn("snapshot %s: disk %s changed since the snapshot; restoring anyway (--force)",
					 dir, o->path);
			} else {
				log_error("snapshot %s: disk %s changed since the snapshot (%s); "
					  "restore with --force to use it anyway", dir, o->path,
					  now_size != (uint64_t)json_object_get_int64(size) ? "size" : "content");
				r = -1;
			}
		}
	}
	c->nnics = (int)json_object_array_length(nics);
	for (int i = 0; i < c->nnics && r == 0; i++) {
		json_object *n = json_object_array_get_idx(nics, (size_t)i);
		json_object *tap = member(n, "tap", json_type_string);
		json_object *mac = member(n, "mac", json_type_string);
		char spec[128];
		snprintf(spec, sizeof(spec), "tap=%s,mac=%s", tap ? json_object_get_string(tap) : "",
			 mac ? json_object_get_string(mac) : "");
		if (!tap || !mac || virtio_net_parse(spec, &c->nics[i]) < 0) {
			log_error("snapshot %s: manifest.json is corrupted (NIC %d)", dir, i);
			r = -1;
		}
	}
	json_object_put(man);
	return r;
}

static int restore_memory(struct machine *m, const char *dir, json_object *meminfo)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/memory.bin", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_error("snapshot %s: memory.bin: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size != m->mem.ram_size) {
		log_error("snapshot %s: memory.bin is truncated or the wrong size (%lld bytes, expected %llu)",
			  dir, (long long)st.st_size, (unsigned long long)m->mem.ram_size);
		close(fd);
		return -1;
	}
	uint64_t h = 0;
	int r = snapshot_memory_load(m->mem.base, m->mem.ram_size, fd, &h);
	close(fd);
	if (r == 0 && h != parse_hex(member(meminfo, "fnv1a64", json_type_string))) {
		log_error("snapshot %s: memory.bin is corrupted (checksum mismatch)", dir);
		r = -1;
	} else if (r < 0) {
		log_error("snapshot %s: memory.bin: read error", dir);
	}
	return r;
}

struct record {
	uint32_t tag, index;
	uint64_t len;
	const uint8_t *data;
};

static const struct record *find(const struct record *recs, size_t n, uint32_t tag, uint32_t index)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i].tag == tag && recs[i].index == index)
			return &recs[i];
	return NULL;
}

/* Copies a record of exactly len bytes into dst; a missing or wrongly
 * sized record means a corrupted snapshot. */
static int take(const char *dir, const struct record *r, void *dst, uint64_t len, const char *what)
{
	if (!r || r->len != len) {
		log_error("snapshot %s: state.bin is corrupted (%s %s)", dir, what,
			  r ? "has the wrong size" : "is missing");
		return -1;
	}
	memcpy(dst, r->data, len);
	return 0;
}

#ifndef MSR_IA32_TSC_DEADLINE
#define MSR_IA32_TSC_DEADLINE 0x6e0
#endif

/* KVM_SET_MSRS stops at the first MSR it refuses and says how many it
 * set: each refused one is named and skipped, and the rest still go in
 * (a snapshot from a host whose KVM knew more MSRs restores all it can). */
static int restore_msrs(struct kvm_cpu *cpu, const struct kvm_msr_entry *entries, uint32_t n)
{
	struct kvm_msrs *batch = malloc(sizeof(*batch) + (n ? n : 1) * sizeof(entries[0]));
	if (!batch)
		return -1;
	int r = 0;
	for (uint32_t done = 0; done < n;) {
		batch->nmsrs = n - done;
		batch->pad = 0;
		memcpy(batch->entries, entries + done, batch->nmsrs * sizeof(entries[0]));
		int set = kvm_cpu_ioctl(cpu, KVM_SET_MSRS, batch, "KVM_SET_MSRS");
		if (set < 0) {
			r = -1;
			break;
		}
		done += (uint32_t)set;
		if (done < n) {
			log_warn("vCPU %d: this host's KVM refused MSR 0x%x from the snapshot; "
				 "the other MSRs are restored", cpu->index, entries[done].index);
			done++;
		}
	}
	free(batch);
	return r;
}

static int restore_vcpu(struct machine *m, const char *dir, const struct record *recs, size_t n,
			struct kvm_cpu *cpu)
{
	uint32_t i = (uint32_t)cpu->index;
	const struct record *r;
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_xcrs xcrs;
		struct kvm_lapic_state lapic;
		struct kvm_vcpu_events events;
		struct kvm_mp_state mp;
		struct kvm_debugregs debug;
	} u;
	/* KVM's own selftests restore in this order; the nested state goes
	 * last, once EFER and the rest of L1's view are in place. */
	if (take(dir, find(recs, n, T_SREGS, i), &u.sregs, sizeof(u.sregs), "special registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_SREGS, &u.sregs, "KVM_SET_SREGS") < 0)
		return -1;
	/* Records sit at any offset in state.bin: fields are copied out, never
	 * read through a cast pointer (that would be a misaligned access). */
	r = find(recs, n, T_MSRS, i);
	uint32_t nmsrs = 0;
	if (r && r->len >= sizeof(struct kvm_msrs))
		memcpy(&nmsrs, r->data + offsetof(struct kvm_msrs, nmsrs), sizeof(nmsrs));
	if (!r || r->len < sizeof(struct kvm_msrs) ||
	    r->len != sizeof(struct kvm_msrs) + (uint64_t)nmsrs * sizeof(struct kvm_msr_entry)) {
		log_error("snapshot %s: state.bin is corrupted (MSRs)", dir);
		return -1;
	}
	struct kvm_msrs *msrs = malloc(r->len);
	if (!msrs)
		return -1;
	memcpy(msrs, r->data, r->len);
	/* IA32_TSC_DEADLINE goes in after the local APIC: KVM ignores it
	 * unless the APIC timer is already in TSC-deadline mode, and the
	 * restored guest's armed timer would never fire (QEMU writes it last
	 * too). It is moved to the end of the list. */
	uint32_t deadline_at = nmsrs;
	for (uint32_t k = 0; k < nmsrs; k++)
		if (msrs->entries[k].index == MSR_IA32_TSC_DEADLINE) {
			struct kvm_msr_entry e = msrs->entries[k];
			memmove(&msrs->entries[k], &msrs->entries[k + 1],
				(nmsrs - k - 1) * sizeof(e));
			msrs->entries[nmsrs - 1] = e;
			deadline_at = nmsrs - 1;
			break;
		}
	int set = restore_msrs(cpu, msrs->entries, deadline_at);
	if ((r = find(recs, n, T_XCRS, i))) {
		if (set < 0 || take(dir, r, &u.xcrs, sizeof(u.xcrs), "XCRs") < 0 ||
		    kvm_cpu_ioctl(cpu, KVM_SET_XCRS, &u.xcrs, "KVM_SET_XCRS") < 0)
			set = -1;
	}
	if (set < 0) {
		free(msrs);
		return -1;
	}
	r = find(recs, n, T_XSAVE, i);
	if (!r || r->len < sizeof(struct kvm_xsave)) {
		log_error("snapshot %s: state.bin is corrupted (XSAVE area)", dir);
		free(msrs);
		return -1;
	}
	int xsave_size = kvm_host_cap(&m->host, KVM_CAP_XSAVE2);
	if (xsave_size < (int)sizeof(struct kvm_xsave))
		xsave_size = sizeof(struct kvm_xsave);
	void *xsave = calloc(1, (size_t)xsave_size > r->len ? (size_t)xsave_size : r->len);
	if (!xsave) {
		free(msrs);
		return -1;
	}
	memcpy(xsave, r->data, r->len);
	set = kvm_cpu_ioctl(cpu, KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE");
	free(xsave);
	if (set >= 0 &&
	    (take(dir, find(recs, n, T_LAPIC, i), &u.lapic, sizeof(u.lapic), "local APIC") < 0 ||
	     kvm_cpu_ioctl(cpu, KVM_SET_LAPIC, &u.lapic, "KVM_SET_LAPIC") < 0))
		set = -1;
	if (set >= 0 && deadline_at < nmsrs)
		set = restore_msrs(cpu, msrs->entries + deadline_at, 1);
	free(msrs);
	if (set < 0 ||
	    take(dir, find(recs, n, T_EVENTS, i), &u.events, sizeof(u.events), "events") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_VCPU_EVENTS, &u.events, "KVM_SET_VCPU_EVENTS") < 0 ||
	    take(dir, find(recs, n, T_MPSTATE, i), &u.mp, sizeof(u.mp), "MP state") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_MP_STATE, &u.mp, "KVM_SET_MP_STATE") < 0 ||
	    take(dir, find(recs, n, T_DEBUGREGS, i), &u.debug, sizeof(u.debug), "debug registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_DEBUGREGS, &u.debug, "KVM_SET_DEBUGREGS") < 0 ||
	    take(dir, find(recs, n, T_REGS, i), &u.regs, sizeof(u.regs), "registers") < 0 ||
	    kvm_cpu_ioctl(cpu, KVM_SET_REGS, &u.regs, "KVM_SET_REGS") < 0)
		return -1;
	if ((r = find(recs, n, T_NESTED, i))) {
		struct kvm_nested_state header, *ns = &header;
		int max = kvm_host_cap(&m->host, KVM_CAP_NESTED_STATE);
		if (r->len >= sizeof(header))
			memcpy(&header, r->data, sizeof(header));
		if (r->len < sizeof(*ns) || ns->size != r->len) {
			log_error("snapshot %s: state.bin is corrupted (nested state)", dir);
			return -1;
		}
		if (max <= 0 || r->len > (uint64_t)max) {
			if (ns->flags & KVM_STATE_NESTED_GUEST_MODE) {
				log_error("snapshot %s: vCPU %u was running a nested guest, and this "
					  "host's KVM cannot restore nested state", dir, i);
				return -1;
			}
		} else {
			void *copy = malloc(r->len);
			if (!copy)
				return -1;
			memcpy(copy, r->data, r->len);
			set = kvm_cpu_ioctl(cpu, KVM_SET_NESTED_STATE, copy, "KVM_SET_NESTED_STATE");
			free(copy);
			if (set < 0)
				return -1;
		}
	}
	return 0;
}

static int restore_devices(struct machine *m, const char *dir, const struct record *recs, size_t n)
{
#define TAKE_RANGE(obj, first, last, tag, what) \
	take(dir, find(recs, n, tag, 0), (uint8_t *)&(obj)->first, \
	     offsetof(__typeof__(*(obj)), last) + sizeof((obj)->last) - offsetof(__typeof__(*(obj)), first), what)
	if (TAKE_RANGE(&m->com1, ier, rx_count, T_SERIAL, "serial port") < 0 ||
	    TAKE_RANGE(&m->rtc, index, cmos, T_RTC, "RTC") < 0 ||
	    TAKE_RANGE(&m->pm, sts, sci_level, T_ACPI_PM, "ACPI PM") < 0 ||
	    (m->config.test_device && TAKE_RANGE(&m->testdev, scratch, writes, T_TESTDEV, "test device") < 0) ||
	    take(dir, find(recs, n, T_PCI_ADDRESS, 0), &m->pci.address, sizeof(m->pci.address), "PCI") < 0)
		return -1;
#undef TAKE_RANGE
	/* The guest's next CMOS access indexes cmos[] with it: an index past
	 * the array would let a crafted snapshot write into nestvm's memory
	 * (the checksums catch accidents, not intent). */
	if (m->rtc.index >= sizeof(m->rtc.cmos)) {
		log_error("snapshot %s: state.bin is corrupted (RTC index %u out of range)", dir,
			  m->rtc.index);
		return -1;
	}
	if (m->com1.rx_head >= SERIAL_RX_FIFO || m->com1.rx_count > SERIAL_RX_FIFO) {
		log_error("snapshot %s: state.bin is corrupted (serial FIFO)", dir);
		return -1;
	}
	if (m->pm.sci_level)
		kvm_guest_irq_line(&m->kvm, ACPI_SCI_IRQ, 1);
	for (uint32_t s = 1; s < PCI_SLOTS; s++) {
		struct pci_device *dev = m->pci.slots[s];
		if (dev && take(dir, find(recs, n, T_PCI_CONFIG, s), dev->config, 256, "PCI configuration") < 0)
			return -1;
	}
	struct virtio_dev *vd;
	for (int k = 0; (vd = virtio_at(m, k)); k++) {
		struct virtio_pci_state st;
		if (take(dir, find(recs, n, T_VIRTIO, (uint32_t)k), &st, sizeof(st), "virtio device") < 0 ||
		    virtio_pci_load(vd, &st) < 0)
			return -1;
	}
	return 0;
}

int snapshot_restore(struct machine *m, const char *dir)
{
	json_object *man = read_manifest(dir, NULL);
	if (!man)
		return -1;
	json_object *files = member(man, "files", json_type_object);
	json_object *stinfo = member(files, "state.bin", json_type_object);
	int r = restore_memory(m, dir, member(files, "memory.bin", json_type_object));
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/state.bin", dir);
	uint8_t *data = NULL;
	size_t size = 0;
	struct record *recs = NULL;
	size_t nrecs = 0;
	if (r == 0) {
		FILE *f = fopen(path, "rbe");
		struct stat st;
		if (!f || fstat(fileno(f), &st) < 0 || !(data = malloc((size_t)st.st_size + 1)) ||
		    fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
			log_error("snapshot %s: state.bin: %s", dir, f ? "read error" : strerror(errno));
			r = -1;
		} else {
			size = (size_t)st.st_size;
		}
		if (f)
			fclose(f);
	}
	if (r == 0) {
		uint64_t h = fnv1a64_update(FNV1A64_SEED, data, size);
		uint32_t version = 0;
		if (size >= 16)
			memcpy(&version, data + 8, 4);
		if (size < 16 || memcmp(data, STATE_MAGIC, 8)) {
			log_error("snapshot %s: state.bin is not nestvm state", dir);
			r = -1;
		} else if (version != SNAPSHOT_VERSION) {
			log_error("snapshot %s: state.bin has version %u; this nestvm reads version %d",
				  dir, version, SNAPSHOT_VERSION);
			r = -1;
		} else if (h != parse_hex(member(stinfo, "fnv1a64", json_type_string))) {
			log_error("snapshot %s: state.bin is corrupted or truncated (checksum mismatch)", dir);
			r = -1;
		}
	}
	/* Index the records, checking every length against what is left. */
	for (size_t off = 16; r == 0 && off < size;) {
		struct record_header h;
		if (size - off < sizeof(h)) {
			log_error("snapshot %s: state.bin is truncated", dir);
			r = -1;
			break;
		}
		memcpy(&h, data + off, sizeof(h));
		off += sizeof(h);
		if (h.len > size - off) {
			log_error("snapshot %s: state.bin is truncated", dir);
			r = -1;
			break;
		}
		struct record *grown = realloc(recs, (nrecs + 1) * sizeof(*recs));
		if (!grown) {
			r = -1;
			break;
		}
		recs = grown;
		recs[nrecs++] = (struct record){ h.tag, h.index, h.len, data + off };
		off += h.len;
	}
	if (r == 0) {
		struct kvm_irqchip ic;
		struct kvm_pit_state2 pit;
		struct kvm_clock_data clock;
		for (uint32_t chip = 0; chip < 3 && r == 0; chip++)
			if (take(dir, find(recs, nrecs, T_IRQCHIP, chip), &ic, sizeof(ic), "irqchip") < 0 ||
			    ic.chip_id != chip ||
			    kvm_guest_ioctl(&m->kvm, KVM_SET_IRQCHIP, &ic, "KVM_SET_IRQCHIP") < 0)
				r = -1;
		if (r == 0 && (take(dir, find(recs, nrecs, T_PIT2, 0), &pit, sizeof(pit), "PIT") < 0 ||
			       kvm_guest_ioctl(&m->kvm, KVM_SET_PIT2, &pit, "KVM_SET_PIT2") < 0))
			r = -1;
		for (int i = 0; i < m->config.ncpus && r == 0; i++)
			r = restore_vcpu(m, dir, recs, nrecs, &m->vcpus[i].cpu);
		if (r == 0 && (take(dir, find(recs, nrecs, T_CLOCK, 0), &clock, sizeof(clock), "clock") < 0 ||
			       kvm_guest_ioctl(&m->kvm, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK") < 0))
			r = -1;
		if (r == 0)
			r = restore_devices(m, dir, recs, nrecs);
	}
	free(recs);
	free(data);
	json_object_put(man);
	return r;
}
