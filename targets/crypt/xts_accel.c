/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * AES-XTS for runs of data units with VAES + AVX-512 (see xts_accel.h).
 *
 * Layout of the work: a 512-bit register holds four 16-byte AES blocks
 * ("lanes").  The tweak of block j of a data unit is T * x^j in GF(2^128)
 * (XTS's little-endian convention, reduction polynomial x^128 + x^7 + x^2 +
 * x + 1), where T is the unit's IV encrypted with the second key.  Four
 * consecutive blocks take the lanes (T x^j, T x^(j+1), T x^(j+2), T x^(j+3));
 * the next four are that register times x^4.  A 512-byte piece is eight
 * registers, encrypted round by round side by side so that the AES units
 * never wait on one chain.  Unit tweaks are made 16 units at a time the same
 * way (four registers of four IVs).
 */
#include "xts_accel.h"

#include <stdlib.h>
#include <string.h>

/* Compilers that know the VAES, VPCLMULQDQ and AVX-512 target attributes. */
#if defined(__x86_64__) && \
    ((defined(__clang__) && __clang_major__ >= 8) || (!defined(__clang__) && __GNUC__ >= 9))
#define UDM_HAVE_XTS_VAES 1
#endif

#if defined(UDM_HAVE_XTS_VAES)
#include <cpuid.h>
#include <immintrin.h>

#include "../../platform/platform.h"

#define ROUNDS_MAX 14
/* Units whose tweaks are computed in one go. */
#define TWEAK_BATCH 64

struct xts_accel {
  __m512i ek[ROUNDS_MAX + 1]; /* data key, encryption, each round key in all lanes */
  __m512i dk[ROUNDS_MAX + 1]; /* data key, decryption (equivalent inverse cipher) */
  __m512i tk[ROUNDS_MAX + 1]; /* tweak key, encryption */
  int rounds;
};

#define TARGET_AESNI __attribute__((target("aes,sse4.1")))
#define TARGET_VAES \
  __attribute__((target("aes,sse4.1,avx2,avx512f,avx512vl,avx512bw,vaes,vpclmulqdq")))

