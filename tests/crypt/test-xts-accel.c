/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * targets/crypt/xts_accel against libgcrypt's XTS, one data unit per call:
 * AES-128 and AES-256, data units of 512 to 4096 bytes, runs of 1 to 300
 * units, IVs across the 2^64 wrap, in place and out of place, and the bytes
 * around the run untouched.  Exit 77 when this CPU or build has no VAES (the
 * crypt target then uses libgcrypt alone, which crypt-kat covers).
 */
#include <gcrypt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../targets/crypt/xts_accel.h"
#include "../unit/check.h"

#define GUARD 64

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static void fill(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)next();
}

/* libgcrypt: each unit its own XTS data unit with IV le64(iv) || 0^64. */
static void reference(const uint8_t *key, unsigned klen, uint8_t *out, const uint8_t *in,
                      uint64_t units, size_t ub, uint64_t iv, int encrypt)
{
  gcry_cipher_hd_t hd;
  int algo = klen == 32 ? GCRY_CIPHER_AES128 : GCRY_CIPHER_AES256;
  if (gcry_cipher_open(&hd, algo, GCRY_CIPHER_MODE_XTS, 0) || gcry_cipher_setkey(hd, key, klen)) {
    fprintf(stderr, "libgcrypt refused XTS\n");
    exit(1);
  }
  for (uint64_t u = 0; u < units; u++, iv++) {
    uint8_t ivb[16] = {0};
    for (int i = 0; i < 8; i++)
      ivb[i] = (uint8_t)(iv >> (8 * i));
    gcry_cipher_setiv(hd, ivb, sizeof ivb);
    if (encrypt)
      gcry_cipher_encrypt(hd, out + u * ub, ub, in + u * ub, ub);
    else
      gcry_cipher_decrypt(hd, out + u * ub, ub, in + u * ub, ub);
  }
  gcry_cipher_close(hd);
}

int main(void)
{
  if (!gcry_check_version(NULL))
    return 1;
  gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
  gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
  if (!udm_xts_accel_usable(64)) {
    printf("SKIP: no VAES/AVX-512 on this CPU or in this build (or UDM_CRYPT_ACCEL=0)\n");
    return 77;
  }
  CHECK(udm_xts_accel_usable(32));
  CHECK(!udm_xts_accel_usable(48)); /* AES-192 stays with libgcrypt */
  CHECK(!udm_xts_accel_usable(16));

  struct xts_accel *x = aligned_alloc(64, udm_xts_accel_size());
  const size_t max = 300 * 4096 + 2 * GUARD;
  uint8_t *plain = malloc(max), *want = malloc(max), *got = malloc(max), *back = malloc(max);
  if (!x || !plain || !want || !got || !back)
    return 1;
  const uint64_t ivs[] = {0, 1, 7, 1000, (1ull << 32) - 3, UINT64_MAX - 5, UINT64_MAX};
  unsigned cases = 0;
  for (unsigned trial = 0; trial < 400; trial++) {
    unsigned klen = trial % 2 ? 32 : 64;
    size_t ub = (size_t)512 << (trial / 2 % 4); /* 512, 1024, 2048, 4096 */
    uint64_t units = trial < 40 ? trial / 4 + 1 : 1 + next() % (ub == 512 ? 300 : 40);
    uint64_t iv = trial % 3 ? next() : ivs[trial / 3 % (sizeof ivs / sizeof ivs[0])];
    uint8_t key[64];
    fill(key, klen);
    size_t n = units * ub;
    fill(plain, n + 2 * GUARD);
    memcpy(got, plain, n + 2 * GUARD);
    udm_xts_accel_setkey(x, key, klen);

    reference(key, klen, want + GUARD, plain + GUARD, units, ub, iv, 1);
    if (trial % 2) { /* in place */
      udm_xts_accel_run(x, got + GUARD, got + GUARD, units, ub, iv, true);
    } else {
      memset(got, 0xa5, n + 2 * GUARD);
      udm_xts_accel_run(x, got + GUARD, plain + GUARD, units, ub, iv, true);
    }
    if (memcmp(got + GUARD, want + GUARD, n) != 0) {
      fprintf(stderr, "encrypt differs: key %u, unit %zu, units %llu, iv %llu\n", klen * 8, ub,
              (unsigned long long)units, (unsigned long long)iv);
      check_failures++;
    }
    /* Around the run nothing moved. */
    uint8_t fill_byte = trial % 2 ? 0 : 0xa5;
    for (size_t i = 0; i < GUARD; i++) {
      uint8_t lo = trial % 2 ? plain[i] : fill_byte;
      uint8_t hi = trial % 2 ? plain[GUARD + n + i] : fill_byte;
      if (got[i] != lo || got[GUARD + n + i] != hi) {
        fprintf(stderr, "bytes outside the run changed (trial %u)\n", trial);
        check_failures++;
        break;
      }
    }
    /* Decrypt back, in place, and against libgcrypt's decryption. */
    memcpy(back, got, n + 2 * GUARD);
    udm_xts_accel_run(x, back + GUARD, back + GUARD, units, ub, iv, false);
    CHECK(memcmp(back + GUARD, plain + GUARD, n) == 0);
    reference(key, klen, want + GUARD, got + GUARD, units, ub, iv, 0);
    CHECK(memcmp(want + GUARD, plain + GUARD, n) == 0);
    cases++;
  }
  printf("%u runs match libgcrypt\n", cases);
  free(x);
  free(plain);
  free(want);
  free(got);
  free(back);
  return check_failures ? 1 : 0;
}
