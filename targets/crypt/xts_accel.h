/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * AES-XTS over runs of data units, for the one format that dominates
 * dm-crypt use: aes-xts-plain64 (and -plain) with 256- or 512-bit keys.
 *
 * Why it exists: dm-crypt makes every crypt sector (512 bytes by default)
 * its own XTS data unit with its own tweak.  libgcrypt 1.10 has no call
 * for many data units, and one call per sector costs about a third of the
 * cipher's bulk speed (docs/benchmarks.md, crypt).  This module does whole
 * runs of sectors in one pass with the x86-64 VAES and AVX-512 instructions:
 * the sector tweaks 16 at a time, then each sector's 32 blocks as 8
 * independent 4-block chains.  Every other cipher, mode and CPU stays on
 * libgcrypt; so does everything but the data path (key derivation, LUKS,
 * TrueCrypt).
 *
 * AES-NI and VAES run in constant time.  The expanded keys live in the
 * caller's locked key memory; stack copies are wiped before returning.
 */
#ifndef UDM_CRYPT_XTS_ACCEL_H
#define UDM_CRYPT_XTS_ACCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xts_accel;

/* Bytes (a multiple of 64) for a struct xts_accel, to be 64-byte aligned. */
size_t udm_xts_accel_size(void);

/*
 * True when this build and this CPU can do AES-XTS with a key of key_bytes
 * (32: AES-128, 64: AES-256).  Whether crypt uses it is the context's
 * crypt-accel setting (UDM_CRYPT_ACCEL=0 by default turns it off).
 */
bool udm_xts_accel_usable(unsigned key_bytes);

/* Expand the two halves of an XTS key (key_bytes as accepted above). */
void udm_xts_accel_setkey(struct xts_accel *x, const uint8_t *key, unsigned key_bytes);

/*
 * Encrypt (out from in) or decrypt units data units of unit_bytes each (a
 * multiple of 512), in place or not.  Unit i's tweak is the 128-bit
 * little-endian number first_iv + i, which wraps at 2^64 with the upper
 * half zero, as plain64 does; callers split runs where a narrower IV wraps.
 */
void udm_xts_accel_run(const struct xts_accel *x, uint8_t *out, const uint8_t *in, uint64_t units,
                   size_t unit_bytes, uint64_t first_iv, bool encrypt);

#endif
