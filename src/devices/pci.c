#include "devices/pci.h"
#include "devices/device.h"

#include <string.h>

#include "util/log.h"

#define CONFIG_ADDRESS_PORT PC_PCI_CONFIG_ADDRESS_PORT
#define CONFIG_DATA_PORT    PC_PCI_CONFIG_DATA_PORT
#define CONFIG_ENABLE       0x80000000u

#define BAR_MEM_64 0x4 /* type bits of a 64-bit memory BAR */

void pci_bus_init(struct pci_bus *pci)
{
	memset(pci, 0, sizeof(*pci));
	pthread_mutex_init(&pci->lock, NULL);
	pci->next_bar = PCI_MMIO_BASE;
	struct pci_device *hb = &pci->host_bridge;
	/* Red Hat's vendor ID and the "QEMU PCIe host bridge" device ID: a
	 * generic host bridge that needs no chipset driver. */
	pci_put16(hb, PCI_VENDOR_ID, 0x1b36);
	pci_put16(hb, PCI_DEVICE_ID, 0x0008);
	hb->config[PCI_CLASS] = 0x06;    /* bridge */
	hb->config[PCI_SUBCLASS] = 0x00; /* host bridge */
	pci->slots[0] = hb;
}

void pci_bus_destroy(struct pci_bus *pci)
{
	pthread_mutex_destroy(&pci->lock);
}

uint64_t pci_bar_address(const struct pci_device *dev, int bar)
{
	if (bar < 0 || bar >= PCI_BARS - 1 || !dev->bar_size[bar] ||
	    !(pci_get16(dev, PCI_COMMAND) & PCI_COMMAND_MEMORY))
		return 0;
	uint32_t reg = PCI_BAR0 + 4 * (uint32_t)bar;
	return (pci_get32(dev, reg) & ~0xfULL) | (uint64_t)pci_get32(dev, reg + 4) << 32;
}

int pci_bus_add(struct pci_bus *pci, struct pci_device *dev, const char *name)
{
	int slot = 1;
	while (slot < PCI_SLOTS && pci->slots[slot])
		slot++;
	if (slot == PCI_SLOTS) {
		log_error("%s: no free PCI slot (at most %d devices)", name, PCI_SLOTS - 1);
		return -1;
	}
	for (int bar = 0; bar < PCI_BARS; bar++) {
		uint64_t size = dev->bar_size[bar];
		if (!size)
			continue;
		/* BARs are naturally aligned. */
		uint64_t base = (pci->next_bar + size - 1) & ~(size - 1);
		if (base + size > PCI_MMIO_END) {
			log_error("%s: no room left in the PCI MMIO window", name);
			return -1;
		}
		pci->next_bar = base + size;
		pci_put32(dev, PCI_BAR0 + 4 * (uint32_t)bar, (uint32_t)base | BAR_MEM_64);
		pci_put32(dev, PCI_BAR0 + 4 * (uint32_t)bar + 4, (uint32_t)(base >> 32));
	}
	pci->slots[slot] = dev;
	return slot;
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

/* A dword write to BAR register reg: only the address bits the BAR's size
 * leaves are writable, so that writing all ones reads back the size. */
static void write_bar(struct pci_device *dev, uint32_t reg, uint32_t value)
{
	int index = (int)(reg - PCI_BAR0) / 4;
	if (index > 0 && dev->bar_size[index - 1]) { /* upper half of a 64-bit BAR */
		pci_put32(dev, reg, value);
		return;
	}
	uint64_t size = dev->bar_size[index];
	if (!size)
		return; /* unused BARs read as zero */
	pci_put32(dev, reg, (value & ~(uint32_t)(size - 1) & ~0xfu) | BAR_MEM_64);
}

static void config_write(struct pci_device *dev, uint32_t reg, const uint8_t *data, uint32_t len)
{
	uint32_t value = 0;
	memcpy(&value, data, len);
	if (reg >= 0x40) {
		if (dev->config_write)
			dev->config_write(dev, reg, data, len);
		return;
	}
	if (!dev->bars_changed)
		return; /* the host bridge has no writable registers */
	bool changed = false;
	if (reg <= PCI_COMMAND + 1 && reg + len > PCI_COMMAND) {
		/* Either byte of the command register, or both: the other
		 * byte keeps its value. */
		uint16_t keep = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
		uint16_t old = pci_get16(dev, PCI_COMMAND);
		uint8_t bytes[2] = { (uint8_t)old, (uint8_t)(old >> 8) };
		for (uint32_t i = 0; i < len; i++)
			if (reg + i >= PCI_COMMAND && reg + i < PCI_COMMAND + 2)
				bytes[reg + i - PCI_COMMAND] = data[i];
		uint16_t now = (uint16_t)((bytes[0] | bytes[1] << 8) & keep);
		pci_put16(dev, PCI_COMMAND, now);
		changed = (old ^ now) & PCI_COMMAND_MEMORY;
	} else if (reg >= PCI_BAR0 && reg < PCI_BAR0 + 4 * PCI_BARS && len == 4) {
		write_bar(dev, reg, value);
		changed = true;
	} else if (reg == PCI_INTERRUPT_LINE) {
		dev->config[PCI_INTERRUPT_LINE] = (uint8_t)value;
	}
	/* Status bits, the ROM BAR and read-only IDs ignore writes. */
	if (changed)
		dev->bars_changed(dev);
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
	} else {
		config_write(dev, reg, data, len);
	}
	pthread_mutex_unlock(&pci->lock);
}

