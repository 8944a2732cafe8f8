/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SHA-256 (FIPS 180-4), so the static VM executor needs no crypto library. */
#ifndef UDM_TESTS_KERNEL_SHA256_H
#define UDM_TESTS_KERNEL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
  uint32_t h[8];
  uint64_t total;     /* bytes hashed so far */
  uint8_t block[64];
  size_t used;        /* bytes waiting in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* Lower-case hex of the digest of DATA into hex[65]. */
void sha256_hex(const void *data, size_t len, char hex[65]);

#endif