static void wipe(void *p, size_t n)
{
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

/* One step of the key schedule: fold the previous key words with assist's word w. */
TARGET_AESNI static __m128i schedule_step(__m128i k, __m128i assist, int w)
{
  __m128i t = w == 3 ? _mm_shuffle_epi32(assist, 0xff) : _mm_shuffle_epi32(assist, 0xaa);
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  return _mm_xor_si128(k, t);
}

/* FIPS-197 key expansion for 16- or 32-byte keys; returns the round count. */
TARGET_AESNI static int expand_key(const uint8_t *key, unsigned len, __m128i *rk)
{
  /* aeskeygenassist wants its round constant as an immediate. */
#define ASSIST(k, rcon) _mm_aeskeygenassist_si128((k), (rcon))
  if (len == 16) {
    __m128i k = _mm_loadu_si128((const __m128i *)key);
    rk[0] = k;
    rk[1] = k = schedule_step(k, ASSIST(k, 0x01), 3);
    rk[2] = k = schedule_step(k, ASSIST(k, 0x02), 3);
    rk[3] = k = schedule_step(k, ASSIST(k, 0x04), 3);
    rk[4] = k = schedule_step(k, ASSIST(k, 0x08), 3);
    rk[5] = k = schedule_step(k, ASSIST(k, 0x10), 3);
    rk[6] = k = schedule_step(k, ASSIST(k, 0x20), 3);
    rk[7] = k = schedule_step(k, ASSIST(k, 0x40), 3);
    rk[8] = k = schedule_step(k, ASSIST(k, 0x80), 3);
    rk[9] = k = schedule_step(k, ASSIST(k, 0x1b), 3);
    rk[10] = schedule_step(k, ASSIST(k, 0x36), 3);
    return 10;
  }
  __m128i a = _mm_loadu_si128((const __m128i *)key);
  __m128i b = _mm_loadu_si128((const __m128i *)(key + 16));
  rk[0] = a;
  rk[1] = b;
  /* Even round keys take RotWord+SubWord+rcon of b; odd ones SubWord of a. */
#define PAIR(i, rcon)                                \
  rk[i] = a = schedule_step(a, ASSIST(b, rcon), 3); \
  rk[i + 1] = b = schedule_step(b, ASSIST(a, 0), 2);
  PAIR(2, 0x01)
  PAIR(4, 0x02)
  PAIR(6, 0x04)
  PAIR(8, 0x08)
  PAIR(10, 0x10)
  PAIR(12, 0x20)
#undef PAIR
  rk[14] = schedule_step(a, ASSIST(b, 0x40), 3);
#undef ASSIST
  return 14;
}

TARGET_VAES static void setkey_vaes(struct xts_accel *x, const uint8_t *key, unsigned len)
{
  __m128i e[ROUNDS_MAX + 1], t[ROUNDS_MAX + 1];
  unsigned half = len / 2;
  int rounds = expand_key(key, half, e);
  expand_key(key + half, half, t);
  x->rounds = rounds;
  for (int i = 0; i <= rounds; i++) {
    x->ek[i] = _mm512_broadcast_i32x4(e[i]);
    x->tk[i] = _mm512_broadcast_i32x4(t[i]);
    /* Decryption runs the encryption keys backwards, inner ones through InvMixColumns. */
    __m128i d = e[rounds - i];
    if (i != 0 && i != rounds)
      d = _mm_aesimc_si128(d);
    x->dk[i] = _mm512_broadcast_i32x4(d);
  }
  wipe(e, sizeof e);
  wipe(t, sizeof t);
}

/* Each lane times x^k, 1 <= k <= 8: shift left, fold the k bits out of the top back in. */
TARGET_VAES static inline __m512i mul_xk(__m512i t, int k)
{
  const __m512i poly = _mm512_set_epi64(0, 0x87, 0, 0x87, 0, 0x87, 0, 0x87);
  __m512i shifted = _mm512_slli_epi64(t, k);
  __m512i out = _mm512_srli_epi64(t, 64 - k);   /* top bits of each half */
  __m512i carry = _mm512_bslli_epi128(out, 8);  /* low half's top bits into the high half */
  __m512i fold = _mm512_clmulepi64_epi128(out, poly, 0x01); /* high half's top bits * poly */
  return _mm512_ternarylogic_epi64(shifted, carry, fold, 0x96); /* a ^ b ^ c */
}

/* tw[g] lanes = E_tk(iv + 4g + lane) for g < groups (a multiple of 4). */
TARGET_VAES static void unit_tweaks(const struct xts_accel *x, __m512i *tw, uint64_t iv,
                                    unsigned groups)
{
  const __m512i lane = _mm512_set_epi64(0, 3, 0, 2, 0, 1, 0, 0);
  const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
  const int rounds = x->rounds;
  __m512i base = _mm512_add_epi64(_mm512_set_epi64(0, iv, 0, iv, 0, iv, 0, iv), lane);
  for (unsigned g = 0; g < groups; g += 4) {
    /* 64-bit adds: the IV wraps at 2^64 and its upper half stays zero, as plain64's. */
    __m512i v0 = base;
    __m512i v1 = _mm512_add_epi64(v0, four);
    __m512i v2 = _mm512_add_epi64(v1, four);
    __m512i v3 = _mm512_add_epi64(v2, four);
    base = _mm512_add_epi64(v3, four);
    __m512i k = x->tk[0];
    v0 = _mm512_xor_si512(v0, k);
    v1 = _mm512_xor_si512(v1, k);
    v2 = _mm512_xor_si512(v2, k);
    v3 = _mm512_xor_si512(v3, k);
    for (int r = 1; r < rounds; r++) {
      k = x->tk[r];
      v0 = _mm512_aesenc_epi128(v0, k);
      v1 = _mm512_aesenc_epi128(v1, k);
      v2 = _mm512_aesenc_epi128(v2, k);
      v3 = _mm512_aesenc_epi128(v3, k);
    }
    k = x->tk[rounds];
    tw[g] = _mm512_aesenclast_epi128(v0, k);
    tw[g + 1] = _mm512_aesenclast_epi128(v1, k);
    tw[g + 2] = _mm512_aesenclast_epi128(v2, k);
    tw[g + 3] = _mm512_aesenclast_epi128(v3, k);
  }
}

/* (T, T x, T x^2, T x^3) from the unit tweak T in lane j of v. */
TARGET_VAES static inline __m512i first_four(__m512i v, int j)
{
  __m512i t = _mm512_permutexvar_epi64(_mm512_set_epi64(2 * j + 1, 2 * j, 2 * j + 1, 2 * j,
                                                         2 * j + 1, 2 * j, 2 * j + 1, 2 * j),
                                       v);
  t = _mm512_mask_blend_epi64(0x0c, t, mul_xk(t, 1));
  t = _mm512_mask_blend_epi64(0x30, t, mul_xk(t, 2));
  return _mm512_mask_blend_epi64(0xc0, t, mul_xk(t, 3));
}

/*
 * The run, for encryption (AESENC) or decryption (AESDEC): the same code
 * with other instructions and keys, so it is written once as a macro.
 */
#define XTS_RUN(ROUND, LAST, KEYS)                                                          \
  const __m512i *K = (KEYS);                                                                \
  const int rounds = x->rounds;                                                             \
  __m512i tw[TWEAK_BATCH / 4];                                                              \
  for (uint64_t u = 0; u < units; u++) {                                                    \
    if (u % TWEAK_BATCH == 0) {                                                             \
      uint64_t left = units - u < TWEAK_BATCH ? units - u : TWEAK_BATCH;                    \
      unit_tweaks(x, tw, first_iv + u, (unsigned)((left + 15) / 16) * 4);                   \
    }                                                                                       \
    __m512i t = first_four(tw[(u % TWEAK_BATCH) / 4], (int)(u % 4));                        \
    for (size_t at = 0; at < unit_bytes; at += 512) {                                       \
      const uint8_t *ip = in + u * unit_bytes + at;                                         \
      uint8_t *op = out + u * unit_bytes + at;                                              \
      __m512i t0 = t, t1 = mul_xk(t0, 4), t2 = mul_xk(t1, 4), t3 = mul_xk(t2, 4);           \
      __m512i t4 = mul_xk(t3, 4), t5 = mul_xk(t4, 4), t6 = mul_xk(t5, 4);                   \
      __m512i t7 = mul_xk(t6, 4);                                                           \
      t = mul_xk(t7, 4);                                                                    \
      __m512i k = K[0];                                                                     \
      __m512i d0 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip), t0, k, 0x96);          \
      __m512i d1 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 64), t1, k, 0x96);     \
      __m512i d2 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 128), t2, k, 0x96);    \
      __m512i d3 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 192), t3, k, 0x96);    \
      __m512i d4 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 256), t4, k, 0x96);    \
      __m512i d5 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 320), t5, k, 0x96);    \
      __m512i d6 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 384), t6, k, 0x96);    \
      __m512i d7 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(ip + 448), t7, k, 0x96);    \
      for (int r = 1; r < rounds; r++) {                                                    \
        k = K[r];                                                                           \
        d0 = ROUND(d0, k);                                                                  \
        d1 = ROUND(d1, k);                                                                  \
        d2 = ROUND(d2, k);                                                                  \
        d3 = ROUND(d3, k);                                                                  \
        d4 = ROUND(d4, k);                                                                  \
        d5 = ROUND(d5, k);                                                                  \
        d6 = ROUND(d6, k);                                                                  \
        d7 = ROUND(d7, k);                                                                  \
      }                                                                                     \
      k = K[rounds];                                                                        \
      _mm512_storeu_si512(op, _mm512_xor_si512(LAST(d0, k), t0));                           \
      _mm512_storeu_si512(op + 64, _mm512_xor_si512(LAST(d1, k), t1));                      \
      _mm512_storeu_si512(op + 128, _mm512_xor_si512(LAST(d2, k), t2));                     \
      _mm512_storeu_si512(op + 192, _mm512_xor_si512(LAST(d3, k), t3));                     \
      _mm512_storeu_si512(op + 256, _mm512_xor_si512(LAST(d4, k), t4));                     \
      _mm512_storeu_si512(op + 320, _mm512_xor_si512(LAST(d5, k), t5));                     \
      _mm512_storeu_si512(op + 384, _mm512_xor_si512(LAST(d6, k), t6));                     \
      _mm512_storeu_si512(op + 448, _mm512_xor_si512(LAST(d7, k), t7));                     \
    }                                                                                       \
  }                                                                                         \
  wipe(tw, sizeof tw)

