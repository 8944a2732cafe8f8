/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 and LUKS2 volumes (see luks.h).  Written from the published on-disk
 * format descriptions.  The keyslot areas are decrypted through udm's own
 * crypt target (an in-process read-only device), so a keyslot cipher spec
 * means exactly what it means to dm-crypt.
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

#include "json.h"
#include "luks.h"
#include "msg.h"
#include "secure.h"

#define LUKS_MAGIC_PRIMARY "LUKS\xba\xbe"
#define LUKS_MAGIC_BACKUP "SKUL\xba\xbe"
#define LUKS_MAGIC_LEN 6
#define LUKS1_HDR_SIZE 592
#define LUKS1_SLOTS 8
#define LUKS1_SLOT_ACTIVE 0x00AC71F3u
#define LUKS2_BIN_SIZE 4096
#define LUKS2_CSUM_OFFSET 448
#define MAX_VOLUME_KEY 512
#define MAX_STRIPES 65536

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

static int read_at(int fd, uint64_t off, void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ENODATA; /* truncated */
    done += (size_t)n;
  }
  return 0;
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

static int argon2(int subalgo, const void *pass, size_t plen, const uint8_t *salt,
                  size_t slen, unsigned long t, unsigned long m, unsigned long p,
                  void *out, size_t olen)
{
  unsigned long param[4] = {olen, t, m, p};
  gcry_kdf_hd_t hd;
  if (gcry_kdf_open(&hd, GCRY_KDF_ARGON2, subalgo, param, 4, pass, plen, salt, slen,
                    NULL, 0, NULL, 0))
    return -EINVAL;
  int r = 0;
  if (gcry_kdf_compute(hd, NULL) || gcry_kdf_final(hd, olen, out))
    r = -EINVAL;
  gcry_kdf_close(hd);
  return r;
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

/* ---- keyslot areas, decrypted through udm's crypt target ---- */

static int decrypt_area(const char *path, const char *spec, const uint8_t *key,
                        size_t key_len, uint64_t offset, size_t len, uint8_t *out,
                        char **errmsg)
{
  if (offset % 512)
    return vol_fail(errmsg, -EINVAL, "keyslot area offset %llu is not sector aligned",
                (unsigned long long)offset);
  size_t sectors = (len + 511) / 512;
  char *epath = udm_table_escape(path);
  size_t tlen = strlen(spec) + 2 * key_len + (epath ? strlen(epath) : 0) + 96;
  char *table = udm_secure_alloc(tlen);
  uint8_t *buf = udm_secure_alloc(sectors * 512);
  struct udm_ctx *ctx = udm_ctx_new();
  struct udm_device *dev = NULL;
  int r = -ENOMEM;
  if (!epath || !table || !buf || !ctx)
    goto out;
  int n = snprintf(table, tlen, "0 %zu crypt %s ", sectors, spec);
  for (size_t i = 0; i < key_len; i++)
    n += snprintf(table + n, tlen - (size_t)n, "%02x", key[i]);
  snprintf(table + n, tlen - (size_t)n, " 0 %s %llu", epath,
           (unsigned long long)(offset / 512));
  dev = udm_device_create(ctx, "luks-keyslot", NULL, UDM_DEVICE_READONLY);
  if (!dev || udm_table_load(dev, table) < 0 || udm_device_resume(dev) < 0 ||
      udm_device_pread(dev, buf, sectors * 512, 0) < 0) {
    r = vol_fail(errmsg, -(udm_errno() ? udm_errno() : EIO), "cannot read keyslot area: %s",
             udm_errmsg());
    goto out;
  }
  memcpy(out, buf, len);
  r = 0;
out:
  if (dev)
    udm_device_unref(dev);
  udm_ctx_free(ctx);
  udm_secure_free(buf);
  udm_secure_free(table);
  free(epath);
  return r;
}

/* ---- LUKS1 ---- */

static int luks1_open(int fd, const char *path, const uint8_t *hdr, const char *pass,
                      size_t plen, struct udm_luks_volume *vol, char **errmsg)
{
  char cipher[33], mode[33], hashname[33];
  field(cipher, hdr + 8, 32);
  field(mode, hdr + 40, 32);
  field(hashname, hdr + 72, 32);
  uint32_t payload = be32(hdr + 104), key_bytes = be32(hdr + 108);
  const uint8_t *mk_digest = hdr + 112, *mk_salt = hdr + 132;
  uint32_t mk_iter = be32(hdr + 164);
  int hash = hash_by_name(hashname);
  if (!hash)
    return vol_fail(errmsg, -EINVAL, "%s: unsupported LUKS1 hash '%s'", path, hashname);
  if (!key_bytes || key_bytes > MAX_VOLUME_KEY)
    return vol_fail(errmsg, -EINVAL, "%s: invalid LUKS1 key size %u", path, key_bytes);
  field(vol->uuid, hdr + 168, 40);
  vol->cipher = vol_format("%s-%s", cipher, mode);
  if (!vol->cipher)
    return -ENOMEM;
  vol->version = 1;
  vol->offset = payload;
  vol->sector_size = 512;
  vol->key_len = key_bytes;
  vol->key = udm_secure_alloc(key_bytes);
  uint8_t *slot_key = udm_secure_alloc(key_bytes);
  uint8_t digest[20];
  int r = -ENOMEM;
  if (!vol->key || !slot_key)
    goto out;
  (void)fd;
  r = -EPERM;
  for (unsigned s = 0; s < LUKS1_SLOTS; s++) {
    const uint8_t *ks = hdr + 208 + 48 * s;
    if (be32(ks) != LUKS1_SLOT_ACTIVE)
      continue;
    uint32_t iter = be32(ks + 4), km_off = be32(ks + 40), stripes = be32(ks + 44);
    if (!stripes || stripes > MAX_STRIPES)
      continue;
    size_t mlen = (size_t)key_bytes * stripes;
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
      k = af_merge(hash, material, key_bytes, stripes, vol->key);
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

struct luks2_hdr {
  uint64_t hdr_size, seqid, offset;
  char uuid[41];
  struct udm_json *json;
};

/* Read and check one binary header + JSON area at OFF. */
static int luks2_read_hdr(int fd, uint64_t off, bool primary, struct luks2_hdr *h,
                          const char **why)
{
  uint8_t bin[LUKS2_BIN_SIZE];
  int r = read_at(fd, off, bin, sizeof bin);
  if (r < 0) {
    *why = r == -ENODATA ? "truncated" : "unreadable";
    return r;
  }
  if (memcmp(bin, primary ? LUKS_MAGIC_PRIMARY : LUKS_MAGIC_BACKUP, LUKS_MAGIC_LEN) ||
      be16(bin + 6) != 2) {
    *why = "bad magic or version";
    return -EINVAL;
  }
  h->hdr_size = be64(bin + 8);
  h->seqid = be64(bin + 16);
  h->offset = be64(bin + 256);
  field(h->uuid, bin + 168, 40);
  if (h->offset != off || h->hdr_size < 0x4000 || h->hdr_size > 0x400000 ||
      h->hdr_size % 4096) {
    *why = "inconsistent header size or offset";
    return -EINVAL;
  }
  char alg[33];
  field(alg, bin + 72, 32);
  int hash = hash_by_name(alg);
  size_t dlen = hash ? gcry_md_get_algo_dlen(hash) : 0;
  if (!dlen || dlen > 64) {
    *why = "unsupported checksum algorithm";
    return -EINVAL;
  }
  size_t jlen = h->hdr_size - LUKS2_BIN_SIZE;
  char *json = malloc(jlen);
  if (!json)
    return -ENOMEM;
  r = read_at(fd, off + LUKS2_BIN_SIZE, json, jlen);
  if (r < 0) {
    free(json);
    *why = "JSON area truncated";
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
    *why = "checksum mismatch";
    return -EINVAL;
  }
  size_t where;
  r = udm_json_parse(json, jlen, &h->json, &where);
  free(json);
  if (r < 0) {
    *why = "JSON metadata does not parse";
    return r;
  }
  return 0;
}

static int luks2_load(int fd, const char *path, struct luks2_hdr *h,
                      struct udm_luks_volume *vol, char **errmsg)
{
  const char *why = NULL;
  int r = luks2_read_hdr(fd, 0, true, h, &why);
  if (r == 0)
    return 0;
  static const uint64_t backups[] = {0x4000, 0x8000, 0x10000, 0x20000, 0x40000,
                                     0x80000, 0x100000, 0x200000, 0x400000};
  for (size_t i = 0; i < sizeof backups / sizeof backups[0]; i++) {
    const char *why2;
    if (luks2_read_hdr(fd, backups[i], false, h, &why2) == 0) {
      vol->warning = vol_format("%s: the primary LUKS2 header is damaged (%s); "
                            "using the backup header at offset %llu",
                            path, why, (unsigned long long)backups[i]);
      return 0;
    }
  }
  return vol_fail(errmsg, -EINVAL, "%s: the LUKS2 header is damaged (%s) and no valid "
                               "backup header was found", path, why);
}

static int luks2_try_slot(const char *path, const struct udm_json *slot,
                          const char *pass, size_t plen, uint8_t *vk, size_t vk_len,
                          char **errmsg)
{
  const struct udm_json *kdf = udm_json_get(slot, "kdf"), *af = udm_json_get(slot, "af"),
                        *area = udm_json_get(slot, "area");
  const char *kdf_type = udm_json_str(kdf, "type"), *salt64 = udm_json_str(kdf, "salt");
  const char *enc = udm_json_str(area, "encryption");
  const char *af_hash = udm_json_str(af, "hash");
  uint64_t area_off, area_key, stripes;
  if (!kdf_type || !salt64 || !enc || !af_hash ||
      udm_json_u64(area, "offset", &area_off) < 0 ||
      udm_json_u64(area, "key_size", &area_key) < 0 ||
      udm_json_u64(af, "stripes", &stripes) < 0 || !stripes || stripes > MAX_STRIPES ||
      !area_key || area_key > MAX_VOLUME_KEY)
    return vol_fail(errmsg, -EINVAL, "malformed keyslot");
  uint8_t salt[128];
  long slen = b64_decode(salt64, salt, sizeof salt);
  int ah = hash_by_name(af_hash);
  if (slen < 0 || !ah)
    return vol_fail(errmsg, -EINVAL, "malformed keyslot salt or AF hash");
  uint8_t *akey = udm_secure_alloc(area_key);
  size_t mlen = vk_len * stripes;
  uint8_t *material = udm_secure_alloc(mlen);
  int r = -ENOMEM;
  if (!akey || !material)
    goto out;
  if (!strcmp(kdf_type, "pbkdf2")) {
    uint64_t iter;
    const char *h = udm_json_str(kdf, "hash");
    if (!h || !hash_by_name(h) || udm_json_u64(kdf, "iterations", &iter) < 0) {
      r = vol_fail(errmsg, -EINVAL, "malformed pbkdf2 keyslot");
      goto out;
    }
    r = pbkdf2(hash_by_name(h), pass, plen, salt, (size_t)slen, (unsigned long)iter, akey,
               area_key);
  } else if (!strcmp(kdf_type, "argon2i") || !strcmp(kdf_type, "argon2id")) {
    uint64_t t, m, p;
    if (udm_json_u64(kdf, "time", &t) < 0 || udm_json_u64(kdf, "memory", &m) < 0 ||
        udm_json_u64(kdf, "cpus", &p) < 0) {
      r = vol_fail(errmsg, -EINVAL, "malformed argon2 keyslot");
      goto out;
    }
    r = argon2(!strcmp(kdf_type, "argon2i") ? GCRY_KDF_ARGON2I : GCRY_KDF_ARGON2ID, pass,
               plen, salt, (size_t)slen, (unsigned long)t, (unsigned long)m,
               (unsigned long)p, akey, area_key);
  } else {
    r = vol_fail(errmsg, -EOPNOTSUPP, "unsupported keyslot KDF '%s'", kdf_type);
    goto out;
  }
  if (r == 0)
    r = decrypt_area(path, enc, akey, area_key, area_off, mlen, material, errmsg);
  if (r == 0)
    r = af_merge(ah, material, vk_len, (unsigned)stripes, vk);
out:
  udm_secure_free(material);
  udm_secure_free(akey);
  return r;
}

/* Does digest D (covering keyslot ID) accept volume key VK? */
static bool luks2_digest_ok(const struct udm_json *digests, const char *id,
                            const uint8_t *vk, size_t vk_len)
{
  for (size_t i = 0; digests && i < digests->count; i++) {
    const struct udm_json *d = &digests->items[i];
    const struct udm_json *slots = udm_json_get(d, "keyslots");
    bool covers = false;
    for (size_t k = 0; slots && k < slots->count; k++)
      covers |= slots->items[k].type == UDM_JSON_STRING && !strcmp(slots->items[k].text, id);
    const char *type = udm_json_str(d, "type"), *h = udm_json_str(d, "hash");
    const char *salt64 = udm_json_str(d, "salt"), *dig64 = udm_json_str(d, "digest");
    uint64_t iter;
    if (!covers || !type || strcmp(type, "pbkdf2") || !h || !salt64 || !dig64 ||
        udm_json_u64(d, "iterations", &iter) < 0)
      continue;
    uint8_t salt[128], want[128], got[128];
    long sl = b64_decode(salt64, salt, sizeof salt), dl = b64_decode(dig64, want, sizeof want);
    if (sl < 0 || dl <= 0 || !hash_by_name(h))
      continue;
    if (pbkdf2(hash_by_name(h), vk, vk_len, salt, (size_t)sl, (unsigned long)iter, got,
               (size_t)dl) == 0 &&
        memcmp(got, want, (size_t)dl) == 0) {
      udm_wipe(got, sizeof got);
      return true;
    }
  }
  return false;
}

static int luks2_open(int fd, const char *path, uint64_t dev_bytes, const char *pass,
                      size_t plen, struct udm_luks_volume *vol, char **errmsg)
{
  struct luks2_hdr h = {0};
  int r = luks2_load(fd, path, &h, vol, errmsg);
  if (r < 0)
    return r;
  vol->version = 2;
  memcpy(vol->uuid, h.uuid, sizeof vol->uuid);
  const struct udm_json *root = h.json;
  const struct udm_json *config = udm_json_get(root, "config");
  const struct udm_json *req = udm_json_get(udm_json_get(config, "requirements"), "mandatory");
  if (req && req->count) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: the LUKS2 volume has mandatory requirements udm "
                                  "does not support (e.g. '%s')", path,
             req->items[0].text ? req->items[0].text : "?");
    goto out;
  }
  /* The data segment (udm supports the usual single crypt segment). */
  const struct udm_json *segs = udm_json_get(root, "segments");
  if (!segs || segs->count != 1) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: %zu LUKS2 segments (udm supports one)", path,
             segs ? segs->count : 0);
    goto out;
  }
  const struct udm_json *seg = &segs->items[0];
  const char *stype = udm_json_str(seg, "type"), *enc = udm_json_str(seg, "encryption");
  const char *size = udm_json_str(seg, "size");
  uint64_t off, tweak, ss;
  if (!stype || strcmp(stype, "crypt") || !enc || !size ||
      udm_json_u64(seg, "offset", &off) < 0 || udm_json_u64(seg, "iv_tweak", &tweak) < 0 ||
      udm_json_u64(seg, "sector_size", &ss) < 0 || off % 512 ||
      (ss != 512 && ss != 1024 && ss != 2048 && ss != 4096)) {
    r = vol_fail(errmsg, -EINVAL, "%s: malformed or unsupported LUKS2 data segment", path);
    goto out;
  }
  if (udm_json_get(seg, "integrity")) {
    r = vol_fail(errmsg, -EOPNOTSUPP, "%s: LUKS2 with integrity protection is not supported",
             path);
    goto out;
  }
  vol->cipher = strdup(enc);
  vol->offset = off / 512;
  vol->iv_offset = tweak;
  vol->sector_size = (unsigned)ss;
  if (!strcmp(size, "dynamic")) {
    vol->length = dev_bytes > off ? (dev_bytes - off) / 512 : 0;
  } else {
    uint64_t bytes;
    if (udm_json_u64(seg, "size", &bytes) < 0) {
      r = vol_fail(errmsg, -EINVAL, "%s: bad LUKS2 segment size", path);
      goto out;
    }
    vol->length = bytes / 512;
  }
  vol->length -= vol->length % (ss / 512);

  const struct udm_json *slots = udm_json_get(root, "keyslots");
  const struct udm_json *digests = udm_json_get(root, "digests");
  r = -EPERM;
  for (int prio = 2; prio >= 1 && r == -EPERM; prio--) {
    for (size_t i = 0; slots && i < slots->count && r == -EPERM; i++) {
      const struct udm_json *ks = &slots->items[i];
      uint64_t p = 1, kl;
      const char *type = udm_json_str(ks, "type");
      udm_json_u64(ks, "priority", &p);
      if ((int)p != prio || !type || strcmp(type, "luks2") ||
          udm_json_u64(ks, "key_size", &kl) < 0 || !kl || kl > MAX_VOLUME_KEY)
        continue;
      if (!vol->key) {
        vol->key = udm_secure_alloc(kl);
        vol->key_len = kl;
        if (!vol->key) {
          r = -ENOMEM;
          break;
        }
      }
      if (kl != vol->key_len)
        continue;
      if (luks2_try_slot(path, ks, pass, plen, vol->key, kl, NULL) == 0 &&
          luks2_digest_ok(digests, ks->key, vol->key, kl))
        r = 0;
    }
  }
  if (r == -EPERM)
    vol_fail(errmsg, r, "No key available with this passphrase.");
