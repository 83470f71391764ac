/* Reports to the gateway: the sequence number kept across restarts, a fresh
 * nonce per report, and the gateway's answer (docs/posture.md). */
#ifndef XB_AGENT_REPORT_H
#define XB_AGENT_REPORT_H

#include "agent/posture.h"

/* seq is the larger of (the last one used + 1) and the wall clock in
 * microseconds since the epoch. The value is written to STATE_DIR/seq
 * (atomically: temporary file, fsync, rename) before the report leaves, so
 * no crash can make the agent send one twice; and the clock floor means a
 * lost state file (reinstall) still gives a number the gateway accepts.
 * 2^53 (JSON's exact integers) is reached in the year 2255. */
int xba_seq_next(const char *state_dir, uint64_t *seq);
/* The value xba_seq_next() would give, reserving nothing (for --print). */
uint64_t xba_seq_peek(const char *state_dir);

/* The report as sent: facts plus seq, nonce (NULL: left out) and time. */
json_t *xba_report_build(const json_t *facts, uint64_t seq, const char *nonce);

/* Fetch a nonce, reserve a seq, post the report, read the answer. 0 when the
 * gateway accepted it; -1 with the reason in err (the gateway's own "error"
 * text and status code when it refused). */
int xba_report_send(const struct xba_conf *c, const json_t *facts, char *err,
		    size_t errlen);

#endif
