#define _GNU_SOURCE
#include "net/nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/dhcp.h"
#include "util/log.h"
#include "util/parse.h"

/* Frames from libslirp not yet forwarded: one poll round may send a full
 * window (about 45 segments) per connection. At most this many frames of
 * at most an MTU each are held (about 6 MiB). */
#define OUT_QUEUE 4096
#define GATEWAY_HOST NAT_GATEWAY_HOST
#define DNS_HOST NAT_DNS_HOST
#define DHCP_FIRST_HOST NAT_DHCP_FIRST_HOST

struct nat_timer {
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms;    /* -1: not armed */
	struct nat_timer *next;
};

struct nat {
	struct nat_config cfg;
	Slirp *slirp;
	uint8_t mac[6];
	uint8_t dns_mac[6];   /* libslirp answers ARP for the DNS address too */
	struct dhcp_server dhcp;
	uint64_t not_for_us;  /* frames flooded to the NAT port for someone else */
	struct {
		uint8_t *frame;
		size_t len;
	} out[OUT_QUEUE];
	unsigned out_head, out_count;
	uint64_t out_dropped, guest_errors;
	struct pollfd *pfd;
	int npfd, cap_pfd;
	struct nat_timer *timers;
	uint8_t reply[DHCP_REPLY_MAX];
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* --- options -------------------------------------------------------------- */

int nat_parse_subnet(const char *opt, const char *text, struct nat_config *cfg)
{
	char copy[32];
	uint64_t prefix;
	char *slash;
	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy) || !(slash = strchr(copy, '/')) ||
	    (*slash = 0, parse_ipv4(copy, &cfg->net) < 0) || parse_uint(slash + 1, 8, 27, &prefix) < 0) {
		log_error("%s=%s: expected an IPv4 subnet A.B.C.D/N with N from 8 to 27", opt, text);
		return -1;
	}
	cfg->prefix = (unsigned)prefix;
	uint32_t mask = ~0u << (32 - prefix);
	if (cfg->net & ~mask) {
		log_error("%s=%s: host bits are set (the subnet is %u.%u.%u.%u/%u)", opt, text,
			  (cfg->net & mask) >> 24, (cfg->net & mask) >> 16 & 255, (cfg->net & mask) >> 8 & 255,
			  cfg->net & mask & 255, (unsigned)prefix);
		return -1;
	}
	return 0;
}

int nat_parse_forward(const char *opt, const char *text, struct nat_forward *f)
{
	char copy[128], *host, *guest, *hport, *gport;
	uint64_t hp, gp;
	memset(f, 0, sizeof(*f));
	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy))
		goto bad;
	if (!strncmp(copy, "tcp:", 4))
		host = copy + 4;
	else if (!strncmp(copy, "udp:", 4))
		host = copy + 4, f->udp = true;
	else
		goto bad;
	if (!(guest = strchr(host, '-')))
		goto bad;
	*guest++ = 0;
	if (!(hport = strrchr(host, ':')) || !(gport = strrchr(guest, ':')))
		goto bad;
	*hport++ = 0;
	*gport++ = 0;
	if (parse_ipv4(host, &f->host_addr) < 0 || parse_ipv4(guest, &f->guest_addr) < 0 ||
	    parse_uint(hport, 1, 65535, &hp) < 0 || parse_uint(gport, 1, 65535, &gp) < 0)
		goto bad;
	f->host_port = (uint16_t)hp;
	f->guest_port = (uint16_t)gp;
	return 0;
bad:
	log_error("%s %s: expected tcp|udp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT "
		  "(e.g. tcp:127.0.0.1:2222-10.0.2.15:22)", opt, text);
	return -1;
}

int nat_parse_reservation(const char *opt, const char *text, struct nat_reservation *r)
{
	char copy[64];
	char *eq;
	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy) || !(eq = strchr(copy, '=')))
		goto bad;
	*eq = 0;
	if (parse_mac(copy, r->mac) < 0 || parse_ipv4(eq + 1, &r->addr) < 0)
		goto bad;
	if (r->mac[0] & 1) {
		log_error("%s %s: a multicast MAC is no NIC's", opt, text);
		return -1;
	}
	return 0;
bad:
	log_error("%s %s: expected MAC=ADDRESS (e.g. 02:00:00:00:00:01=10.0.2.20)", opt, text);
	return -1;
}

/* --- libslirp's callbacks ------------------------------------------------- */

