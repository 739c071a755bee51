#include "boot/acpi.h"

#include <string.h>

#include "devices/acpi_pm.h"
#include "devices/pci.h"

#define RSDP_GPA (ACPI_TABLES_GPA)
#define XSDT_GPA (ACPI_TABLES_GPA + 0x40)
#define FADT_GPA (ACPI_TABLES_GPA + 0x100)
#define DSDT_GPA (ACPI_TABLES_GPA + 0x300)
#define MADT_GPA (ACPI_TABLES_GPA + 0x400) /* grows with the vCPU count */

#define LAPIC_GPA  PC_LAPIC_GPA
#define IOAPIC_GPA PC_IOAPIC_GPA
#define SCI_IRQ    ACPI_SCI_IRQ

struct __attribute__((packed)) acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_gas {
	uint8_t space_id; /* 1: system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
};

struct __attribute__((packed)) acpi_rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum;
	uint8_t reserved[3];
};

struct __attribute__((packed)) acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk,
		gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len,
		gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk,
		x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk, sleep_control_reg,
		sleep_status_reg;
	uint64_t hypervisor_vendor_id;
};

#define FADT_WBINVD        (1u << 0)
#define FADT_PROC_C1       (1u << 2)
#define FADT_SLP_BUTTON    (1u << 5)  /* no fixed sleep button */
#define FADT_RESET_REG_SUP (1u << 10)

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT layout (ACPI 6)");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP layout");

static uint8_t checksum(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)p)[i];
	return (uint8_t)-sum;
}

static void header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "NESTVM", 6);
	memcpy(h->oem_table_id, "NESTVM  ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "NVMM", 4);
	h->creator_revision = 1;
}

static void finish(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = checksum(h, h->length);
}

/* A small AML writer for the DSDT: enough for names, a package and a
 * device with a resource template. */
struct aml {
	uint8_t buf[512];
	size_t len;
};

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Wraps body as op PkgLength body (ACPI 20.2.4: one length byte below 64,
 * else two). */
static void aml_package(struct aml *a, const uint8_t *op, size_t oplen, const struct aml *body)
{
	aml_bytes(a, op, oplen);
	size_t total = body->len + 1;
	if (total < 64) {
		aml_byte(a, (uint8_t)total);
	} else {
		total++;
		aml_byte(a, (uint8_t)(0x40 | (total & 0xf)));
		aml_byte(a, (uint8_t)(total >> 4));
	}
	aml_bytes(a, body->buf, body->len);
}

static void aml_name_dword(struct aml *a, const char *name, uint32_t v)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_bytes(a, name, 4);
	aml_byte(a, 0x0c); /* DWordPrefix */
	aml_bytes(a, &v, 4);
}

/* Word (0x88) or DWord (0x87) address space descriptor, producer, fixed
 * minimum and maximum. */
static void res_word(struct aml *r, uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max)
{
	uint16_t f[5] = { 0, min, max, 0, (uint16_t)(max - min + 1) };
	aml_bytes(r, (uint8_t[]){ 0x88, 0x0d, 0x00, type, 0x0c, type_flags }, 6);
	aml_bytes(r, f, sizeof(f));
}

static void res_dword(struct aml *r, uint8_t type, uint8_t type_flags, uint32_t min, uint32_t max)
{
	uint32_t f[5] = { 0, min, max, 0, max - min + 1 };
	aml_bytes(r, (uint8_t[]){ 0x87, 0x17, 0x00, type, 0x0c, type_flags }, 6);
	aml_bytes(r, f, sizeof(f));
}

/* DSDT body:
 *   Name (_S5, Package (4) { 5, 5, 0, 0 })
 *   Scope (\_SB) { Device (PCI0) { _HID PNP0A03, _UID 0, _CRS {...} } }
 * The PCI root bridge is what makes Linux scan bus 0; its _CRS gives the
 * bus number, the config ports, the rest of port space and the BAR window. */
