/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 and LUKS2 volumes (see luks.h).  Written from the published on-disk
 * format descriptions.  The keyslot areas are decrypted through udm's own
 * crypt target (an in-process read-only device), so a keyslot cipher spec
 * means exactly what it means to dm-crypt.  A header is untrusted input:
 * every field is checked (LUKS1: luks1_check; LUKS2: luks2_validate, then
 * luks2_check_slot and luks2_check_digest) before a KDF runs, and tables are
 * made only by vol_crypt_table (table.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gcrypt.h>

#include <udm/udm.h>

#include "crypt_mem.h"
#include "json.h"
#include "kdf.h"
#include "luks.h"
#include "msg.h"
#include "secure.h"
#include "table.h"

#define LUKS_MAGIC_PRIMARY "LUKS\xba\xbe"
#define LUKS_MAGIC_BACKUP "SKUL\xba\xbe"
#define LUKS_MAGIC_LEN 6
#define LUKS1_HDR_SIZE 592
#define LUKS1_SLOTS 8
#define LUKS1_SLOT_ACTIVE 0x00AC71F3u
#define LUKS2_BIN_SIZE 4096
#define LUKS2_CSUM_OFFSET 448
#define LUKS2_OBJECTS_MAX 32

struct udm_luks_volume {
  int version;
  char *path;
  char *cipher;            /* dm-crypt cipher spec */
  uint64_t offset;         /* data offset, sectors */
  uint64_t length;         /* data length, sectors */
  uint64_t iv_offset;
  unsigned sector_size;
  char *warning;
  char uuid[41];           /* as in the header, NUL-terminated */
  uint8_t *key;            /* locked */
  size_t key_len;
};

/* ---- small helpers ---- */

static uint16_t be16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* A NUL-terminated copy of a fixed-size header text field. */
static void field(char *dst, const uint8_t *src, size_t n)
{
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int b64_value(char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/* Decode base64 (padding optional); returns the byte count or -EINVAL. */
static long b64_decode(const char *s, uint8_t *out, size_t cap)
{
  size_t n = 0;
  unsigned acc = 0, bits = 0;
  for (; *s && *s != '='; s++) {
    int v = b64_value(*s);
    if (v < 0)
      return -EINVAL;
    acc = acc << 6 | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == cap)
        return -EINVAL;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return (long)n;
}

static int hash_by_name(const char *name)
{
  if (!strcmp(name, "stribog512") || !strcmp(name, "streebog512"))
    return GCRY_MD_STRIBOG512;
  if (!strcmp(name, "stribog256") || !strcmp(name, "streebog256"))
    return GCRY_MD_STRIBOG256;
  return gcry_md_map_name(name);
}

static int pbkdf2(int hash, const void *pass, size_t plen, const uint8_t *salt,
                  size_t slen, unsigned long iter, void *out, size_t olen)
{
  if (!iter)
    return -EINVAL;
  return gcry_kdf_derive(pass, plen, GCRY_KDF_PBKDF2, hash, salt, slen, iter, olen, out)
             ? -EINVAL
             : 0;
}

/* ---- anti-forensic splitter: merge ---- */

static int af_diffuse(int hash, uint8_t *buf, size_t len)
{
  size_t dlen = gcry_md_get_algo_dlen(hash);
  uint8_t digest[64];
  gcry_md_hd_t md;
  if (!dlen || dlen > sizeof digest || gcry_md_open(&md, hash, 0))
    return -EINVAL;
  for (size_t i = 0, off = 0; off < len; i++, off += dlen) {
    size_t n = len - off < dlen ? len - off : dlen;
    uint8_t iv[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    gcry_md_reset(md);
    gcry_md_write(md, iv, 4);
    gcry_md_write(md, buf + off, n);
    memcpy(buf + off, gcry_md_read(md, hash), n);
  }
  gcry_md_close(md);
  udm_wipe(digest, sizeof digest);
  return 0;
}

/* key = d_{n-1} ^ s_{n-1}, d_0 = 0, d_{i+1} = diffuse(d_i ^ s_i). */
static int af_merge(int hash, const uint8_t *material, size_t key_len, unsigned stripes,
                    uint8_t *key)
{
  memset(key, 0, key_len);
  for (unsigned i = 0; i + 1 < stripes; i++) {
    for (size_t b = 0; b < key_len; b++)
      key[b] ^= material[(size_t)i * key_len + b];
    int r = af_diffuse(hash, key, key_len);
    if (r < 0)
      return r;
  }
  for (size_t b = 0; b < key_len; b++)
    key[b] ^= material[(size_t)(stripes - 1) * key_len + b];
  return 0;
}

/* ---- header text ---- */

/* S with anything but printable ASCII shown as '?', for messages (one line). */
static const char *shown(const char *s, char *buf, size_t cap)
{
  size_t n = 0;
  for (; *s && n + 1 < cap; s++)
    buf[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  buf[n] = '\0';
  return buf;
}

/* [a-z0-9_]+, as kernel crypto and libgcrypt names are spelled; NULL (absent) is not. */
static bool name_ok(const char *s, size_t max)
{
  size_t n = 0;
  if (!s)
    return false;
  for (; s[n]; n++)
    if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
          s[n] == '-'))
      return false;
  return n > 0 && n <= max;
}

/* A UUID as LUKS writes it: hex digits and dashes (or nothing at all). */
static bool uuid_ok(const char *s)
{
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F') ||
          *s == '-'))
      return false;
  return true;
}

/* ---- key derivation limits (cryptsetup's, checked before a KDF runs) ---- */

#define ARGON2_MIN_MEMORY 32        /* KiB */
#define ARGON2_MAX_MEMORY 4194304   /* KiB: 4 GiB */
#define ARGON2_MAX_THREADS 4
#define LUKS_STRIPES 4000

static int check_pbkdf2_iter(const char *path, const char *what, uint64_t iter, char **errmsg)
{
  if (!iter || iter > UINT32_MAX)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid pbkdf2 iteration count %llu (1 to %u)",
                    path, what, (unsigned long long)iter, UINT32_MAX);
  return 0;
}

static int check_argon2(const char *path, const char *what, uint64_t t, uint64_t m, uint64_t p,
                        char **errmsg)
{
  if (!t || t > UINT32_MAX)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid argon2 time cost %llu (1 to %u)", path,
                    what, (unsigned long long)t, UINT32_MAX);
  if (!p || p > ARGON2_MAX_THREADS)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid argon2 parallel cost %llu (1 to %d)",
                    path, what, (unsigned long long)p, ARGON2_MAX_THREADS);
  if (m < ARGON2_MIN_MEMORY || m > ARGON2_MAX_MEMORY)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid argon2 memory cost %llu KiB (%d to %d)",
                    path, what, (unsigned long long)m, ARGON2_MIN_MEMORY, ARGON2_MAX_MEMORY);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0 && m * 1024 > (uint64_t)pages * (uint64_t)page)
    return vol_fail(errmsg, -ENOMEM, "%s: %s: argon2 needs %llu KiB of memory; this machine "
                    "has %llu KiB", path, what, (unsigned long long)m,
                    (unsigned long long)pages * (unsigned long long)page / 1024);
  return 0;
}

/* ---- keyslot areas, decrypted through udm's crypt target ---- */

/* A one-segment crypt device over PATH, in a private context. */
static int crypt_device(const struct vol_crypt_line *line, struct udm_ctx **ctx,
                        struct udm_device **dev, char **errmsg)
{
  char *table = NULL;
  int r = vol_crypt_table(line, &table, errmsg);
  if (r < 0)
    return r;
  *dev = NULL;
  *ctx = udm_ctx_new();
  if (*ctx)
    *dev = udm_device_create(*ctx, "luks-keyslot", NULL, UDM_DEVICE_READONLY);
  if (!*dev)
    r = -ENOMEM;
  else if (udm_table_load(*dev, table) < 0 || udm_device_resume(*dev) < 0)
    r = -(udm_errno() ? udm_errno() : EINVAL);
  udm_wipe_free_str(table);
  return r;
}