TARGET_VAES static void encrypt_vaes(const struct xts_accel *x, uint8_t *out, const uint8_t *in,
                                     uint64_t units, size_t unit_bytes, uint64_t first_iv)
{
  XTS_RUN(_mm512_aesenc_epi128, _mm512_aesenclast_epi128, x->ek);
}

TARGET_VAES static void decrypt_vaes(const struct xts_accel *x, uint8_t *out, const uint8_t *in,
                                     uint64_t units, size_t unit_bytes, uint64_t first_iv)
{
  XTS_RUN(_mm512_aesdec_epi128, _mm512_aesdeclast_epi128, x->dk);
}

size_t udm_xts_accel_size(void)
{
  return (sizeof(struct xts_accel) + 63) / 64 * 64;
}

/*
 * CPUID directly (clang has no "vaes" for __builtin_cpu_supports, and that
 * builtin needs the compiler's runtime library besides); whether the OS
 * keeps AVX-512 register state is the platform's question (macOS enables
 * it lazily, so XCR0 cannot tell there).
 */
static bool cpu_has_vaes(void)
{
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return false;
  const unsigned aes = 1u << 25, avx = 1u << 28;
  if ((c & (aes | avx)) != (aes | avx) || !udm_platform_os_avx512_state())
    return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
    return false;
  const unsigned avx2 = 1u << 5, avx512f = 1u << 16, avx512bw = 1u << 30,
                 avx512vl = 1u << 31;
  const unsigned vaes = 1u << 9, vpclmulqdq = 1u << 10;
  return (b & (avx2 | avx512f | avx512bw | avx512vl)) == (avx2 | avx512f | avx512bw | avx512vl) &&
         (c & (vaes | vpclmulqdq)) == (vaes | vpclmulqdq);
}

