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

#include "block/disk.h"
#include "boot/acpi.h"
#include "util/hash.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/snapshot_cpu.h"
#include "vmm/snapshot_dir.h"
#include "vmm/snapshot_format.h"
#include "vmm/snapshot_memory.h"
#include "vmm/snapshot_trust.h"
#include "util/file.h"

/* --- devices ------------------------------------------------------------ */

/* Each device of the machine's table as one record: its kind, then what
 * its own save wrote. Devices are quiesced by the caller. */
static void save_devices(struct state_writer *w, struct machine *m)
{
	for (int i = 0; i < m->devices.n && !w->failed; i++) {
		const struct device *d = &m->devices.devices[i];
		if (!d->ops->save)
			continue;
		struct state_out out = { 0 };
		state_device_begin(&out, d->ops->kind);
		if (d->ops->save(d->dev, &out, w->why, w->whylen) < 0)
			w->failed = true;
		else if (out.failed)
			state_writer_fail(w, "out of memory saving %s", d->name);
		state_put_record(w, T_DEVICE, (uint32_t)i, out.buf, out.len);
		state_out_free(&out);
	}
}

/* Device workers must not touch guest memory or queue state while the
 * snapshot is taken (a frame arriving on a tap would): the table quiesces
 * each device in order, the PCI bus (its lock) first and then every
 * device, which lets its request in flight finish and holds its lock;
 * the order the vCPU paths take those locks in. */
static void quiesce_devices(struct machine *m, bool hold)
{
	if (hold)
		device_table_quiesce(&m->devices);
	else
		device_table_unquiesce(&m->devices);
}

/* Loads each device's record into the freshly built machine, in table
 * order (the PCI bus before the devices behind it). */
static int restore_devices(struct machine *m, const char *dir, const struct state_records *recs)
{
	for (int i = 0; i < m->devices.n; i++) {
		const struct device *d = &m->devices.devices[i];
		if (!d->ops->load)
			continue;
		const struct state_record *r = state_find(recs, T_DEVICE, (uint32_t)i);
		if (!r) {
			log_error("snapshot %s: state.bin is corrupted (no record for %s)", dir, d->name);
			return -1;
		}
		struct state_in in;
		if (state_device_fields(r, d->ops->kind, &in) < 0) {
			log_error("snapshot %s: state.bin is corrupted (device %d is not a %s, as %s is)",
				  dir, i, d->ops->kind, d->name);
			return -1;
		}
		if (d->ops->load(d->dev, &in) < 0) {
			log_error("snapshot %s: state.bin is corrupted (%s: %s)", dir, d->name,
				  in.why[0] ? in.why : "refused");
			return -1;
		}
	}
	return 0;
}

