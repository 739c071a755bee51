#define _GNU_SOURCE
#include "net/uplink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/parse.h"

/* The interface holding mac, found through the socket fd: its index, and
 * its name in name; -1 if none has it. */
static int find_by_mac(int fd, const uint8_t mac[6], char name[IF_NAMESIZE])
{
	struct if_nameindex *all = if_nameindex();
	int found = -1;
	for (struct if_nameindex *i = all; i && i->if_index; i++) {
		struct ifreq ifr = { 0 };
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 && !memcmp(ifr.ifr_hwaddr.sa_data, mac, 6)) {
			found = (int)i->if_index;
			snprintf(name, IF_NAMESIZE, "%s", i->if_name);
			break;
		}
	}
	if (all)
		if_freenameindex(all);
	return found;
}

/* Turns IPv6 off on the interface: no link-local address of this
 * machine on a segment that is not its own. */
static void disable_ipv6(const char *ifname)
{
	char path[64 + IF_NAMESIZE];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "1\n", 2);
		close(fd);
	}
}

int uplink_open(struct uplink *u, const char *spec)
{
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	/* The interface first (any socket answers these ioctls), so that a
	 * wrong name is told as such, with or without the right to the
	 * packet socket. */
	int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ctl < 0) {
		log_error("--uplink %s: socket: %s", spec, strerror(errno));
		return -1;
	}
	uint8_t mac[6];
	if (parse_mac(spec, mac) == 0) {
		u->ifindex = find_by_mac(ctl, mac, u->ifname);
		if (u->ifindex < 0) {
			log_error("--uplink %s: no network interface has that MAC address", spec);
			goto fail;
		}
	} else {
		if (strlen(spec) >= IF_NAMESIZE || !(u->ifindex = (int)if_nametoindex(spec))) {
			log_error("--uplink %s: no such network interface (give its name or its MAC)", spec);
			goto fail;
		}
		snprintf(u->ifname, sizeof(u->ifname), "%s", spec);
	}
	/* Protocol 0 until bound: no frame of another interface is queued
	 * in between. */
	u->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		log_error("--uplink %s: cannot open a packet socket: %s%s", spec, strerror(errno),
			  errno == EPERM ? " (it needs CAP_NET_RAW: run the switch as root)" : "");
		goto fail;
	}
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", u->ifname);
	if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0) {
		log_error("--uplink %s: %s: %s", spec, u->ifname, strerror(errno));
		goto fail;
	}
	/* Up, and no ARP: the interface carries the segment's frames, and
	 * this machine does not answer on it for its own addresses. */
	if (!(ifr.ifr_flags & IFF_UP) || !(ifr.ifr_flags & IFF_NOARP)) {
		ifr.ifr_flags |= IFF_UP | IFF_NOARP;
		if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) {
			log_error("--uplink %s: cannot bring %s up (without ARP): %s", spec, u->ifname,
				  strerror(errno));
			goto fail;
		}
	}
	disable_ipv6(u->ifname);
	/* GRO would merge a TCP flow's frames into one packet of up to 64
	 * KiB before the socket sees it, which no port could carry. */
	struct ethtool_value gro = { .cmd = ETHTOOL_SGRO, .data = 0 };
	ifr.ifr_data = (char *)&gro;
	if (ioctl(ctl, SIOCETHTOOL, &ifr) < 0 && errno != EOPNOTSUPP)
		log_warn("--uplink %s: cannot turn GRO off on %s (%s): merged TCP packets will be dropped",
			 spec, u->ifname, strerror(errno));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = u->ifindex };
	if (bind(u->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_error("--uplink %s: cannot bind to %s: %s", spec, u->ifname, strerror(errno));
		goto fail;
	}
	struct packet_mreq promisc = { .mr_ifindex = u->ifindex, .mr_type = PACKET_MR_PROMISC };
	int one = 1;
	if (setsockopt(u->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof(promisc)) < 0 ||
	    setsockopt(u->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0) {
		log_error("--uplink %s: cannot put %s in promiscuous mode: %s", spec, u->ifname,
			  strerror(errno));
		goto fail;
	}
	/* What this machine sends on the interface is not the segment's
	 * (older kernels lack the option: uplink_recv skips them too). */
	(void)setsockopt(u->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	close(ctl);
	return 0;
fail:
	close(ctl);
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	return -1;
}

void uplink_close(struct uplink *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

ssize_t uplink_recv(struct uplink *u, uint8_t *buf, size_t cap)
{
	struct sockaddr_ll from;
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
			      .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control) };
	ssize_t r = recvmsg(u->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
	if (r < 0)
		return -1;
	if (from.sll_pkttype == PACKET_OUTGOING)
		return 0;
	if ((size_t)r > cap) {
		u->bad_packets++;
		return 0;
	}
	/* A tagged frame arrives with its tag taken off into the auxiliary
	 * data: it is another VLAN's, which the port does not carry. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
			struct tpacket_auxdata aux;
			memcpy(&aux, CMSG_DATA(c), sizeof(aux));
			if (aux.tp_status & TP_STATUS_VLAN_VALID) {
				u->tagged_dropped++;
				return 0;
			}
		}
	return r;
}

bool uplink_send(struct uplink *u, const uint8_t *frame, size_t len)
{
	return sendto(u->fd, frame, len, MSG_DONTWAIT, NULL, 0) == (ssize_t)len;
}
