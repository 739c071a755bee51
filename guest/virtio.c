/* A minimal virtio 1.x PCI driver for the tier-1 test guest, so that the
 * transport and the device data paths are exercised on any machine with
 * KVM in seconds, without a Linux guest. It does what a driver does, at
 * CPL3 (IOPL 3 for the configuration ports; BARs are identity-mapped):
 * finds the device through the PCI configuration ports, enables memory
 * decoding, walks the virtio capabilities, negotiates features, sets up
 * queue 0 and submits requests, polling the used ring (MSI-X stays off, so
 * the device raises no interrupt). Each step reports "ok: ..." or
 * "FAILED: ..." on COM1; the host side of the test checks the disk image. */
#include <stdint.h>

#include "guest.h"

#define PCI_ADDRESS 0xcf8
#define PCI_DATA    0xcfc

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_TYPE_BLK 2
#define VIRTIO_TYPE_RNG 4

#define CAP_VENDOR 0x09
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_DEVICE 4

/* virtio_pci_common_cfg (4.1.4.3) */
#define C_DFSELECT 0x00
#define C_DF       0x04
#define C_GFSELECT 0x08
#define C_GF       0x0c
#define C_STATUS   0x14
#define C_QSELECT  0x16
#define C_QSIZE    0x18
#define C_QENABLE  0x1c
#define C_QNOTIFY  0x1e
#define C_QDESC    0x20
#define C_QDRIVER  0x28
#define C_QDEVICE  0x30

#define S_ACKNOWLEDGE 1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64

#define F_INDIRECT_DESC (1u << 28)
#define F_BLK_FLUSH     (1u << 9)

#define D_NEXT     1
#define D_WRITE    2
#define D_INDIRECT 4

#define QSIZE 8

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct device {
	unsigned slot;
	volatile uint8_t *common, *device;
	uint64_t notify_base;
	uint32_t notify_mult;
};

/* Each queue's rings, in guest RAM (identity-mapped: virtual = physical). */
struct queue {
	struct desc desc[QSIZE] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[QSIZE], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
	uint16_t next_avail, next_used;
	volatile uint16_t *notify;
};
static struct queue queues[2];
/* Queue 0, which blk and rng use alone. */
#define ring_desc queues[0].desc

/* --- PCI configuration space ------------------------------------------ */

