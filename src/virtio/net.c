#define _GNU_SOURCE
#include "virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/if_tun.h>

#include "util/hash.h"
#include "util/log.h"
#include "util/parse.h"

#define VIRTIO_ID_NET 1

#define VIRTIO_NET_F_CSUM       (1ULL << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ULL << 1)
#define VIRTIO_NET_F_MAC        (1ULL << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ULL << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ULL << 8)
#define VIRTIO_NET_F_GUEST_ECN  (1ULL << 9)
#define VIRTIO_NET_F_HOST_TSO4  (1ULL << 11)
#define VIRTIO_NET_F_HOST_TSO6  (1ULL << 12)
#define VIRTIO_NET_F_HOST_ECN   (1ULL << 13)

/* struct virtio_net_hdr with num_buffers: its size once VERSION_1 is
 * negotiated, whatever else is. */
#define NET_HDR_LEN 12
#define NUM_BUFFERS_OFFSET 10

enum { RXQ = 0, TXQ = 1 };

int virtio_net_parse(const char *spec, struct virtio_net_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	char *copy = strdup(spec);
	if (!copy) {
		log_error("--net: out of memory");
		return -1;
	}
	int r = 0;
	char *save = NULL;
	for (char *o = strtok_r(copy, ",", &save); o && r == 0; o = strtok_r(NULL, ",", &save)) {
		if (!strncmp(o, "switch=", 7)) {
			if (!o[7] || strlen(o + 7) >= sizeof(opt->switch_path)) {
				log_error("--net %s: the switch's socket path must be 1 to %zu characters",
					  spec, sizeof(opt->switch_path) - 1);
				r = -1;
			} else {
				strcpy(opt->switch_path, o + 7);
			}
		} else if (!strncmp(o, "port=", 5)) {
			if (!o[5] || strlen(o + 5) >= sizeof(opt->port) || strchr(o + 5, '/')) {
				log_error("--net %s: port name must be 1 to %zu characters without '/'", spec,
					  sizeof(opt->port) - 1);
				r = -1;
			} else {
				strcpy(opt->port, o + 5);
			}
		} else if (!strncmp(o, "tap=", 4)) {
			if (!o[4] || strlen(o + 4) >= IFNAMSIZ || strchr(o + 4, '/')) {
				log_error("--net %s: tap name must be 1 to %d characters without '/'",
					  spec, IFNAMSIZ - 1);
				r = -1;
			} else {
				strcpy(opt->ifname, o + 4);
			}
		} else if (!strncmp(o, "mac=", 4)) {
			if (parse_mac(o + 4, opt->mac) < 0) {
				log_error("--net %s: mac must look like 52:54:00:12:34:56", spec);
				r = -1;
			} else if (opt->mac[0] & 1) {
				log_error("--net %s: %s is a multicast address", spec, o + 4);
				r = -1;
			} else {
				opt->mac_given = true;
			}
		} else {
			log_error("--net %s: unknown option '%s' (expected tap=IFNAME, switch=PATH, "
				  "port=NAME or mac=MAC)", spec, o);
			r = -1;
		}
	}
	if (r == 0 && !opt->ifname[0] == !opt->switch_path[0]) {
		log_error("--net %s: expected tap=IFNAME[,mac=MAC] or switch=PATH[,port=NAME][,mac=MAC]",
			  spec);
		r = -1;
	} else if (r == 0 && opt->port[0] && !opt->switch_path[0]) {
		log_error("--net %s: port= names a switch's port; it needs switch=PATH", spec);
		r = -1;
	}
	free(copy);
	return r;
}

/* A MAC the same on every run of the VM attached to this tap or switch
 * port: locally administered (0x02 set), unicast, from an FNV-1a hash of
 * its name. */
static void default_mac(const char *key, uint8_t mac[6])
{
	uint64_t h = fnv1a64_update(fnv1a64("nestvm:", 7), key, strlen(key));
	mac[0] = 0x02;
	for (int i = 1; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
}

static void bring_up(const char *ifname)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			log_warn("--net tap=%s: cannot bring it up: %s", ifname, strerror(errno));
	}
	close(s);
}