static ssize_t send_packet(const void *buf, size_t len, void *opaque)
{
	struct nat *n = opaque;
	uint8_t *copy = n->out_count < OUT_QUEUE ? malloc(len) : NULL;
	if (!copy) {
		/* the switch is behind: TCP resends, like a full NIC queue */
		n->out_dropped++;
		return (ssize_t)len;
	}
	memcpy(copy, buf, len);
	unsigned tail = (n->out_head + n->out_count) % OUT_QUEUE;
	n->out[tail].frame = copy;
	n->out[tail].len = len;
	n->out_count++;
	return (ssize_t)len;
}

static void guest_error(const char *msg, void *opaque)
{
	struct nat *n = opaque;
	if (n->guest_errors++ < 10) /* a guest must not fill the log */
		log_warn("nat: %s", msg);
}

static int64_t clock_get_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
}

static void *timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct nat *n = opaque;
	struct nat_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct nat_timer){ .cb = cb, .cb_opaque = cb_opaque, .expire_ms = -1, .next = n->timers };
	n->timers = t;
	return t;
}

static void timer_free(void *timer, void *opaque)
{
	struct nat *n = opaque;
	for (struct nat_timer **p = &n->timers; *p; p = &(*p)->next)
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
}

static void timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct nat_timer *)timer)->expire_ms = expire_ms;
}

