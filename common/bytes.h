/* Big-endian (network order) fields read and written at any alignment:
 * packet headers, DNS messages. */
#ifndef XB_BYTES_H
#define XB_BYTES_H

#include <stdint.h>

static inline uint16_t xb_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t xb_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void xb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void xb_put32(uint8_t *p, uint32_t v)
{
	xb_put16(p, (uint16_t)(v >> 16));
	xb_put16(p + 2, (uint16_t)v);
}

#endif
