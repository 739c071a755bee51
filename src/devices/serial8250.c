#include "devices/serial8250.h"
#include "devices/device.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Register offsets from the base port. */
enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define LCR_DLAB     0x80
#define LSR_DR       0x01
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define IER_RDI      0x01
#define IER_THRI     0x02
#define IIR_NO_INT   0x01
#define IIR_THRI     0x02
#define IIR_RDI      0x04
#define IIR_FIFO_ON  0xc0
#define MCR_LOOP     0x10
#define MCR_OUT2     0x08
#define MSR_DEFAULT  0xb0 /* DCD, DSR and CTS asserted: a cable is present */

void serial8250_init(struct serial8250 *uart, int out_fd, int irq,
		     void (*set_irq)(void *ctx, int irq, int level), void *irq_ctx)
{
	memset(uart, 0, sizeof(*uart));
	pthread_mutex_init(&uart->lock, NULL);
	uart->out_fd = out_fd;
	uart->mirror_fd = -1;
	uart->irq = irq;
	uart->set_irq = set_irq;
	uart->irq_ctx = irq_ctx;
	uart->lsr = LSR_THRE | LSR_TEMT;
	uart->msr = MSR_DEFAULT;
	uart->mcr = MCR_OUT2;
	uart->dll = 12; /* 9600 baud */
}

void serial8250_destroy(struct serial8250 *uart)
{
	pthread_mutex_destroy(&uart->lock);
}

