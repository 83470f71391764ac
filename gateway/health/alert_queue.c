/* A target's queue and retries; see alert_queue.h. */
#include "gateway/health/alert_queue.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A PagerDuty payload holds its routing key: wiped, not only freed. */
static void wipe(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void xb_alertq_init(struct xb_alertq *q, const struct xb_alertq_rule *rule)
{
	*q = (struct xb_alertq){ .rule = *rule };
	if (!q->rule.tries)
		q->rule.tries = 1;
}

static void pop(struct xb_alertq *q)
{
	wipe(q->v[q->head]);
	q->v[q->head] = NULL;
	q->head = (q->head + 1) % XB_ALERTQ_MAX;
	q->n--;
	q->tries = 0;
	q->next_ms = 0;
	q->busy = false;
}

bool xb_alertq_push(struct xb_alertq *q, char *s)
{
	bool room = q->n < XB_ALERTQ_MAX;

	if (!room && q->busy) {
		size_t next = (q->head + 1) % XB_ALERTQ_MAX;

		wipe(q->v[next]);		/* the head moves up over it */
		q->v[next] = q->v[q->head];
		q->v[q->head] = NULL;
		q->head = next;
		q->n--;
		q->dropped++;
	} else if (!room) {
		pop(q);
		q->dropped++;
	}
	q->v[(q->head + q->n++) % XB_ALERTQ_MAX] = s;
	return room;
}

const char *xb_alertq_start(struct xb_alertq *q, uint64_t now)
{
	if (!q->n || q->busy || (q->tries && now < q->next_ms))
		return NULL;
	q->busy = true;
	if (!q->tries++)
		q->first_ms = now;
	return q->v[q->head];
}

uint64_t xb_alertq_backoff(const struct xb_alertq_rule *rule, unsigned n)
{
	uint64_t d = rule->backoff_ms;

	for (unsigned i = 1; i < n && d < XB_ALERTQ_BACKOFF_CAP_MS; i++)
		d *= 2;
	return d < XB_ALERTQ_BACKOFF_CAP_MS ? d : XB_ALERTQ_BACKOFF_CAP_MS;
}

enum xb_alertq_outcome xb_alertq_done(struct xb_alertq *q, bool ok, uint64_t now)
{
	uint64_t delay;

	if (!q->n)
		return XB_ALERTQ_GAVE_UP;
	q->busy = false;
	if (ok) {
		pop(q);
		q->delivered++;
		return XB_ALERTQ_DELIVERED;
	}
	delay = xb_alertq_backoff(&q->rule, q->tries);
	if (q->tries >= q->rule.tries || now + delay - q->first_ms > q->rule.give_up_ms) {
		pop(q);
		q->failed++;
		return XB_ALERTQ_GAVE_UP;
	}
	q->next_ms = now + delay;
	return XB_ALERTQ_RETRY;
}

void xb_alertq_clear(struct xb_alertq *q)
{
	while (q->n)
		pop(q);
}