bool udm_xts_accel_usable(unsigned key_bytes)
{
  if (key_bytes != 32 && key_bytes != 64)
    return false;
  return cpu_has_vaes();
}

void udm_xts_accel_setkey(struct xts_accel *x, const uint8_t *key, unsigned key_bytes)
{
  setkey_vaes(x, key, key_bytes);
}

void udm_xts_accel_run(const struct xts_accel *x, uint8_t *out, const uint8_t *in, uint64_t units,
                   size_t unit_bytes, uint64_t first_iv, bool encrypt)
{
  if (encrypt)
    encrypt_vaes(x, out, in, units, unit_bytes, first_iv);
  else
    decrypt_vaes(x, out, in, units, unit_bytes, first_iv);
}

#else /* no VAES in this build: libgcrypt does everything */

struct xts_accel {
  int unused;
};

size_t udm_xts_accel_size(void)
{
  return 64;
}

bool udm_xts_accel_usable(unsigned key_bytes)
{
  (void)key_bytes;
  return false;
}

void udm_xts_accel_setkey(struct xts_accel *x, const uint8_t *key, unsigned key_bytes)
{
  (void)x;
  (void)key;
  (void)key_bytes;
  abort(); /* unreachable: udm_xts_accel_usable() is false */
}

void udm_xts_accel_run(const struct xts_accel *x, uint8_t *out, const uint8_t *in, uint64_t units,
                   size_t unit_bytes, uint64_t first_iv, bool encrypt)
{
  (void)x;
  (void)out;
  (void)in;
  (void)units;
  (void)unit_bytes;
  (void)first_iv;
  (void)encrypt;
  abort(); /* unreachable: udm_xts_accel_usable() is false */
}

#endif
