/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening TrueCrypt and VeraCrypt volumes: find the header (normal, hidden,
 * backup or system-encryption position), derive the header key from the
 * passphrase and keyfiles with every PBKDF2 hash the format allows, decrypt
 * the header with every XTS cipher cascade, check the magic and the CRC32s,
 * and describe the crypt devices that map the volume: one per cipher of the
 * cascade, stacked as tcplay and cryptsetup stack them.  The volume is only
 * read.  Functions return 0 or a negative errno; *errmsg (if not NULL) gets
 * a malloc'd message for the user.
 */
#ifndef UDM_VOLUMES_TCRYPT_H
#define UDM_VOLUMES_TCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UDM_TCRYPT_MAX_LEVELS 3

struct udm_tcrypt_params {
  bool veracrypt;               /* also try VeraCrypt's KDFs and "VERA" magic */
  bool hidden;                  /* the hidden volume's header (64 KiB; backup end - 64 KiB) */
  bool system;                  /* system encryption: header in sector 62 of a drive */
  unsigned pim;                 /* VeraCrypt PIM, 0 = default iterations */
  const char *const *keyfiles;  /* TrueCrypt keyfiles (files, or directories of files) */
  size_t nkeyfiles;
};

struct udm_tcrypt_volume;

int udm_tcrypt_open(const char *path, const char *passphrase, size_t len,
                    const struct udm_tcrypt_params *params,
                    struct udm_tcrypt_volume **out, char **errmsg);

/* A notice for the user (e.g. the backup header was used), or NULL. */
const char *udm_tcrypt_warning(const struct udm_tcrypt_volume *vol);
/* "TRUE" or "VERA" volume. */
bool udm_tcrypt_is_veracrypt(const struct udm_tcrypt_volume *vol);
/* VeraCrypt's name of the cascade ("AES-Twofish-Serpent") and of the hash. */
const char *udm_tcrypt_cipher_name(const struct udm_tcrypt_volume *vol);
const char *udm_tcrypt_hash_name(const struct udm_tcrypt_volume *vol);
/* Number of stacked crypt devices (ciphers in the cascade), 1 to 3. */
unsigned udm_tcrypt_levels(const struct udm_tcrypt_volume *vol);
/* Size of the mapped volume, in 512-byte sectors. */
uint64_t udm_tcrypt_sectors(const struct udm_tcrypt_volume *vol);

/*
 * The one-line table of level LEVEL: 0 is the top device (the cipher that
 * encrypts first, the outermost), levels - 1 the one on the volume itself.
 * LOWER names the device below for levels above the bottom (e.g.
 * "udm:NAME_1"); it is ignored for the bottom level, which maps PATH.
 * flags: UDM_TABLE_SHOWKEYS puts the key in, otherwise zeros.  Free the
 * result with udm_wipe_free_str (secure.h, which wipes it).
 */
int udm_tcrypt_table(const struct udm_tcrypt_volume *vol, unsigned level, const char *lower,
                     unsigned flags, char **table);

void udm_tcrypt_free(struct udm_tcrypt_volume *vol);

/*
 * What udm_tcrypt_open checks once a key has decrypted a header, for tests
 * and fuzzing: DECRYPTED is the header's 448 bytes after the salt (magic
 * first), DEV_BYTES the size of the device, TC5_HIDDEN whether it was found
 * at TrueCrypt 5's hidden-volume position (the end - 1536 bytes).  Checks
 * the magic, both CRC32s and every field, and gives the mapped area in
 * bytes.  -EPERM when the magic or a CRC is wrong (a wrong key, in
 * udm_tcrypt_open), another -errno with *errmsg for a field udm refuses.
 */
int udm_tcrypt_check_header(const uint8_t *decrypted, const struct udm_tcrypt_params *prm,
                            uint64_t dev_bytes, bool tc5_hidden, uint64_t *offset,
                            uint64_t *bytes, char **errmsg);

#endif
