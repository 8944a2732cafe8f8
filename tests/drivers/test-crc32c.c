/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-32C: published check values, a bit-at-a-time reference, and the CPU
 * instruction path against the software path bit for bit: every length
 * 0..1024 at assorted alignments, long buffers around the three-way block
 * boundaries, chained calls split anywhere (mixing the two paths).
 *
 * udm_crc32c follows the calling thread's choice (udm_crc32c_use_accel):
 * hardware by default, software once turned off (a context's
 * "crc32c-accel" setting, see tests/unit/test-ctx-settings.c).
 *
 * Exit 77 when this CPU or build has no instruction path (never in CI).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../drivers/common/crc32c.h"

static int fails;

static void expect(const char *what, size_t len, size_t align, uint32_t got, uint32_t want)
{
  if (got != want) {
    if (++fails <= 20)
      fprintf(stderr, "%s (length %zu, alignment %zu): got 0x%08x, want 0x%08x\n", what,
              len, align, got, want);
  }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* The definition, one bit at a time: slow and obviously right. */
static uint32_t crc_reference(uint32_t crc, const uint8_t *p, size_t len)
{
  uint32_t c = ~crc;
  while (len--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

typedef uint32_t crc_fn(uint32_t crc, const void *data, size_t len);

static void check_values(const char *name, crc_fn *crc)
{
  char what[64];
  snprintf(what, sizeof what, "%s \"123456789\"", name);
  expect(what, 9, 0, crc(0, "123456789", 9), 0xe3069283u);
  unsigned char zeros[32] = {0}, ones[32], inc[32], dec[32];
  memset(ones, 0xff, sizeof ones);
  for (int i = 0; i < 32; i++) {
    inc[i] = (unsigned char)i;
    dec[i] = (unsigned char)(31 - i);
  }
  /* RFC 3720 B.4 test vectors. */
  snprintf(what, sizeof what, "%s 32 zeros", name);
  expect(what, 32, 0, crc(0, zeros, 32), 0x8a9136aau);
  snprintf(what, sizeof what, "%s 32 0xff", name);
  expect(what, 32, 0, crc(0, ones, 32), 0x62a8ab43u);
  snprintf(what, sizeof what, "%s 0..31", name);
  expect(what, 32, 0, crc(0, inc, 32), 0x46dd794eu);
  snprintf(what, sizeof what, "%s 31..0", name);
  expect(what, 32, 0, crc(0, dec, 32), 0x113fdb5cu);
  expect("empty", 0, 0, crc(0, "", 0), 0);
  expect("empty after a CRC", 0, 0, crc(0x12345678u, "", 0), 0x12345678u);
  snprintf(what, sizeof what, "%s piecewise", name);
  for (size_t split = 0; split <= 32; split++)
    expect(what, split, 0, crc(crc(0, inc, split), inc + split, 32 - split), 0x46dd794eu);
}

int main(int argc, char **argv)
{
  (void)argc, (void)argv;
  const char *ci = getenv("CI");
  bool in_ci = ci && strcmp(ci, "true") == 0;
  bool hw = udm_crc32c_hw_usable();
  printf("udm_crc32c_with(true) uses: %s; instruction path usable: %s\n",
         udm_crc32c_impl(true), hw ? "yes" : "no");

  check_values("default", udm_crc32c);
  check_values("software", udm_crc32c_sw);
  if (hw)
    check_values("hardware", udm_crc32c_hw);
  if (strcmp(udm_crc32c_impl(false), "software") != 0) {
    fprintf(stderr, "udm_crc32c_with(false) does not use software (%s)\n",
            udm_crc32c_impl(false));
    fails++;
  }
  if (hw && strcmp(udm_crc32c_impl(true), "software") == 0) {
    fprintf(stderr, "the instruction is usable but udm_crc32c_with(true) does not use it\n");
    fails++;
  }
  /* The thread's choice: on by default, off and back, reported by the setter. */
  if (!udm_crc32c_use_accel(false) || udm_crc32c_use_accel(true)) {
    fprintf(stderr, "udm_crc32c_use_accel did not return the previous choice\n");
    fails++;
  }
  udm_crc32c_use_accel(false);
  check_values("thread choice off", udm_crc32c);
  udm_crc32c_use_accel(true);

  /* Room for the longest buffer at any of the alignments, plus guard bytes. */
  const size_t max_len = (3u << 20) + 4099;
  uint8_t *buf = malloc(max_len + 128);
  if (!buf)
    return 1;
  for (size_t i = 0; i < max_len + 128; i++)
    buf[i] = (uint8_t)next();

  /* Every short length at assorted alignments, from 0 and from a running CRC. */
  static const size_t aligns[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 31, 63};
  crc_fn *path = hw ? udm_crc32c_hw : udm_crc32c_sw;
  unsigned compared = 0;
  for (size_t len = 0; len <= 1024; len++)
    for (size_t a = 0; a < sizeof aligns / sizeof *aligns; a++) {
      const uint8_t *p = buf + aligns[a];
      uint32_t seed = a % 2 ? (uint32_t)next() : 0;
      uint32_t want = crc_reference(seed, p, len);
      expect("software vs reference", len, aligns[a], udm_crc32c_sw(seed, p, len), want);
      expect("path vs reference", len, aligns[a], path(seed, p, len), want);
      expect("default vs reference", len, aligns[a], udm_crc32c(seed, p, len), want);
      compared++;
    }

  /* Long buffers, around the block sizes of the three-way split. */
  static const size_t longs[] = {
      767, 768, 769, 775, 776, 1535, 1536, 1544, 24575, 24576, 24577, 24576 + 768,
      24576 + 775, 2 * 24576 - 1, 49152 + 768 * 3 + 7, 65536, 65536 + 4095, 131072,
      1u << 20, (1u << 20) + 13, 3u << 20, (3u << 20) + 4099};
  for (size_t i = 0; i < sizeof longs / sizeof *longs; i++)
    for (size_t a = 0; a < 8; a += 3) {
      size_t len = longs[i];
      const uint8_t *p = buf + a;
      uint32_t seed = (uint32_t)next();
      uint32_t want = udm_crc32c_sw(seed, p, len);
      if (len <= 65536 + 4095)
        expect("software vs reference (long)", len, a, want, crc_reference(seed, p, len));
      expect("path vs software (long)", len, a, path(seed, p, len), want);
      expect("default vs software (long)", len, a, udm_crc32c(seed, p, len), want);
      compared++;
    }

  /* Chained calls: 1 MiB + 5 in random pieces, each piece by either path. */
  const size_t chain_len = (1u << 20) + 5;
  uint32_t whole = udm_crc32c_sw(0, buf + 3, chain_len);
  for (int round = 0; round < 50; round++) {
    uint32_t c = 0;
    size_t pos = 0;
    while (pos < chain_len) {
      size_t piece = (size_t)(next() % (round % 2 ? 100000 : 2000));
      if (piece > chain_len - pos)
        piece = chain_len - pos;
      crc_fn *f = next() % 2 ? path : udm_crc32c_sw;
      c = f(c, buf + 3 + pos, piece);
      pos += piece;
    }
    expect("chained pieces vs whole", chain_len, 3, c, whole);
    compared++;
  }
  free(buf);

  printf("%u comparisons, %d failed\n", compared, fails);
  if (fails)
    return 1;
  if (!hw) {
    printf("%s: no CRC-32C instruction in this build or on this CPU: software only\n",
           in_ci ? "FAIL" : "SKIP");
    return in_ci ? 1 : 77;
  }
  return 0;
}