static void build_dsdt(struct aml *a)
{
	static const uint8_t s5[] = {
		0x08, '_', 'S', '5', '_',      /* NameOp "_S5_" */
		0x12, 0x08, 0x04,              /* PackageOp, PkgLength 8, 4 elements */
		0x0a, ACPI_S5_SLP_TYP,         /* BytePrefix SLP_TYPa */
		0x0a, ACPI_S5_SLP_TYP,         /* BytePrefix SLP_TYPb */
		0x00, 0x00,                    /* reserved */
	};
	aml_bytes(a, s5, sizeof(s5));

	struct aml res = { .len = 0 };
	res_word(&res, 2, 0, 0, 0);                             /* bus 0 */
	aml_bytes(&res, (uint8_t[]){ 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08 }, 8);
	res_word(&res, 1, 3, 0x0000, 0x0cf7);                   /* ports below ... */
	res_word(&res, 1, 3, 0x0d00, 0xffff);                   /* ... and above */
	res_dword(&res, 0, 1, (uint32_t)PCI_MMIO_BASE, (uint32_t)(PCI_MMIO_END - 1));
	aml_bytes(&res, (uint8_t[]){ 0x79, 0x00 }, 2);        /* end tag */

	struct aml buffer = { .len = 0 };
	aml_byte(&buffer, 0x0a); /* BytePrefix: buffer size */
	aml_byte(&buffer, (uint8_t)res.len);
	aml_bytes(&buffer, res.buf, res.len);

	struct aml dev = { .len = 0 };
	aml_bytes(&dev, "PCI0", 4);
	aml_name_dword(&dev, "_HID", 0x030ad041); /* EisaId ("PNP0A03") */
	aml_bytes(&dev, (uint8_t[]){ 0x08, '_', 'U', 'I', 'D', 0x00 }, 6); /* Name (_UID, Zero) */
	aml_bytes(&dev, (uint8_t[]){ 0x08, '_', 'C', 'R', 'S' }, 5);
	aml_package(&dev, (const uint8_t[]){ 0x11 }, 1, &buffer); /* BufferOp */

	struct aml scope = { .len = 0 };
	aml_bytes(&scope, (uint8_t[]){ '\\', '_', 'S', 'B', '_' }, 5);
	aml_package(&scope, (const uint8_t[]){ 0x5b, 0x82 }, 2, &dev); /* DeviceOp */
	aml_package(a, (const uint8_t[]){ 0x10 }, 1, &scope);           /* ScopeOp */
}

static void write_madt(struct guest_mem *mem, const struct cpu_topology *topo)
{
	int ncpus = topo->ncpus;
	uint32_t len = 44 + 8 * (uint32_t)ncpus + 12 + 10 * 2 + 6;
	uint8_t *t = guest_mem_ptr(mem, MADT_GPA, len);
	memset(t, 0, len);
	header((struct acpi_header *)t, "APIC", len, 4);
	uint32_t lapic = LAPIC_GPA, flags = 1; /* PCAT_COMPAT: 8259s are present */
	memcpy(t + 36, &lapic, 4);
	memcpy(t + 40, &flags, 4);
	uint8_t *p = t + 44;
	for (int i = 0; i < ncpus; i++, p += 8) {
		/* Processor local APIC: type 0, length 8, UID, APIC ID, enabled. */
		p[0] = 0, p[1] = 8, p[2] = (uint8_t)i, p[3] = (uint8_t)cpu_apic_id(topo, i);
		uint32_t enabled = 1;
		memcpy(p + 4, &enabled, 4);
	}
	/* I/O APIC: type 1, length 12, ID 0, address, GSI base 0. */
	p[0] = 1, p[1] = 12, p[2] = 0;
	uint32_t ioapic = IOAPIC_GPA;
	memcpy(p + 4, &ioapic, 4);
	p += 12;
	/* Interrupt source overrides (type 2, length 10): the PIT's IRQ 0 is
	 * wired to IOAPIC pin 2 (as KVM routes it), and the SCI is level. */
	static const struct { uint8_t irq; uint32_t gsi; uint16_t flags; } isos[] = {
		{ 0, 2, 0 }, { SCI_IRQ, SCI_IRQ, 0x000d /* active high, level */ },
	};
	for (size_t i = 0; i < 2; i++, p += 10) {
		p[0] = 2, p[1] = 10, p[2] = 0, p[3] = isos[i].irq;
		memcpy(p + 4, &isos[i].gsi, 4);
		memcpy(p + 8, &isos[i].flags, 2);
	}
	/* Local APIC NMI (type 4, length 6): all processors, LINT1. */
	p[0] = 4, p[1] = 6, p[2] = 0xff, p[3] = 0, p[4] = 0, p[5] = 1;
	finish((struct acpi_header *)t);
}