static void no_fd_op(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void notify(void *opaque)
{
	(void)opaque; /* one thread: the next poll round sees it */
}

static const SlirpCb callbacks = {
	.send_packet = send_packet,
	.guest_error = guest_error,
	.clock_get_ns = clock_get_ns,
	.timer_new = timer_new,
	.timer_free = timer_free,
	.timer_mod = timer_mod,
	.register_poll_fd = no_fd_op,
	.unregister_poll_fd = no_fd_op,
	.notify = notify,
};

/* --- the port ------------------------------------------------------------- */

static struct in_addr in(uint32_t host_order)
{
	return (struct in_addr){ .s_addr = htonl(host_order) };
}

struct nat *nat_open(const struct nat_config *cfg)
{
	struct nat *n = calloc(1, sizeof(*n));
	if (!n) {
		log_error("nat: out of memory");
		return NULL;
	}
	n->cfg = *cfg;
	uint32_t mask = ~0u << (32 - cfg->prefix);
	uint32_t gateway = cfg->net + GATEWAY_HOST, dns = cfg->net + DNS_HOST;
	/* libslirp answers ARP for its addresses with 52:55 and the address:
	 * the DHCP server's replies come from the same MAC. */
	n->mac[0] = 0x52;
	n->mac[1] = 0x55;
	memcpy(n->dns_mac, n->mac, 2);
	for (int i = 0; i < 4; i++) {
		n->mac[2 + i] = (uint8_t)(gateway >> (24 - 8 * i));
		n->dns_mac[2 + i] = (uint8_t)(dns >> (24 - 8 * i));
	}
	if (dhcp_init(&n->dhcp, cfg->net, cfg->prefix, gateway, dns, cfg->net + DHCP_FIRST_HOST, n->mac) < 0) {
		log_error("nat: the DHCP server: %s", strerror(errno));
		free(n);
		return NULL;
	}
	for (int i = 0; i < cfg->nreservations; i++) {
		const struct nat_reservation *r = &cfg->reservations[i];
		if (dhcp_reserve(&n->dhcp, r->mac, r->addr) < 0) {
			log_error("--dhcp-host %02x:%02x:%02x:%02x:%02x:%02x=%u.%u.%u.%u: %s", r->mac[0],
				  r->mac[1], r->mac[2], r->mac[3], r->mac[4], r->mac[5], r->addr >> 24,
				  r->addr >> 16 & 255, r->addr >> 8 & 255, r->addr & 255,
				  errno == EEXIST ? "the address or the MAC is reserved already"
						  : "not an address DHCP hands out on this subnet (.15 up to "
						    "the last before broadcast)");
			dhcp_free(&n->dhcp);
			free(n);
			return NULL;
		}
	}
	SlirpConfig sc = {
		.version = 4,
		.restricted = cfg->restricted,
		.in_enabled = true,
		.vnetwork = in(cfg->net),
		.vnetmask = in(mask),
		.vhost = in(gateway),
		.vdhcp_start = in(cfg->net + DHCP_FIRST_HOST),
		.vnameserver = in(dns),
		.disable_dhcp = true,
	};
	n->slirp = slirp_new(&sc, &callbacks, n);
	if (!n->slirp) {
		log_error("nat: libslirp did not start on %s", "the subnet given");
		nat_close(n);
		return NULL;
	}
	for (int i = 0; i < cfg->nforwards; i++) {
		const struct nat_forward *f = &cfg->forwards[i];
		if (slirp_add_hostfwd(n->slirp, f->udp, in(f->host_addr), f->host_port, in(f->guest_addr),
				      f->guest_port) < 0) {
			log_error("--forward %s:%u.%u.%u.%u:%u: cannot listen there (%s)", f->udp ? "udp" : "tcp",
				  f->host_addr >> 24, f->host_addr >> 16 & 255, f->host_addr >> 8 & 255,
				  f->host_addr & 255, f->host_port, errno ? strerror(errno) : "in use?");
			nat_close(n);
			return NULL;
		}
	}
	return n;
}

void nat_close(struct nat *n)
{
	if (!n)
		return;
	if (n->slirp)
		slirp_cleanup(n->slirp);
	while (n->timers) {
		struct nat_timer *t = n->timers;
		n->timers = t->next;
		free(t);
	}
	while (n->out_count)
		nat_output_done(n);
	dhcp_free(&n->dhcp);
	free(n->pfd);
	free(n);
}

void nat_mac(const struct nat *n, uint8_t mac[6])
{
	memcpy(mac, n->mac, 6);
}

/* Is this frame the NAT's to take? The switch floods unknown unicast to
 * every port, the NAT's too (after a MAC ages out, say), and libslirp
 * takes whatever it is given as a router would: a segment of a TCP
 * connection between two guests would be answered with a reset in the
 * other guest's name. So: unicast to libslirp's own MACs, and of the
 * broadcasts and multicasts only ARP and IPv4 to its own addresses. */
static bool for_nat(const struct nat *n, const uint8_t *frame, size_t len)
{
	if (len < 14)
		return false;
	if (!(frame[0] & 1))
		return !memcmp(frame, n->mac, 6) || !memcmp(frame, n->dns_mac, 6);
	uint16_t type = (uint16_t)(frame[12] << 8 | frame[13]);
	if (type == 0x0806)
		return true;
	if (type != 0x0800 || len < 14 + 20)
		return false;
	uint32_t dst = (uint32_t)frame[30] << 24 | (uint32_t)frame[31] << 16 | (uint32_t)frame[32] << 8 | frame[33];
	return dst == n->cfg.net + GATEWAY_HOST || dst == n->cfg.net + DNS_HOST;
}

void nat_input(struct nat *n, const uint8_t *frame, size_t len)
{
	if (dhcp_is_request(frame, len)) {
		size_t r = dhcp_answer(&n->dhcp, frame, len, now_ms(), n->reply);
		if (r)
			send_packet(n->reply, r, n);
		return;
	}
	if (!for_nat(n, frame, len)) {
		n->not_for_us++;
		return;
	}
	if (len <= INT32_MAX)
		slirp_input(n->slirp, frame, (int)len);
}

const uint8_t *nat_output(struct nat *n, size_t *len)
{
	if (!n->out_count)
		return NULL;
	*len = n->out[n->out_head].len;
	return n->out[n->out_head].frame;
}

void nat_output_done(struct nat *n)
{
	if (!n->out_count)
		return;
	free(n->out[n->out_head].frame);
	n->out[n->out_head].frame = NULL;
	n->out_head = (n->out_head + 1) % OUT_QUEUE;
	n->out_count--;
}

/* --- polling -------------------------------------------------------------- */

static int add_poll(int fd, int events, void *opaque)
{
	struct nat *n = opaque;
	if (n->npfd == n->cap_pfd) {
		int cap = n->cap_pfd ? n->cap_pfd * 2 : 16;
		struct pollfd *p = realloc(n->pfd, (size_t)cap * sizeof(*p));
		if (!p)
			return -1; /* not watched this round; libslirp takes -1 as "no events" */
		n->pfd = p;
		n->cap_pfd = cap;
	}
	short ev = 0;
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	n->pfd[n->npfd] = (struct pollfd){ .fd = fd, .events = ev };
	return n->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct nat *n = opaque;
	if (idx < 0 || idx >= n->npfd)
		return 0;
	short rev = n->pfd[idx].revents;
	int r = 0;
	if (rev & POLLIN)
		r |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (rev & POLLERR)
		r |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

void nat_prepare(struct nat *n, struct pollfd **fds, int *nfds, int *timeout_ms)
{
	n->npfd = 0;
	uint32_t t = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
	slirp_pollfds_fill(n->slirp, &t, add_poll, n);
	int64_t now = now_ms();
	for (struct nat_timer *tm = n->timers; tm; tm = tm->next)
		if (tm->expire_ms >= 0) {
			int64_t left = tm->expire_ms > now ? tm->expire_ms - now : 0;
			if ((uint64_t)left < t)
				t = (uint32_t)left;
		}
	*timeout_ms = t == UINT32_MAX ? -1 : (int)(t > INT32_MAX ? INT32_MAX : t);
	*fds = n->pfd;
	*nfds = n->npfd;
}

void nat_dispatch(struct nat *n, bool poll_failed)
{
	slirp_pollfds_poll(n->slirp, poll_failed, get_revents, n);
	/* Due timers, one at a time: a callback may free or re-arm timers. */
	for (bool fired = true; fired;) {
		fired = false;
		int64_t now = now_ms();
		for (struct nat_timer *tm = n->timers; tm; tm = tm->next)
			if (tm->expire_ms >= 0 && tm->expire_ms <= now) {
				tm->expire_ms = -1;
				tm->cb(tm->cb_opaque);
				fired = true;
				break;
			}
	}
}

/* --- status --------------------------------------------------------------- */

static json_object *addr_string(uint32_t a)
{
	char text[16];
	snprintf(text, sizeof(text), "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
	return json_object_new_string(text);
}

json_object *nat_status(const struct nat *n)
{
	json_object *o = json_object_new_object();
	char subnet[24];
	uint32_t a = n->cfg.net;
	snprintf(subnet, sizeof(subnet), "%u.%u.%u.%u/%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255,
		 n->cfg.prefix);
	json_object_object_add(o, "subnet", json_object_new_string(subnet));
	json_object_object_add(o, "gateway", addr_string(n->cfg.net + GATEWAY_HOST));
	json_object_object_add(o, "dns", addr_string(n->cfg.net + DNS_HOST));
	json_object_object_add(o, "restricted", json_object_new_boolean(n->cfg.restricted));
	json_object *fw = json_object_new_array();
	for (int i = 0; i < n->cfg.nforwards; i++) {
		const struct nat_forward *f = &n->cfg.forwards[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "proto", json_object_new_string(f->udp ? "udp" : "tcp"));
		json_object_object_add(j, "host_addr", addr_string(f->host_addr));
		json_object_object_add(j, "host_port", json_object_new_int(f->host_port));
		json_object_object_add(j, "guest_addr", addr_string(f->guest_addr));
		json_object_object_add(j, "guest_port", json_object_new_int(f->guest_port));
		json_object_array_add(fw, j);
	}
	json_object_object_add(o, "forwards", fw);
	json_object *leases = json_object_new_array();
	int64_t now = now_ms();
	for (unsigned i = 0; i < n->dhcp.pool_size; i++) {
		const struct dhcp_lease *l = &n->dhcp.leases[i];
		if (l->declined || l->expires_ms <= now)
			continue;
		json_object *j = json_object_new_object();
		char mac[18];
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", l->mac[0], l->mac[1], l->mac[2],
			 l->mac[3], l->mac[4], l->mac[5]);
		json_object_object_add(j, "mac", json_object_new_string(mac));
		json_object_object_add(j, "ip", addr_string(n->dhcp.first + i));
		json_object_object_add(j, "state", json_object_new_string(l->bound ? "bound" : "offered"));
		json_object_object_add(j, "expires_in_s", json_object_new_int64((l->expires_ms - now) / 1000));
		if (l->hostname[0])
			json_object_object_add(j, "hostname", json_object_new_string(l->hostname));
		json_object_array_add(leases, j);
	}
	json_object_object_add(o, "leases", leases);
	json_object *res = json_object_new_array();
	for (int i = 0; i < n->cfg.nreservations; i++) {
		const struct nat_reservation *r = &n->cfg.reservations[i];
		json_object *j = json_object_new_object();
		char mac[18];
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", r->mac[0], r->mac[1], r->mac[2],
			 r->mac[3], r->mac[4], r->mac[5]);
		json_object_object_add(j, "mac", json_object_new_string(mac));
		json_object_object_add(j, "ip", addr_string(r->addr));
		json_object_array_add(res, j);
	}
	json_object_object_add(o, "reservations", res);
	json_object_object_add(o, "dhcp_requests", json_object_new_int64((int64_t)n->dhcp.requests));
	json_object_object_add(o, "dhcp_replies", json_object_new_int64((int64_t)n->dhcp.replies));
	json_object_object_add(o, "to_switch_dropped", json_object_new_int64((int64_t)n->out_dropped));
	json_object_object_add(o, "not_for_nat", json_object_new_int64((int64_t)n->not_for_us));
	return o;
}
