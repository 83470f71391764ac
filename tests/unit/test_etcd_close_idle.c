/* xb_etcd_close_if_idle() while requests are queued, as the prune's client
 * has them when a member stops answering after the read: it must close
 * within about one request timeout, not one per queued request (the worker
 * used to take the next request without ever showing idle, so N
 * compare-and-deletes to a silent member held the prune's close, and every
 * later prune, N x request_timeout_ms; 2.6-3.0 s here on that code).
 *
 * A private netns; a listening TCP socket never accept()ed (the kernel
 * completes the handshake, curl sends, nothing answers). */
#include "tests/lib/check.h"
#include "common/clock.h"
#include "gateway/cluster/etcd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static void nop(void *ctx, const struct xb_etcd_result *r)
{
	(void)ctx, (void)r;
}

TEST(close_if_idle_does_not_wait_for_the_queue)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	char ep[64], err[256];
	const char *eps[1] = { ep };
	int lfd;

	xb_test_private_netns();
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(lfd, 64) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", ntohs(sa.sin_port));

	/* As the prune opens it: request timeout capped (here 300 ms, not 4 s). */
	struct xb_etcd_opts o = { .endpoints = eps, .n_endpoints = 1, .request_timeout_ms = 300 };
	struct xb_etcd *e = xb_etcd_open(&o, NULL, NULL, err, sizeof(err));
	CHECK(e != NULL);
	for (int i = 0; i < 8; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "/xborder/p/alloc/4/%d", i);
		CHECK_INT(xb_etcd_cad(e, k, (size_t)n, 7, nop, NULL), ==, 0);
	}
	/* The prune's finish() comes wait_ms after the deletes were sent: the
	 * worker is inside the first of them by then. */
	usleep(100 * 1000);
	uint64_t t0 = clock_mono_ns(), ms;
	bool closed = false;
	/* Bounded: 15 s at most, a try every 100 ms as the prune does. */
	for (int i = 0; i < 150 && !(closed = xb_etcd_close_if_idle(e)); i++)
		usleep(100 * 1000);
	ms = (clock_mono_ns() - t0) / NSEC_PER_MSEC;
	if (!closed)
		xb_etcd_close(e);
	fprintf(stderr, "close_if_idle succeeded after %llu ms (8 requests x 300 ms timeout)\n",
		(unsigned long long)ms);
	/* The documented bound: one request in flight (300 ms) plus the
	 * open's probe (300 ms) and slack. */
	CHECK_INT(ms, <, 1500);
	close(lfd);
}