/* The BAR window: finds the device decoding addr, then lets it handle the
 * access outside the bus lock. */
static void window_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct pci_bus *pci = opaque;
	uint64_t addr = PCI_MMIO_BASE + offset;
	struct pci_device *hit = NULL;
	int hit_bar = 0;
	uint64_t hit_off = 0;
	pthread_mutex_lock(&pci->lock);
	for (int s = 1; s < PCI_SLOTS && !hit; s++) {
		struct pci_device *dev = pci->slots[s];
		for (int bar = 0; dev && bar < PCI_BARS && !hit; bar++) {
			uint64_t base = pci_bar_address(dev, bar), size = dev->bar_size[bar];
			if (base && addr >= base && addr - base < size && len <= size - (addr - base)) {
				hit = dev, hit_bar = bar, hit_off = addr - base;
			}
		}
	}
	pthread_mutex_unlock(&pci->lock);
	if (hit && hit->bar_access)
		hit->bar_access(hit, hit_bar, hit_off, data, len, is_write);
	else if (!is_write)
		memset(data, 0xff, len);
}

int pci_bus_attach(struct pci_bus *pci, struct bus *pio, struct bus *mmio)
{
	if (bus_register(pio, CONFIG_ADDRESS_PORT, 4, address_access, pci, "pci-config-address") < 0 ||
	    bus_register(pio, CONFIG_DATA_PORT, 4, data_access, pci, "pci-config-data") < 0)
		return -1;
	return bus_register(mmio, PCI_MMIO_BASE, PCI_MMIO_END - PCI_MMIO_BASE, window_access, pci,
			    "pci-mmio-window");
}

/* --- device interface ------------------------------------------------- */

/* Quiesced, the bus holds its lock: it is first in the device table, so
 * a snapshot takes it before any device's lock, in the order the vCPU
 * paths take them (a configuration write reaches the device under it). */
static void bus_quiesce(void *opaque)
{
	pthread_mutex_lock(&((struct pci_bus *)opaque)->lock);
}

static void bus_unquiesce(void *opaque)
{
	pthread_mutex_unlock(&((struct pci_bus *)opaque)->lock);
}

/* The bus's state is the address register and every device's
 * configuration space. Quiesced (or single-threaded) by the caller. */
static int bus_save(void *opaque, struct state_out *out, char *why, size_t whylen)
{
	(void)why, (void)whylen;
	struct pci_bus *pci = opaque;
	state_put_u32(out, pci->address);
	for (uint32_t s = 1; s < PCI_SLOTS; s++)
		if (pci->slots[s]) {
			state_put_u8(out, (uint8_t)s);
			state_put_bytes(out, pci->slots[s]->config, sizeof(pci->slots[s]->config));
		}
	return 0;
}

/* Brings dev's configuration space to saved the way a guest would: by
 * writing each register that differs through the same path as its own
 * writes (which keeps read-only bits and tells the device). What a guest
 * could not have written must then already match: otherwise the saved
 * space belongs to another device, or was made up. Bus lock held. */
static int restore_config(struct pci_device *dev, const uint8_t *saved)
{
	if (memcmp(saved + PCI_COMMAND, dev->config + PCI_COMMAND, 2))
		config_write(dev, PCI_COMMAND, saved + PCI_COMMAND, 2);
	for (uint32_t reg = PCI_BAR0; reg < PCI_BAR0 + 4 * PCI_BARS; reg += 4)
		if (memcmp(saved + reg, dev->config + reg, 4))
			config_write(dev, reg, saved + reg, 4);
	if (saved[PCI_INTERRUPT_LINE] != dev->config[PCI_INTERRUPT_LINE])
		config_write(dev, PCI_INTERRUPT_LINE, saved + PCI_INTERRUPT_LINE, 1);
	for (uint32_t reg = 0x40; reg < sizeof(dev->config); reg++)
		if (saved[reg] != dev->config[reg])
			config_write(dev, reg, saved + reg, 1);
	return memcmp(saved, dev->config, sizeof(dev->config)) ? -1 : 0;
}

static int bus_load(void *opaque, struct state_in *in)
{
	struct pci_bus *pci = opaque;
	uint32_t address = state_get_u32(in);
	int r = 0;
	pthread_mutex_lock(&pci->lock);
	pci->address = address;
	for (uint32_t s = 1; s < PCI_SLOTS && r == 0 && !state_in_failed(in); s++) {
		if (!pci->slots[s])
			continue;
		uint8_t slot = state_get_u8(in), saved[256];
		state_get_bytes(in, saved, sizeof(saved));
		if (state_in_failed(in))
			break;
		if (slot != s) {
			state_in_fail(in, "slot %u where this machine has a device in slot %u", slot, s);
			r = -1;
		} else if (restore_config(pci->slots[s], saved) < 0) {
			state_in_fail(in, "slot %u: configuration space a guest could not have written "
					  "to this device", s);
			r = -1;
		}
	}
	pthread_mutex_unlock(&pci->lock);
	return state_in_finish(in) < 0 || r < 0 ? -1 : 0;
}

static void bus_destroy(void *opaque)
{
	pci_bus_destroy(opaque);
}

const struct device_ops pci_bus_device_ops = {
	.kind = "pci-bus",
	.quiesce = bus_quiesce,
	.unquiesce = bus_unquiesce,
	.save = bus_save,
	.load = bus_load,
	.destroy = bus_destroy,
};