uint64_t acpi_write_tables(struct guest_mem *mem, const struct cpu_topology *topo)
{
	struct aml body = { .len = 0 };
	build_dsdt(&body);
	uint32_t dsdt_len = 36 + (uint32_t)body.len;
	uint8_t *dsdt = guest_mem_ptr(mem, DSDT_GPA, dsdt_len);
	memset(dsdt, 0, 36);
	header((struct acpi_header *)dsdt, "DSDT", dsdt_len, 2);
	memcpy(dsdt + 36, body.buf, body.len);
	finish((struct acpi_header *)dsdt);

	struct acpi_fadt *fadt = guest_mem_ptr(mem, FADT_GPA, sizeof(*fadt));
	memset(fadt, 0, sizeof(*fadt));
	header(&fadt->h, "FACP", sizeof(*fadt), 6);
	fadt->dsdt = DSDT_GPA;
	fadt->x_dsdt = DSDT_GPA;
	fadt->sci_int = SCI_IRQ;
	fadt->smi_cmd = 0; /* no SMI: the machine is always in ACPI mode */
	fadt->pm1a_evt_blk = ACPI_PM1_EVT_PORT;
	fadt->pm1a_cnt_blk = ACPI_PM1_CNT_PORT;
	fadt->pm1_evt_len = 4;
	fadt->pm1_cnt_len = 2;
	fadt->x_pm1a_evt_blk = (struct acpi_gas){ 1, 32, 0, 2, ACPI_PM1_EVT_PORT };
	fadt->x_pm1a_cnt_blk = (struct acpi_gas){ 1, 16, 0, 2, ACPI_PM1_CNT_PORT };
	fadt->p_lvl2_lat = 101;  /* > 100: no C2 */
	fadt->p_lvl3_lat = 1001; /* > 1000: no C3 */
	fadt->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RESET_REG_SUP;
	fadt->reset_reg = (struct acpi_gas){ 1, 8, 0, 1, ACPI_RESET_PORT };
	fadt->reset_value = ACPI_RESET_VALUE;
	finish(&fadt->h);

	write_madt(mem, topo);

	uint8_t *xsdt = guest_mem_ptr(mem, XSDT_GPA, 36 + 16);
	memset(xsdt, 0, 36 + 16);
	header((struct acpi_header *)xsdt, "XSDT", 36 + 16, 1);
	uint64_t entries[2] = { FADT_GPA, MADT_GPA };
	memcpy(xsdt + 36, entries, sizeof(entries));
	finish((struct acpi_header *)xsdt);

	struct acpi_rsdp *rsdp = guest_mem_ptr(mem, RSDP_GPA, sizeof(*rsdp));
	memset(rsdp, 0, sizeof(*rsdp));
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "NESTVM", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = XSDT_GPA;
	rsdp->checksum = checksum(rsdp, 20);
	rsdp->extended_checksum = checksum(rsdp, sizeof(*rsdp));
	return RSDP_GPA;
}
