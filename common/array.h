/* Growing arrays without a capacity field: an array of n elements has room
 * for the next power of two, so one more slot is needed exactly when n is 0
 * or a power of two. */
#ifndef XB_ARRAY_H
#define XB_ARRAY_H

#include <stddef.h>

/* Room for element n of v (size bytes each): v itself, or v reallocated;
 * NULL when out of memory (v is then still valid). */
void *xb_grow(void *v, size_t n, size_t size);

#endif
