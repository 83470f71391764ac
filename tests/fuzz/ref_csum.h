/* The Internet checksum the naive way (RFC 1071), for fuzz targets that
 * check the data path's fast one (tunnel/offload_int.h) against it. */
#ifndef XB_TESTS_FUZZ_REF_CSUM_H
#define XB_TESTS_FUZZ_REF_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* The sum of p's 16-bit big-endian words plus sum (not folded, not
 * complemented); an odd last byte is the high half of a word. */
static uint32_t ref_sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i < n; i++)
		sum += i & 1 ? p[i] : (uint32_t)p[i] << 8;
	return sum;
}

/* s folded to 16 bits, not complemented. */
static uint16_t ref_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The checksum field's value: s folded and complemented. */
static uint16_t ref_csum(uint32_t s)
{
	return (uint16_t)~ref_fold(s);
}

#endif
