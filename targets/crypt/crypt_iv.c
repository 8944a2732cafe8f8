/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The small pieces of arithmetic dm-crypt's legacy modes are built from and
 * libgcrypt does not expose: an MD5 compression step without padding (for
 * LMK, which uses the raw MD5 state as its IV), the unreflected-init CRC32
 * of the kernel's "crc32" hash (for TCW whitening), and multiplication in
 * GF(2^128) in the "big-endian bits" convention LRW uses.
 */
#include <string.h>

#include "crypt_iv.h"

static inline uint32_t rol32(uint32_t x, unsigned n)
{
  return (x << n) | (x >> (32 - n));
}

static inline uint32_t get_le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Per-round additive constants: floor(abs(sin(i + 1)) * 2^32). */
static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const unsigned char md5_r[64] = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};

void udm_md5_init(uint32_t h[4])
{
  h[0] = 0x67452301;
  h[1] = 0xefcdab89;
  h[2] = 0x98badcfe;
  h[3] = 0x10325476;
}

void udm_md5_block(uint32_t h[4], const uint8_t block[64])
{
  uint32_t m[16];
  for (unsigned i = 0; i < 16; i++)
    m[i] = get_le32(block + 4 * i);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  for (unsigned i = 0; i < 64; i++) {
    uint32_t f;
    unsigned g;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) % 16;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) % 16;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) % 16;
    }
    uint32_t t = d;
    d = c;
    c = b;
    b = b + rol32(a + f + md5_k[i] + m[g], md5_r[i]);
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
}

void udm_md5_state_bytes(const uint32_t h[4], uint8_t out[16])
{
  for (unsigned i = 0; i < 4; i++)
    put_le32(out + 4 * i, h[i]);
}

uint32_t udm_crc32_le_raw(uint32_t crc, const uint8_t *p, size_t len)
{
  while (len--) {
    crc ^= *p++;
    for (unsigned k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return crc;
}

/* ---- GF(2^128), LRW's convention: a 128-bit big-endian integer whose bit i
 * is the coefficient of x^i, reduced by x^128 + x^7 + x^2 + x + 1. ---- */

static void load_be128(struct udm_gf128 *v, const uint8_t b[16])
{
  v->hi = v->lo = 0;
  for (unsigned i = 0; i < 8; i++) {
    v->hi = v->hi << 8 | b[i];
    v->lo = v->lo << 8 | b[8 + i];
  }
}

void udm_gf128_load(struct udm_gf128 *v, const uint8_t b[16])
{
  load_be128(v, b);
}

void udm_gf128_store(const struct udm_gf128 *v, uint8_t b[16])
{
  for (unsigned i = 0; i < 8; i++) {
    b[i] = (uint8_t)(v->hi >> (56 - 8 * i));
    b[8 + i] = (uint8_t)(v->lo >> (56 - 8 * i));
  }
}

void udm_gf128_mul(struct udm_gf128 *r, const struct udm_gf128 *a,
                   const struct udm_gf128 *b)
{
  struct udm_gf128 acc = {0, 0};
  for (int i = 127; i >= 0; i--) {
    /* acc *= x */
    uint64_t carry = acc.hi >> 63;
    acc.hi = acc.hi << 1 | acc.lo >> 63;
    acc.lo = acc.lo << 1;
    if (carry)
      acc.lo ^= 0x87;
    uint64_t bit = i >= 64 ? (b->hi >> (i - 64)) & 1 : (b->lo >> i) & 1;
    if (bit) {
      acc.hi ^= a->hi;
      acc.lo ^= a->lo;
    }
  }
  *r = acc;
}
