/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Table-driven CRC-32C, eight bytes per step ("slicing by 8") so that
 * checking every chunk on every read costs little next to decompression.
 * The tables are constant once built; pthread_once builds them.
 */
#include <pthread.h>

#include "crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t udm_crc32c(uint32_t crc, const void *data, size_t len)
{
  pthread_once(&table_once, build_table);
  const uint8_t *p = data;
  uint32_t c = ~crc;
  while (len >= 8) {
    uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24);
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
        table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
        table[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len--)
    c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
  return ~c;
}
