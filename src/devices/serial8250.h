/* 16550A-compatible UART (the PC's COM ports). Transmitted bytes go to an
 * output file descriptor; received bytes are queued with serial_receive(). */
#ifndef NESTVM_DEVICES_SERIAL8250_H
#define NESTVM_DEVICES_SERIAL8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "mem/pc_layout.h"

#define SERIAL_COM1_BASE PC_COM1_PORT
#define SERIAL_COM1_IRQ  PC_COM1_IRQ
#define SERIAL_RX_FIFO   64

struct serial8250 {
	pthread_mutex_t lock;
	int out_fd;                  /* -1: output discarded */
	int mirror_fd;               /* also written, never waited for; -1: none */
	void (*set_irq)(void *ctx, int irq, int level); /* NULL: no interrupt line */
	void *irq_ctx;
	int irq;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_interrupt_pending; /* THR-empty interrupt not yet acknowledged */
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
};

void serial8250_init(struct serial8250 *uart, int out_fd, int irq,
		     void (*set_irq)(void *ctx, int irq, int level), void *irq_ctx);
int serial8250_attach(struct serial8250 *uart, struct bus *pio, uint16_t base);
/* Queues input for the guest; returns how many bytes fitted. */
unsigned serial8250_receive(struct serial8250 *uart, const uint8_t *buf, unsigned len);
void serial8250_destroy(struct serial8250 *uart);

/* Its entry in the machine's device table (devices/device.h). */
extern const struct device_ops serial8250_device_ops;

#endif
