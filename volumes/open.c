/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device plan of "udm open" (see open.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gcrypt.h>

#include <udm/udm.h>

#include "crypt_mem.h"
#include "luks.h"
#include "open.h"
#include "msg.h"
#include "secure.h"
#include "table.h"

/* cryptsetup's defaults for plain mode. */
#define PLAIN_CIPHER "aes-cbc-essiv:sha256"
#define PLAIN_KEY_BITS 256
#define PLAIN_HASH "ripemd160"
#define PLAIN_MAX_KEY 512 /* bytes */

bool udm_open_type_valid(const char *type)
{
  static const char *const types[] = {"luks", "luks1", "luks2", "tcrypt", "veracrypt", "plain"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (!strcmp(type, types[i]))
      return true;
  return false;
}

static int add_device(struct udm_open_plan *plan, const char *name, const char *uuid,
                      char *table)
{
  struct udm_open_device *d = &plan->dev[plan->count];
  d->name = strdup(name);
  d->uuid = strdup(uuid);
  d->table = table;
  plan->count++;
  if (!d->name || !d->uuid)
    return -ENOMEM;
  if (strlen(uuid) > UDM_UUID_MAX)
    return -ENAMETOOLONG;
  return 0;
}

/* ---- LUKS ---- */

static int plan_luks(const struct udm_open_request *req, struct udm_open_plan *plan,
                     char **errmsg)
{
  int want = !strcmp(req->type, "luks1") ? 1 : !strcmp(req->type, "luks2") ? 2 : 0;
  int fd = open(req->source, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vol_fail(errmsg, -errno, "%s: %s", req->source, strerror(errno));
  uint8_t magic[8] = {0};
  ssize_t got = pread(fd, magic, sizeof magic, 0);
  close(fd);
  /* A damaged LUKS2 primary header is left to the backup search of luks.c. */
  if (want && got == (ssize_t)sizeof magic && !memcmp(magic, "LUKS\xba\xbe", 6) &&
      (magic[6] << 8 | magic[7]) != want)
    return vol_fail(errmsg, -EINVAL, "%s is not a LUKS%d device (it is LUKS%d).", req->source,
                want, magic[6] << 8 | magic[7]);

  struct udm_luks_volume *vol;
  int r = udm_luks_open(req->source, req->secret, req->secret_len, &vol, errmsg);
  if (r < 0)
    return r;
  char *table = NULL, *uuid = NULL;
  int version = udm_luks_version(vol);
  if (want && version != want) {
    r = vol_fail(errmsg, -EINVAL, "%s is not a LUKS%d device (it is LUKS%d).", req->source, want,
             version);
    goto out;
  }
  if (udm_luks_warning(vol) && !(plan->warning = strdup(udm_luks_warning(vol)))) {
    r = -ENOMEM;
    goto out;
  }
  char hex[41];
  size_t n = 0;
  for (const char *p = udm_luks_uuid(vol); *p && n < sizeof hex - 1; p++)
    if (*p != '-')
      hex[n++] = *p;
  hex[n] = '\0';
  uuid = vol_format("CRYPT-LUKS%d-%s-%s", version, hex, req->name);
  plan->description = vol_format("LUKS%d", version);
  r = udm_luks_table(vol, UDM_TABLE_SHOWKEYS, &table);
  if (r == 0 && (!uuid || !plan->description))
    r = -ENOMEM;
  if (r == 0) {
    r = add_device(plan, req->name, uuid, table);
    table = NULL;
  }
out:
  udm_wipe_free_str(table);
  free(uuid);
  udm_luks_free(vol);
  return r;
}

/* ---- TrueCrypt / VeraCrypt ---- */

static int plan_tcrypt(const struct udm_open_request *req, struct udm_open_plan *plan,
                       char **errmsg)
{
  struct udm_tcrypt_params prm = req->tcrypt;
  prm.veracrypt = !strcmp(req->type, "veracrypt");
  struct udm_tcrypt_volume *vol;
  int r = udm_tcrypt_open(req->source, req->secret, req->secret_len, &prm, &vol, errmsg);
  if (r < 0)
    return r;
  const char *type = udm_tcrypt_is_veracrypt(vol) ? "VERACRYPT" : "TCRYPT";
  if (udm_tcrypt_warning(vol) && !(plan->warning = strdup(udm_tcrypt_warning(vol))))
    r = -ENOMEM;
  plan->description = vol_format("%s %s, %s", udm_tcrypt_is_veracrypt(vol) ? "VeraCrypt" : "TrueCrypt",
                           udm_tcrypt_cipher_name(vol), udm_tcrypt_hash_name(vol));
  if (!plan->description)
    r = -ENOMEM;
  unsigned levels = udm_tcrypt_levels(vol);
  const char *prefix = req->device_prefix ? req->device_prefix : "udm:";
  /* Bottom first: level levels-1 is NAME_<levels-1>, level 0 is NAME. */
  for (unsigned l = levels; r == 0 && l-- > 0;) {
    char *name = l ? vol_format("%s_%u", req->name, l) : strdup(req->name);
    char *lower = l + 1 < levels ? vol_format("%s%s_%u", prefix, req->name, l + 1) : NULL;
    char *uuid = l ? vol_format("CRYPT-SUBDEV-%s-%s", type, name ? name : "")
                   : vol_format("CRYPT-%s-%s", type, req->name);
    char *table = NULL;
    if (!name || !uuid || (l + 1 < levels && !lower))
      r = -ENOMEM;
    if (r == 0)
      r = udm_tcrypt_table(vol, l, lower, UDM_TABLE_SHOWKEYS, &table);
    if (r == 0 && strlen(name) > UDM_NAME_MAX)
      r = vol_fail(errmsg, -ENAMETOOLONG, "the name %s is too long", name);
    if (r == 0)
      r = add_device(plan, name, uuid, table);
    else
      udm_wipe_free_str(table);
    free(name);
    free(lower);
    free(uuid);
  }
  udm_tcrypt_free(vol);
  return r;
}

/* ---- plain ---- */

/* cryptsetup's plain hashing: round i hashes i 'A's then the passphrase. */
static int plain_hash(int md, const char *pass, size_t plen, uint8_t *key, size_t klen)
{
  gcry_md_hd_t h;
  if (gcry_md_open(&h, md, GCRY_MD_FLAG_SECURE))
    return -EINVAL;
  size_t dlen = gcry_md_get_algo_dlen(md);
  for (size_t round = 0, done = 0; done < klen; round++) {
    gcry_md_reset(h);
    for (size_t i = 0; i < round; i++)
      gcry_md_write(h, "A", 1);
    gcry_md_write(h, pass, plen);
    size_t n = klen - done < dlen ? klen - done : dlen;
    memcpy(key + done, gcry_md_read(h, md), n);
    done += n;
  }
  gcry_md_close(h);
  return 0;
}

static int plan_plain(const struct udm_open_request *req, struct udm_open_plan *plan,
                      char **errmsg)
{
  const char *cipher = req->cipher ? req->cipher : PLAIN_CIPHER;
  unsigned bits = req->key_bits ? req->key_bits : PLAIN_KEY_BITS;
  const char *hash = req->hash ? req->hash : PLAIN_HASH;
  if (bits % 8 || bits / 8 > PLAIN_MAX_KEY)
    return vol_fail(errmsg, -EINVAL, "invalid key size %u bits", bits);
  if (!vol_cipher_spec_ok(cipher))
    return vol_fail(errmsg, -EINVAL, "invalid cipher specification '%s'", cipher);
  size_t klen = bits / 8;
  int fd = open(req->source, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vol_fail(errmsg, -errno, "%s: %s", req->source, strerror(errno));
  off_t end = lseek(fd, 0, SEEK_END);
  close(fd);
  if (end < 0)
    return vol_fail(errmsg, -EINVAL, "%s: cannot get the size", req->source);
  uint64_t dev = (uint64_t)end / 512;
  if (req->offset >= dev)
    return vol_fail(errmsg, -EINVAL, "%s: the offset (%llu sectors) is beyond the device "
                                 "(%llu sectors)", req->source,
                (unsigned long long)req->offset, (unsigned long long)dev);
  uint64_t size = req->size ? req->size : dev - req->offset;
  if (size > dev - req->offset)
    return vol_fail(errmsg, -EINVAL, "%s: the size runs past the end of the device", req->source);

  uint8_t *key = udm_secure_alloc(klen);
  if (!key)
    return -ENOMEM;
  int r = 0;
  if (req->secret_is_keyfile) {
    /* A key file is used directly; --hash does not apply (as cryptsetup). */
    if (req->secret_len < klen)
      r = vol_fail(errmsg, -EINVAL, "the key file holds %zu bytes; the key needs %zu",
               req->secret_len, klen);
    else
      memcpy(key, req->secret, klen);
  } else if (!strcmp(hash, "plain")) {
    memcpy(key, req->secret, req->secret_len < klen ? req->secret_len : klen);
  } else {
    int md = gcry_md_map_name(hash);
    if (!md || plain_hash(md, req->secret, req->secret_len, key, klen) < 0)
      r = vol_fail(errmsg, -EINVAL, "unknown hash '%s'", hash);
  }
  char *table = NULL, *uuid = vol_format("CRYPT-PLAIN-%s", req->name);
  if (r == 0 && !uuid)
    r = -ENOMEM;
  if (r == 0) {
    struct vol_crypt_line line = {.length = size, .cipher = cipher, .key = key,
                                  .key_len = klen, .show_key = true, .iv_offset = req->skip,
                                  .device = req->source, .offset = req->offset,
                                  .sector_size = 512};
    r = vol_crypt_table(&line, &table, errmsg);
  }
  if (r == 0) {
    plan->description = strdup("plain");
    r = add_device(plan, req->name, uuid, table);
    table = NULL;
  }
  udm_wipe_free_str(table);
  free(uuid);
  udm_secure_free(key);
  return r;
}

static bool has_control(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

int udm_open_plan(const struct udm_open_request *req, struct udm_open_plan **out,
                  char **errmsg)
{
  if (errmsg)
    *errmsg = NULL;
  if (!crypt_gcrypt_init())
    return vol_fail(errmsg, -ENOTSUP, "libgcrypt cannot be initialised");
  if (!udm_open_type_valid(req->type))
    return vol_fail(errmsg, -EINVAL, "unknown volume type '%s' (luks, luks1, luks2, tcrypt, "
                                 "veracrypt, plain)", req->type);
  if (!*req->name || strlen(req->name) > UDM_NAME_MAX || has_control(req->name))
    return vol_fail(errmsg, -EINVAL, "invalid device name (empty, too long or holding "
                    "control characters)");
  /* the name and the path go into tables, one line per segment */
  if (has_control(req->source))
    return vol_fail(errmsg, -EINVAL, "the volume path holds control characters");
  struct udm_open_plan *plan = calloc(1, sizeof *plan);
  if (!plan)
    return -ENOMEM;
  int r;
  if (!strncmp(req->type, "luks", 4))
    r = plan_luks(req, plan, errmsg);
  else if (!strcmp(req->type, "plain"))
    r = plan_plain(req, plan, errmsg);
  else
    r = plan_tcrypt(req, plan, errmsg);
  if (r < 0) {
    if (r == -ENOMEM)
      vol_fail(errmsg, r, "out of memory");
    udm_open_plan_free(plan);
    return r;
  }
  *out = plan;
  return 0;
}

void udm_open_plan_free(struct udm_open_plan *plan)
{
  if (!plan)
    return;
  for (size_t i = 0; i < plan->count; i++) {
    if (plan->dev[i].table) {
      udm_wipe(plan->dev[i].table, strlen(plan->dev[i].table));
      free(plan->dev[i].table);
    }
    free(plan->dev[i].name);
    free(plan->dev[i].uuid);
  }
  free(plan->warning);
  free(plan->description);
  free(plan);
}
