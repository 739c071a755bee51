/* The PC platform nestvm builds, in one place: where RAM, the PCI window
 * and the interrupt controllers sit in guest physical memory, and the fixed
 * I/O ports and IRQs of the legacy devices. boot/ (the tables and E820 map
 * that describe the platform to the guest) and devices/ (the models that
 * answer there) both take their addresses from here, so they cannot
 * disagree. The guest-visible ABIs of the test guest keep their own
 * headers (boot/direct64_abi.h, devices/testdev_abi.h). */
#ifndef NESTVM_MEM_PC_LAYOUT_H
#define NESTVM_MEM_PC_LAYOUT_H

/* Guest physical memory. */
#define PC_BIOS_AREA_GPA      0xe0000ULL     /* reserved to 1 MiB */
#define PC_ACPI_TABLES_GPA    PC_BIOS_AREA_GPA /* where Linux scans for the RSDP */
#define PC_SMBIOS_GPA         0xf0000ULL     /* where Linux scans for the entry point */
#define PC_MMIO_HOLE_START    0xc0000000ULL  /* RAM above this moves above 4 GiB */
#define PC_MMIO_HOLE_END      0x100000000ULL
#define PC_PCI_MMIO_BASE      0xc0000000ULL  /* BARs are placed in this window */
#define PC_PCI_MMIO_END       0xfc000000ULL
#define PC_IOAPIC_GPA         0xfec00000ULL
#define PC_LAPIC_GPA          0xfee00000ULL

/* I/O ports. */
#define PC_I8042_DATA_PORT    0x60
#define PC_I8042_COMMAND_PORT 0x64
#define PC_RTC_INDEX_PORT     0x70           /* and 0x71, the data port */
#define PC_COM1_PORT          0x3f8
#define PC_ACPI_PM1_EVT_PORT  0x600          /* 4 bytes: PM1_STS, PM1_EN */
#define PC_ACPI_PM1_CNT_PORT  0x604          /* 2 bytes: PM1_CNT */
#define PC_ACPI_RESET_PORT    0x608          /* the reset register the FADT names */
#define PC_PCI_CONFIG_ADDRESS_PORT 0xcf8
#define PC_PCI_CONFIG_DATA_PORT    0xcfc

/* IRQs (ISA numbering, routed through the IOAPIC). */
#define PC_COM1_IRQ           4
#define PC_ACPI_SCI_IRQ       9              /* level-triggered, active high */

#endif