/* The switch's port: PATH, or PATH.NAME for a named one. */
static int open_switch(struct virtio_net *net, const struct virtio_net_options *opt)
{
	char path[sizeof(opt->switch_path) + sizeof(opt->port) + 1], why[160];
	snprintf(path, sizeof(path), opt->port[0] ? "%s.%s" : "%s", opt->switch_path, opt->port);
	snprintf(net->name, sizeof(net->name), "--net switch=%s", path);
	if (!opt->mac_given && opt->port[0]) {
		default_mac(path, net->opt.mac); /* a named port is one VM's: stable */
	} else if (!opt->mac_given) {
		/* Every VM on the switch's shared socket has the same path: a
		 * MAC from it would collide. A random one (locally administered,
		 * unicast) per run; mac= or port= give a stable one. */
		if (getrandom(net->opt.mac, 6, 0) != 6)
			default_mac(path, net->opt.mac);
		net->opt.mac[0] = (uint8_t)((net->opt.mac[0] & 0xfc) | 0x02);
	}
	net->link = malloc(sizeof(*net->link));
	if (!net->link) {
		log_error("%s: out of memory", net->name);
		return -1;
	}
	if (switch_link_open(net->link, path, why, sizeof(why)) < 0) {
		log_error("%s: %s", net->name, why);
		free(net->link);
		net->link = NULL;
		return -1;
	}
	return 0;
}

