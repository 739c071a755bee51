/* Packet capture files in the classic pcap format (what tcpdump -r and
 * Wireshark read): a global header, then a record per frame. */
#ifndef NESTVM_NET_PCAP_H
#define NESTVM_NET_PCAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct pcap {
	FILE *f;
	uint64_t frames;
};

/* Creates (truncates) path and writes the header; -1 with errno. */
int pcap_open(struct pcap *p, const char *path);
/* Appends one Ethernet frame seen at now_us (microseconds since the epoch). */
void pcap_write(struct pcap *p, const uint8_t *frame, size_t len, uint64_t now_us);
void pcap_close(struct pcap *p);

#endif
