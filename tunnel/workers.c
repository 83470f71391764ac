/* See workers.h.
 *
 * A run: under the mutex the caller publishes fn, ctx and the item count,
 * bumps the generation and wakes the helpers. Items are claimed one at a
 * time from an atomic counter, by the caller too. A helper joins a run only
 * while it is open (active++ under the mutex); the caller, out of items,
 * closes the run and waits for the helpers still inside it — never for a
 * helper that has not woken yet, so a slow wake-up costs the run nothing
 * but that helper's share. fn, ctx and the items stay valid until the last
 * active helper leaves.
 */
#include "tunnel/workers.h"
#include "tunnel/aead.h"
#include "common/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct wg_workers {
	unsigned n;			/* the caller and n - 1 helpers */
	unsigned started;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t gen;			/* bumped once per run */
	bool open, stopping;
	unsigned active;		/* helpers inside the current run */
	void (*fn)(void *, size_t);
	void *ctx;
	size_t n_items;
	atomic_size_t next;		/* the next unclaimed item */
};

unsigned wg_workers_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	/* Half: the kernel's UDP, TUN and TCP work for the same packets needs
	 * cores too (docs/wireguard.md, "Crypto workers": on 2 cores a second
	 * worker bought 5 % for 25 % more CPU per GB). */
	n /= 2;
	if (n < 1)
		return 1;
	return n > WG_WORKERS_MAX ? WG_WORKERS_MAX : (unsigned)n;
}

static void drain(struct wg_workers *w)
{
	size_t i;

	while ((i = atomic_fetch_add_explicit(&w->next, 1, memory_order_relaxed)) < w->n_items)
		w->fn(w->ctx, i);
}

static void *helper(void *arg)
{
	struct wg_workers *w = arg;
	uint64_t seen;

	pthread_mutex_lock(&w->mu);
	seen = w->gen;
	for (;;) {
		while (w->gen == seen && !w->stopping)
			pthread_cond_wait(&w->go, &w->mu);
		if (w->stopping)
			break;
		seen = w->gen;
		if (!w->open)
			continue;
		w->active++;
		pthread_mutex_unlock(&w->mu);
		drain(w);
		xb_aead_forget();
		pthread_mutex_lock(&w->mu);
		if (!--w->active)
			pthread_cond_signal(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int wg_workers_start(struct wg_workers **out, unsigned n)
{
	struct wg_workers *w;
	int r = 0;

	*out = NULL;
	if (n < 1 || n > 64)
		return EINVAL;
	if (n == 1)
		return 0;
	if (!(w = calloc(1, sizeof(*w))) || !(w->threads = calloc(n - 1, sizeof(*w->threads)))) {
		free(w);
		return ENOMEM;
	}
	w->n = n;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->go, NULL);
	pthread_cond_init(&w->done, NULL);
	for (; w->started < n - 1; w->started++)
		if ((r = xb_thread_start(&w->threads[w->started], helper, w)))
			break;
	if (r) {
		wg_workers_stop(w);
		return r;
	}
	*out = w;
	return 0;
}

unsigned wg_workers_count(const struct wg_workers *w)
{
	return w ? w->n : 1;
}

void wg_workers_run(struct wg_workers *w, void (*fn)(void *ctx, size_t i), void *ctx, size_t n_items,
		    size_t bytes)
{
	if (!w || n_items < 2 || bytes < WG_WORKERS_MIN_BYTES) {
		for (size_t i = 0; i < n_items; i++)
			fn(ctx, i);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->fn = fn;
	w->ctx = ctx;
	w->n_items = n_items;
	atomic_store_explicit(&w->next, 0, memory_order_relaxed);
	w->open = true;
	w->gen++;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	drain(w);
	pthread_mutex_lock(&w->mu);
	w->open = false;
	while (w->active)
		pthread_cond_wait(&w->done, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void wg_workers_stop(struct wg_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->started; i++)
		pthread_join(w->threads[i], NULL);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->go);
	pthread_mutex_destroy(&w->mu);
	free(w->threads);
	free(w);
}
