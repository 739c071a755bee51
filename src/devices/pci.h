/* PCI configuration mechanism #1 (ports 0xcf8/0xcfc) on bus 0, with a host
 * bridge at 00:00.0, and the MMIO window where devices' memory BARs live.
 * nestvm places every BAR itself, as firmware would, and follows the guest
 * if it moves one. Functions other than 0 and empty slots read as all ones. */
#ifndef NESTVM_DEVICES_PCI_H
#define NESTVM_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "mem/pc_layout.h"

#define PCI_SLOTS 32
#define PCI_BARS  6

/* The window the DSDT gives the PCI root bridge for memory BARs: the MMIO
 * hole below 4 GiB, up to the test device and the APICs. */
#define PCI_MMIO_BASE PC_PCI_MMIO_BASE
#define PCI_MMIO_END  PC_PCI_MMIO_END

/* Offsets in the configuration header. */
#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_REVISION       0x08
#define PCI_CLASS_PROG     0x09
#define PCI_SUBCLASS       0x0a
#define PCI_CLASS          0x0b
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_SUBSYS_VENDOR  0x2c
#define PCI_SUBSYS_ID      0x2e
#define PCI_CAP_PTR        0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN  0x3d

#define PCI_COMMAND_IO     0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010

struct pci_device {
	uint8_t config[256];
	/* Size of each memory BAR (a power of two, at least 4 KiB), 0 if
	 * unused. All BARs are 64-bit: BAR n takes registers n and n+1. */
	uint64_t bar_size[PCI_BARS];
	/* A guest write to configuration space past the standard header
	 * (capabilities); the device updates config itself. Called with the
	 * bus lock held. */
	void (*config_write)(struct pci_device *dev, uint32_t offset, const uint8_t *data,
			     uint32_t len);
	/* A BAR moved or memory decoding was switched; bus lock held. */
	void (*bars_changed)(struct pci_device *dev);
	/* An access inside memory BAR bar; bus lock not held. */
	void (*bar_access)(struct pci_device *dev, int bar, uint64_t offset, uint8_t *data,
			   uint32_t len, bool is_write);
	void *opaque;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t address; /* CONFIG_ADDRESS */
	uint64_t next_bar; /* where the next BAR is placed */
	struct pci_device host_bridge;
	struct pci_device *slots[PCI_SLOTS];
};

void pci_bus_init(struct pci_bus *pci);
/* Registers the config ports on pio and the BAR window on mmio. */
int pci_bus_attach(struct pci_bus *pci, struct bus *pio, struct bus *mmio);
/* Puts dev in the next free slot and places its BARs. Returns the slot or
 * -1 with a message. */
int pci_bus_add(struct pci_bus *pci, struct pci_device *dev, const char *name);
void pci_bus_destroy(struct pci_bus *pci);

/* Guest-physical address of memory BAR bar, 0 when memory decoding is off. */
uint64_t pci_bar_address(const struct pci_device *dev, int bar);

/* Little-endian accessors for configuration space. */
static inline void pci_put16(struct pci_device *dev, uint32_t off, uint16_t v)
{
	dev->config[off] = (uint8_t)v, dev->config[off + 1] = (uint8_t)(v >> 8);
}
static inline void pci_put32(struct pci_device *dev, uint32_t off, uint32_t v)
{
	pci_put16(dev, off, (uint16_t)v), pci_put16(dev, off + 2, (uint16_t)(v >> 16));
}
static inline uint16_t pci_get16(const struct pci_device *dev, uint32_t off)
{
	return (uint16_t)(dev->config[off] | dev->config[off + 1] << 8);
}
static inline uint32_t pci_get32(const struct pci_device *dev, uint32_t off)
{
	return pci_get16(dev, off) | (uint32_t)pci_get16(dev, off + 2) << 16;
}

/* The bus in the machine's device table (devices/device.h): it saves and
 * restores every device's configuration space. */
extern const struct device_ops pci_bus_device_ops;

#endif
