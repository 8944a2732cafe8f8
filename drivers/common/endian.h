/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * On-disk integers.  Each byte order has its own wrapper type (a struct of
 * bytes), so a field read without its conversion fails to compile, and
 * structs made of them have no padding and no alignment needs.
 */
#ifndef UDM_DRIVERS_ENDIAN_H
#define UDM_DRIVERS_ENDIAN_H

#include <stdint.h>

typedef struct { uint8_t b[2]; } udm_le16;
typedef struct { uint8_t b[4]; } udm_le32;
typedef struct { uint8_t b[8]; } udm_le64;
typedef struct { uint8_t b[4]; } udm_be32;
typedef struct { uint8_t b[8]; } udm_be64;

static inline uint16_t le16_get(udm_le16 x)
{
  return (uint16_t)(x.b[0] | x.b[1] << 8);
}
static inline uint32_t le32_get(udm_le32 x)
{
  return (uint32_t)x.b[0] | (uint32_t)x.b[1] << 8 | (uint32_t)x.b[2] << 16 |
         (uint32_t)x.b[3] << 24;
}
static inline uint64_t le64_get(udm_le64 x)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | x.b[i];
  return v;
}
static inline udm_le16 le16_put(uint16_t v)
{
  udm_le16 x = {{(uint8_t)v, (uint8_t)(v >> 8)}};
  return x;
}
static inline udm_le32 le32_put(uint32_t v)
{
  udm_le32 x = {{(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}};
  return x;
}
static inline udm_le64 le64_put(uint64_t v)
{
  udm_le64 x;
  for (int i = 0; i < 8; i++)
    x.b[i] = (uint8_t)(v >> (8 * i));
  return x;
}
static inline uint32_t be32_get(udm_be32 x)
{
  return (uint32_t)x.b[0] << 24 | (uint32_t)x.b[1] << 16 | (uint32_t)x.b[2] << 8 |
         (uint32_t)x.b[3];
}
static inline uint64_t be64_get(udm_be64 x)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | x.b[i];
  return v;
}
/* Big-endian values inside a byte buffer (L1/L2 tables are arrays of be64). */
static inline uint64_t be64_at(const void *p)
{
  udm_be64 x;
  const uint8_t *s = p;
  for (int i = 0; i < 8; i++)
    x.b[i] = s[i];
  return be64_get(x);
}
static inline uint32_t be32_at(const void *p)
{
  udm_be32 x;
  const uint8_t *s = p;
  for (int i = 0; i < 4; i++)
    x.b[i] = s[i];
  return be32_get(x);
}

#endif
