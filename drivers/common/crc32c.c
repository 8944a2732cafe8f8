/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-32C with the CPU's own instruction when it has one (x86-64 SSE4.2
 * crc32; ARMv8 crc32c), else table-driven in software, eight bytes per step
 * ("slicing by 8").  udmz checks every chunk it reads, up to twice, so this
 * is on the read path: in software it cost as much as decompression.
 *
 * The instruction takes about three cycles per step but can start one every
 * cycle, so long buffers are cut into three equal blocks whose CRCs run side
 * by side and are then combined: the CRC register is linear, so the register
 * after blocks A then B is (the register after A, advanced over |B| zero
 * bytes) xor (the register B leaves starting from 0).  Advancing over a
 * fixed number of zero bytes is itself linear in the 32 register bits, so it
 * is four table lookups, one per register byte.
 *
 * Everything below works on the bare register (no inversions); the public
 * functions add the standard initial and final inversions.  The tables are
 * constant once built (pthread_once).  Which path runs is the caller's
 * choice (a context's "crc32c-accel" setting), never the environment's.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82F63B78u

/* Block lengths of the three-way split (bytes; multiples of 8). */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static uint32_t sw_update(uint32_t c, const uint8_t *p, size_t len)
{
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
  return c;
}

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

/*
 * The instructions, where this compiler and architecture have them.  Both
 * take the register and the next bytes in memory order, little-endian, with
 * no inversions: the same step as sw_update.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HW_CRC 1
#include <cpuid.h>
#include <nmmintrin.h>
#define TARGET_HW __attribute__((target("sse4.2")))

static TARGET_HW inline uint32_t hw_step64(uint32_t c, uint64_t v)
{
  return (uint32_t)_mm_crc32_u64(c, v);
}

static TARGET_HW inline uint32_t hw_step8(uint32_t c, uint8_t v)
{
  return _mm_crc32_u8(c, v);
}

static bool hw_present(void)
{
  /* CPUID directly: __builtin_cpu_supports needs the compiler's runtime library. */
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 20)) != 0; /* SSE4.2 */
}

#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_HW_CRC 1
#include "../../platform/platform.h"

#if defined(__ARM_FEATURE_CRC32) /* the whole build may use them (Apple Silicon) */
#include <arm_acle.h>
#define TARGET_HW
#define HW_CRC_CD __crc32cd
#define HW_CRC_CB __crc32cb
#elif defined(__clang__) /* whose <arm_acle.h> hides them without the feature */
#define TARGET_HW __attribute__((target("crc")))
#define HW_CRC_CD __builtin_arm_crc32cd
#define HW_CRC_CB __builtin_arm_crc32cb
#else
#include <arm_acle.h>
#define TARGET_HW __attribute__((target("+crc")))
#define HW_CRC_CD __crc32cd
#define HW_CRC_CB __crc32cb
#endif

static TARGET_HW inline uint32_t hw_step64(uint32_t c, uint64_t v)
{
  return HW_CRC_CD(c, v);
}

static TARGET_HW inline uint32_t hw_step8(uint32_t c, uint8_t v)
{
  return HW_CRC_CB(c, v);
}

static bool hw_present(void)
{
#if defined(__ARM_FEATURE_CRC32)
  return true;
#else
  return udm_platform_cpu_has_arm_crc32();
#endif
}
#endif

#if defined(HAVE_HW_CRC)
/* Advance a register over LEN zero bytes: byte k of the register -> shift[k][byte]. */
struct zeros_op {
  uint32_t shift[4][256];
};

/* Built from the software table, so after build_table(). */
static void build_zeros_op(struct zeros_op *op, size_t len)
{
  static const uint8_t zeros[SHORT_BLOCK];
  uint32_t bit[32]; /* each register bit alone, advanced over LEN zeros */
  for (int b = 0; b < 32; b++) {
    uint32_t c = 1u << b;
    for (size_t done = 0; done < len; done += sizeof zeros)
      c = sw_update(c, zeros, len - done < sizeof zeros ? len - done : sizeof zeros);
    bit[b] = c;
  }
  for (int k = 0; k < 4; k++)
    for (unsigned v = 0; v < 256; v++) {
      uint32_t c = 0;
      for (int b = 0; b < 8; b++)
        if (v & (1u << b))
          c ^= bit[8 * k + b];
      op->shift[k][v] = c;
    }
}

