#include "net/pcap.h"

#include <string.h>

#define PCAP_MAGIC      0xa1b2c3d4u /* microsecond timestamps */
#define LINKTYPE_ETHERNET 1
#define SNAPLEN         65535

static void put32(uint8_t *p, uint32_t v)
{
	/* The file's byte order is the writer's; the magic tells readers which.
	 * Written little-endian, the magic says so. */
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

int pcap_open(struct pcap *p, const char *path)
{
	p->frames = 0;
	p->f = fopen(path, "wbe");
	if (!p->f)
		return -1;
	uint8_t h[24];
	put32(h, PCAP_MAGIC);
	h[4] = 2, h[5] = 0, h[6] = 4, h[7] = 0; /* version 2.4 */
	put32(h + 8, 0);                        /* GMT offset */
	put32(h + 12, 0);                       /* timestamp accuracy */
	put32(h + 16, SNAPLEN);
	put32(h + 20, LINKTYPE_ETHERNET);
	if (fwrite(h, sizeof(h), 1, p->f) != 1) {
		fclose(p->f);
		p->f = NULL;
		return -1;
	}
	return 0;
}

void pcap_write(struct pcap *p, const uint8_t *frame, size_t len, uint64_t now_us)
{
	if (!p->f)
		return;
	size_t cap = len < SNAPLEN ? len : SNAPLEN;
	uint8_t r[16];
	put32(r, (uint32_t)(now_us / 1000000));
	put32(r + 4, (uint32_t)(now_us % 1000000));
	put32(r + 8, (uint32_t)cap);
	put32(r + 12, (uint32_t)len);
	if (fwrite(r, sizeof(r), 1, p->f) == 1 && fwrite(frame, cap, 1, p->f) == 1)
		p->frames++;
}

void pcap_close(struct pcap *p)
{
	if (p->f)
		fclose(p->f);
	p->f = NULL;
}
