/* The link-impairment engine of xb-impair: per-direction profiles, seeded
 * random decisions and a time-ordered release queue. No I/O here: the caller
 * feeds packets with their arrival time and takes them back when due.
 *
 * Per packet, in this order (the same four random draws whatever the
 * profile, so one seed gives one drop pattern whatever else is changed):
 *   blackhole  drop everything (and what was queued when it was switched on)
 *   loss       drop with probability loss
 *   rate       serialise: leaves the link at max(now, link_free) + bits/rate
 *   delay      + delay + uniform(-jitter, +jitter), floored at 0
 *   reorder    with probability reorder the packet skips delay and jitter
 *   duplicate  with probability duplicate a copy leaves at the same time
 *   limit      a packet that finds limit packets queued is dropped
 * Packets leave in order of release time; equal times keep arrival order.
 */
#ifndef XB_IMPAIR_H
#define XB_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMP_PPM 1000000u	/* probabilities are parts per million */
#define NSEC_PER_SEC_IMP 1000000000ULL

struct imp_profile {
	uint64_t delay_ns;
	uint64_t jitter_ns;
	uint32_t loss_ppm;
	uint32_t dup_ppm;
	uint32_t reorder_ppm;
	uint64_t rate_bps;	/* 0: unlimited */
	uint32_t limit;		/* packets queued at most */
	bool blackhole;
};

struct imp_counters {
	uint64_t rx, tx, lost, blackholed, overlimit, duplicated, reordered;
};

struct imp_pkt {
	uint64_t release_ns;
	uint64_t order;
	size_t len;
	uint8_t data[];
};

struct imp_dir {
	const char *name;
	struct imp_profile prof;
	struct imp_counters cnt;
	uint64_t seed;
	uint64_t rng[4];
	uint64_t link_free_ns;
	uint64_t next_order;
	struct imp_pkt **heap;
	size_t n, cap;
};

void imp_dir_init(struct imp_dir *d, const char *name, uint64_t seed);
void imp_dir_free(struct imp_dir *d);
void imp_dir_reseed(struct imp_dir *d, uint64_t seed);
void imp_profile_default(struct imp_profile *p);

/* Apply "key=value" to a profile (or the seed). Returns false with a message
 * in err when the key is unknown or the value is out of range. */
bool imp_apply(struct imp_dir *d, struct imp_profile *p, const char *kv,
	       char *err, size_t errlen);
/* Switch profile; turning blackhole on drops what is queued. */
void imp_set_profile(struct imp_dir *d, const struct imp_profile *p);

/* Take one packet arriving at now; it is copied. */
void imp_enqueue(struct imp_dir *d, const uint8_t *pkt, size_t len, uint64_t now);
/* Next release time, or UINT64_MAX when nothing is queued. */
uint64_t imp_next_due(const struct imp_dir *d);
/* The next packet due at or before now (caller frees), or NULL. */
struct imp_pkt *imp_dequeue(struct imp_dir *d, uint64_t now);

/* One line describing profile and counters. */
int imp_format(const struct imp_dir *d, char *buf, size_t len);

/* Exposed for tests: uniform 64-bit draw. */
uint64_t imp_rand(struct imp_dir *d);

#endif