static uint32_t cfg_read32(unsigned slot, unsigned reg)
{
	outl(PCI_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl(PCI_DATA);
}

static uint8_t cfg_read8(unsigned slot, unsigned reg)
{
	return (uint8_t)(cfg_read32(slot, reg) >> (8 * (reg & 3)));
}

static void cfg_write32(unsigned slot, unsigned reg, uint32_t v)
{
	outl(PCI_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	outl(PCI_DATA, v);
}

static uint64_t bar_address(unsigned slot, unsigned bar)
{
	uint32_t lo = cfg_read32(slot, 0x10 + 4 * bar);
	uint64_t a = lo & ~0xfull;
	if ((lo & 6) == 4) /* 64-bit BAR */
		a |= (uint64_t)cfg_read32(slot, 0x14 + 4 * bar) << 32;
	return a;
}

/* Finds the virtio device of this type, turns on memory decoding and bus
 * mastering, and maps its capabilities. */
static int probe(struct device *d, unsigned type)
{
	unsigned slot;
	for (slot = 0; slot < 32; slot++) {
		uint32_t id = cfg_read32(slot, 0);
		if ((id & 0xffff) == VIRTIO_VENDOR && (id >> 16) == 0x1040 + type)
			break;
	}
	if (check(slot < 32, "virtio device found on the PCI bus"))
		return -1;
	d->slot = slot;
	cfg_write32(slot, 0x04, (cfg_read32(slot, 0x04) & 0xffff0000u) | 0x6);
	uint32_t notify_mult = 0;
	uint64_t notify = 0;
	d->common = d->device = 0;
	for (unsigned cap = cfg_read8(slot, 0x34); cap; cap = cfg_read8(slot, cap + 1)) {
		if (cfg_read8(slot, cap) != CAP_VENDOR)
			continue;
		unsigned kind = cfg_read8(slot, cap + 3), bar = cfg_read8(slot, cap + 4);
		uint64_t at = bar_address(slot, bar) + cfg_read32(slot, cap + 8);
		if (kind == CFG_COMMON)
			d->common = (volatile uint8_t *)at;
		else if (kind == CFG_DEVICE)
			d->device = (volatile uint8_t *)at;
		else if (kind == CFG_NOTIFY) {
			notify = at;
			notify_mult = cfg_read32(slot, cap + 16);
		}
	}
	if (check(d->common && notify, "common and notify capabilities"))
		return -1;
	d->notify_base = notify;
	d->notify_mult = notify_mult;
	return 0;
}

static uint8_t status(const struct device *d)
{
	return *(volatile uint8_t *)(d->common + C_STATUS);
}

static void set_status(struct device *d, uint8_t s)
{
	*(volatile uint8_t *)(d->common + C_STATUS) = s;
}

/* Reset, feature negotiation (3.1.1) and queue 0; returns the features
 * accepted, or 0 on failure. */
static uint32_t init(struct device *d, uint32_t want, unsigned nqueues)
{
	set_status(d, 0);
	if (check(status(d) == 0, "reset reads back 0"))
		return 0;
	set_status(d, S_ACKNOWLEDGE);
	set_status(d, S_ACKNOWLEDGE | S_DRIVER);
	volatile uint32_t *dfselect = (volatile uint32_t *)(d->common + C_DFSELECT);
	volatile uint32_t *df = (volatile uint32_t *)(d->common + C_DF);
	volatile uint32_t *gfselect = (volatile uint32_t *)(d->common + C_GFSELECT);
	volatile uint32_t *gf = (volatile uint32_t *)(d->common + C_GF);
	*dfselect = 1;
	if (check(*df & 1, "device offers VERSION_1"))
		return 0;
	*dfselect = 0;
	uint32_t features = *df & want;
	*gfselect = 0;
	*gf = features;
	*gfselect = 1;
	*gf = 1; /* VERSION_1 */
	set_status(d, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (check(status(d) & S_FEATURES_OK, "FEATURES_OK accepted"))
		return 0;

	for (unsigned qi = 0; qi < nqueues; qi++) {
		struct queue *q = &queues[qi];
		*(volatile uint16_t *)(d->common + C_QSELECT) = (uint16_t)qi;
		uint16_t max = *(volatile uint16_t *)(d->common + C_QSIZE);
		if (check(max >= QSIZE, "queue offers enough entries"))
			return 0;
		*(volatile uint16_t *)(d->common + C_QSIZE) = QSIZE;
		*(volatile uint64_t *)(d->common + C_QDESC) = (uint64_t)q->desc;
		*(volatile uint64_t *)(d->common + C_QDRIVER) = (uint64_t)&q->avail;
		*(volatile uint64_t *)(d->common + C_QDEVICE) = (uint64_t)&q->used;
		uint16_t off = *(volatile uint16_t *)(d->common + C_QNOTIFY);
		q->notify = (volatile uint16_t *)(d->notify_base + (uint64_t)off * d->notify_mult);
		q->next_avail = q->next_used = 0;
		q->avail.idx = 0;
		*(volatile uint16_t *)(d->common + C_QENABLE) = 1;
	}
	set_status(d, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (check((status(d) & (S_DRIVER_OK | S_NEEDS_RESET)) == S_DRIVER_OK, "DRIVER_OK, queue live"))
		return 0;
	return features | 0x80000000u; /* nonzero even with no feature bits */
}

/* Makes the chain starting at descriptor head of queue qi available and
 * notifies the device. */
static void offer(unsigned qi, uint16_t head)
{
	struct queue *q = &queues[qi];
	q->avail.ring[q->next_avail % QSIZE] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->next_avail++;
	*(volatile uint16_t *)&q->avail.idx = q->next_avail;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*q->notify = (uint16_t)qi;
}

/* Polls queue qi for the next used chain; its length, or -1 after about
 * seconds of TSC ticks (billions). */
static int64_t wait_used(unsigned qi, uint64_t billions, uint16_t *id)
{
	struct queue *q = &queues[qi];
	uint64_t t0 = rdtsc();
	while (*(volatile uint16_t *)&q->used.idx == q->next_used) {
		if (rdtsc() - t0 > billions * 1000 * 1000 * 1000)
			return -1;
		__asm__ volatile("pause");
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t at = q->next_used++ % QSIZE;
	if (id)
		*id = (uint16_t)q->used.ring[at].id;
	return q->used.ring[at].len;
}

/* Submits the chain at descriptor 0 of queue 0 and waits for it. */
static int64_t submit(struct device *d)
{
	(void)d;
	offer(0, 0);
	return wait_used(0, 20, 0);
}

/* --- virtio-rng ------------------------------------------------------- */

static uint8_t entropy[2][64];

void test_virtio_rng(void)
{
	struct device d;
	int fails = 0;
	if (probe(&d, VIRTIO_TYPE_RNG) < 0 || !init(&d, 0, 1))
		guest_exit(1);
	for (int i = 0; i < 2; i++) {
		ring_desc[0] = (struct desc){ (uint64_t)entropy[i], sizeof(entropy[i]), D_WRITE, 0 };
		int64_t len = submit(&d);
		fails += check(len > 0 && len <= (int64_t)sizeof(entropy[i]), "rng request completed");
	}
	int differ = 0, nonzero = 0;
	for (unsigned k = 0; k < sizeof(entropy[0]); k++) {
		differ |= entropy[0][k] != entropy[1][k];
		nonzero |= entropy[0][k];
	}
	fails += check(differ && nonzero, "two reads of entropy differ and are not zeros");
	puts_serial(fails ? "virtio-rng: FAILED\n" : "virtio-rng: done\n");
	guest_exit(fails ? 1 : 0);
}

/* --- virtio-blk ------------------------------------------------------- */

#define BLK_IN     0
#define BLK_OUT    1
#define BLK_FLUSH  4
#define BLK_GET_ID 8

static struct {
	uint32_t type, reserved;
	uint64_t sector;
} header;
static uint8_t blk_status;
static uint8_t sector_buf[512] __attribute__((aligned(512)));
static char serial[21];
/* An indirect table for the seg_max checks: header, up to 255 data
 * buffers, status. */
static struct desc indirect[257] __attribute__((aligned(16)));

/* One request of header, an optional data buffer, and the status byte. */
static int64_t blk_request(struct device *d, uint32_t type, uint64_t sector, void *data,
			   uint32_t len, int device_writes)
{
	header.type = type;
	header.sector = sector;
	blk_status = 0xee;
	ring_desc[0] = (struct desc){ (uint64_t)&header, sizeof(header), D_NEXT, 1 };
	unsigned st = 1;
	if (len) {
		ring_desc[1] = (struct desc){ (uint64_t)data, len,
					      (uint16_t)(D_NEXT | (device_writes ? D_WRITE : 0)), 2 };
		st = 2;
	}
	ring_desc[st] = (struct desc){ (uint64_t)&blk_status, 1, D_WRITE, 0 };
	return submit(d);
}

/* A read of `segments` data buffers of 512 bytes through an indirect table. */
static int64_t blk_read_segments(struct device *d, unsigned segments)
{
	header.type = BLK_IN;
	header.sector = 0;
	blk_status = 0xee;
	indirect[0] = (struct desc){ (uint64_t)&header, sizeof(header), D_NEXT, 1 };
	for (unsigned i = 1; i <= segments; i++)
		indirect[i] = (struct desc){ (uint64_t)sector_buf, 512, D_NEXT | D_WRITE, (uint16_t)(i + 1) };
	indirect[segments + 1] = (struct desc){ (uint64_t)&blk_status, 1, D_WRITE, 0 };
	ring_desc[0] = (struct desc){ (uint64_t)indirect, 16 * (segments + 2), D_INDIRECT, 0 };
	return submit(d);
}

static const char pattern[] = "nestvm tier-1 virtio-blk sector 2 ";

void test_virtio_blk(void)
{
	struct device d;
	int fails = 0;
	uint32_t features;
	if (probe(&d, VIRTIO_TYPE_BLK) < 0 || !(features = init(&d, F_INDIRECT_DESC | F_BLK_FLUSH, 1)))
		guest_exit(1);
	uint64_t capacity = *(volatile uint64_t *)d.device;
	uint32_t seg_max = *(volatile uint32_t *)(d.device + 12);
	puts_serial("capacity ");
	put_dec(capacity);
	puts_serial(" seg_max ");
	put_dec(seg_max);
	putc_serial('\n');

	fails += check(blk_request(&d, BLK_GET_ID, 0, serial, 20, 1) >= 1 && blk_status == 0,
		       "GET_ID answered");
	puts_serial("serial '");
	puts_serial(serial);
	puts_serial("'\n");

	for (unsigned i = 0; i < sizeof(sector_buf); i++)
		sector_buf[i] = (uint8_t)pattern[i % (sizeof(pattern) - 1)];
	fails += check(blk_request(&d, BLK_OUT, 2, sector_buf, 512, 0) == 1 && blk_status == 0,
		       "write of sector 2");
	fails += check(blk_request(&d, BLK_FLUSH, 0, 0, 0, 0) == 1 && blk_status == 0, "flush");
	for (unsigned i = 0; i < sizeof(sector_buf); i++)
		sector_buf[i] = 0;
	fails += check(blk_request(&d, BLK_IN, 2, sector_buf, 512, 1) == 513 && blk_status == 0,
		       "read of sector 2");
	int same = 1;
	for (unsigned i = 0; i < sizeof(sector_buf); i++)
		same &= sector_buf[i] == (uint8_t)pattern[i % (sizeof(pattern) - 1)];
	fails += check(same, "sector 2 reads back what was written");
	fails += check(blk_request(&d, BLK_IN, capacity, sector_buf, 512, 1) >= 1 && blk_status == 1,
		       "a read past the end fails with IOERR");

	if (seg_max + 2 > sizeof(indirect) / sizeof(indirect[0])) {
		fails += check(0, "seg_max within what this driver can test");
	} else if (features & F_INDIRECT_DESC) {
		fails += check(blk_read_segments(&d, seg_max) >= 1 && blk_status == 0,
			       "a read of seg_max buffers works");
		fails += check(blk_read_segments(&d, seg_max + 1) >= 1 && blk_status == 1,
			       "a read of seg_max + 1 buffers fails with IOERR");
	} else {
		fails += check(0, "INDIRECT_DESC negotiated");
	}
	fails += check(!(status(&d) & S_NEEDS_RESET), "device still live");
	puts_serial(fails ? "virtio-blk: FAILED\n" : "virtio-blk: done\n");
	guest_exit(fails ? 1 : 0);
}

/* Records, each written to its own sector (from=N on), flushed every
 * batch=B of them (default 1), and only then reported ("synced N"), until
 * the host kills nestvm: it then checks that every record reported is in
 * the image. */
void test_virtio_blk_records(void)
{
	struct device d;
	if (probe(&d, VIRTIO_TYPE_BLK) < 0 || !(init(&d, F_BLK_FLUSH, 1) & F_BLK_FLUSH))
		guest_exit(1);
	uint64_t capacity = *(volatile uint64_t *)d.device;
	uint64_t batch = parse_dec(cmdline_arg("batch")), from = parse_dec(cmdline_arg("from"));
	if (batch == 0)
		batch = 1;
	for (uint64_t n = from; n < capacity; n++) {
		static const char text[] = "record ";
		for (unsigned i = 0; i < sizeof(sector_buf); i++)
			sector_buf[i] = i < 7 ? (uint8_t)text[i] : (uint8_t)('a' + (n + i) % 26);
		for (unsigned i = 0, v = (unsigned)n; i < 8; i++, v /= 10)
			sector_buf[14 - i] = (uint8_t)('0' + v % 10);
		if (blk_request(&d, BLK_OUT, n, sector_buf, 512, 0) != 1 || blk_status != 0)
			guest_exit(2);
		if ((n - from + 1) % batch)
			continue;
		if (blk_request(&d, BLK_FLUSH, 0, 0, 0, 0) != 1 || blk_status != 0)
			guest_exit(2);
		for (uint64_t k = n + 1 - batch; k <= n; k++) {
			puts_serial("synced ");
			put_dec(k);
			puts_serial(" ok\n"); /* a line cut short by the kill is not whole */
		}
	}
	guest_exit(0);
}

/* --- virtio-net --------------------------------------------------------- */

#define VIRTIO_TYPE_NET 1
#define F_NET_MAC (1u << 5)
#define NET_HDR 12
#define ETHERTYPE_TEST 0x88b5 /* IEEE local experimental */

static uint8_t rx_buf[2][NET_HDR + 1514];
static uint8_t tx_buf[NET_HDR + 64];

/* Sends a broadcast frame from the NIC's MAC carrying "nestvm tier-1
 * hello", then waits for a frame of the same ethertype and prints its
 * payload: the host side of the test (a raw client of the switch) sees
 * the one and sends the other. */
void test_virtio_net(void)
{
	struct device d;
	int fails = 0;
	if (probe(&d, VIRTIO_TYPE_NET) < 0 || !init(&d, F_NET_MAC, 2))
		guest_exit(1);
	uint8_t mac[6];
	for (int i = 0; i < 6; i++)
		mac[i] = d.device[i];
	puts_serial("mac");
	for (int i = 0; i < 6; i++) {
		putc_serial(i ? ':' : ' ');
		putc_serial("0123456789abcdef"[mac[i] >> 4]);
		putc_serial("0123456789abcdef"[mac[i] & 15]);
	}
	putc_serial('\n');
	/* Two receive buffers on queue 0. */
	for (uint16_t i = 0; i < 2; i++) {
		queues[0].desc[i] = (struct desc){ (uint64_t)rx_buf[i], sizeof(rx_buf[i]), D_WRITE, 0 };
		offer(0, i);
	}
	/* The frame: a zeroed virtio-net header, then Ethernet. */
	uint8_t *f = tx_buf + NET_HDR;
	if (cmdline_arg("answer")) {
		/* The other side: wait for a hello, answer its sender. */
		for (int round = 0; round < 60; round++) {
			uint16_t slot;
			int64_t len = wait_used(0, 1, &slot);
			if (len < 0)
				continue;
			const uint8_t *r = rx_buf[slot % 2] + NET_HDR;
			int ours = len >= NET_HDR + 14 && r[12] == (ETHERTYPE_TEST >> 8) &&
				   r[13] == (ETHERTYPE_TEST & 0xff);
			for (int i = 0; ours && i < 6; i++)
				f[i] = r[6 + i], f[6 + i] = mac[i];
			offer(0, slot % 2);
			if (!ours)
				continue;
			f[12] = ETHERTYPE_TEST >> 8, f[13] = ETHERTYPE_TEST & 0xff;
			const char reply[] = "nestvm tier-1 reply";
			for (unsigned i = 0; i < sizeof(reply); i++)
				f[14 + i] = (uint8_t)reply[i];
			queues[1].desc[0] = (struct desc){ (uint64_t)tx_buf, sizeof(tx_buf), 0, 0 };
			offer(1, 0);
			fails += check(wait_used(1, 20, 0) >= 0, "answered a hello");
			puts_serial(fails ? "virtio-net: FAILED\n" : "virtio-net: done\n");
			guest_exit(fails ? 1 : 0);
		}
		check(0, "a hello came");
		guest_exit(1);
	}
	for (int i = 0; i < 6; i++)
		f[i] = 0xff, f[6 + i] = mac[i];
	f[12] = ETHERTYPE_TEST >> 8, f[13] = ETHERTYPE_TEST & 0xff;
	const char hello[] = "nestvm tier-1 hello";
	for (unsigned i = 0; i < sizeof(hello); i++)
		f[14 + i] = (uint8_t)hello[i];
	queues[1].desc[0] = (struct desc){ (uint64_t)tx_buf, sizeof(tx_buf), 0, 0 };
	/* Hello again about every second until an answer comes (the switch
	 * may be restarting): frames until ours, the switch may pass others. */
	int got = 0, sent = 0;
	for (int round = 0; round < 60 && !got; round++) {
		offer(1, 0);
		if (wait_used(1, 20, 0) >= 0 && !sent++)
			puts_serial("sent hello\n");
		uint16_t slot;
		int64_t len;
		while (!got && (len = wait_used(0, 1, &slot)) >= 0) {
			const uint8_t *r = rx_buf[slot % 2] + NET_HDR;
			if (len >= NET_HDR + 14 && r[12] == (ETHERTYPE_TEST >> 8) &&
			    r[13] == (ETHERTYPE_TEST & 0xff)) {
				puts_serial("received '");
				for (int64_t i = 14; i < len - NET_HDR && r[i]; i++)
					putc_serial((char)r[i]);
				puts_serial("'\n");
				got = 1;
			}
			offer(0, slot % 2); /* the buffer goes back */
		}
	}
	fails += check(sent > 0, "frame sent");
	fails += check(got, "a frame of ours came back");
	puts_serial(fails ? "virtio-net: FAILED\n" : "virtio-net: done\n");
	guest_exit(fails ? 1 : 0);
}
