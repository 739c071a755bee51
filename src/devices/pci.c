#include "devices/pci.h"

#include <string.h>

#define CONFIG_ADDRESS_PORT 0xcf8
#define CONFIG_DATA_PORT    0xcfc
#define CONFIG_ENABLE       0x80000000u

/* Offsets in the configuration header. */
#define PCI_VENDOR_ID   0x00
#define PCI_DEVICE_ID   0x02
#define PCI_REVISION    0x08
#define PCI_CLASS_PROG  0x09
#define PCI_SUBCLASS    0x0a
#define PCI_CLASS       0x0b
#define PCI_HEADER_TYPE 0x0e

void pci_bus_init(struct pci_bus *pci)
{
	memset(pci, 0, sizeof(*pci));
	pthread_mutex_init(&pci->lock, NULL);
	uint8_t *c = pci->host_bridge.config;
	/* Red Hat's vendor ID and the "QEMU PCIe host bridge" device ID: a
	 * generic host bridge that needs no chipset driver. */
	c[PCI_VENDOR_ID] = 0x36, c[PCI_VENDOR_ID + 1] = 0x1b;
	c[PCI_DEVICE_ID] = 0x08, c[PCI_DEVICE_ID + 1] = 0x00;
	c[PCI_CLASS] = 0x06;    /* bridge */
	c[PCI_SUBCLASS] = 0x00; /* host bridge */
	c[PCI_HEADER_TYPE] = 0x00;
	pci->slots[0] = &pci->host_bridge;
}

void pci_bus_destroy(struct pci_bus *pci)
{
	pthread_mutex_destroy(&pci->lock);
}

static void address_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	struct pci_bus *pci = opaque;
	pthread_mutex_lock(&pci->lock);
	if (offset == 0 && len == 4) {
		if (is_write)
			memcpy(&pci->address, data, 4);
		else
			memcpy(data, &pci->address, 4);
	} else if (!is_write) {
		/* Only dword accesses reach the address register. On PCs a
		 * byte at 0xcf9 is a reset register; here the FADT names the
		 * reset register in the ACPI PM block instead. */
		memset(data, 0xff, len);
	}
	pthread_mutex_unlock(&pci->lock);
}

static void data_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			bool is_write)
{
	struct pci_bus *pci = opaque;
	pthread_mutex_lock(&pci->lock);
	uint32_t a = pci->address;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	uint32_t reg = (a & 0xfc) + (uint32_t)offset;
	struct pci_device *dev = (a & CONFIG_ENABLE) && bus == 0 && fn == 0 ? pci->slots[slot] : NULL;
	if (!dev || reg + len > 256) {
		if (!is_write)
			memset(data, 0xff, len);
	} else if (!is_write) {
		memcpy(data, dev->config + reg, len);
	} else if (dev->config_written) {
		memcpy(dev->config + reg, data, len);
		dev->config_written(dev, reg, len);
	}
	/* The host bridge has no writable registers. */
	pthread_mutex_unlock(&pci->lock);
}

int pci_bus_attach(struct pci_bus *pci, struct bus *pio)
{
	if (bus_register(pio, CONFIG_ADDRESS_PORT, 4, address_access, pci, "pci-config-address") < 0)
		return -1;
	return bus_register(pio, CONFIG_DATA_PORT, 4, data_access, pci, "pci-config-data");
}
