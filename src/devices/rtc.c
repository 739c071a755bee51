#include "devices/rtc.h"
#include "devices/device.h"

#include <string.h>
#include <time.h>
#include "mem/pc_layout.h"

#define RTC_INDEX_PORT PC_RTC_INDEX_PORT
#define REG_SECONDS 0x00
#define REG_MINUTES 0x02
#define REG_HOURS   0x04
#define REG_WEEKDAY 0x06
#define REG_DAY     0x07
#define REG_MONTH   0x08
#define REG_YEAR    0x09
#define REG_A       0x0a
#define REG_B       0x0b
#define REG_C       0x0c
#define REG_D       0x0d
#define REG_CENTURY 0x32

#define REG_B_24H   0x02
#define REG_D_VRT   0x80 /* battery good */

void rtc_init(struct rtc *rtc)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	/* glibc's gmtime_r() loads the time zone on its first call (it opens
	 * /etc/localtime), which a sandboxed vCPU thread may not do: load it
	 * here, during setup. */
	tzset();
	rtc->cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	rtc->cmos[REG_B] = REG_B_24H;
	rtc->cmos[REG_D] = REG_D_VRT;
}

void rtc_destroy(struct rtc *rtc)
{
	pthread_mutex_destroy(&rtc->lock);
}

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t read_reg(struct rtc *rtc, uint8_t reg)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	switch (reg) {
	case REG_SECONDS: return bcd(tm.tm_sec);
	case REG_MINUTES: return bcd(tm.tm_min);
	case REG_HOURS: return bcd(tm.tm_hour);
	case REG_WEEKDAY: return bcd(tm.tm_wday + 1);
	case REG_DAY: return bcd(tm.tm_mday);
	case REG_MONTH: return bcd(tm.tm_mon + 1);
	case REG_YEAR: return bcd(tm.tm_year % 100);
	case REG_CENTURY: return bcd((tm.tm_year + 1900) / 100);
	case REG_A: return rtc->cmos[REG_A] & 0x7f; /* UIP never set */
	case REG_C: return 0; /* no interrupt flags: the RTC raises no IRQ */
	default: return rtc->cmos[reg];
	}
}

static void rtc_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct rtc *rtc = opaque;
	(void)len;
	pthread_mutex_lock(&rtc->lock);
	if (offset == 0) {
		if (is_write)
			rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			data[0] = 0xff;
	} else if (is_write) {
		/* The clock follows the host; other bytes are plain storage. */
		if (rtc->index > REG_D && rtc->index != REG_CENTURY)
			rtc->cmos[rtc->index] = data[0];
		else if (rtc->index == REG_B)
			rtc->cmos[REG_B] = (uint8_t)((data[0] & ~0x04) | REG_B_24H); /* BCD, 24h */
	} else {
		data[0] = read_reg(rtc, rtc->index);
	}
	pthread_mutex_unlock(&rtc->lock);
}

int rtc_attach(struct rtc *rtc, struct bus *pio)
{
	return bus_register(pio, RTC_INDEX_PORT, 2, rtc_access, rtc, "rtc");
}

/* --- device interface ------------------------------------------------- */

/* The clock itself is the host's: only the index register and the bytes
 * the guest stored are state. */
static int rtc_save(void *dev, struct state_out *out, char *why, size_t whylen)
{
	(void)why, (void)whylen;
	struct rtc *rtc = dev;
	pthread_mutex_lock(&rtc->lock);
	state_put_u8(out, rtc->index);
	state_put_bytes(out, rtc->cmos, sizeof(rtc->cmos));
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static int rtc_load(void *dev, struct state_in *in)
{
	struct rtc *rtc = dev;
	uint8_t index = state_get_u8(in);
	uint8_t cmos[sizeof(rtc->cmos)];
	state_get_bytes(in, cmos, sizeof(cmos));
	if (state_in_finish(in) < 0)
		return -1;
	/* The guest's next data access indexes cmos[] with it: past the
	 * array, a crafted snapshot would let it write into nestvm. */
	if (index >= sizeof(rtc->cmos)) {
		state_in_fail(in, "index %u out of range", index);
		return -1;
	}
	pthread_mutex_lock(&rtc->lock);
	rtc->index = index;
	memcpy(rtc->cmos, cmos, sizeof(cmos));
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static void rtc_destroy_device(void *dev)
{
	rtc_destroy(dev);
}

const struct device_ops rtc_device_ops = {
	.kind = "rtc",
	.save = rtc_save,
	.load = rtc_load,
	.destroy = rtc_destroy_device,
};
