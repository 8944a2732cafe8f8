/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening LUKS1 and LUKS2 volumes: read the header (LUKS2: checksum checked,
 * the backup header used when the primary is damaged or stale), check every
 * field against cryptsetup's rules and udm's bounds before any key
 * derivation (docs/crypt.md lists them), unlock a keyslot with
 * a passphrase (PBKDF2, Argon2i, Argon2id; AF-split key material), check the
 * volume key against the header's digest, and produce the dm-crypt table
 * cryptsetup would load for "cryptsetup open".  The volume is only read.
 *
 * Functions return 0 or a negative errno; on failure *errmsg (if not NULL)
 * receives a malloc'd message for the user, e.g. "No key available with this
 * passphrase."
 */
#ifndef UDM_VOLUMES_LUKS_H
#define UDM_VOLUMES_LUKS_H

#include <stddef.h>
#include <stdint.h>

struct udm_luks_volume;

int udm_luks_open(const char *path, const char *passphrase, size_t len,
                  struct udm_luks_volume **out, char **errmsg);

/* 1 or 2. */
int udm_luks_version(const struct udm_luks_volume *vol);
/* A notice for the user (e.g. the backup header was used), or NULL. */
const char *udm_luks_warning(const struct udm_luks_volume *vol);
/* The volume's UUID as written in its header (may be empty). */
const char *udm_luks_uuid(const struct udm_luks_volume *vol);
/* The volume key (in locked memory, valid until udm_luks_free). */
const uint8_t *udm_luks_volume_key(const struct udm_luks_volume *vol, size_t *len);

/*
 * The table for the opened volume, one line per segment, in dmsetup syntax.
 * flags: UDM_TABLE_SHOWKEYS (from <udm/udm.h>) puts the key in; otherwise
 * it is zeros (as "dmsetup table" shows it).  *table is malloc'd; when it
 * holds the key, free it with udm_wipe_free_str (secure.h, which wipes it).
 */
int udm_luks_table(const struct udm_luks_volume *vol, unsigned flags, char **table);

/* Wipe the key and free everything. */
void udm_luks_free(struct udm_luks_volume *vol);

#endif