int virtio_net_open(struct virtio_net *net, const struct virtio_net_options *opt)
{
	net->opt = *opt;
	net->tap_fd = -1;
	net->link = NULL;
	if (opt->switch_path[0])
		return open_switch(net, opt);
	snprintf(net->name, sizeof(net->name), "--net tap=%s", opt->ifname);
	if (!opt->mac_given)
		default_mac(opt->ifname, net->opt.mac);
	bool existed = if_nametoindex(opt->ifname) != 0;
	net->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (net->tap_fd < 0) {
		log_error("--net tap=%s: /dev/net/tun: %s%s", opt->ifname, strerror(errno),
			  errno == ENOENT ? " (load the tun module)" : "");
		return -1;
	}
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(net->tap_fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		if (e == EPERM)
			log_error("--net tap=%s: cannot %s the tap device: operation not permitted "
				  "(needs CAP_NET_ADMIN, or create it first: ip tuntap add %s mode tap user USER)",
				  opt->ifname, existed ? "attach to" : "create", opt->ifname);
		else if (e == EBUSY)
			log_error("--net tap=%s: the device is in use (another VM, or not a tap)",
				  opt->ifname);
		else
			log_error("--net tap=%s: TUNSETIFF: %s", opt->ifname, strerror(e));
		goto fail;
	}
	int hdr = NET_HDR_LEN;
	if (ioctl(net->tap_fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		log_error("--net tap=%s: TUNSETVNETHDRSZ: %s", opt->ifname, strerror(errno));
		goto fail;
	}
	if (!existed)
		bring_up(opt->ifname); /* a tap we created is ours to configure */
	return 0;
fail:
	close(net->tap_fd);
	net->tap_fd = -1;
	return -1;
}

void virtio_net_close(struct virtio_net *net)
{
	if (net->tap_fd >= 0)
		close(net->tap_fd);
	net->tap_fd = -1;
	if (net->link) {
		switch_link_close(net->link);
		free(net->link);
		net->link = NULL;
	}
}

/* --- on a switch --------------------------------------------------------- */

/* After the worker used the link: a failed connection is closed (its fd
 * unwatched first), and the fd is watched for output while some waits.
 * vd->lock held. */
static void link_settle(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	struct switch_link *l = net->link;
	if (l->dead) {
		if (!l->reported_down) /* once per outage, not per failed attempt */
			log_warn("%s: the switch went away; connecting again every second", net->name);
		l->reported_down = true;
		virtio_set_poll_fd(vd, -1, false);
		switch_link_close(l);
		return;
	}
	size_t pending;
	stream_tx_pending(&l->stream, &pending);
	virtio_set_poll_out(vd, pending != 0);
}

/* Frames from the switch into receive buffers, until either runs out. A
 * frame waits in the link while the guest has no buffer for it. */
static void receive_from_switch(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	struct virtq *q = &vd->queues[RXQ].vq;
	const uint8_t *frame;
	size_t len;
	while ((frame = switch_link_next_frame(net->link, &len))) {
		int r = virtq_pop(q, &net->chain);
		if (r < 0) {
			virtio_needs_reset(vd);
			break;
		}
		if (r == 0) {
			if (virtq_arm_notify(q))
				continue;
			/* Wait for buffers; a hang-up meanwhile would keep the
			 * unarmed fd reporting (epoll's HUP), so look now. */
			if (!switch_link_check_hangup(net->link))
				virtio_set_poll_fd(vd, net->link->fd, false);
			break;
		}
		struct virtq_chain *c = &net->chain;
		if (c->n_out || c->in_len < NET_HDR_LEN) {
			virtq_push(q, c->head, 0); /* unusable buffer: returned empty */
			continue;
		}
		if (c->in_len < NET_HDR_LEN + len) {
			/* Too small for this frame (a jumbo frame to a guest with
			 * 1500-byte buffers): the frame is dropped, the buffer
			 * kept for the next. */
			virtq_unpop(q);
			net->link->rx_dropped++;
			switch_link_frame_done(net->link);
			continue;
		}
		uint8_t hdr[NET_HDR_LEN] = { 0 }; /* no offloads; num_buffers 1 */
		hdr[NUM_BUFFERS_OFFSET] = 1;
		buf_to_iov(c->iov, c->n_in, 0, hdr, sizeof(hdr));
		buf_to_iov(c->iov, c->n_in, sizeof(hdr), frame, len);
		virtq_push(q, c->head, (uint32_t)(sizeof(hdr) + len));
		switch_link_frame_done(net->link);
	}
	virtio_queue_interrupt(vd, RXQ);
	link_settle(vd);
}

/* Main thread, about once a second: connects again to a switch that went
 * away (a worker may not create sockets). vd->lock held. */
static void tick(struct virtio_dev *vd, int64_t now_ms)
{
	struct virtio_net *net = vd->opaque;
	if (!net->link || !switch_link_reconnect(net->link, now_ms))
		return;
	if (net->link->reconnects == 1 || !net->link->reported_down)
		log_warn("%s: connected to the switch again", net->name);
	bool live = virtio_live(vd);
	/* Watched only while the driver is there to take frames. */
	virtio_set_poll_fd(vd, live ? net->link->fd : -1, live);
}

/* Frames from the tap into receive buffers, until either runs out. */
static void receive(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	if (net->link) {
		receive_from_switch(vd);
		return;
	}
	struct virtq *q = &vd->queues[RXQ].vq;
	for (;;) {
		int r = virtq_pop(q, &net->chain);
		if (r < 0) {
			virtio_needs_reset(vd);
			break;
		}
		if (r == 0) {
			/* No buffers: stop polling the tap until the driver adds
			 * some and notifies. */
			if (virtq_arm_notify(q))
				continue;
			virtio_set_poll_fd(vd, net->tap_fd, false);
			break;
		}
		struct virtq_chain *c = &net->chain;
		if (c->n_out || c->in_len < NET_HDR_LEN) {
			virtq_push(q, c->head, 0); /* unusable buffer: returned empty */
			continue;
		}
		ssize_t n = readv(net->tap_fd, c->iov, (int)c->n_in);
		if (n < 0) {
			/* Nothing to read (or a transient error): give the buffer
			 * back unused and wait for the tap. */
			virtq_unpop(q);
			break;
		}
		uint16_t one = 1;
		buf_to_iov(c->iov, c->n_in, NUM_BUFFERS_OFFSET, &one, sizeof(one));
		virtq_push(q, c->head, (uint32_t)n);
	}
	virtio_queue_interrupt(vd, RXQ);
}

/* One frame to the tap; the device writes nothing back. */
static uint32_t transmit(struct virtio_dev *vd, struct virtq_chain *c)
{
	struct virtio_net *net = vd->opaque;
	/* Malformed frames are dropped, as a NIC drops them; the tap itself
	 * checks sizes and the offload header. */
	if (c->n_in || c->out_len < NET_HDR_LEN)
		log_debug("%s: dropped a malformed frame", net->name);
	else if (net->link)
		switch_link_send(net->link, c->iov, c->n_out, NET_HDR_LEN); /* a drop is counted */
	else if (writev(net->tap_fd, c->iov, (int)c->n_out) < 0)
		log_debug("%s: tap write of %llu bytes: %s", net->name,
			  (unsigned long long)c->out_len, strerror(errno));
	return 0;
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_net *net = vd->opaque;
	if (q == TXQ) {
		virtio_serve_queue(vd, TXQ, &net->chain, transmit);
		if (net->link)
			link_settle(vd);
	} else if (q == RXQ) {
		virtio_set_poll_fd(vd, net->link ? net->link->fd : net->tap_fd, true);
		receive(vd);
	}
}

static void poll_ready(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	if (net->link)
		switch_link_flush(net->link);
	receive(vd);
}

/* What the guest can take from the tap follows what it negotiated. */
static void driver_ok(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	if (net->link) {
		virtio_set_poll_fd(vd, net->link->fd, true);
		return;
	}
	unsigned offload = 0;
	if (virtio_negotiated(vd, VIRTIO_NET_F_GUEST_CSUM)) {
		offload |= TUN_F_CSUM;
		if (virtio_negotiated(vd, VIRTIO_NET_F_GUEST_TSO4))
			offload |= TUN_F_TSO4;
		if (virtio_negotiated(vd, VIRTIO_NET_F_GUEST_TSO6))
			offload |= TUN_F_TSO6;
		if ((offload & (TUN_F_TSO4 | TUN_F_TSO6)) &&
		    virtio_negotiated(vd, VIRTIO_NET_F_GUEST_ECN))
			offload |= TUN_F_TSO_ECN;
	}
	if (ioctl(net->tap_fd, TUNSETOFFLOAD, offload) < 0)
		log_warn("%s: TUNSETOFFLOAD: %s", net->name, strerror(errno));
	virtio_set_poll_fd(vd, net->tap_fd, true);
}

static void reset(struct virtio_dev *vd)
{
	struct virtio_net *net = vd->opaque;
	if (net->link) {
		virtio_set_poll_fd(vd, net->link->fd, false);
		return;
	}
	virtio_set_poll_fd(vd, net->tap_fd, false);
	if (ioctl(net->tap_fd, TUNSETOFFLOAD, 0) < 0) {
		/* only fails on a dead tap: nothing to undo */
	}
}

static void read_config(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *net = vd->opaque;
	uint8_t config[8] = { 0 }; /* mac, then status (unused: no STATUS feature) */
	memcpy(config, net->opt.mac, 6);
	memcpy(data, config + off, len);
}

/* The machine's device table destroys the transport, then this. */
static void release(struct virtio_dev *vd)
{
	struct virtio_net *dev = vd->opaque;
	virtio_net_close(dev);
	free(dev);
}

static const struct virtio_dev_ops net_ops = {
	.read_config = read_config,
	.queue_notify = queue_notify,
	.driver_ok = driver_ok,
	.reset = reset,
	.poll_ready = poll_ready,
	.release = release,
	.tick = tick,
};

int virtio_net_attach(struct virtio_net *net, struct kvm_guest *kvm, const struct guest_mem *mem,
		      struct pci_bus *pci)
{
	struct virtio_dev *vd = &net->vdev;
	vd->name = net->name;
	vd->device_type = VIRTIO_ID_NET;
	vd->pci_class = 0x020000; /* Ethernet controller */
	vd->features = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_INDIRECT_DESC | VIRTIO_F_RING_EVENT_IDX |
		       VIRTIO_NET_F_MAC;
	/* Offloads only where a kernel on the other side completes them. */
	if (!net->link)
		vd->features |= VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 |
				VIRTIO_NET_F_HOST_ECN | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4 |
				VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_GUEST_ECN;
	vd->config_len = 8;
	vd->num_queues = 2;
	vd->queue_max = VIRTQ_MAX_SIZE;
	vd->ops = &net_ops;
	vd->opaque = net;
	return virtio_pci_init(vd, kvm, mem, pci);
}
