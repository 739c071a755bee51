#include "devices/acpi_pm.h"
#include "devices/device.h"

#include <string.h>

#define PM1_CNT_SCI_EN  0x0001
#define PM1_CNT_SLP_EN  0x2000
#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)
#define PM1_PWRBTN      0x0100 /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */

void acpi_pm_init(struct acpi_pm *pm, uint8_t s5_slp_typ,
		  void (*event)(void *ctx, enum acpi_pm_event ev),
		  void (*set_sci)(void *ctx, int level), void *ctx)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	pm->s5_slp_typ = s5_slp_typ;
	pm->event = event;
	pm->set_sci = set_sci;
	pm->ctx = ctx;
	pm->cnt = PM1_CNT_SCI_EN; /* no SMI handshake: always in ACPI mode */
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

/* The SCI is level-triggered: up while any enabled event is pending. Called
 * with the lock held. */
static void update_sci(struct acpi_pm *pm)
{
	bool level = (pm->sts & pm->en & PM1_PWRBTN) != 0;
	if (level != pm->sci_level && pm->set_sci) {
		pm->sci_level = level;
		pm->set_sci(pm->ctx, level);
	}
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_PWRBTN;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* Registers as bytes, so any access width works the same way. */
static void evt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct acpi_pm *pm = opaque;
	pthread_mutex_lock(&pm->lock);
	for (uint32_t i = 0; i < len && offset + i < 4; i++) {
		uint64_t o = offset + i;
		uint16_t *reg = o < 2 ? &pm->sts : &pm->en;
		unsigned shift = (o & 1) * 8;
		if (!is_write)
			data[i] = (uint8_t)(*reg >> shift);
		else if (o < 2) /* status bits are cleared by writing 1 */
			*reg &= (uint16_t)~((uint16_t)data[i] << shift);
		else
			*reg = (uint16_t)((*reg & ~(0xff << shift)) | (data[i] << shift));
	}
	if (is_write)
		update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void cnt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct acpi_pm *pm = opaque;
	bool poweroff = false;
	pthread_mutex_lock(&pm->lock);
	for (uint32_t i = 0; i < len && offset + i < 2; i++) {
		unsigned shift = (unsigned)(offset + i) * 8;
		if (!is_write) {
			data[i] = (uint8_t)(pm->cnt >> shift);
			continue;
		}
		pm->cnt = (uint16_t)((pm->cnt & ~(0xff << shift)) | (data[i] << shift));
	}
	if (is_write && (pm->cnt & PM1_CNT_SLP_EN)) {
		/* SLP_EN is write-only: it triggers the transition and reads 0. */
		poweroff = PM1_CNT_SLP_TYP(pm->cnt) == pm->s5_slp_typ;
		pm->cnt &= (uint16_t)~PM1_CNT_SLP_EN;
	}
	pthread_mutex_unlock(&pm->lock);
	if (poweroff)
		pm->event(pm->ctx, ACPI_PM_POWEROFF);
}

static void reset_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			 bool is_write)
{
	struct acpi_pm *pm = opaque;
	(void)offset;
	(void)len;
	if (!is_write) {
		data[0] = 0;
		return;
	}
	if (data[0] == ACPI_RESET_VALUE)
		pm->event(pm->ctx, ACPI_PM_RESET);
}

int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio)
{
	if (bus_register(pio, ACPI_PM1_EVT_PORT, 4, evt_access, pm, "acpi-pm1-evt") < 0 ||
	    bus_register(pio, ACPI_PM1_CNT_PORT, 2, cnt_access, pm, "acpi-pm1-cnt") < 0)
		return -1;
	return bus_register(pio, ACPI_RESET_PORT, 1, reset_access, pm, "acpi-reset");
}

/* --- device interface ------------------------------------------------- */

/* The SCI's level follows from the registers: it is recomputed, not saved. */
static int pm_save(void *dev, struct state_out *out, char *why, size_t whylen)
{
	(void)why, (void)whylen;
	struct acpi_pm *pm = dev;
	pthread_mutex_lock(&pm->lock);
	state_put_u16(out, pm->sts);
	state_put_u16(out, pm->en);
	state_put_u16(out, pm->cnt);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

static int pm_load(void *dev, struct state_in *in)
{
	struct acpi_pm *pm = dev;
	uint16_t sts = state_get_u16(in), en = state_get_u16(in), cnt = state_get_u16(in);
	if (state_in_finish(in) < 0)
		return -1;
	pthread_mutex_lock(&pm->lock);
	pm->sts = sts;
	pm->en = en;
	pm->cnt = cnt;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

static void pm_destroy(void *dev)
{
	acpi_pm_destroy(dev);
}

const struct device_ops acpi_pm_device_ops = {
	.kind = "acpi-pm",
	.save = pm_save,
	.load = pm_load,
	.destroy = pm_destroy,
};
