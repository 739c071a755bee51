#define _GNU_SOURCE
#include "net/vxlan.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/parse.h"

#define FLAG_VNI 0x08 /* the I flag: the VNI is valid */

/* (vxlan.h) */
int vxlan_parse_endpoint(const char *text, struct sockaddr_storage *out, socklen_t *len)
{
	char host[64];
	const char *port;
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
			return -1;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || (size_t)(colon - text) >= sizeof(host))
			return -1;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = 0;
		port = colon + 1;
	}
	uint64_t p;
	if (parse_uint(port, 1, 65535, &p) < 0)
		return -1;
	/* Numeric only: inet_pton, not getaddrinfo (a static binary has no
	 * resolver to load, and a lab's addresses are written out). */
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)p);
		*len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*in6);
	} else {
		return -1;
	}
	return 0;
}

int vxlan_open(struct vxlan *v, const char *spec)
{
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	char copy[256];
	if (snprintf(copy, sizeof(copy), "%s", spec) >= (int)sizeof(copy)) {
		log_error("--vxlan %s: too long", spec);
		return -1;
	}
	char *save = NULL, *remote = strtok_r(copy, ",", &save);
	bool have_vni = false;
	struct sockaddr_storage local;
	socklen_t local_len = 0;
	if (!remote || vxlan_parse_endpoint(remote, &v->remote, &v->remote_len) < 0) {
		log_error("--vxlan %s: expected REMOTE:PORT,vni=N[,local=ADDR:PORT] with numeric "
			  "addresses (IPv6 in brackets)", spec);
		return -1;
	}
	for (char *o; (o = strtok_r(NULL, ",", &save));) {
		uint64_t n;
		if (!strncmp(o, "vni=", 4) && parse_uint(o + 4, 0, (1u << 24) - 1, &n) == 0) {
			v->vni = (uint32_t)n;
			have_vni = true;
		} else if (!strncmp(o, "local=", 6) && vxlan_parse_endpoint(o + 6, &local, &local_len) == 0) {
		} else {
			log_error("--vxlan %s: bad option '%s' (vni=0..16777215, local=ADDR:PORT)", spec, o);
			return -1;
		}
	}
	if (!have_vni) {
		log_error("--vxlan %s: vni=N is required", spec);
		return -1;
	}
	if (!local_len) { /* any address of the remote's family, the standard port */
		memset(&local, 0, sizeof(local));
		local.ss_family = v->remote.ss_family;
		if (local.ss_family == AF_INET) {
			((struct sockaddr_in *)&local)->sin_port = htons(VXLAN_DEFAULT_PORT);
			local_len = sizeof(struct sockaddr_in);
		} else {
			((struct sockaddr_in6 *)&local)->sin6_port = htons(VXLAN_DEFAULT_PORT);
			local_len = sizeof(struct sockaddr_in6);
		}
	}
	if (local.ss_family != v->remote.ss_family) {
		log_error("--vxlan %s: local and remote addresses are of different families", spec);
		return -1;
	}
	v->fd = socket(v->remote.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->fd < 0 || bind(v->fd, (struct sockaddr *)&local, local_len) < 0) {
		log_error("--vxlan %s: %s", spec, strerror(errno));
		vxlan_close(v);
		return -1;
	}
	return 0;
}

void vxlan_close(struct vxlan *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

void vxlan_header(const struct vxlan *v, uint8_t hdr[VXLAN_HEADER])
{
	memset(hdr, 0, VXLAN_HEADER);
	hdr[0] = FLAG_VNI;
	hdr[4] = (uint8_t)(v->vni >> 16);
	hdr[5] = (uint8_t)(v->vni >> 8);
	hdr[6] = (uint8_t)v->vni;
}

const uint8_t *vxlan_frame(const struct vxlan *v, const uint8_t *packet, size_t len, size_t *frame_len)
{
	if (len < VXLAN_HEADER || !(packet[0] & FLAG_VNI))
		return NULL;
	uint32_t vni = (uint32_t)packet[4] << 16 | (uint32_t)packet[5] << 8 | packet[6];
	if (vni != v->vni)
		return NULL;
	*frame_len = len - VXLAN_HEADER;
	return packet + VXLAN_HEADER;
}

bool vxlan_from_remote(const struct vxlan *v, const struct sockaddr_storage *from)
{
	if (from->ss_family != v->remote.ss_family)
		return false;
	if (from->ss_family == AF_INET)
		return ((const struct sockaddr_in *)from)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)&v->remote)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)from)->sin6_addr,
		       &((const struct sockaddr_in6 *)&v->remote)->sin6_addr, sizeof(struct in6_addr));
}
