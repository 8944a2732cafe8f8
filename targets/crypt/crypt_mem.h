/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Where libgcrypt keeps keys.  A cipher handle holds the key schedule, whose
 * first round keys are the key itself, so handles must stay out of core
 * dumps as the key does.  crypt_gcrypt_init() initialises libgcrypt, unless
 * the program did already, with an allocation handler that serves
 * libgcrypt's "secure" allocations (GCRY_CIPHER_SECURE handles,
 * GCRY_MD_FLAG_SECURE hashes, its random pool) from one reserved region:
 * excluded from core dumps (udm_platform_no_core), locked where
 * RLIMIT_MEMLOCK allows, wiped when freed.  Other allocations stay malloc's.
 */
#ifndef UDM_CRYPT_MEM_H
#define UDM_CRYPT_MEM_H

#include <stdbool.h>

/* Once per process; false when libgcrypt is unusable (too old). */
bool crypt_gcrypt_init(void);
/* Whether secure allocations go to udm's region (udm initialised libgcrypt). */
bool crypt_gcrypt_secure_region(void);

#endif
