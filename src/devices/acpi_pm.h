/* ACPI fixed-hardware power management: the PM1a event block (status and
 * enable, with the fixed power button), the PM1a control block (where the
 * guest writes SLP_TYP|SLP_EN to power off), the FADT reset register, and
 * the SCI line, raised while an enabled status bit is set. */
#ifndef NESTVM_DEVICES_ACPI_PM_H
#define NESTVM_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "mem/pc_layout.h"

#define ACPI_PM1_EVT_PORT PC_ACPI_PM1_EVT_PORT
#define ACPI_PM1_CNT_PORT PC_ACPI_PM1_CNT_PORT
#define ACPI_RESET_PORT   PC_ACPI_RESET_PORT
#define ACPI_RESET_VALUE  0x06  /* full reset */

enum acpi_pm_event { ACPI_PM_POWEROFF, ACPI_PM_RESET };

struct acpi_pm {
	pthread_mutex_t lock;
	uint16_t sts, en, cnt;
	uint8_t s5_slp_typ;
	bool sci_level;
	void (*event)(void *ctx, enum acpi_pm_event ev);
	void (*set_sci)(void *ctx, int level);
	void *ctx;
};

void acpi_pm_init(struct acpi_pm *pm, uint8_t s5_slp_typ,
		  void (*event)(void *ctx, enum acpi_pm_event ev),
		  void (*set_sci)(void *ctx, int level), void *ctx);
/* Presses the power button: the guest's OSPM decides what follows. */
void acpi_pm_power_button(struct acpi_pm *pm);
int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio);
void acpi_pm_destroy(struct acpi_pm *pm);

/* Its entry in the machine's device table (devices/device.h). */
extern const struct device_ops acpi_pm_device_ops;

#endif
