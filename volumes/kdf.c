/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include <gcrypt.h>

#include "kdf.h"

int vol_argon2(int subalgo, const void *pass, size_t plen, const uint8_t *salt, size_t slen,
               unsigned long t, unsigned long m, unsigned long p, void *out, size_t olen)
{
  unsigned long param[4] = {olen, t, m, p};
  gcry_kdf_hd_t hd;
  if (gcry_kdf_open(&hd, GCRY_KDF_ARGON2, subalgo, param, 4, pass, plen, salt, slen, NULL, 0,
                    NULL, 0))
    return -EINVAL;
  int r = gcry_kdf_compute(hd, NULL) || gcry_kdf_final(hd, olen, out) ? -EINVAL : 0;
  gcry_kdf_close(hd);
  return r;
}
