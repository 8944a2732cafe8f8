/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Password-based key derivation through libgcrypt, for the volume formats. */
#ifndef UDM_VOLUMES_KDF_H
#define UDM_VOLUMES_KDF_H

#include <stddef.h>
#include <stdint.h>

/*
 * Argon2 (subalgo GCRY_KDF_ARGON2I or GCRY_KDF_ARGON2ID), version 0x13,
 * without secret or associated data: T passes over M KiB with P lanes,
 * OLEN bytes into OUT.  0, or -EINVAL when libgcrypt refuses.
 */
int vol_argon2(int subalgo, const void *pass, size_t plen, const uint8_t *salt, size_t slen,
               unsigned long t, unsigned long m, unsigned long p, void *out, size_t olen);

#endif