static void crypt_device_free(struct udm_ctx *ctx, struct udm_device *dev)
{
  if (dev)
    udm_device_unref(dev);
  udm_ctx_free(ctx);
}

/*
 * Does udm's crypt target take SPEC with a key of KEY_LEN bytes (and
 * SECTOR_SIZE)?  Asked before any KDF runs, so that an unsupported or
 * bogus cipher is named as such instead of failing like a wrong passphrase.
 */
static int check_cipher(const char *path, const char *what, const char *spec, size_t key_len,
                        unsigned sector_size, char **errmsg)
{
  char buf[VOL_CIPHER_MAX + 1];
  if (!vol_cipher_spec_ok(spec))
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid cipher specification '%s'", path, what,
                    shown(spec, buf, sizeof buf));
  uint8_t key[VOL_KEY_MAX];
  uint32_t x = 0x9e3779b9u; /* any key that is no weak DES key and no XTS key1 == key2 */
  for (size_t i = 0; i < key_len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    key[i] = (uint8_t)x;
  }
  struct vol_crypt_line line = {.length = sector_size / 512, .cipher = spec, .key = key,
                                .key_len = key_len, .show_key = true, .device = path,
                                .sector_size = sector_size};
  struct udm_ctx *ctx;
  struct udm_device *dev;
  char *err = NULL;
  int r = crypt_device(&line, &ctx, &dev, &err);
  if (r < 0 && r != -ENOMEM) {
    /* the target's own words, without "load DEV: line 1: crypt: " */
    const char *why = err ? err : udm_errmsg(), *t = strstr(why, "crypt: ");
    r = vol_fail(errmsg, r == -EOPNOTSUPP ? r : -EINVAL,
                 "%s: %s: cipher '%s' with a %zu-bit key is not supported: %s", path, what,
                 spec, key_len * 8, t ? t + 7 : why);
  }
  free(err);
  crypt_device_free(ctx, dev);
  return r;
}

static int decrypt_area(const char *path, const char *spec, const uint8_t *key,
                        size_t key_len, uint64_t offset, size_t len, uint8_t *out,
                        char **errmsg)
{
  size_t sectors = (len + 511) / 512;
  struct vol_crypt_line line = {.length = sectors, .cipher = spec, .key = key,
                                .key_len = key_len, .show_key = true, .device = path,
                                .offset = offset / 512, .sector_size = 512};
  uint8_t *buf = udm_secure_alloc(sectors * 512);
  struct udm_ctx *ctx = NULL;
  struct udm_device *dev = NULL;
  int r = buf ? crypt_device(&line, &ctx, &dev, errmsg) : -ENOMEM;
  if (r == 0 && udm_device_pread(dev, buf, sectors * 512, 0) < 0)
    r = -(udm_errno() ? udm_errno() : EIO);
  if (r < 0 && r != -ENOMEM)
    r = vol_fail(errmsg, r, "cannot read keyslot area: %s", udm_errmsg());
  if (r == 0)
    memcpy(out, buf, len);
  crypt_device_free(ctx, dev);
  udm_secure_free(buf);
  return r;
}

/* Sectors of key material for KEY_BYTES and LUKS_STRIPES (AF_split_sectors). */
static uint64_t af_sectors(uint64_t key_bytes)
{
  return (key_bytes * LUKS_STRIPES + 511) / 512;
}

/* ---- LUKS1 ---- */

struct luks1_slot {
  uint32_t active, iter, offset, stripes;
};

/*
 * cryptsetup's LUKS1 header rules (LUKS_check_keyslots, device size), and
 * the rules every field must follow before it goes near a table.
 */
static int luks1_check(const char *path, const uint8_t *hdr, uint64_t file_bytes,
                       char **errmsg)
{
  char cipher[33], mode[33], hashname[33], uuid[41], buf[40];
  field(cipher, hdr + 8, 32);
  field(mode, hdr + 40, 32);
  field(hashname, hdr + 72, 32);
  field(uuid, hdr + 168, 40);
  uint32_t payload = be32(hdr + 104), key_bytes = be32(hdr + 108), mk_iter = be32(hdr + 164);
  int hash = name_ok(hashname, 31) ? hash_by_name(hashname) : 0;
  if (!hash || gcry_md_get_algo_dlen(hash) < 20)
    return vol_fail(errmsg, -EINVAL, "%s: unsupported LUKS1 hash '%s'", path,
                    shown(hashname, buf, sizeof buf));
  if (!name_ok(cipher, 31) || strchr(cipher, '-'))
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 cipher name '%s'", path,
                    shown(cipher, buf, sizeof buf));
  char spec[66];
  snprintf(spec, sizeof spec, "%s-%s", cipher, mode);
  if (!*mode || !vol_cipher_spec_ok(spec) || !strncmp(mode, "capi", 4))
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 cipher mode '%s'", path,
                    shown(mode, buf, sizeof buf));
  if (!key_bytes || key_bytes > VOL_KEY_MAX)
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 key size %u bytes (1 to %d)", path,
                    key_bytes, VOL_KEY_MAX);
  if (!mk_iter)
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 digest iteration count 0", path);
  if (!uuid_ok(uuid))
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 UUID '%s'", path,
                    shown(uuid, buf, sizeof buf));
  if (!payload)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: the LUKS1 payload offset is 0 (a detached "
                    "header): udm does not support detached headers", path);
  uint64_t secs = af_sectors(key_bytes), last_end = 0;
  struct luks1_slot s[LUKS1_SLOTS];
  for (unsigned i = 0; i < LUKS1_SLOTS; i++) {
    const uint8_t *ks = hdr + 208 + 48 * i;
    s[i] = (struct luks1_slot){be32(ks), be32(ks + 4), be32(ks + 40), be32(ks + 44)};
    if (s[i].stripes != LUKS_STRIPES)
      return vol_fail(errmsg, -EINVAL, "%s: LUKS keyslot %u is invalid: %u stripes (LUKS1 "
                      "uses %d)", path, i, s[i].stripes, LUKS_STRIPES);
    if ((uint64_t)s[i].offset * 512 < LUKS1_HDR_SIZE)
      return vol_fail(errmsg, -EINVAL, "%s: LUKS keyslot %u is invalid: its key material "
                      "(sector %u) overlaps the header", path, i, s[i].offset);
    if (s[i].offset + secs > payload)
      return vol_fail(errmsg, -EINVAL, "%s: LUKS keyslot %u is invalid: its key material "
                      "(sectors %u to %llu) runs into the data area (sector %u)", path, i,
                      s[i].offset, (unsigned long long)(s[i].offset + secs - 1), payload);
    if (s[i].active == LUKS1_SLOT_ACTIVE && !s[i].iter)
      return vol_fail(errmsg, -EINVAL, "%s: LUKS keyslot %u is invalid: 0 iterations", path,
                      i);
    if (s[i].offset + secs > last_end)
      last_end = s[i].offset + secs;
  }
  for (unsigned i = 0; i < LUKS1_SLOTS; i++)
    for (unsigned j = 0; j < LUKS1_SLOTS; j++)
      if (i != j && s[i].offset >= s[j].offset && s[i].offset < s[j].offset + secs)
        return vol_fail(errmsg, -EINVAL, "%s: LUKS keyslot %u is invalid: its key material "
                        "overlaps keyslot %u's", path, i < j ? i : j, i < j ? j : i);
  if (last_end * 512 > file_bytes)
    return vol_fail(errmsg, -EINVAL, "%s is too small: the LUKS1 header and keyslots need "
                    "%llu bytes, the file has %llu", path,
                    (unsigned long long)last_end * 512, (unsigned long long)file_bytes);
  if ((uint64_t)payload * 512 >= file_bytes)
    return vol_fail(errmsg, -EINVAL, "%s: the data area starts at sector %u, at or beyond the "
                    "end of the file (%llu sectors): the volume is truncated", path, payload,
                    (unsigned long long)(file_bytes / 512));
  return check_cipher(path, "LUKS1", spec, key_bytes, 512, errmsg);
}

