/* ACPI tables for Linux guests: RSDP, XSDT, FADT (with the PM1 block of
 * devices/acpi_pm.c and its reset register), MADT (one local APIC per vCPU,
 * the IOAPIC, ISA overrides) and a DSDT that declares S5 (soft off). */
#ifndef NESTVM_BOOT_ACPI_H
#define NESTVM_BOOT_ACPI_H

#include <stdint.h>

#include "kvm/cpuid.h"
#include "mem/guest_mem.h"
#include "mem/pc_layout.h"

#define ACPI_TABLES_GPA PC_ACPI_TABLES_GPA
#define ACPI_S5_SLP_TYP 5       /* the sleep type the DSDT gives S5 */
#define ACPI_SCI_IRQ    PC_ACPI_SCI_IRQ /* the FADT's SCI */

/* Writes the tables; returns the RSDP's guest-physical address. */
uint64_t acpi_write_tables(struct guest_mem *mem, const struct cpu_topology *topo);

#endif
