/* One notification target's queue and retry rule (docs/operations.md,
 * "Notifications"). Pure: times are passed in (monotonic ms), nothing is
 * sent from here.
 *
 * At most XB_ALERTQ_MAX payloads wait, oldest first; a push onto a full
 * queue drops the oldest and counts it — the oldest not in flight: only the
 * head is ever in flight (between start and done), and it stays.
 * A failed try of the head is retried after backoff_ms, doubling each time
 * (capped at XB_ALERTQ_BACKOFF_CAP_MS), until it has had tries tries or
 * give_up_ms have passed since its first try; then it is dropped as
 * failed and the next one starts. Payloads are wiped when dropped (a
 * PagerDuty one holds its routing key).
 */
#ifndef XB_ALERT_QUEUE_H
#define XB_ALERT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XB_ALERTQ_MAX 64
#define XB_ALERTQ_BACKOFF_CAP_MS 60000

struct xb_alertq_rule {
	unsigned tries;		/* in all, >= 1 */
	uint64_t backoff_ms;	/* before the second try */
	uint64_t give_up_ms;	/* since the first try */
};

struct xb_alertq {
	struct xb_alertq_rule rule;
	char *v[XB_ALERTQ_MAX];	/* owned payloads */
	size_t head, n;
	unsigned tries;		/* of the head so far */
	bool busy;		/* the head is in flight */
	uint64_t first_ms;	/* the head's first try */
	uint64_t next_ms;	/* the head's next try may start then */
	uint64_t dropped, delivered, failed;
};

enum xb_alertq_outcome { XB_ALERTQ_DELIVERED, XB_ALERTQ_RETRY, XB_ALERTQ_GAVE_UP };

void xb_alertq_init(struct xb_alertq *q, const struct xb_alertq_rule *rule);
/* Takes s; false when the oldest had to be dropped for it. */
bool xb_alertq_push(struct xb_alertq *q, char *s);
/* The head when a try of it may start at now (its first, or its retry's
 * time has come), else NULL. Counts the try. */
const char *xb_alertq_start(struct xb_alertq *q, uint64_t now);
/* How the head's try ended. */
enum xb_alertq_outcome xb_alertq_done(struct xb_alertq *q, bool ok, uint64_t now);
/* The delay before try number n + 1 after n failed ones (n >= 1). */
uint64_t xb_alertq_backoff(const struct xb_alertq_rule *rule, unsigned n);
void xb_alertq_clear(struct xb_alertq *q);

#endif
