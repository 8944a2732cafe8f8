/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CRC-32C against published check values, and piecewise = whole. */
#include <stdio.h>
#include <string.h>

#include "../../drivers/common/crc32c.h"

static int fails;

static void expect(const char *what, unsigned got, unsigned want)
{
  if (got != want) {
    fprintf(stderr, "%s: got 0x%08x, want 0x%08x\n", what, got, want);
    fails++;
  }
}

int main(void)
{
  expect("\"123456789\"", udm_crc32c(0, "123456789", 9), 0xe3069283u);
  unsigned char zeros[32] = {0}, ones[32];
  memset(ones, 0xff, sizeof ones);
  /* RFC 3720 B.4 test vectors. */
  expect("32 zeros", udm_crc32c(0, zeros, 32), 0x8a9136aau);
  expect("32 0xff", udm_crc32c(0, ones, 32), 0x62a8ab43u);
  unsigned char inc[32];
  for (int i = 0; i < 32; i++)
    inc[i] = (unsigned char)i;
  expect("0..31", udm_crc32c(0, inc, 32), 0x46dd794eu);
  for (size_t split = 0; split <= 32; split++)
    expect("piecewise", udm_crc32c(udm_crc32c(0, inc, split), inc + split, 32 - split),
           0x46dd794eu);
  return fails ? 1 : 0;
}
