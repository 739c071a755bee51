#include "devices/testdev.h"
#include "devices/device.h"

#include <string.h>

#include "util/hash.h"

void testdev_init(struct testdev *dev, const struct guest_mem *mem,
		  void (*request_exit)(void *ctx, int status), void *ctx)
{
	memset(dev, 0, sizeof(*dev));
	pthread_mutex_init(&dev->lock, NULL);
	dev->mem = mem;
	dev->request_exit = request_exit;
	dev->ctx = ctx;
}

void testdev_destroy(struct testdev *dev)
{
	pthread_mutex_destroy(&dev->lock);
}

static uint64_t *reg_ptr(struct testdev *dev, uint64_t reg)
{
	switch (reg) {
	case TESTDEV_REG_SCRATCH: return &dev->scratch;
	case TESTDEV_REG_BUF_ADDR: return &dev->buf_addr;
	case TESTDEV_REG_BUF_LEN: return &dev->buf_len;
	case TESTDEV_REG_CHECKSUM: return &dev->checksum;
	case TESTDEV_REG_BUF_FAULT: return &dev->buf_fault;
	case TESTDEV_REG_WRITES: return &dev->writes;
	default: return NULL;
	}
}

static void checksum_buffer(struct testdev *dev)
{
	/* The address and length come from the guest: guest_mem_ptr checks
	 * that the whole buffer is guest RAM before anything is read. */
	const void *p = guest_mem_ptr(dev->mem, dev->buf_addr, dev->buf_len);
	dev->buf_fault = p == NULL;
	dev->checksum = p ? fnv1a64(p, dev->buf_len) : ~0ULL;
}

static void mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			bool is_write)
{
	struct testdev *dev = opaque;
	uint64_t reg = offset & ~7ULL, byte = offset & 7;
	if (byte + len > 8) { /* straddles two registers: not decoded */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (is_write) {
		dev->writes++;
		if (reg == TESTDEV_REG_CHECKSUM)
			checksum_buffer(dev);
		else if (reg == TESTDEV_REG_SCRATCH || reg == TESTDEV_REG_BUF_ADDR ||
			 reg == TESTDEV_REG_BUF_LEN)
			memcpy((uint8_t *)reg_ptr(dev, reg) + byte, data, len);
	} else {
		uint64_t *r = reg_ptr(dev, reg);
		uint64_t v = reg == TESTDEV_REG_ID ? TESTDEV_ID : r ? *r : ~0ULL;
		memcpy(data, (uint8_t *)&v + byte, len);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void exit_port_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			     bool is_write)
{
	struct testdev *dev = opaque;
	(void)offset;
	(void)len;
	if (is_write)
		dev->request_exit(dev->ctx, data[0]);
	else
		data[0] = 0;
}

int testdev_attach(struct testdev *dev, struct bus *pio, struct bus *mmio)
{
	if (bus_register(pio, TESTDEV_EXIT_PORT, 1, exit_port_access, dev, "testdev") < 0)
		return -1;
	return bus_register(mmio, TESTDEV_MMIO_BASE, TESTDEV_MMIO_SIZE, mmio_access, dev,
			    "testdev");
}

/* --- device interface ------------------------------------------------- */

static int testdev_save(void *dev, struct state_out *out, char *why, size_t whylen)
{
	(void)why, (void)whylen;
	struct testdev *t = dev;
	pthread_mutex_lock(&t->lock);
	const uint64_t regs[] = { t->scratch, t->buf_addr, t->buf_len, t->checksum, t->buf_fault,
				  t->writes };
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		state_put_u64(out, regs[i]);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Every register is a guest-written value the device checks where it is
 * used (the buffer against guest RAM): any value loads. */
static int testdev_load(void *dev, struct state_in *in)
{
	struct testdev *t = dev;
	uint64_t regs[6];
	for (size_t i = 0; i < 6; i++)
		regs[i] = state_get_u64(in);
	if (state_in_finish(in) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	t->scratch = regs[0], t->buf_addr = regs[1], t->buf_len = regs[2];
	t->checksum = regs[3], t->buf_fault = regs[4], t->writes = regs[5];
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void testdev_destroy_device(void *dev)
{
	testdev_destroy(dev);
}

const struct device_ops testdev_device_ops = {
	.kind = "testdev",
	.save = testdev_save,
	.load = testdev_load,
	.destroy = testdev_destroy_device,
};
