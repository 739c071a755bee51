#include "devices/device.h"

#include "util/log.h"

int device_table_add(struct device_table *t, const struct device_ops *ops, void *dev,
		     const char *name)
{
	if (t->n == DEVICE_TABLE_MAX) {
		log_error("%s: too many devices (at most %d)", name, DEVICE_TABLE_MAX);
		return -1;
	}
	t->devices[t->n++] = (struct device){ .ops = ops, .dev = dev, .name = name };
	return 0;
}

int device_table_start(struct device_table *t)
{
	for (int i = 0; i < t->n; i++)
		if (t->devices[i].ops->start && t->devices[i].ops->start(t->devices[i].dev) < 0)
			return -1;
	return 0;
}

void device_table_quiesce(struct device_table *t)
{
	for (int i = 0; i < t->n; i++)
		if (t->devices[i].ops->quiesce)
			t->devices[i].ops->quiesce(t->devices[i].dev);
}

void device_table_unquiesce(struct device_table *t)
{
	for (int i = t->n - 1; i >= 0; i--)
		if (t->devices[i].ops->unquiesce)
			t->devices[i].ops->unquiesce(t->devices[i].dev);
}

void device_table_destroy(struct device_table *t)
{
	for (int i = t->n - 1; i >= 0; i--)
		if (t->devices[i].ops->destroy)
			t->devices[i].ops->destroy(t->devices[i].dev);
	t->n = 0;
}

void device_table_tick(struct device_table *t, int64_t now_ms)
{
	for (int i = 0; i < t->n; i++)
		if (t->devices[i].ops->tick)
			t->devices[i].ops->tick(t->devices[i].dev, now_ms);
}
