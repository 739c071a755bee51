#define _GNU_SOURCE
#include "virtio/blk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/disk.h"
#include "util/log.h"
#include "virtio/request_pool.h"

#define VIRTIO_ID_BLOCK 2

#define VIRTIO_BLK_F_SIZE_MAX     (1ULL << 1)
#define VIRTIO_BLK_F_SEG_MAX      (1ULL << 2)
#define VIRTIO_BLK_F_RO           (1ULL << 5)
#define VIRTIO_BLK_F_FLUSH        (1ULL << 9)
#define VIRTIO_BLK_F_DISCARD      (1ULL << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ULL << 14)

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR 512
/* Requests at once: QEMU's thread pool goes to 64; a lab host's disk is
 * mostly its page cache, where 16 already keep the guest's queue busy. */
#define BLK_THREADS 16
#define BLK_SLOTS 64
/* What one request may ask for, advertised and enforced: at most SEG_MAX
 * data buffers of at most SIZE_MAX_BYTES each. A request runs to its end
 * once taken from the ring (a reset or a snapshot waits for every one
 * taken, BLK_SLOTS at most), so its size bounds that wait; without these a chain of 1024 buffers, each as large as guest
 * RAM, could read about 1024x RAM from a sparse disk in one go. */
#define SEG_MAX 254
#define SIZE_MAX_BYTES (1u << 20)
#define MAX_ZERO_SECTORS (1u << 18)  /* 128 MiB per discard/write-zeroes */
/* The used ring's length field is 32 bits; a read's length must fit. */
_Static_assert((uint64_t)SEG_MAX * SIZE_MAX_BYTES < UINT32_MAX, "request length fits the used ring");

struct __attribute__((packed)) blk_config {
	uint64_t capacity;
	uint32_t size_max, seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp, alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback, unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors, max_discard_seg, discard_sector_alignment;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap, unused1[3];
};
_Static_assert(sizeof(struct blk_config) == 60, "virtio_blk_config layout");

struct __attribute__((packed)) blk_req_header {
	uint32_t type, reserved;
	uint64_t sector;
};

struct __attribute__((packed)) blk_zero_segment {
	uint64_t sector;
	uint32_t num_sectors, flags;
};

int virtio_blk_parse(const char *spec, struct virtio_blk_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	char *copy = strdup(spec);
	if (!copy) {
		log_error("--disk: out of memory");
		return -1;
	}
	int r = 0;
	char *save = NULL;
	char *path = strtok_r(copy, ",", &save);
	if (!path || !*path || spec[0] == ',') {
		log_error("--disk %s: expected PATH[,readonly][,serial=ID]", spec);
		r = -1;
	} else if (strlen(path) >= sizeof(opt->path)) {
		log_error("--disk %s: path too long", spec);
		r = -1;
	} else {
		strcpy(opt->path, path);
	}
	for (char *o; r == 0 && (o = strtok_r(NULL, ",", &save));) {
		if (!strcmp(o, "readonly") || !strcmp(o, "ro")) {
			opt->readonly = true;
		} else if (!strncmp(o, "serial=", 7)) {
			if (strlen(o + 7) > VIRTIO_BLK_ID_BYTES) {
				log_error("--disk %s: serial is longer than %d characters", spec,
					  VIRTIO_BLK_ID_BYTES);
				r = -1;
			} else {
				strcpy(opt->serial, o + 7);
			}
		} else {
			log_error("--disk %s: unknown option '%s' (expected readonly or serial=ID)",
				  spec, o);
			r = -1;
		}
	}
	free(copy);
	return r;
}

int virtio_blk_open(struct virtio_blk *blk, const struct virtio_blk_options *opt)
{
	blk->opt = *opt;
	atomic_init(&blk->sync_failed, false);
	blk->pool = NULL;
	snprintf(blk->name, sizeof(blk->name), "--disk %s", opt->path);
	blk->disk = disk_open(blk->name, opt->path, opt->readonly);
	if (!blk->disk)
		return -1;
	uint64_t bytes = blk->disk->size;
	if (bytes % SECTOR)
		log_warn("--disk %s: size is not a multiple of %d bytes; the last %" PRIu64
			 " bytes are not visible to the guest", opt->path, SECTOR, bytes % SECTOR);
	blk->sectors = bytes / SECTOR;
	return 0;
}

