/* PCI configuration mechanism #1 (ports 0xcf8/0xcfc) on bus 0, with a host
 * bridge at 00:00.0. Devices register a 256-byte configuration space per
 * slot; functions other than 0 and empty slots read as all ones. */
#ifndef NESTVM_DEVICES_PCI_H
#define NESTVM_DEVICES_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "devices/bus.h"

#define PCI_SLOTS 32

struct pci_device {
	uint8_t config[256];
	/* Optional hook after a guest write to config space, e.g. BAR moves. */
	void (*config_written)(struct pci_device *dev, uint32_t offset, uint32_t len);
	void *opaque;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t address; /* CONFIG_ADDRESS */
	struct pci_device host_bridge;
	struct pci_device *slots[PCI_SLOTS];
};

void pci_bus_init(struct pci_bus *pci);
int pci_bus_attach(struct pci_bus *pci, struct bus *pio);
void pci_bus_destroy(struct pci_bus *pci);

#endif
