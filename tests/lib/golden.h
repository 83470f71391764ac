/* Golden files for unit tests: got must equal the file at path (relative
 * to the source tree, the directory `make test' runs in); with
 * XB_UPDATE_GOLDEN=1 the file is rewritten instead (review the diff). */
#ifndef XB_TESTS_GOLDEN_H
#define XB_TESTS_GOLDEN_H

void xb_golden(const char *path, const char *got);

#endif