static int luks1_open(const char *path, const uint8_t *hdr, uint64_t file_bytes,
                      const char *pass, size_t plen, struct udm_luks_volume *vol,
                      char **errmsg)
{
  int r = luks1_check(path, hdr, file_bytes, errmsg);
  if (r < 0)
    return r;
  char cipher[33], mode[33], hashname[33];
  field(cipher, hdr + 8, 32);
  field(mode, hdr + 40, 32);
  field(hashname, hdr + 72, 32);
  uint32_t payload = be32(hdr + 104), key_bytes = be32(hdr + 108);
  const uint8_t *mk_digest = hdr + 112, *mk_salt = hdr + 132;
  uint32_t mk_iter = be32(hdr + 164);
  int hash = hash_by_name(hashname);
  field(vol->uuid, hdr + 168, 40);
  vol->cipher = vol_format("%s-%s", cipher, mode);
  if (!vol->cipher)
    return -ENOMEM;
  vol->version = 1;
  vol->offset = payload;
  vol->length = file_bytes / 512 - payload;
  vol->sector_size = 512;
  vol->key_len = key_bytes;
  vol->key = udm_secure_alloc(key_bytes);
  uint8_t *slot_key = udm_secure_alloc(key_bytes);
  uint8_t digest[20];
  r = -ENOMEM;
  if (!vol->key || !slot_key)
    goto out;
  r = -EPERM;
  for (unsigned s = 0; s < LUKS1_SLOTS; s++) {
    const uint8_t *ks = hdr + 208 + 48 * s;
    if (be32(ks) != LUKS1_SLOT_ACTIVE)
      continue;
    uint32_t iter = be32(ks + 4), km_off = be32(ks + 40);
    size_t mlen = (size_t)key_bytes * LUKS_STRIPES;
    uint8_t *material = udm_secure_alloc(mlen);
    if (!material) {
      r = -ENOMEM;
      goto out;
    }
    int k = pbkdf2(hash, pass, plen, ks + 8, 32, iter, slot_key, key_bytes);
    if (k == 0)
      k = decrypt_area(path, vol->cipher, slot_key, key_bytes, (uint64_t)km_off * 512,
                       mlen, material, NULL);
    if (k == 0)
      k = af_merge(hash, material, key_bytes, LUKS_STRIPES, vol->key);
    udm_secure_free(material);
    if (k == 0 && pbkdf2(hash, vol->key, key_bytes, mk_salt, 32, mk_iter, digest, 20) == 0 &&
        memcmp(digest, mk_digest, 20) == 0) {
      r = 0;
      break;
    }
  }
  if (r == -EPERM)
    vol_fail(errmsg, r, "No key available with this passphrase.");
out:
  udm_wipe(digest, sizeof digest);
  udm_secure_free(slot_key);
  return r;
}

/* ---- LUKS2 ---- */

#define LUKS2_MAX_KEYSLOTS_SIZE 0x8000000 /* 128 MiB */

struct luks2_hdr {
  uint64_t hdr_size, seqid, offset;
  char uuid[41];
  struct udm_json *json;
};

/* The header sizes LUKS2 allows, and so the offsets of the secondary header. */
static const uint64_t luks2_backups[] = {0x4000, 0x8000, 0x10000, 0x20000, 0x40000,
                                         0x80000, 0x100000, 0x200000, 0x400000};

