/* MC146818 CMOS real-time clock at ports 0x70/0x71: the host's UTC time in
 * BCD, 24-hour mode, with updates never in progress. Guests read it once
 * at boot to set the system clock; kvmclock keeps time after that. */
#ifndef NESTVM_DEVICES_RTC_H
#define NESTVM_DEVICES_RTC_H

#include <pthread.h>
#include <stdint.h>

#include "devices/bus.h"

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128]; /* non-clock bytes the guest may store */
};

void rtc_init(struct rtc *rtc);
int rtc_attach(struct rtc *rtc, struct bus *pio);
void rtc_destroy(struct rtc *rtc);

/* Its entry in the machine's device table (devices/device.h). */
extern const struct device_ops rtc_device_ops;

#endif
