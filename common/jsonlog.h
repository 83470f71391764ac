/* JSON-lines log files: one JSON object per line, appended (the posture
 * audit log; the DNS query log next).
 *
 * A line is written with one write() on an O_APPEND descriptor, so lines from
 * one process never interleave and a reader (tail -F, jq) always sees whole
 * lines except possibly the last one after a crash or a full disk. The daemon
 * never waits on the log for more than that one write: no fsync, no retry.
 *
 * Size cap: before a line would take the file over max_bytes, the file is
 * renamed to FILE.1 (replacing the previous FILE.1) and a new FILE started,
 * so the log takes at most twice max_bytes on disk. Rotation by an outside
 * tool (logrotate) works too: it renames the file, then asks for a reopen
 * (SIGHUP in the daemon), which opens FILE again by name.
 *
 * Write errors (disk full, file removed under us and unwritable) are counted;
 * the first of a run is logged, the rest are not until a write succeeds again,
 * which is logged with the number lost.
 */
#ifndef XB_JSONLOG_H
#define XB_JSONLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct xb_jsonlog;

/* Open (create, mode 0640) path for appending; max_bytes 0 means no cap.
 * Returns NULL with errno set and the reason logged. */
struct xb_jsonlog *xb_jsonlog_open(const char *path, size_t max_bytes);
/* Append obj (not consumed) as one line. 0, or -1 when the line was lost
 * (counted; see above). A line longer than max_bytes is still written, alone
 * in a fresh file. */
int xb_jsonlog_write(struct xb_jsonlog *l, const json_t *obj);
/* Close and open the file again by name (after an outside rotation). 0, or
 * -1 with errno set; the old descriptor is kept on failure. */
int xb_jsonlog_reopen(struct xb_jsonlog *l);
/* Lines lost to write errors since open. */
uint64_t xb_jsonlog_errors(const struct xb_jsonlog *l);
/* Close; NULL is ignored. */
void xb_jsonlog_close(struct xb_jsonlog *l);

#endif
