/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory for keys and passphrases: locked when RLIMIT_MEMLOCK allows (best
 * effort, as cryptsetup without privilege), excluded from core dumps, wiped
 * when freed.
 */
#ifndef UDM_VOLUMES_SECURE_H
#define UDM_VOLUMES_SECURE_H

#include <stddef.h>

void *udm_secure_alloc(size_t len); /* zeroed; NULL on failure */
void udm_secure_free(void *p);      /* wipes; NULL is fine */
void udm_wipe(void *p, size_t n);   /* not optimised away */
/* Wipe and free a string that holds key material (a crypt table); NULL is fine. */
void udm_wipe_free_str(char *s);

#endif
