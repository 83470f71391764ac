/* Version strings as devices report them ("14.2.1", "v0.1.0-rc1",
 * "10.0.22631") and as posture checks name them, compared by meaning.
 *
 * A version is an optional "v" or "V", one or more decimal components
 * separated by '.', then optionally a suffix: '-', '_', '+' or '~' and
 * then letters, digits and those separators ("-rc1", "-beta.2"); a
 * suffix may also start right after the last digit with a letter
 * ("1.0b2"). At most XB_VERSION_MAX bytes.
 *
 * Order: components compare numerically, a missing one counts as 0
 * ("14" == "14.0", "14.2" < "14.10"). With equal components a version
 * with a suffix sorts BEFORE the one without ("1.0-rc1" < "1.0"): a
 * suffix marks a pre-release, as in Semantic Versioning. Two suffixes
 * compare piecewise: runs of digits numerically, runs of letters by byte
 * value, separators ignored ("rc2" < "rc10").
 */
#ifndef XB_VERSION_H
#define XB_VERSION_H

#include <stdbool.h>

#define XB_VERSION_MAX 64

bool xb_version_ok(const char *v);
/* -1, 0 or 1 as a is older than, the same as or newer than b. Both must
 * satisfy xb_version_ok(); an invalid one sorts before every valid one. */
int xb_version_cmp(const char *a, const char *b);

#endif
