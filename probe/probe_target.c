/* Probe targets as operators write them: "icmp:192.0.2.1",
 * "tcp:[2001:db8::1]:443", "http:198.51.100.1:80/health",
 * "dns:198.51.100.53/example.com". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"
#include "probe/probe_wire.h"

static const char *const kinds[] = {
	[XB_PROBE_ICMP] = "icmp", [XB_PROBE_TCP] = "tcp",
	[XB_PROBE_HTTP] = "http", [XB_PROBE_DNS] = "dns",
};

static bool set_addr(struct sockaddr_storage *ss, const char *host, unsigned port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return true;
	}
	return false;
}

/* "ADDR", "ADDR:PORT", "[V6]", "[V6]:PORT" (a bare IPv6 has no port). */
static bool host_port(char *s, struct sockaddr_storage *ss, unsigned def_port, bool *had_port,
		      const char **err)
{
	char *host = s, *port = NULL, *end;
	unsigned long v = def_port;

	if (*s == '[') {
		char *rb = strchr(s, ']');

		if (!rb || (rb[1] && rb[1] != ':')) {
			*err = "bad [IPv6] address";
			return false;
		}
		*rb = 0;
		host = s + 1;
		port = rb[1] ? rb + 2 : NULL;
	} else if (strchr(s, ':') == strrchr(s, ':') && strchr(s, ':')) {
		port = strchr(s, ':');
		*port++ = 0;
	}
	*had_port = port != NULL;
	if (port) {
		v = strtoul(port, &end, 10);
		if (!*port || *end || v == 0 || v > 65535) {
			*err = "port must be 1..65535";
			return false;
		}
	}
	if (!set_addr(ss, host, (unsigned)v)) {
		*err = "not an IPv4 or IPv6 address";
		return false;
	}
	return true;
}

/* The /PATH of an http target or /NAME of a dns one, cut off at *slash. */
static bool suffix(struct xb_probe_target *t, char *slash, const char **err)
{
	uint8_t q[300];

	if (!slash) {
		if (t->kind == XB_PROBE_DNS) {
			*err = "dns targets need /NAME";
			return false;
		}
		if (t->kind == XB_PROBE_HTTP)
			strcpy(t->path, "/");
		return true;
	}
	if (t->kind == XB_PROBE_HTTP) {
		if (strlen(slash) >= sizeof(t->path) || strpbrk(slash, " \r\n")) {
			*err = "bad http path";
			return false;
		}
		strcpy(t->path, slash);
	} else if (t->kind == XB_PROBE_DNS) {
		if (!slash[1] || strlen(slash + 1) >= sizeof(t->name) ||
		    !pw_dns_build(q, sizeof(q), 0, slash + 1)) {
			*err = "bad dns name (labels of 1..63 bytes, 253 in all)";
			return false;
		}
		strcpy(t->name, slash + 1);
	} else {
		*err = "only http and dns targets take /PATH or /NAME";
		return false;
	}
	*slash = 0;
	return true;
}

static bool kind(const char *s, enum xb_probe_kind *k)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(s, kinds[i])) {
			*k = (enum xb_probe_kind)i;
			return true;
		}
	return false;
}

bool xb_probe_target_parse(const char *spec, struct xb_probe_target *t, const char **err)
{
	char buf[512], *rest;
	bool had_port;

	memset(t, 0, sizeof(*t));
	if (strlen(spec) >= sizeof(buf)) {
		*err = "target too long";
		return false;
	}
	strcpy(buf, spec);
	rest = strchr(buf, ':');
	if (!rest) {
		*err = "want KIND:ADDRESS (icmp, tcp, http, dns)";
		return false;
	}
	*rest++ = 0;
	if (!kind(buf, &t->kind)) {
		*err = "unknown kind (icmp, tcp, http, dns)";
		return false;
	}
	if (!suffix(t, strchr(rest, '/'), err))
		return false;
	/* A raw IPv6 socket refuses a port other than 0 (or its protocol). */
	if (!host_port(rest, &t->addr, t->kind == XB_PROBE_DNS ? 53 : t->kind == XB_PROBE_ICMP ? 0 : 80,
		       &had_port, err))
		return false;
	if (t->kind == XB_PROBE_ICMP && had_port) {
		*err = "icmp targets take no port";
		return false;
	}
	if (t->kind == XB_PROBE_TCP && !had_port) {
		*err = "tcp targets need ADDRESS:PORT";
		return false;
	}
	return true;
}

char *xb_probe_target_str(const struct xb_probe_target *t, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&t->addr;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&t->addr;
	bool v6 = t->addr.ss_family == AF_INET6;
	unsigned port = ntohs(v6 ? s6->sin6_port : s4->sin_port);

	inet_ntop(t->addr.ss_family, v6 ? (const void *)&s6->sin6_addr : (const void *)&s4->sin_addr,
		  a, sizeof(a));
	if (t->kind == XB_PROBE_ICMP)
		snprintf(buf, len, "icmp:%s", a);
	else
		snprintf(buf, len, "%s:%s%s%s:%u%s%s", kinds[t->kind], v6 ? "[" : "", a, v6 ? "]" : "",
			 port, t->kind == XB_PROBE_DNS ? "/" : "",
			 t->kind == XB_PROBE_HTTP ? t->path : t->kind == XB_PROBE_DNS ? t->name : "");
	return buf;
}
