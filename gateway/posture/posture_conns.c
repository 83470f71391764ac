/* The posture endpoint's connections; see posture_conns.h.
 *
 * Every open connection is on one list (all listeners; at most max_conns
 * a listener, 256 by default), its node libmicrohttpd's socket context.
 * The source limit counts the listener's connections from the address at
 * each accept, the sweep and the next deadline walk the list: a few
 * hundred nodes, once per pass of the event loop.
 */
#include "gateway/posture/posture_conns.h"
#include "common/clock.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct conn {
	struct xb_posture_conns_lsn *l;
	int fd;
	struct sockaddr_storage peer;
	uint64_t deadline;	/* ns; 0: its request is in, being answered */
	bool cut;		/* shut down by the sweep, closing */
	struct conn *prev, *next;
};

struct xb_posture_conns {
	struct conn *head;
	unsigned per_source;
	uint64_t header_ns, body_ns;
	unsigned header_s, body_s;	/* for log lines */
	uint64_t refused, cut;
};

static struct log_rl rl_conns = LOG_RL_INIT(1, 5);

struct xb_posture_conns *xb_posture_conns_new(unsigned per_source, unsigned header_s, unsigned body_s)
{
	struct xb_posture_conns *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->per_source = per_source;
	p->header_s = header_s;
	p->body_s = body_s;
	p->header_ns = header_s * NSEC_PER_SEC;
	p->body_ns = body_s * NSEC_PER_SEC;
	return p;
}

void xb_posture_conns_free(struct xb_posture_conns *p)
{
	free(p);	/* the nodes went with their connections (CLOSED) */
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return false;
	if (b->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
	return b->sa_family == AF_INET6 &&
	       !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
		       sizeof(struct in6_addr));
}

static const char *addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = sa->sa_family == AF_INET ?
		(const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr :
		(const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

	if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

enum MHD_Result xb_posture_conns_admit(void *cls, const struct sockaddr *addr, socklen_t len)
{
	struct xb_posture_conns_lsn *l = cls;
	struct xb_posture_conns *p = l->set;
	char text[INET6_ADDRSTRLEN];
	unsigned n = 0;

	(void)len;
	for (const struct conn *k = p->head; k; k = k->next)
		n += k->l == l && !k->cut && same_addr(&k->peer, addr);
	if (n < p->per_source)
		return MHD_YES;
	p->refused++;
	if (log_ratelimit(&rl_conns))
		log_warnx("posture %s: %s has %u connections open: a new one refused (%llu so far)",
			  l->name, addr_text(addr, text, sizeof(text)), n,
			  (unsigned long long)p->refused);
	return MHD_NO;
}

void xb_posture_conns_track(void *cls, struct MHD_Connection *c, void **ctx,
		     enum MHD_ConnectionNotificationCode what)
{
	struct xb_posture_conns_lsn *l = cls;
	struct xb_posture_conns *p = l->set;
	struct conn *k = *ctx;
	const union MHD_ConnectionInfo *fd, *sa;

	if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!k)
			return;
		*(k->prev ? &k->prev->next : &p->head) = k->next;
		if (k->next)
			k->next->prev = k->prev;
		free(k);
		*ctx = NULL;
		return;
	}
	fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	sa = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!fd || !sa || !(k = calloc(1, sizeof(*k))))
		return;		/* untracked: libmicrohttpd's idle timeout still holds */
	k->l = l;
	k->fd = fd->connect_fd;
	memcpy(&k->peer, sa->client_addr, sa->client_addr->sa_family == AF_INET6 ?
	       sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	k->deadline = clock_mono_ns() + p->header_ns;
	k->next = p->head;
	if (p->head)
		p->head->prev = k;
	p->head = k;
	*ctx = k;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

void xb_posture_conns_headers_in(struct MHD_Connection *c, uint64_t now)
{
	struct conn *k = conn_of(c);

	if (k)
		k->deadline = now + k->l->set->body_ns;
}

void xb_posture_conns_request_in(struct MHD_Connection *c)
{
	struct conn *k = conn_of(c);

	if (k)
		k->deadline = 0;
}

void xb_posture_conns_answered(struct MHD_Connection *c, uint64_t now)
{
	struct conn *k = conn_of(c);

	if (k)		/* kept alive: the next request's headers are due */
		k->deadline = now + k->l->set->header_ns;
}

void xb_posture_conns_sweep(struct xb_posture_conns *p, uint64_t now)
{
	char text[INET6_ADDRSTRLEN];

	for (struct conn *k = p->head; k; k = k->next) {
		if (k->cut || !k->deadline || k->deadline > now)
			continue;
		shutdown(k->fd, SHUT_RDWR);
		k->cut = true;
		p->cut++;
		if (log_ratelimit(&rl_conns))
			log_warnx("posture %s: %s: request not in by its deadline (headers %u s, "
				  "body %u s): connection closed (%llu so far)", k->l->name,
				  addr_text((const struct sockaddr *)&k->peer, text, sizeof(text)),
				  p->header_s, p->body_s, (unsigned long long)p->cut);
	}
}

uint64_t xb_posture_conns_next_ms(const struct xb_posture_conns *p, uint64_t now)
{
	uint64_t min = UINT64_MAX;

	for (const struct conn *k = p->head; k; k = k->next) {
		uint64_t ms;

		if (!k->deadline || k->cut)
			continue;
		ms = k->deadline > now ? (k->deadline - now) / NSEC_PER_MSEC + 1 : 0;
		if (ms < min)
			min = ms;
	}
	return min;
}

uint64_t xb_posture_conns_refused(const struct xb_posture_conns *p)
{
	return p->refused;
}

uint64_t xb_posture_conns_cut(const struct xb_posture_conns *p)
{
	return p->cut;
}