static json_object *config_json(struct machine *m, struct state_writer *w)
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
	char uuid[37];
	smbios_format_uuid(c->identity.uuid, uuid);
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "smbios_serial", json_object_new_string(c->identity.serial));
	json_object *disks = json_object_new_array();
	for (int i = 0; i < c->ndisks; i++) {
		json_object *d = json_object_new_object();
		char abs[PATH_MAX];
		const char *p = realpath(c->disks[i].path, abs) ? abs : c->disks[i].path;
		uint64_t size = 0, fp = 0;
		/* Flush first: the fingerprint is of what the image holds, and a
		 * snapshot is only as durable as its disks. */
		if (!c->disks[i].readonly && m->disks[i]->disk->ops->flush(m->disks[i]->disk) < 0)
			state_writer_fail(w, "--disk %s: flush failed: %s", p, strerror(errno));
		if (snapshot_disk_fingerprint(p, &size, &fp) < 0)
			state_writer_fail(w, "--disk %s: cannot read it for its fingerprint", p);
		char hex[17];
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)fp);
		json_object_object_add(d, "path", json_object_new_string(p));
		json_object_object_add(d, "readonly", json_object_new_boolean(c->disks[i].readonly));
		json_object_object_add(d, "serial", json_object_new_string(c->disks[i].serial));
		json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(d, "fingerprint", json_object_new_string(hex));
		struct snapshot_disk_layer layers[DISK_MAX_BACKING];
		int n = snapshot_disk_chain(m->disks[i]->disk, layers, DISK_MAX_BACKING);
		if (n < 0)
			state_writer_fail(w, "--disk %s: cannot examine its backing files", p);
		json_object *chain = json_object_new_array();
		for (int k = 0; k < n; k++) {
			json_object *l = json_object_new_object();
			json_object_object_add(l, "path", json_object_new_string(layers[k].path));
			json_object_object_add(l, "size", json_object_new_int64((int64_t)layers[k].size));
			json_object_object_add(l, "mtime_ns", json_object_new_int64(layers[k].mtime_ns));
			json_object_object_add(l, "inode", json_object_new_int64((int64_t)layers[k].inode));
			json_object_array_add(chain, l);
		}
		json_object_object_add(d, "backing", chain);
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	json_object *nics = json_object_new_array();
	for (int i = 0; i < c->nnics; i++) {
		json_object *n = json_object_new_object();
		char mac[18];
		const uint8_t *a = m->nics[i]->opt.mac;
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
		if (c->nics[i].switch_path[0]) {
			json_object_object_add(n, "switch", json_object_new_string(c->nics[i].switch_path));
			if (c->nics[i].port[0])
				json_object_object_add(n, "port", json_object_new_string(c->nics[i].port));
		} else {
			json_object_object_add(n, "tap", json_object_new_string(c->nics[i].ifname));
		}
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
	struct state_writer w = { .hash = FNV1A64_SEED, .why = why, .whylen = whylen };
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
	state_write_header(&w, SNAPSHOT_VERSION);
	size_t bufsize = 1 << 20;
	void *buf = calloc(1, bufsize);
	if (!buf)
		state_writer_fail(&w, "out of memory");
	quiesce_devices(m, true);
	snapshot_save_vm(&w, &m->kvm);
	for (int i = 0; i < m->config.ncpus && !w.failed; i++)
		snapshot_save_vcpu(&w, &m->host, &m->vcpus[i].cpu, buf, bufsize);
	save_devices(&w, m);
	free(buf);
	if (fflush(w.f) != 0 || fsync(fileno(w.f)) < 0)
		state_writer_fail(&w, "%s: %s", path, strerror(errno));
	fclose(w.f);
	uint64_t state_hash = w.hash, state_bytes = w.bytes;

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

/* The images below a disk are the ones the snapshot recorded: a linked
 * clone restored over a template that changed would read a mix of both. */
static int check_chain(const char *dir, const char *path, json_object *recorded, bool force)
{
	if (!recorded)
		return 0; /* a snapshot from before chains were recorded */
	char name[PATH_MAX + 64];
	snprintf(name, sizeof(name), "snapshot %s: disk %s", dir, path);
	struct disk *d = disk_open(name, path, true);
	if (!d)
		return -1;
	struct snapshot_disk_layer now[DISK_MAX_BACKING];
	int n = snapshot_disk_chain(d, now, DISK_MAX_BACKING);
	disk_close(d);
	const char *what = NULL, *which = "";
	if (n < 0) {
		log_error("snapshot %s: disk %s: its backing files cannot be examined", dir, path);
		return -1;
	}
	if ((size_t)n != json_object_array_length(recorded)) {
		if (force) {
			log_warn("snapshot %s: disk %s: its chain of backing files changed since the "
				 "snapshot; restoring anyway (--force)", dir, path);
			return 0;
		}
		log_error("snapshot %s: disk %s: its chain of backing files changed since the snapshot "
			  "(%d deep, was %d); restore with --force to use it anyway", dir, path, n,
			  (int)json_object_array_length(recorded));
		return -1;
	} else {
		for (int k = 0; k < n && !what; k++) {
			json_object *l = json_object_array_get_idx(recorded, (size_t)k);
			json_object *p = member(l, "path", json_type_string);
			json_object *size = member(l, "size", json_type_int);
			json_object *mtime = member(l, "mtime_ns", json_type_int);
			json_object *inode = member(l, "inode", json_type_int);
			which = now[k].path;
			if (!p || strcmp(json_object_get_string(p), now[k].path))
				what = "is not the backing file it had";
			else if (!size || (uint64_t)json_object_get_int64(size) != now[k].size)
				what = "changed size";
			else if (!mtime || json_object_get_int64(mtime) != now[k].mtime_ns)
				what = "was modified";
			else if (!inode || (uint64_t)json_object_get_int64(inode) != now[k].inode)
				what = "was replaced by another file";
		}
	}
	if (!what)
		return 0;
	if (force) {
		log_warn("snapshot %s: disk %s: backing file %s %s since the snapshot; restoring anyway "
			 "(--force)", dir, path, which, what);
		return 0;
	}
	log_error("snapshot %s: disk %s: backing file %s %s since the snapshot; restore with --force "
		  "to use it anyway", dir, path, which, what);
	return -1;
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
	/* The CPUID topology shifts by its bit width: bounded like --cores-per-socket. */
	if (c->cores_per_socket < 0 || c->cores_per_socket > c->ncpus) {
		log_error("snapshot %s: manifest.json is corrupted (cores_per_socket %d with %d vCPUs)",
			  dir, c->cores_per_socket, c->ncpus);
		json_object_put(man);
		return -1;
	}
	c->cpu_model = (v = member(mc, "cpu_model", json_type_string)) &&
				       !strcmp(json_object_get_string(v), "compat")
			       ? CPU_MODEL_COMPAT : CPU_MODEL_HOST;
	c->nested = (v = member(mc, "nested", json_type_boolean)) && json_object_get_boolean(v);
	c->test_device = (v = member(mc, "test_device", json_type_boolean)) && json_object_get_boolean(v);
	c->rng = (v = member(mc, "rng", json_type_boolean)) && json_object_get_boolean(v);
	/* The identity a reboot's tables show again (the tables in memory
	 * came with the snapshot). */
	if (!(v = member(mc, "uuid", json_type_string)) ||
	    smbios_parse_uuid(json_object_get_string(v), c->identity.uuid) < 0)
		smbios_random_uuid(c->identity.uuid);
	if ((v = member(mc, "smbios_serial", json_type_string)))
		snprintf(c->identity.serial, sizeof(c->identity.serial), "%s",
			 json_object_get_string(v));
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
		if (r == 0 && check_chain(dir, o->path, member(d, "backing", json_type_array), force) < 0)
			r = -1;
	}
	c->nnics = (int)json_object_array_length(nics);
	for (int i = 0; i < c->nnics && r == 0; i++) {
		json_object *n = json_object_array_get_idx(nics, (size_t)i);
		json_object *tap = member(n, "tap", json_type_string);
		json_object *sw = member(n, "switch", json_type_string);
		json_object *port = member(n, "port", json_type_string);
		json_object *mac = member(n, "mac", json_type_string);
		char spec[512];
		if (sw)
			snprintf(spec, sizeof(spec), "switch=%s%s%s,mac=%s", json_object_get_string(sw),
				 port ? ",port=" : "", port ? json_object_get_string(port) : "",
				 mac ? json_object_get_string(mac) : "");
		else
			snprintf(spec, sizeof(spec), "tap=%s,mac=%s", tap ? json_object_get_string(tap) : "",
				 mac ? json_object_get_string(mac) : "");
		if ((!tap && !sw) || !mac || virtio_net_parse(spec, &c->nics[i]) < 0) {
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
	/* The checksum first: a file damaged anywhere is reported as such,
	 * before its header or records are looked at. */
	if (r == 0 && fnv1a64_update(FNV1A64_SEED, data, size) !=
			      parse_hex(member(stinfo, "fnv1a64", json_type_string))) {
		log_error("snapshot %s: state.bin is corrupted or truncated (checksum mismatch)", dir);
		r = -1;
	}
	struct state_records recs = { 0 };
	char why[256];
	if (r == 0 && state_parse(data, size, SNAPSHOT_VERSION, &recs, why, sizeof(why)) < 0) {
		log_error("snapshot %s: %s", dir, why);
		r = -1;
	}
	if (r == 0)
		r = snapshot_restore_chips(dir, &m->kvm, &recs);
	for (int i = 0; i < m->config.ncpus && r == 0; i++)
		r = snapshot_restore_vcpu(dir, &m->host, &recs, &m->vcpus[i].cpu);
	if (r == 0)
		r = snapshot_restore_clock(dir, &m->kvm, &recs);
	if (r == 0)
		r = restore_devices(m, dir, &recs);
	state_records_free(&recs);
	free(data);
	json_object_put(man);
	return r;
}