static uint8_t pending_iir(const struct serial8250 *uart)
{
	uint8_t fifo = (uart->fcr & 1) ? IIR_FIFO_ON : 0;
	if ((uart->ier & IER_RDI) && uart->rx_count)
		return IIR_RDI | fifo;
	if ((uart->ier & IER_THRI) && uart->thr_interrupt_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* Called with the lock held after any state change. */
static void update_irq(struct serial8250 *uart)
{
	if (!uart->set_irq)
		return;
	int level = !(pending_iir(uart) & IIR_NO_INT);
	uart->set_irq(uart->irq_ctx, uart->irq, level);
}

static void transmit(struct serial8250 *uart, uint8_t byte)
{
	if (uart->mcr & MCR_LOOP) {
		if (uart->rx_count < SERIAL_RX_FIFO) {
			uart->rx[(uart->rx_head + uart->rx_count) % SERIAL_RX_FIFO] = byte;
			uart->rx_count++;
			uart->lsr |= LSR_DR;
		}
		return;
	}
	if (uart->mirror_fd >= 0) /* non-blocking: a slow reader loses bytes, the guest waits for none */
		(void)!write(uart->mirror_fd, &byte, 1);
	if (uart->out_fd < 0)
		return;
	for (;;) {
		ssize_t n = write(uart->out_fd, &byte, 1);
		if (n == 1 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return; /* a closed console must not stop the guest */
	}
}

static uint8_t reg_read(struct serial8250 *uart, unsigned reg)
{
	switch (reg) {
	case RBR_THR: {
		if (uart->lcr & LCR_DLAB)
			return uart->dll;
		if (!uart->rx_count)
			return 0;
		uint8_t b = uart->rx[uart->rx_head];
		uart->rx_head = (uart->rx_head + 1) % SERIAL_RX_FIFO;
		if (--uart->rx_count == 0)
			uart->lsr &= (uint8_t)~LSR_DR;
		return b;
	}
	case IER:
		return (uart->lcr & LCR_DLAB) ? uart->dlm : uart->ier;
	case IIR_FCR: {
		uint8_t iir = pending_iir(uart);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((iir & 0x0f) == IIR_THRI)
			uart->thr_interrupt_pending = false;
		return iir;
	}
	case LCR: return uart->lcr;
	case MCR: return uart->mcr;
	case LSR: return uart->lsr;
	case MSR:
		if (uart->mcr & MCR_LOOP) /* loopback wires the modem outputs back */
			return (uint8_t)(((uart->mcr & 0x0c) << 4) | ((uart->mcr & 0x03) << 4));
		return uart->msr;
	default: return uart->scr;
	}
}

static void reg_write(struct serial8250 *uart, unsigned reg, uint8_t v)
{
	switch (reg) {
	case RBR_THR:
		if (uart->lcr & LCR_DLAB) {
			uart->dll = v;
			return;
		}
		transmit(uart, v);
		/* The byte leaves at once: THR is empty again. */
		uart->thr_interrupt_pending = true;
		return;
	case IER:
		if (uart->lcr & LCR_DLAB) {
			uart->dlm = v;
			return;
		}
		/* Enabling THRI with an empty THR raises the interrupt at once,
		 * as on real 16550s; Linux relies on it to start transmitting. */
		if ((v & IER_THRI) && !(uart->ier & IER_THRI))
			uart->thr_interrupt_pending = true;
		uart->ier = v & 0x0f;
		return;
	case IIR_FCR:
		uart->fcr = v & 0xc9;
		if (v & 0x02) { /* clear receive FIFO */
			uart->rx_count = 0;
			uart->lsr &= (uint8_t)~LSR_DR;
		}
		return;
	case LCR: uart->lcr = v; return;
	case MCR: uart->mcr = v & 0x1f; return;
	case LSR: case MSR: return; /* read-only */
	default: uart->scr = v; return;
	}
}

static void serial_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct serial8250 *uart = opaque;
	pthread_mutex_lock(&uart->lock);
	/* Wider accesses touch consecutive registers, one byte each. */
	for (uint32_t i = 0; i < len && offset + i < 8; i++) {
		if (is_write)
			reg_write(uart, (unsigned)(offset + i), data[i]);
		else
			data[i] = reg_read(uart, (unsigned)(offset + i));
	}
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
}

int serial8250_attach(struct serial8250 *uart, struct bus *pio, uint16_t base)
{
	return bus_register(pio, base, 8, serial_access, uart, "serial8250");
}

unsigned serial8250_receive(struct serial8250 *uart, const uint8_t *buf, unsigned len)
{
	pthread_mutex_lock(&uart->lock);
	unsigned n = 0;
	while (n < len && uart->rx_count < SERIAL_RX_FIFO) {
		uart->rx[(uart->rx_head + uart->rx_count) % SERIAL_RX_FIFO] = buf[n++];
		uart->rx_count++;
	}
	if (uart->rx_count)
		uart->lsr |= LSR_DR;
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return n;
}

/* --- device interface ------------------------------------------------- */

static int serial_save(void *dev, struct state_out *out, char *why, size_t whylen)
{
	(void)why, (void)whylen;
	struct serial8250 *uart = dev;
	pthread_mutex_lock(&uart->lock);
	const uint8_t regs[] = { uart->ier, uart->lcr, uart->mcr, uart->lsr, uart->msr,
				 uart->scr, uart->dll, uart->dlm, uart->fcr };
	state_put_bytes(out, regs, sizeof(regs));
	state_put_bool(out, uart->thr_interrupt_pending);
	state_put_bytes(out, uart->rx, sizeof(uart->rx));
	state_put_u32(out, uart->rx_head);
	state_put_u32(out, uart->rx_count);
	pthread_mutex_unlock(&uart->lock);
	return 0;
}

static int serial_load(void *dev, struct state_in *in)
{
	struct serial8250 *uart = dev;
	uint8_t regs[9];
	state_get_bytes(in, regs, sizeof(regs));
	bool thr = state_get_bool(in);
	uint8_t rx[SERIAL_RX_FIFO];
	state_get_bytes(in, rx, sizeof(rx));
	uint32_t head = state_get_u32(in), count = state_get_u32(in);
	if (state_in_finish(in) < 0)
		return -1;
	/* The FIFO is indexed with these: out of range, they would reach past it. */
	if (head >= SERIAL_RX_FIFO || count > SERIAL_RX_FIFO) {
		state_in_fail(in, "receive FIFO at %u holding %u bytes (it has %d)", head, count,
			      SERIAL_RX_FIFO);
		return -1;
	}
	pthread_mutex_lock(&uart->lock);
	uart->ier = regs[0], uart->lcr = regs[1], uart->mcr = regs[2], uart->lsr = regs[3];
	uart->msr = regs[4], uart->scr = regs[5], uart->dll = regs[6], uart->dlm = regs[7];
	uart->fcr = regs[8];
	uart->thr_interrupt_pending = thr;
	memcpy(uart->rx, rx, sizeof(rx));
	uart->rx_head = head;
	uart->rx_count = count;
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return 0;
}

static void serial_destroy(void *dev)
{
	serial8250_destroy(dev);
}

const struct device_ops serial8250_device_ops = {
	.kind = "serial",
	.save = serial_save,
	.load = serial_load,
	.destroy = serial_destroy,
};