out:
  udm_json_free(h.json);
  return r;
}

/* ---- public ---- */

static pthread_once_t gcrypt_once = PTHREAD_ONCE_INIT;

static void gcrypt_init(void)
{
  if (gcry_check_version(NULL) && !gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
  }
}

int udm_luks_open(const char *path, const char *passphrase, size_t len,
                  struct udm_luks_volume **out, char **errmsg)
{
  pthread_once(&gcrypt_once, gcrypt_init);
  if (errmsg)
    *errmsg = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vol_fail(errmsg, -errno, "%s: %s", path, strerror(errno));
  struct udm_luks_volume *vol = calloc(1, sizeof *vol);
  uint8_t hdr[LUKS1_HDR_SIZE];
  int r = vol ? 0 : -ENOMEM;
  if (r == 0) {
    vol->path = strdup(path);
    r = read_at(fd, 0, hdr, 8);
    if (r == -ENODATA || (r == 0 && memcmp(hdr, LUKS_MAGIC_PRIMARY, LUKS_MAGIC_LEN) &&
                          memcmp(hdr, LUKS_MAGIC_BACKUP, LUKS_MAGIC_LEN)))
      r = vol_fail(errmsg, -EINVAL, "%s is not a valid LUKS device.", path);
  }
  off_t end = lseek(fd, 0, SEEK_END);
  if (r == 0 && end < 0)
    r = vol_fail(errmsg, -errno, "%s: cannot get the size", path);
  if (r == 0 && be16(hdr + 6) == 1 && !memcmp(hdr, LUKS_MAGIC_PRIMARY, LUKS_MAGIC_LEN)) {
    r = read_at(fd, 0, hdr, sizeof hdr);
    if (r < 0)
      r = vol_fail(errmsg, r, "%s: the LUKS1 header is truncated", path);
    else
      r = luks1_open(fd, path, hdr, passphrase, len, vol, errmsg);
    if (r == 0) {
      uint64_t secs = (uint64_t)end / 512;
      vol->length = secs > vol->offset ? secs - vol->offset : 0;
    }
  } else if (r == 0) {
    /* version 2, or a damaged primary: LUKS2 looks for its backup */
    r = luks2_open(fd, path, (uint64_t)end, passphrase, len, vol, errmsg);
  }
  close(fd);
  if (r == 0 && vol->length == 0)
    r = vol_fail(errmsg, -EINVAL, "%s: the volume has no data area", path);
  if (r < 0) {
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
  char *epath = udm_table_escape(vol->path);
  size_t cap = strlen(vol->cipher) + 2 * vol->key_len + (epath ? strlen(epath) : 0) + 128;
  char *t = malloc(cap);
  if (!epath || !t) {
    free(epath);
    free(t);
    return -ENOMEM;
  }
  int n = snprintf(t, cap, "0 %llu crypt %s ", (unsigned long long)vol->length, vol->cipher);
  for (size_t i = 0; i < vol->key_len; i++)
    n += snprintf(t + n, cap - (size_t)n, "%02x",
                  (flags & UDM_TABLE_SHOWKEYS) ? vol->key[i] : 0);
  n += snprintf(t + n, cap - (size_t)n, " %llu %s %llu", (unsigned long long)vol->iv_offset,
                epath, (unsigned long long)vol->offset);
  if (vol->sector_size != 512)
    snprintf(t + n, cap - (size_t)n, " 1 sector_size:%u", vol->sector_size);
  free(epath);
  *table = t;
  return 0;
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
