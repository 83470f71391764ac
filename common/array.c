/* Growing arrays; see array.h. */
#include "common/array.h"

#include <stdint.h>
#include <stdlib.h>

void *xb_grow(void *v, size_t n, size_t size)
{
	size_t cap;

	if (n & (n - 1))
		return v;
	cap = n ? 2 * n : 1;
	if (cap > SIZE_MAX / size)
		return NULL;
	return realloc(v, cap * size);
}