/* A failed rule: "invalid LUKS2 metadata: ..." into *why (malloc'd). */
static int rule(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rule(char **why, const char *fmt, ...)
{
  if (!*why) {
    va_list ap;
    va_start(ap, fmt);
    *why = vol_vformat(fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* All digits, at least one (cryptsetup's "numbered"). */
static bool numbered(const char *s)
{
  if (!s || !*s)
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

/* A string member holding a decimal uint64 (how LUKS2 writes 64-bit values). */
static bool str_u64(const struct udm_json *o, const char *key, uint64_t *v)
{
  const struct udm_json *m = udm_json_get(o, key);
  return m && m->type == UDM_JSON_STRING && numbered(m->text) && udm_json_u64(o, key, v) == 0;
}

/* A JSON integer member in 0..UINT32_MAX (cryptsetup's validate_json_uint32). */
static bool int_u32(const struct udm_json *o, const char *key, uint64_t *v)
{
  const struct udm_json *m = udm_json_get(o, key);
  uint64_t x;
  if (!m || m->type != UDM_JSON_NUMBER || !numbered(m->text) || udm_json_u64(o, key, &x) < 0 ||
      x > UINT32_MAX)
    return false;
  if (v)
    *v = x;
  return true;
}

static const struct udm_json *member(const struct udm_json *o, const char *key,
                                     enum udm_json_type type)
{
  const struct udm_json *m = udm_json_get(o, key);
  return m && m->type == type ? m : NULL;
}

static bool strings(const struct udm_json *arr)
{
  for (size_t i = 0; arr && i < arr->count; i++)
    if (arr->items[i].type != UDM_JSON_STRING)
      return false;
  return arr != NULL;
}

static bool array_has(const struct udm_json *arr, const char *s)
{
  for (size_t i = 0; arr && i < arr->count; i++)
    if (arr->items[i].type == UDM_JSON_STRING && !strcmp(arr->items[i].text, s))
      return true;
  return false;
}

/* Every string of ARR names a member of SECTION. */
static int names_exist(const struct udm_json *arr, const struct udm_json *section,
                       const char *what, const char *key, const char *kind, char **why)
{
  if (!strings(arr))
    return rule(why, "%s %s: '%s' is not an array of strings", what, key, kind);
  for (size_t i = 0; i < arr->count; i++)
    if (!member(section, arr->items[i].text, UDM_JSON_OBJECT))
      return rule(why, "%s %s names %s '%s', which does not exist", what, key, kind,
                  arr->items[i].text);
  return 0;
}

/*
 * cryptsetup's luks2 keyslot implementation rules (luks2_keyslot_validate).
 * Other kdf members are ignored: cryptsetup drops them ("repair") before
 * it validates.
 */
static int validate_luks2_keyslot(const char *key, const struct udm_json *ks, char **why)
{
  const struct udm_json *kdf = member(ks, "kdf", UDM_JSON_OBJECT),
                        *af = member(ks, "af", UDM_JSON_OBJECT),
                        *area = member(ks, "area", UDM_JSON_OBJECT);
  if (!kdf || !af || !area)
    return rule(why, "keyslot %s lacks a kdf, af or area object", key);
  const char *type = udm_json_str(kdf, "type");
  if (!type)
    return rule(why, "keyslot %s: kdf has no type", key);
  if (!strcmp(type, "pbkdf2") &&
      (!udm_json_str(kdf, "hash") || !member(kdf, "iterations", UDM_JSON_NUMBER) ||
       !udm_json_str(kdf, "salt")))
    return rule(why, "keyslot %s: pbkdf2 needs a salt and hash string and an integer "
                "iteration count", key);
  if ((!strcmp(type, "argon2i") || !strcmp(type, "argon2id")) &&
      (!member(kdf, "time", UDM_JSON_NUMBER) || !member(kdf, "memory", UDM_JSON_NUMBER) ||
       !member(kdf, "cpus", UDM_JSON_NUMBER) || !udm_json_str(kdf, "salt")))
    return rule(why, "keyslot %s: %s needs a salt string and integer time, memory and cpus",
                key, type);
  const char *af_type = udm_json_str(af, "type");
  if (!af_type || strcmp(af_type, "luks1") || !udm_json_str(af, "hash") ||
      !member(af, "stripes", UDM_JSON_NUMBER))
    return rule(why, "keyslot %s: af must be of type luks1 with a hash and stripes", key);
  const char *area_type = udm_json_str(area, "type");
  if (!area_type || strcmp(area_type, "raw") || !udm_json_str(area, "encryption") ||
      !member(area, "key_size", UDM_JSON_NUMBER) || !udm_json_str(area, "offset") ||
      !udm_json_str(area, "size"))
    return rule(why, "keyslot %s: area must be of type raw with encryption, key_size, offset "
                "and size", key);
  return 0;
}

static int count_digests(const struct udm_json *digests, const char *keyslot)
{
  int n = 0;
  for (size_t i = 0; i < digests->count; i++)
    n += array_has(udm_json_get(&digests->items[i], "keyslots"), keyslot);
  return n;
}

struct interval {
  uint64_t offset, length; /* length UINT64_MAX: "dynamic" */
  const char *key;
};

/* One overlap among N intervals, or -1. */
static bool overlap(const struct interval *ix, size_t n, size_t *a, size_t *b)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (i != j && ix[i].offset >= ix[j].offset &&
          (ix[j].length == UINT64_MAX || ix[i].offset - ix[j].offset < ix[j].length)) {
        *a = i < j ? i : j;
        *b = i < j ? j : i;
        return true;
      }
  return false;
}

static int validate_segments(const struct udm_json *segs, const struct udm_json *digests,
                             char **why)
{
  if (!segs->count)
    return rule(why, "the segments section is empty");
  struct interval ix[LUKS2_OBJECTS_MAX];
  if (segs->count > LUKS2_OBJECTS_MAX)
    return rule(why, "%zu segments (at most %d)", segs->count, LUKS2_OBJECTS_MAX);
  for (size_t i = 0; i < segs->count; i++) {
    const struct udm_json *s = &segs->items[i];
    const char *k = s->key;
    uint64_t off, size = 0, ss, tweak;
    if (!numbered(k))
      return rule(why, "segment name '%s' is not a number", k);
    if (s->type != UDM_JSON_OBJECT || !udm_json_str(s, "type") || !udm_json_str(s, "offset") ||
        !udm_json_str(s, "size"))
      return rule(why, "segment %s lacks a type, offset or size string", k);
    if (!str_u64(s, "offset", &off))
      return rule(why, "segment %s: offset is not a number", k);
    const char *sz = udm_json_str(s, "size");
    if (strcmp(sz, "dynamic") && (!str_u64(s, "size", &size) || !size))
      return rule(why, "segment %s: size is neither 'dynamic' nor a positive number", k);
    if (off % 512 || size % 512)
      return rule(why, "segment %s: offset and size must be multiples of 512", k);
    const struct udm_json *flags = udm_json_get(s, "flags");
    if (flags && (flags->type != UDM_JSON_ARRAY || !strings(flags)))
      return rule(why, "segment %s: flags must be an array of strings", k);
    if (!strcmp(udm_json_str(s, "type"), "crypt")) {
      if (!udm_json_str(s, "iv_tweak") || !udm_json_str(s, "encryption") ||
          !member(s, "sector_size", UDM_JSON_NUMBER))
        return rule(why, "segment %s lacks an iv_tweak, encryption or sector_size", k);
      const struct udm_json *integ = udm_json_get(s, "integrity");
      if (integ && (integ->type != UDM_JSON_OBJECT || !udm_json_str(integ, "type") ||
                    !udm_json_str(integ, "journal_encryption") ||
                    !udm_json_str(integ, "journal_integrity")))
        return rule(why, "segment %s: integrity must be an object with type, "
                    "journal_encryption and journal_integrity", k);
      if (!int_u32(s, "sector_size", &ss) || !ss || ss % 512)
        return rule(why, "segment %s: illegal sector_size", k);
      if (!str_u64(s, "iv_tweak", &tweak))
        return rule(why, "segment %s: iv_tweak is not a number", k);
      if (size % ss)
        return rule(why, "segment %s: size %llu is not a multiple of the sector size %llu", k,
                    (unsigned long long)size, (unsigned long long)ss);
      bool assigned = false;
      for (size_t d = 0; d < digests->count; d++)
        assigned |= array_has(udm_json_get(&digests->items[d], "segments"), k);
      if (!assigned)
        return rule(why, "segment %s is not assigned to a digest", k);
    }
  }
  /* keys 0..n-1 without gaps; only the last may be dynamic; no overlaps */
  for (size_t n = 0; n < segs->count; n++) {
    char name[24];
    snprintf(name, sizeof name, "%zu", n);
    const struct udm_json *s = udm_json_get(segs, name);
    if (!s)
      return rule(why, "segment %zu is missing (segments must be numbered from 0)", n);
    uint64_t size = 0;
    str_u64(s, "offset", &ix[n].offset);
    ix[n].length = str_u64(s, "size", &size) ? size : UINT64_MAX;
    ix[n].key = s->key;
    if (ix[n].length == UINT64_MAX && n + 1 != segs->count)
      return rule(why, "segment %zu has a dynamic size but is not the last", n);
    if (ix[n].length != UINT64_MAX && ix[n].offset > UINT64_MAX - ix[n].length)
      return rule(why, "segment %zu: offset + size overflows", n);
  }
  size_t a, b;
  if (overlap(ix, segs->count, &a, &b))
    return rule(why, "segments %s and %s overlap", ix[a].key, ix[b].key);
  return 0;
}

/* cryptsetup's LUKS2_hdr_validate, rule by rule, with udm's messages. */
static int luks2_validate(const struct udm_json *root, uint64_t json_area, char **why)
{
  if (root->type != UDM_JSON_OBJECT)
    return rule(why, "the JSON metadata is not an object");
  const struct udm_json *config = member(root, "config", UDM_JSON_OBJECT),
                        *keyslots = member(root, "keyslots", UDM_JSON_OBJECT),
                        *tokens = member(root, "tokens", UDM_JSON_OBJECT),
                        *digests = member(root, "digests", UDM_JSON_OBJECT),
                        *segments = member(root, "segments", UDM_JSON_OBJECT);
  if (!config || !keyslots || !tokens || !digests || !segments)
    return rule(why, "a config, keyslots, tokens, digests or segments object is missing");
  /* requirements */
  const struct udm_json *req = udm_json_get(config, "requirements");
  if (req) {
    const struct udm_json *mand = udm_json_get(req, "mandatory");
    if (req->type != UDM_JSON_OBJECT || (mand && (mand->type != UDM_JSON_ARRAY || !strings(mand))))
      return rule(why, "config.requirements.mandatory must be an array of strings");
  }
  /* tokens */
  for (size_t i = 0; i < tokens->count; i++) {
    const struct udm_json *t = &tokens->items[i];
    if (!numbered(t->key))
      return rule(why, "token name '%s' is not a number", t->key);
    if (!udm_json_str(t, "type"))
      return rule(why, "token %s has no type", t->key);
    int r = names_exist(member(t, "keyslots", UDM_JSON_ARRAY), keyslots, "token", t->key,
                        "keyslot", why);
    if (r < 0)
      return r;
  }
  /* digests */
  for (size_t i = 0; i < digests->count; i++) {
    const struct udm_json *d = &digests->items[i];
    if (!numbered(d->key))
      return rule(why, "digest name '%s' is not a number", d->key);
    if (!udm_json_str(d, "type"))
      return rule(why, "digest %s has no type", d->key);
    int r = names_exist(member(d, "keyslots", UDM_JSON_ARRAY), keyslots, "digest", d->key,
                        "keyslot", why);
    if (r == 0)
      r = names_exist(member(d, "segments", UDM_JSON_ARRAY), segments, "digest", d->key,
                      "segment", why);
    if (r < 0)
      return r;
  }
  int r = validate_segments(segments, digests, why);
  if (r < 0)
    return r;
  /* keyslots */
  for (size_t i = 0; i < keyslots->count; i++) {
    const struct udm_json *k = &keyslots->items[i];
    if (!numbered(k->key))
      return rule(why, "keyslot name '%s' is not a number", k->key);
    if (!udm_json_str(k, "type") || !int_u32(k, "key_size", NULL))
      return rule(why, "keyslot %s: type must be a string and key_size an integer below "
                  "2^32", k->key);
  }
  /* config */
  uint64_t json_size, ks_size;
  if (!udm_json_str(config, "json_size") || !str_u64(config, "json_size", &json_size))
    return rule(why, "config.json_size is not a number");
  if (!udm_json_str(config, "keyslots_size") || !str_u64(config, "keyslots_size", &ks_size))
    return rule(why, "config.keyslots_size is not a number");
  uint64_t mda = json_size + LUKS2_BIN_SIZE;
  bool known = false; /* 16 KiB, 32 KiB, ... 4 MiB, where the backups are looked for */
  for (size_t i = 0; i < sizeof luks2_backups / sizeof luks2_backups[0]; i++)
    known |= json_size <= 0x400000 && mda == luks2_backups[i];
  if (!known)
    return rule(why, "header size %llu (json_size + 4096) is not 16 KiB, 32 KiB, ... or 4 MiB",
                (unsigned long long)mda);
  if (ks_size % 4096 || ks_size > LUKS2_MAX_KEYSLOTS_SIZE)
    return rule(why, "keyslots_size %llu is not a multiple of 4096 up to 128 MiB",
                (unsigned long long)ks_size);
  uint64_t seg_min = UINT64_MAX;
  for (size_t i = 0; i < segments->count; i++) {
    uint64_t off;
    if (str_u64(&segments->items[i], "offset", &off) && off < seg_min)
      seg_min = off;
  }
  if (seg_min && (seg_min < ks_size || seg_min - ks_size < 2 * mda))
    return rule(why, "keyslots_size %llu does not fit between the two headers (%llu bytes) "
                "and the data offset %llu", (unsigned long long)ks_size,
                (unsigned long long)(2 * mda), (unsigned long long)seg_min);
  const struct udm_json *flags = udm_json_get(config, "flags");
  if (flags && (flags->type != UDM_JSON_ARRAY || !strings(flags)))
    return rule(why, "config.flags must be an array of strings");
  /* keyslot areas */
  struct interval ix[LUKS2_OBJECTS_MAX];
  if (keyslots->count > LUKS2_OBJECTS_MAX)
    return rule(why, "%zu keyslots (at most %d)", keyslots->count, LUKS2_OBJECTS_MAX);
  for (size_t i = 0; i < keyslots->count; i++) {
    const struct udm_json *area = member(&keyslots->items[i], "area", UDM_JSON_OBJECT);
    const char *k = keyslots->items[i].key;
    if (!area || !udm_json_str(area, "type") || !udm_json_str(area, "offset") ||
        !udm_json_str(area, "size") || !str_u64(area, "offset", &ix[i].offset) ||
        !str_u64(area, "size", &ix[i].length))
      return rule(why, "keyslot %s: area needs a type and numeric offset and size strings", k);
    ix[i].key = k;
    if (ix[i].offset < 2 * mda)
      return rule(why, "keyslot %s: area offset %llu is inside the binary headers (%llu bytes)",
                  k, (unsigned long long)ix[i].offset, (unsigned long long)(2 * mda));
    if (!ix[i].length)
      return rule(why, "keyslot %s: area size is 0", k);
    if (ix[i].offset > UINT64_MAX - ix[i].length ||
        ix[i].offset + ix[i].length > 2 * mda + ks_size)
      return rule(why, "keyslot %s: area runs past the keyslots area (which ends at %llu)", k,
                  (unsigned long long)(2 * mda + ks_size));
  }
  size_t a, b;
  if (overlap(ix, keyslots->count, &a, &b))
    return rule(why, "the areas of keyslots %s and %s overlap", ix[a].key, ix[b].key);
  /* JSON area size */
  if (json_size != json_area)
    return rule(why, "config.json_size %llu differs from the binary header's JSON area size "
                "%llu", (unsigned long long)json_size, (unsigned long long)json_area);
  /* keyslot implementations */
  for (size_t i = 0; i < keyslots->count; i++) {
    const struct udm_json *k = &keyslots->items[i];
    if (strcmp(udm_json_str(k, "type"), "luks2"))
      continue;
    if ((r = validate_luks2_keyslot(k->key, k, why)) < 0)
      return r;
    if (count_digests(digests, k->key) != 1)
      return rule(why, "keyslot %s is not assigned to exactly one digest", k->key);
  }
  return 0;
}

/*
 * Read and check one binary header + JSON area at OFF: magic, version,
 * offset, size, checksum, then the JSON metadata (parsed, validated).
 * *why (malloc'd) says what is wrong; *rule_broken tells a metadata rule
 * from damage.
 */
static int luks2_read_hdr(int fd, uint64_t off, bool primary, struct luks2_hdr *h,
                          char **why, bool *rule_broken)
{
  uint8_t bin[LUKS2_BIN_SIZE];
  *rule_broken = false;
  int r = vol_read_at(fd, off, bin, sizeof bin);
  if (r < 0) {
    *why = strdup(r == -ENODATA ? "truncated" : "unreadable");
    return r;
  }
  if (memcmp(bin, primary ? LUKS_MAGIC_PRIMARY : LUKS_MAGIC_BACKUP, LUKS_MAGIC_LEN) ||
      be16(bin + 6) != 2) {
    *why = strdup("bad magic or version");
    return -EINVAL;
  }
  h->hdr_size = be64(bin + 8);
  h->seqid = be64(bin + 16);
  h->offset = be64(bin + 256);
  field(h->uuid, bin + 168, 40);
  if (h->offset != off || h->hdr_size < 0x4000 || h->hdr_size > 0x400000 ||
      h->hdr_size % 4096 || (!primary && h->hdr_size != off)) {
    *why = strdup("inconsistent header size or offset");
    return -EINVAL;
  }
  char alg[33];
  field(alg, bin + 72, 32);
  int hash = name_ok(alg, 31) ? hash_by_name(alg) : 0;
  size_t dlen = hash ? gcry_md_get_algo_dlen(hash) : 0;
  if (!dlen || dlen > 64) {
    *why = strdup("unsupported checksum algorithm");
    return -EINVAL;
  }
  size_t jlen = h->hdr_size - LUKS2_BIN_SIZE;
  char *json = malloc(jlen);
  if (!json)
    return -ENOMEM;
  r = vol_read_at(fd, off + LUKS2_BIN_SIZE, json, jlen);
  if (r < 0) {
    free(json);
    *why = strdup("JSON area truncated");
    return r;
  }
  uint8_t csum[64];
  memcpy(csum, bin + LUKS2_CSUM_OFFSET, 64);
  memset(bin + LUKS2_CSUM_OFFSET, 0, 64);
  gcry_md_hd_t md;
  if (gcry_md_open(&md, hash, 0)) {
    free(json);
    return -ENOMEM;
  }
  gcry_md_write(md, bin, sizeof bin);
  gcry_md_write(md, json, jlen);
  bool ok = memcmp(gcry_md_read(md, hash), csum, dlen) == 0;
  gcry_md_close(md);
  if (!ok) {
    free(json);
    *why = strdup("checksum mismatch");
    return -EINVAL;
  }
  *rule_broken = true;
  /* The area holds '{', the JSON text, then only NULs (at least one). */
  const char *nul = memchr(json, 0, jlen);
  size_t where;
  if (json[0] != '{')
    r = rule(why, "the JSON area does not start with '{'");
  else if (!nul)
    r = rule(why, "the JSON metadata leave no terminating NUL in their area");
  else
    for (const char *p = nul; p < json + jlen && r == 0; p++)
      if (*p)
        r = rule(why, "byte 0x%02x follows the JSON metadata at offset %zu", *p & 0xff,
                 (size_t)(p - json));
  if (r == 0 && (r = udm_json_parse(json, jlen, &h->json, &where)) < 0)
    r = rule(why, r == -EEXIST ? "the JSON metadata name a member twice in one object "
                                   "(byte %zu)"
                                 : "the JSON metadata do not parse (byte %zu)", where);
  free(json);
  if (r == 0)
    r = luks2_validate(h->json, jlen, why);
  if (r < 0) {
    udm_json_free(h->json);
    h->json = NULL;
    return r;
  }
  *rule_broken = false;
  return 0;
}

/*
 * The primary header, or the first valid backup at the standard offsets
 * (as cryptsetup finds it when the primary's magic or size is gone).
 */
static int luks2_load(int fd, const char *path, struct luks2_hdr *h,
                      struct udm_luks_volume *vol, char **errmsg)
{
  char *why = NULL;
  bool broken;
  int r = luks2_read_hdr(fd, 0, true, h, &why, &broken);
  if (r == 0) {
    /* Both valid: the newer one wins (a write cut short leaves the other stale). */
    struct luks2_hdr h2 = {0};
    char *why2 = NULL;
    bool broken2;
    if (luks2_read_hdr(fd, h->hdr_size, false, &h2, &why2, &broken2) == 0 &&
        h2.seqid > h->seqid) {
      vol->warning = vol_format("%s: the primary LUKS2 header is older than the backup "
                                "(seqid %llu < %llu); using the backup header at offset %llu",
                                path, (unsigned long long)h->seqid,
                                (unsigned long long)h2.seqid, (unsigned long long)h2.offset);
      udm_json_free(h->json);
      *h = h2;
      r = vol->warning ? 0 : -ENOMEM;
    } else {
      udm_json_free(h2.json);
    }
    free(why2);
    free(why);
    return r;
  }
  if (r == -ENOMEM) {
    free(why);
    return r;
  }
  for (size_t i = 0; i < sizeof luks2_backups / sizeof luks2_backups[0]; i++) {
    char *why2 = NULL;
    bool broken2;
    r = luks2_read_hdr(fd, luks2_backups[i], false, h, &why2, &broken2);
    if (r == 0) {
      vol->warning = vol_format("%s: the primary LUKS2 header is damaged (%s); "
                                "using the backup header at offset %llu",
                                path, why ? why : "?", (unsigned long long)luks2_backups[i]);
      free(why);
      return vol->warning ? 0 : -ENOMEM;
    }
    /* the same rule broken in both copies: name it */
    if (broken && broken2) {
      r = vol_fail(errmsg, -EINVAL, "%s: invalid LUKS2 metadata: %s", path, why);
      free(why);
      free(why2);
      return r;
    }
    free(why2);
  }
  if (broken)
    r = vol_fail(errmsg, -EINVAL, "%s: invalid LUKS2 metadata: %s", path, why);
  else
    r = vol_fail(errmsg, -EINVAL, "%s: the LUKS2 header is damaged (%s) and no valid backup "
                 "header was found", path, why ? why : "?");
  free(why);
  return r;
}

/* Is there a valid LUKS2 backup header (the primary's magic being gone)? */
static bool luks2_backup_present(int fd)
{
  for (size_t i = 0; i < sizeof luks2_backups / sizeof luks2_backups[0]; i++) {
    uint8_t bin[8];
    if (vol_read_at(fd, luks2_backups[i], bin, sizeof bin) == 0 &&
        !memcmp(bin, LUKS_MAGIC_BACKUP, LUKS_MAGIC_LEN) && be16(bin + 6) == 2)
      return true;
  }
  return false;
}

/* A luks2 keyslot's fields, checked before its KDF runs. */
struct luks2_slot {
  const struct udm_json *json;
  const char *key, *kdf, *af_hash, *enc;
  uint64_t key_size, area_key, area_off, area_size, priority;
  uint64_t iter, time, memory, cpus;
  int hash, kdf_hash;
  uint8_t salt[128];
  size_t salt_len;
  bool bound;  /* its digest covers segment 0 */
  bool usable; /* its fields pass the rules below */
};

static int luks2_check_slot(const char *path, const struct udm_json *ks,
                            const struct udm_json *digests, struct luks2_slot *s,
                            char **errmsg)
{
  char what[48];
  snprintf(what, sizeof what, "keyslot %s", ks->key);
  const struct udm_json *kdf = udm_json_get(ks, "kdf"), *af = udm_json_get(ks, "af"),
                        *area = udm_json_get(ks, "area");
  s->json = ks;
  s->key = ks->key;
  for (size_t i = 0; i < digests->count; i++)
    if (array_has(udm_json_get(&digests->items[i], "keyslots"), s->key))
      s->bound = array_has(udm_json_get(&digests->items[i], "segments"), "0");
  s->priority = 1;
  if (udm_json_get(ks, "priority") &&
      (!int_u32(ks, "priority", &s->priority) || s->priority > 2))
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid priority", path, what);
  int_u32(ks, "key_size", &s->key_size);
  if (!s->key_size || s->key_size > VOL_KEY_MAX)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid key_size %llu (1 to %d bytes)", path,
                    what, (unsigned long long)s->key_size, VOL_KEY_MAX);
  uint64_t stripes = 0;
  int_u32(af, "stripes", &stripes);
  if (stripes != LUKS_STRIPES)
    return vol_fail(errmsg, -EINVAL, "%s: %s: AF stripes %s is unsupported (LUKS2 uses %d)",
                    path, what, udm_json_get(af, "stripes")->text, LUKS_STRIPES);
  s->af_hash = udm_json_str(af, "hash");
  s->hash = name_ok(s->af_hash, 31) ? hash_by_name(s->af_hash) : 0;
  if (!s->hash)
    return vol_fail(errmsg, -EINVAL, "%s: %s: unsupported AF hash", path, what);
  s->enc = udm_json_str(area, "encryption");
  if (!int_u32(area, "key_size", &s->area_key) || !s->area_key || s->area_key > VOL_KEY_MAX)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid area key_size (1 to %d bytes)", path,
                    what, VOL_KEY_MAX);
  str_u64(area, "offset", &s->area_off);
  str_u64(area, "size", &s->area_size);
  if (s->area_off % 512)
    return vol_fail(errmsg, -EINVAL, "%s: %s: area offset %llu is not a multiple of 512",
                    path, what, (unsigned long long)s->area_off);
  if (s->area_size < af_sectors(s->key_size) * 512)
    return vol_fail(errmsg, -EINVAL, "%s: %s: its area (%llu bytes) is smaller than its key "
                    "material (%llu bytes)", path, what, (unsigned long long)s->area_size,
                    (unsigned long long)af_sectors(s->key_size) * 512);
  s->kdf = udm_json_str(kdf, "type");
  long sl = b64_decode(udm_json_str(kdf, "salt"), s->salt, sizeof s->salt);
  if (sl <= 0)
    return vol_fail(errmsg, -EINVAL, "%s: %s: invalid KDF salt", path, what);
  s->salt_len = (size_t)sl;
  int r;
  if (!strcmp(s->kdf, "pbkdf2")) {
    const char *h = udm_json_str(kdf, "hash");
    s->kdf_hash = name_ok(h, 31) ? hash_by_name(h) : 0;
    if (!s->kdf_hash)
      return vol_fail(errmsg, -EINVAL, "%s: %s: unsupported pbkdf2 hash", path, what);
    udm_json_u64(kdf, "iterations", &s->iter);
    if ((r = check_pbkdf2_iter(path, what, s->iter, errmsg)) < 0)
      return r;
  } else if (!strcmp(s->kdf, "argon2i") || !strcmp(s->kdf, "argon2id")) {
    if (udm_json_u64(kdf, "time", &s->time) < 0 || udm_json_u64(kdf, "memory", &s->memory) < 0 ||
        udm_json_u64(kdf, "cpus", &s->cpus) < 0)
      return vol_fail(errmsg, -EINVAL, "%s: %s: argon2 costs must be non-negative integers",
                      path, what);
    if ((r = check_argon2(path, what, s->time, s->memory, s->cpus, errmsg)) < 0)
      return r;
  } else {
    char buf[40];
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: %s: unsupported KDF '%s'", path, what,
                    shown(s->kdf, buf, sizeof buf));
  }
  return check_cipher(path, what, s->enc, s->area_key, 512, errmsg);
}

/* The digest's rules (pbkdf2 only, as cryptsetup writes). */
static int luks2_check_digest(const char *path, const struct udm_json *d, char **errmsg)
{
  const char *type = udm_json_str(d, "type"), *h = udm_json_str(d, "hash");
  uint8_t buf[128];
  uint64_t iter = 0;
  if (!type || strcmp(type, "pbkdf2"))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: digest %s: %s type", path, d->key,
                    type ? "unsupported" : "no");
  if (!name_ok(h, 31) || !hash_by_name(h))
    return vol_fail(errmsg, -EINVAL, "%s: digest %s: %s hash", path, d->key,
                    h ? "unsupported" : "no");
  if (!udm_json_str(d, "salt") || !udm_json_str(d, "digest") ||
      b64_decode(udm_json_str(d, "salt"), buf, sizeof buf) <= 0 ||
      b64_decode(udm_json_str(d, "digest"), buf, sizeof buf) <= 0)
    return vol_fail(errmsg, -EINVAL, "%s: digest %s: invalid salt or digest", path, d->key);
  if (!int_u32(d, "iterations", &iter))
    iter = 0;
  char what[40];
  snprintf(what, sizeof what, "digest %s", d->key);
  return check_pbkdf2_iter(path, what, iter, errmsg);
}

static int luks2_unlock_slot(const char *path, const struct luks2_slot *s, const char *pass,
                             size_t plen, uint8_t *vk, char **errmsg)
{
  uint8_t *akey = udm_secure_alloc(s->area_key);
  size_t mlen = s->key_size * LUKS_STRIPES;
  uint8_t *material = udm_secure_alloc(mlen);
  int r = -ENOMEM;
  if (!akey || !material)
    goto out;
  if (!strcmp(s->kdf, "pbkdf2"))
    r = pbkdf2(s->kdf_hash, pass, plen, s->salt, s->salt_len, (unsigned long)s->iter, akey,
               s->area_key);
  else
    r = vol_argon2(!strcmp(s->kdf, "argon2i") ? GCRY_KDF_ARGON2I : GCRY_KDF_ARGON2ID, pass,
                   plen, s->salt, s->salt_len, (unsigned long)s->time,
                   (unsigned long)s->memory, (unsigned long)s->cpus, akey, s->area_key);
  if (r == 0)
    r = decrypt_area(path, s->enc, akey, s->area_key, s->area_off, mlen, material, errmsg);
  if (r == 0)
    r = af_merge(s->hash, material, s->key_size, LUKS_STRIPES, vk);
out:
  udm_secure_free(material);
  udm_secure_free(akey);
  return r;
}

/* Does the (one) digest of keyslot ID accept volume key VK? */
static bool luks2_digest_ok(const struct udm_json *digests, const char *id,
                            const uint8_t *vk, size_t vk_len)
{
  for (size_t i = 0; i < digests->count; i++) {
    const struct udm_json *d = &digests->items[i];
    if (!array_has(udm_json_get(d, "keyslots"), id))
      continue;
    uint64_t iter;
    uint8_t salt[128], want[128], got[128];
    long sl = b64_decode(udm_json_str(d, "salt"), salt, sizeof salt),
         dl = b64_decode(udm_json_str(d, "digest"), want, sizeof want);
    int_u32(d, "iterations", &iter);
    bool ok = pbkdf2(hash_by_name(udm_json_str(d, "hash")), vk, vk_len, salt, (size_t)sl,
                     (unsigned long)iter, got, (size_t)dl) == 0 &&
              memcmp(got, want, (size_t)dl) == 0;
    udm_wipe(got, sizeof got);
    return ok;
  }
  return false;
}

static int luks2_open(int fd, const char *path, uint64_t dev_bytes, const char *pass,
                      size_t plen, struct udm_luks_volume *vol, char **errmsg)
{
  struct luks2_hdr h = {0};
  struct luks2_slot *slots = NULL;
  char *first_problem = NULL; /* of a data segment keyslot that cannot be used */
  int first_r = 0;
  char buf[VOL_CIPHER_MAX + 1];
  int r = luks2_load(fd, path, &h, vol, errmsg);
  if (r < 0)
    return r;
  vol->version = 2;
  const struct udm_json *root = h.json;
  const struct udm_json *config = udm_json_get(root, "config");
  if (!uuid_ok(h.uuid)) {
    r = vol_fail(errmsg, -EINVAL, "%s: invalid LUKS2 UUID '%s'", path,
                 shown(h.uuid, buf, sizeof buf));
    goto out;
  }
  memcpy(vol->uuid, h.uuid, sizeof vol->uuid);
  uint64_t mda, ks_size;
  udm_json_u64(config, "json_size", &mda);
  udm_json_u64(config, "keyslots_size", &ks_size);
  mda += LUKS2_BIN_SIZE;
  if (2 * mda + ks_size > dev_bytes) {
    r = vol_fail(errmsg, -EINVAL, "%s is too small: the LUKS2 headers and keyslots need %llu "
                 "bytes, the file has %llu", path, (unsigned long long)(2 * mda + ks_size),
                 (unsigned long long)dev_bytes);
    goto out;
  }
  const struct udm_json *req = udm_json_get(udm_json_get(config, "requirements"), "mandatory");
  if (req && req->count) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: the LUKS2 volume has mandatory requirements udm "
                 "does not support (e.g. '%s')", path, shown(req->items[0].text, buf, sizeof buf));
    goto out;
  }
  /* The data segment (udm supports the usual single crypt segment). */
  const struct udm_json *segs = udm_json_get(root, "segments");
  if (segs->count != 1) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: %zu LUKS2 segments (udm supports one)", path,
                 segs->count);
    goto out;
  }
  const struct udm_json *seg = &segs->items[0];
  const char *stype = udm_json_str(seg, "type"), *enc = udm_json_str(seg, "encryption");
  uint64_t off, tweak, ss, bytes = 0;
  if (strcmp(stype, "crypt")) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: LUKS2 segment type '%s' is not supported", path,
                 shown(stype, buf, sizeof buf));
    goto out;
  }
  if (udm_json_get(seg, "integrity")) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: LUKS2 with integrity protection is not supported",
                 path);
    goto out;
  }
  str_u64(seg, "offset", &off);
  str_u64(seg, "iv_tweak", &tweak);
  int_u32(seg, "sector_size", &ss);
  if (ss != 512 && ss != 1024 && ss != 2048 && ss != 4096) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: LUKS2 sector size %llu is not supported (512, "
                 "1024, 2048, 4096)", path, (unsigned long long)ss);
    goto out;
  }
  if (!vol_cipher_spec_ok(enc)) {
    r = vol_fail(errmsg, -EINVAL, "%s: segment 0: invalid cipher specification '%s'", path,
                 shown(enc, buf, sizeof buf));
    goto out;
  }
  if (!off) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: the LUKS2 data offset is 0 (a detached header): "
                 "udm does not support detached headers", path);
    goto out;
  }
  bool dynamic = !strcmp(udm_json_str(seg, "size"), "dynamic");
  if (!dynamic)
    str_u64(seg, "size", &bytes);
  if (off >= dev_bytes) {
    r = vol_fail(errmsg, -EINVAL, "%s: the data area starts at byte %llu, at or beyond the end "
                 "of the file (%llu bytes): the volume is truncated", path,
                 (unsigned long long)off, (unsigned long long)dev_bytes);
    goto out;
  }
  if (!dynamic && bytes > dev_bytes - off) {
    r = vol_fail(errmsg, -EINVAL, "%s: the data area (%llu bytes at byte %llu) runs past the "
                 "end of the file (%llu bytes): the volume is truncated", path,
                 (unsigned long long)bytes, (unsigned long long)off,
                 (unsigned long long)dev_bytes);
    goto out;
  }
  vol->cipher = strdup(enc);
  vol->offset = off / 512;
  vol->iv_offset = tweak;
  vol->sector_size = (unsigned)ss;
  vol->length = (dynamic ? dev_bytes - off : bytes) / 512;
  vol->length -= vol->length % (ss / 512);
  if (!vol->cipher) {
    r = -ENOMEM;
    goto out;
  }

  /* Every keyslot and digest checked, every cipher tried, before any KDF. */
  const struct udm_json *ks = udm_json_get(root, "keyslots");
  const struct udm_json *digests = udm_json_get(root, "digests");
  for (size_t i = 0; i < digests->count; i++)
    if ((r = luks2_check_digest(path, &digests->items[i], errmsg)) < 0)
      goto out;
  slots = calloc(ks->count + 1, sizeof *slots);
  size_t n = 0, bound = 0;
  if (!slots) {
    r = -ENOMEM;
    goto out;
  }
  /*
   * A keyslot that breaks a rule below is not used; the volume is refused
   * with its message only when no keyslot of the data segment is left (one
   * slot's 4 GiB argon2 on a small machine must not lock out the others).
   */
  for (size_t i = 0; i < ks->count; i++) {
    if (strcmp(udm_json_str(&ks->items[i], "type"), "luks2"))
      continue; /* e.g. reencrypt: not for unlocking */
    char *problem = NULL;
    r = luks2_check_slot(path, &ks->items[i], digests, &slots[n], &problem);
    if (r == -ENOMEM) {
      free(problem);
      goto out;
    }
    slots[n].usable = r == 0;
    if (r < 0 && slots[n].bound && !first_problem) {
      first_problem = problem;
      first_r = r;
    } else {
      free(problem);
    }
    if (slots[n].usable && slots[n].bound) {
      bound++;
      if ((r = check_cipher(path, "segment 0", enc, slots[n].key_size, (unsigned)ss,
                            errmsg)) < 0)
        goto out;
    }
    n++;
  }
  if (!bound) {
    r = first_problem ? vol_fail(errmsg, first_r, "%s", first_problem)
                      : vol_fail(errmsg, -EINVAL, "%s: no LUKS2 keyslot is assigned to the "
                                 "data segment", path);
    goto out;
  }
  vol->key = udm_secure_alloc(VOL_KEY_MAX);
  if (!vol->key) {
    r = -ENOMEM;
    goto out;
  }
  /* Keyslots of the data segment by priority (high, normal); then the others, only to say
   * why their passphrase does not open the volume. */
  r = -EPERM;
  for (int pass_no = 0; pass_no < 3 && r == -EPERM; pass_no++) {
    for (size_t i = 0; i < n && r == -EPERM; i++) {
      struct luks2_slot *s = &slots[i];
      bool want = s->usable && (pass_no == 0   ? s->bound && s->priority == 2
                                : pass_no == 1 ? s->bound && s->priority == 1
                                               : !s->bound && s->priority);
      if (!want || luks2_unlock_slot(path, s, pass, plen, vol->key, NULL) < 0 ||
          !luks2_digest_ok(digests, s->key, vol->key, s->key_size))
        continue;
      vol->key_len = s->key_size;
      r = 0;
      if (!s->bound)
        r = vol_fail(errmsg, -EPERM, "%s: keyslot %s is not assigned to the data segment "
                     "(its digest does not cover segment 0); its key is not the volume key",
                     path, s->key);
    }
  }
  if (r == -EPERM && first_problem)
    vol_fail(errmsg, r, "No key available with this passphrase. (Not tried: %s)",
             first_problem);
  else if (r == -EPERM)
    vol_fail(errmsg, r, "No key available with this passphrase.");