void virtio_blk_close(struct virtio_blk *blk)
{
	disk_close(blk->disk);
	blk->disk = NULL;
}

/* Does a request's data (as iov_slice gave it) keep to the limits we
 * advertise: at most SEG_MAX buffers, none over SIZE_MAX_BYTES? */
static bool within_limits(const struct iovec *data, unsigned n)
{
	if (n > SEG_MAX)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (data[i].iov_len > SIZE_MAX_BYTES)
			return false;
	return true;
}

static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t count = (bytes + SECTOR - 1) / SECTOR;
	return sector <= blk->sectors && count <= blk->sectors - sector;
}

static uint8_t zero_segments(struct virtio_blk *blk, const struct iovec *out, unsigned n_out,
			     uint64_t data_len, bool write_zeroes)
{
	if (blk->disk->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (data_len == 0 || data_len % sizeof(struct blk_zero_segment))
		return VIRTIO_BLK_S_IOERR;
	uint64_t count = data_len / sizeof(struct blk_zero_segment);
	if (count > 1)
		return VIRTIO_BLK_S_UNSUPP; /* we advertise one segment per request */
	struct blk_zero_segment seg;
	iov_to_buf(out, n_out, sizeof(struct blk_req_header), &seg, sizeof(seg));
	if ((seg.flags & ~1u) || seg.num_sectors > MAX_ZERO_SECTORS ||
	    !in_range(blk, seg.sector, (uint64_t)seg.num_sectors * SECTOR))
		return VIRTIO_BLK_S_IOERR;
	struct disk *d = blk->disk;
	return d->ops->zero(d, seg.sector * SECTOR, (uint64_t)seg.num_sectors * SECTOR, write_zeroes) == 0
		       ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
}

/* Makes every completed write durable. A failure is remembered: the
 * kernel may have dropped the dirty pages it could not write, so a later
 * fdatasync() that succeeds proves nothing about them; every later flush
 * fails too, as the guest must not believe that data is safe. */
static uint8_t sync_disk(struct virtio_blk *blk)
{
	if (atomic_load(&blk->sync_failed))
		return VIRTIO_BLK_S_IOERR;
	if (blk->disk->ops->flush(blk->disk) == 0)
		return VIRTIO_BLK_S_OK;
	int e = errno;
	if (!atomic_exchange(&blk->sync_failed, true))
		log_warn("%s: flush failed: %s; every later flush fails too", blk->name, strerror(e));
	return VIRTIO_BLK_S_IOERR;
}

/* A driver that did not negotiate FLUSH cannot ask for one, so it takes a
 * completed write as durable (virtio 1.x, 5.2.6.2): write through. */
static bool write_through(const struct virtio_blk *blk)
{
	return !(blk->vdev.driver_features & VIRTIO_BLK_F_FLUSH);
}

uint32_t virtio_blk_request(struct virtio_blk *blk, const struct virtq_chain *c)
{
	const struct iovec *out = c->iov, *in = c->iov + c->n_out;
	struct blk_req_header h;
	/* A request needs its header and a status byte to answer in. */
	if (c->out_len < sizeof(h) || c->in_len < 1)
		return 0;
	iov_to_buf(out, c->n_out, 0, &h, sizeof(h));
	uint64_t out_data = c->out_len - sizeof(h), in_data = c->in_len - 1;
	struct iovec data[VIRTQ_MAX_IOV];
	uint8_t status = VIRTIO_BLK_S_OK;
	uint32_t written = 0;
	switch (h.type) {
	case VIRTIO_BLK_T_IN: {
		if (out_data || in_data % SECTOR || !in_range(blk, h.sector, in_data)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		unsigned n = iov_slice(in, c->n_in, 0, in_data, data);
		if (!within_limits(data, n) ||
		    blk->disk->ops->read(blk->disk, data, n, h.sector * SECTOR) < 0)
			status = VIRTIO_BLK_S_IOERR;
		else
			written = (uint32_t)in_data;
		break;
	}
	case VIRTIO_BLK_T_OUT: {
		if (blk->disk->readonly || !blk->disk->ops->write || in_data || out_data % SECTOR ||
		    !in_range(blk, h.sector, out_data)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		unsigned n = iov_slice(out, c->n_out, sizeof(h), out_data, data);
		if (!within_limits(data, n) ||
		    blk->disk->ops->write(blk->disk, data, n, h.sector * SECTOR) < 0)
			status = VIRTIO_BLK_S_IOERR;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (!blk->disk->readonly)
			status = sync_disk(blk);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = { 0 };
		memcpy(id, blk->opt.serial, strnlen(blk->opt.serial, sizeof(id)));
		unsigned n = iov_slice(in, c->n_in, 0, in_data, data);
		written = (uint32_t)buf_to_iov(data, n, 0, id, sizeof(id));
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
		status = zero_segments(blk, out, c->n_out, out_data, false);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = zero_segments(blk, out, c->n_out, out_data, true);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
	}
	bool wrote = h.type == VIRTIO_BLK_T_OUT || h.type == VIRTIO_BLK_T_DISCARD ||
		     h.type == VIRTIO_BLK_T_WRITE_ZEROES;
	if (wrote && status == VIRTIO_BLK_S_OK && write_through(blk))
		status = sync_disk(blk);
	/* The status is the last byte of the writable part. */
	buf_to_iov(in, c->n_in, in_data, &status, 1);
	return written + 1;
}

static uint32_t handle_request(struct virtio_dev *vd, struct virtq_chain *chain)
{
	return virtio_blk_request(vd->opaque, chain);
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_blk *blk = vd->opaque;
	if (blk->pool)
		virtio_pool_serve(blk->pool, q);
	else
		virtio_serve_queue(vd, q, &blk->chain, handle_request);
}

static int start(struct virtio_dev *vd)
{
	struct virtio_blk *blk = vd->opaque;
	blk->pool = virtio_pool_create(vd, BLK_THREADS, BLK_SLOTS, handle_request);
	return blk->pool ? 0 : -1;
}

static void stop(struct virtio_dev *vd)
{
	struct virtio_blk *blk = vd->opaque;
	virtio_pool_destroy(blk->pool);
	blk->pool = NULL;
}

static void read_config(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = vd->opaque;
	struct blk_config c = {
		.capacity = blk->sectors,
		.size_max = SIZE_MAX_BYTES,
		.seg_max = SEG_MAX,
		.num_queues = 1,
		.max_discard_sectors = MAX_ZERO_SECTORS,
		.max_discard_seg = 1,
		.discard_sector_alignment = 4096 / SECTOR,
		.max_write_zeroes_sectors = MAX_ZERO_SECTORS,
		.max_write_zeroes_seg = 1,
		.write_zeroes_may_unmap = 1,
	};
	memcpy(data, (uint8_t *)&c + off, len);
}

/* The machine's device table destroys the transport, then this. */
static void release(struct virtio_dev *vd)
{
	struct virtio_blk *dev = vd->opaque;
	virtio_blk_close(dev);
	free(dev);
}

static const struct virtio_dev_ops blk_ops = {
	.read_config = read_config,
	.queue_notify = queue_notify,
	.start = start,
	.stop = stop,
	.release = release,
};

int virtio_blk_attach(struct virtio_blk *blk, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci)
{
	struct virtio_dev *vd = &blk->vdev;
	vd->name = blk->name;
	vd->device_type = VIRTIO_ID_BLOCK;
	vd->pci_class = 0x018000; /* mass storage, other */
	vd->features = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_INDIRECT_DESC | VIRTIO_F_RING_EVENT_IDX |
		       VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH |
		       (blk->disk->readonly ? VIRTIO_BLK_F_RO
					  : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES);
	vd->config_len = sizeof(struct blk_config);
	vd->num_queues = 1;
	vd->queue_max = VIRTQ_MAX_SIZE;
	vd->ops = &blk_ops;
	vd->opaque = blk;
	return virtio_pci_init(vd, kvm, mem, pci);
}