static inline uint32_t zeros_apply(const struct zeros_op *op, uint32_t c)
{
  return op->shift[0][c & 0xff] ^ op->shift[1][(c >> 8) & 0xff] ^
         op->shift[2][(c >> 16) & 0xff] ^ op->shift[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static struct zeros_op long_zeros, short_zeros;

/* Three blocks of BLOCK bytes side by side while LEN allows; returns bytes done. */
static TARGET_HW inline size_t hw_three_way(uint32_t *cp, const uint8_t *p, size_t len,
                                            size_t block, const struct zeros_op *op)
{
  size_t done = 0;
  uint32_t c = *cp;
  while (len - done >= 3 * block) {
    const uint8_t *a = p + done, *b = a + block, *d = b + block;
    uint32_t ca = c, cb = 0, cd = 0;
    for (size_t i = 0; i < block; i += 8) {
      ca = hw_step64(ca, load64(a + i));
      cb = hw_step64(cb, load64(b + i));
      cd = hw_step64(cd, load64(d + i));
    }
    c = zeros_apply(op, zeros_apply(op, ca) ^ cb) ^ cd;
    done += 3 * block;
  }
  *cp = c;
  return done;
}

static TARGET_HW uint32_t hw_update(uint32_t c, const uint8_t *p, size_t len)
{
  size_t done = hw_three_way(&c, p, len, LONG_BLOCK, &long_zeros);
  done += hw_three_way(&c, p + done, len - done, SHORT_BLOCK, &short_zeros);
  p += done;
  len -= done;
  while (len >= 8) {
    c = hw_step64(c, load64(p));
    p += 8;
    len -= 8;
  }
  while (len--)
    c = hw_step8(c, *p++);
  return c;
}
#endif

static bool hw_usable;
/* The calling thread's choice (udm_crc32c_use_accel): hardware unless false. */
static _Thread_local bool thread_no_accel;

static void init_once(void)
{
  build_table();
#if defined(HAVE_HW_CRC)
  if (hw_present()) {
    build_zeros_op(&long_zeros, LONG_BLOCK);
    build_zeros_op(&short_zeros, SHORT_BLOCK);
    hw_usable = true;
  }
#endif
}

uint32_t udm_crc32c_with(bool accel, uint32_t crc, const void *data, size_t len)
{
  pthread_once(&table_once, init_once);
#if defined(HAVE_HW_CRC)
  if (accel && hw_usable)
    return ~hw_update(~crc, data, len);
#else
  (void)accel;
#endif
  return ~sw_update(~crc, data, len);
}

uint32_t udm_crc32c(uint32_t crc, const void *data, size_t len)
{
  return udm_crc32c_with(!thread_no_accel, crc, data, len);
}

bool udm_crc32c_use_accel(bool accel)
{
  bool was = !thread_no_accel;
  thread_no_accel = !accel;
  return was;
}

uint32_t udm_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
  pthread_once(&table_once, init_once);
  return ~sw_update(~crc, data, len);
}

bool udm_crc32c_hw_usable(void)
{
  pthread_once(&table_once, init_once);
  return hw_usable;
}

uint32_t udm_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
  pthread_once(&table_once, init_once);
#if defined(HAVE_HW_CRC)
  if (hw_usable)
    return ~hw_update(~crc, data, len);
#else
  (void)crc, (void)data, (void)len;
#endif
  abort(); /* a caller that did not ask udm_crc32c_hw_usable() */
}

const char *udm_crc32c_impl(bool accel)
{
  pthread_once(&table_once, init_once);
#if defined(HAVE_HW_CRC)
  if (accel && hw_usable)
#if defined(__x86_64__)
    return "sse4.2";
#else
    return "armv8-crc";
#endif
#else
  (void)accel;
#endif
  return "software";
}