out:
  free(first_problem);
  free(slots);
  udm_json_free(h.json);
  return r;
}

/* ---- public ---- */

int udm_luks_open(const char *path, const char *passphrase, size_t len,
                  struct udm_luks_volume **out, char **errmsg)
{
  crypt_gcrypt_init(); /* libgcrypt's secure memory kept out of core dumps */
  if (errmsg)
    *errmsg = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vol_fail(errmsg, -errno, "%s: %s", path, strerror(errno));
  struct udm_luks_volume *vol = calloc(1, sizeof *vol);
  uint8_t hdr[LUKS1_HDR_SIZE];
  int r = vol ? 0 : -ENOMEM;
  off_t end = lseek(fd, 0, SEEK_END);
  if (r == 0 && end < 0)
    r = vol_fail(errmsg, -errno, "%s: cannot get the size", path);
  if (r == 0 && !(vol->path = strdup(path)))
    r = -ENOMEM;
  bool primary = false;
  if (r == 0) {
    r = vol_read_at(fd, 0, hdr, 8);
    primary = r == 0 && !memcmp(hdr, LUKS_MAGIC_PRIMARY, LUKS_MAGIC_LEN);
    /* A wiped primary: cryptsetup still finds a LUKS2 backup header. */
    if ((r == 0 || r == -ENODATA) && !primary)
      r = luks2_backup_present(fd) ? 0
                                   : vol_fail(errmsg, -EINVAL, "%s is not a valid LUKS device.",
                                              path);
  }
  if (r == 0 && primary && be16(hdr + 6) == 1) {
    r = vol_read_at(fd, 0, hdr, sizeof hdr);
    if (r < 0)
      r = vol_fail(errmsg, r, "%s: the LUKS1 header is truncated", path);
    else
      r = luks1_open(path, hdr, (uint64_t)end, passphrase, len, vol, errmsg);
  } else if (r == 0) {
    /* version 2, or a damaged primary: LUKS2 looks for its backup */
    r = luks2_open(fd, path, (uint64_t)end, passphrase, len, vol, errmsg);
  }
  close(fd);
  if (r == 0 && vol->length == 0)
    r = vol_fail(errmsg, -EINVAL, "%s: the volume has no data area", path);
  if (r < 0) {
    if (r == -ENOMEM)
      vol_fail(errmsg, r, "out of memory");
    udm_luks_free(vol);
    return r;
  }
  *out = vol;
  return 0;
}

int udm_luks_version(const struct udm_luks_volume *vol)
{
  return vol->version;
}

const char *udm_luks_warning(const struct udm_luks_volume *vol)
{
  return vol->warning;
}

const char *udm_luks_uuid(const struct udm_luks_volume *vol)
{
  return vol->uuid;
}

const uint8_t *udm_luks_volume_key(const struct udm_luks_volume *vol, size_t *len)
{
  *len = vol->key_len;
  return vol->key;
}

int udm_luks_table(const struct udm_luks_volume *vol, unsigned flags, char **table)
{
  struct vol_crypt_line line = {.length = vol->length, .cipher = vol->cipher, .key = vol->key,
                                .key_len = vol->key_len,
                                .show_key = (flags & UDM_TABLE_SHOWKEYS) != 0,
                                .iv_offset = vol->iv_offset, .device = vol->path,
                                .offset = vol->offset, .sector_size = vol->sector_size};
  return vol_crypt_table(&line, table, NULL);
}

void udm_luks_free(struct udm_luks_volume *vol)
{
  if (!vol)
    return;
  udm_secure_free(vol->key);
  free(vol->path);
  free(vol->cipher);
  free(vol->warning);
  free(vol);
}
