/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one place where volumes/ turns a volume into crypt table text.  Every
 * field a volume header supplies reaches a table only through
 * vol_crypt_table(), which checks each field against a strict grammar first:
 * a header can then never add a segment, an option or another device to
 * the table by hiding blanks, newlines or control characters in a string.
 */
#ifndef UDM_VOLUMES_TABLE_H
#define UDM_VOLUMES_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VOL_CIPHER_MAX 128 /* bytes of a cipher specification */
#define VOL_KEY_MAX 512    /* bytes of a volume or keyslot key */

/*
 * Is SPEC a cipher specification of the form dm-crypt takes, spelled only
 * with what such a specification needs?
 *   cipher[:keycount]-chainmode-ivmode[:ivopts]: words of [a-z0-9_] joined
 *     by '-' and ':' (the first word a cipher name, none empty);
 *   capi:chainmode(cipher)-ivmode[:ivopts]: the same words, plus one pair of
 *     parentheses (nested pairs and ',' for crypto API templates).
 * At most VOL_CIPHER_MAX bytes.  Whether the crypt target supports the
 * cipher is a separate question (it answers when the table is loaded).
 */
bool vol_cipher_spec_ok(const char *spec);

/* One crypt segment: 0 <length> crypt <cipher> <key> <iv_offset> <device> <offset>. */
struct vol_crypt_line {
  uint64_t length;          /* sectors, > 0 */
  const char *cipher;       /* must pass vol_cipher_spec_ok */
  const uint8_t *key;       /* key_len bytes; key_len 0 writes "-" (cipher_null) */
  size_t key_len;           /* at most VOL_KEY_MAX */
  bool show_key;            /* false: zeros of the same length, as dmsetup table */
  uint64_t iv_offset;
  const char *device;       /* a path or udm:NAME; no control characters */
  uint64_t offset;          /* sectors */
  unsigned sector_size;     /* 512 (no option), 1024, 2048 or 4096 */
};

/*
 * The table line for L, malloc'd into *table (free it with
 * udm_wipe_free_str: it may hold the key).  -EINVAL with *errmsg (if not
 * NULL and not yet set) naming the field when one breaks the rules above.
 */
int vol_crypt_table(const struct vol_crypt_line *l, char **table, char **errmsg);

#endif
