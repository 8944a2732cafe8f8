/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Arithmetic for dm-crypt's legacy IV and chaining modes (see crypt_iv.c). */
#ifndef UDM_CRYPT_IV_H
#define UDM_CRYPT_IV_H

#include <stddef.h>
#include <stdint.h>

/* MD5 without padding: the raw state after whole 64-byte blocks (LMK). */
void udm_md5_init(uint32_t h[4]);
void udm_md5_block(uint32_t h[4], const uint8_t block[64]);
void udm_md5_state_bytes(const uint32_t h[4], uint8_t out[16]);

/* Reflected CRC32 (0xedb88320) with the caller's seed and no final xor. */
uint32_t udm_crc32_le_raw(uint32_t crc, const uint8_t *p, size_t len);

struct udm_gf128 {
  uint64_t hi, lo;
};
void udm_gf128_load(struct udm_gf128 *v, const uint8_t b[16]);
void udm_gf128_store(const struct udm_gf128 *v, uint8_t b[16]);
void udm_gf128_mul(struct udm_gf128 *r, const struct udm_gf128 *a,
                   const struct udm_gf128 *b);

#endif
