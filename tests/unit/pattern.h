/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test data: a byte pattern per seed, different at every offset. */
#ifndef UDM_TEST_PATTERN_H
#define UDM_TEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* The byte a test pattern has at offset off, for pattern number seed. */
static inline unsigned char pattern_byte(unsigned seed, uint64_t off)
{
  uint64_t x = off * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
  x ^= x >> 29;
  return (unsigned char)(x ^ (x >> 8));
}

static inline void fill_pattern(unsigned char *buf, size_t len, unsigned seed, uint64_t off)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = pattern_byte(seed, off + i);
}

#endif
