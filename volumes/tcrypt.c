/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TrueCrypt and VeraCrypt volumes (see tcrypt.h), written from the published
 * volume format: a 512-byte header of 64 bytes of salt and 448 encrypted
 * bytes.  The header key is PBKDF2 of the passphrase (mixed with the keyfile
 * pool) over the salt; the header is XTS-encrypted, data unit 0, with the
 * volume's own cipher cascade.  All header integers are big-endian:
 *
 *   0 magic "TRUE"/"VERA"   4 header version (u16)  6 minimum program version (u16)
 *   8 CRC32 of the keys    12 volume ctime      20 header ctime
 *  28 hidden volume size   36 volume size       44 master key scope offset
 *  52 master key scope size 60 flags            64 sector size
 * 188 CRC32 of bytes 0..187 (version >= 4)     192 256 bytes of key material
 *
 * Header versions: 3 is TrueCrypt 5.x (one 512-byte header, data from byte
 * 512, no header CRC, and the master key scope fields may be 0); 4 is
 * TrueCrypt 6.x (128 KiB header areas at both ends, header CRC); 5 is
 * TrueCrypt 7.x and VeraCrypt (sector size field).  The minimum program
 * version is BCD-like (0x071a is TrueCrypt 7.1a, 0x010b VeraCrypt 1.11).
 * Flags: bit 0 system encryption, bit 1 non-system in-place encryption;
 * the others are reserved.  The mapped area is [master key scope offset,
 * + volume size): the scope size is how much of it is encrypted so far,
 * equal to the volume size once (in-place or system) encryption is done.
 *
 * Key material for a cascade of n XTS ciphers: cipher i's primary key at
 * 32*i, its tweak key at 32*(n+i).  Cipher 0 encrypts first (it is the
 * outermost, top device); the header is decrypted from cipher n-1 down.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gcrypt.h>

#include <udm/udm.h>

#include "crypt_mem.h"
#include "kdf.h"
#include "msg.h"
#include "secure.h"
#include "table.h"
#include "tcrypt.h"

#define HDR_SIZE 512
#define SALT_LEN 64
#define ENC_LEN 448
#define HDR_KEY_LEN 192 /* three ciphers, two 256-bit XTS keys each */
#define KEYS_OFF 192
#define POOL_TC 64
#define POOL_VC 128
#define KEYFILE_MAX (1u << 20) /* TrueCrypt reads the first 1 MiB of a keyfile */
#define MAX_KEYFILES 256
#define OFF_HIDDEN 65536
#define OFF_SYSTEM 31744 /* sector 62 */
#define BACKUP_END 131072
#define BACKUP_HIDDEN_END 65536
#define TC5_HIDDEN_END 1536 /* TrueCrypt 5's hidden volume header: end - 1536 */
#define FLAG_SYSTEM 0x1u
#define FLAG_INPLACE 0x2u
#define HDR_GROUP 131072       /* TrueCrypt 6+: the header area at each end */
#define BOOT_AREA 32256        /* system encryption: 63 sectors, the header in sector 62 */
#define TC5_DATA_OFFSET 512    /* TrueCrypt 5: data right after the header */
#define TC_FIRST_V4_PROG 0x0600 /* TrueCrypt 6.0, the first with 128 KiB header areas */
#define TC_LAST_PROG 0x071a    /* TrueCrypt 7.1a, the last that wrote volumes */
#define VC_FIRST_PROG 0x010b   /* VeraCrypt 1.11 (older: TrueCrypt 5 layout) */
#define VC_LAST_PROG 0x0126    /* VeraCrypt 1.26, the newest format udm knows */
#define SECTOR_MIN 512
#define SECTOR_MAX 4096

enum kdf_use { KDF_VOLUME, KDF_SYSTEM, KDF_BOTH };

struct kdf {
  const char *name;
  bool argon2;                /* Argon2id (recent VeraCrypt 1.26 releases), else PBKDF2-HMAC with md */
  int md;
  unsigned iterations;        /* with PIM 0 */
  unsigned pim_add, pim_mul;  /* with a PIM: pim_add + pim * pim_mul */
  bool veracrypt;
  enum kdf_use use;
};

/* TrueCrypt's and VeraCrypt's header KDFs, most common first. */
static const struct kdf kdfs[] = {
    {"RIPEMD-160", false, GCRY_MD_RMD160, 2000, 0, 0, false, KDF_VOLUME},
    {"SHA-512", false, GCRY_MD_SHA512, 1000, 0, 0, false, KDF_VOLUME},
    {"Whirlpool", false, GCRY_MD_WHIRLPOOL, 1000, 0, 0, false, KDF_VOLUME},
    {"RIPEMD-160", false, GCRY_MD_RMD160, 1000, 0, 0, false, KDF_SYSTEM},
    {"SHA-512", false, GCRY_MD_SHA512, 500000, 15000, 1000, true, KDF_BOTH},
    {"SHA-256", false, GCRY_MD_SHA256, 500000, 15000, 1000, true, KDF_VOLUME},
    {"SHA-256", false, GCRY_MD_SHA256, 200000, 0, 2048, true, KDF_SYSTEM},
    {"Whirlpool", false, GCRY_MD_WHIRLPOOL, 500000, 15000, 1000, true, KDF_BOTH},
    {"BLAKE2s-256", false, GCRY_MD_BLAKE2S_256, 500000, 15000, 1000, true, KDF_VOLUME},
    {"BLAKE2s-256", false, GCRY_MD_BLAKE2S_256, 200000, 0, 2048, true, KDF_SYSTEM},
    {"Streebog", false, GCRY_MD_STRIBOG512, 500000, 15000, 1000, true, KDF_VOLUME},
    {"Streebog", false, GCRY_MD_STRIBOG512, 200000, 0, 2048, true, KDF_SYSTEM},
    {"RIPEMD-160", false, GCRY_MD_RMD160, 655331, 15000, 1000, true, KDF_VOLUME},
    {"RIPEMD-160", false, GCRY_MD_RMD160, 327661, 0, 2048, true, KDF_SYSTEM},
    /* Last: its default costs 416 MiB; iterations and PIM are unused (argon2_cost). */
    {"Argon2id", true, 0, 0, 0, 0, true, KDF_VOLUME},
};
#define NKDFS (sizeof kdfs / sizeof kdfs[0])

struct chain {
  const char *name;            /* VeraCrypt's name */
  const char *ciphers[UDM_TCRYPT_MAX_LEVELS]; /* dm-crypt names, encryption order */
  unsigned n;
};

/* VeraCrypt names a cascade by the order of decryption; ciphers[0] encrypts first. */
static const struct chain chains[] = {
    {"AES", {"aes"}, 1},
    {"Serpent", {"serpent"}, 1},
    {"Twofish", {"twofish"}, 1},
    {"Camellia", {"camellia"}, 1},
    {"Kuznyechik", {"kuznyechik"}, 1},
    {"AES-Twofish", {"twofish", "aes"}, 2},
    {"AES-Twofish-Serpent", {"serpent", "twofish", "aes"}, 3},
    {"Serpent-AES", {"aes", "serpent"}, 2},
    {"Serpent-Twofish-AES", {"aes", "twofish", "serpent"}, 3},
    {"Twofish-Serpent", {"serpent", "twofish"}, 2},
    {"Camellia-Kuznyechik", {"kuznyechik", "camellia"}, 2},
    {"Kuznyechik-Twofish", {"twofish", "kuznyechik"}, 2},
    {"Camellia-Serpent", {"serpent", "camellia"}, 2},
    {"Kuznyechik-AES", {"aes", "kuznyechik"}, 2},
    {"Kuznyechik-Serpent-Camellia", {"camellia", "serpent", "kuznyechik"}, 3},
};
#define NCHAINS (sizeof chains / sizeof chains[0])

struct udm_tcrypt_volume {
  char *path;
  char *warning;
  const struct chain *chain;
  const struct kdf *kdf;
  bool veracrypt;
  uint64_t offset;    /* data offset, sectors */
  uint64_t iv_offset; /* sectors */
  uint64_t sectors;
  uint8_t *keys;      /* locked: the header's 256 bytes of key material */
};

/* ---- helpers ---- */

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* The running CRC-32 register (IEEE 802.3, reflected), without the final inversion. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++)
      crc = crc >> 1 ^ (0xEDB88320u & -(crc & 1));
  }
  return crc;
}

static uint32_t crc32(const uint8_t *p, size_t n)
{
  return ~crc32_update(~0u, p, n);
}

static int cipher_algo(const char *name)
{
  if (!strcmp(name, "aes"))
    return GCRY_CIPHER_AES256;
  if (!strcmp(name, "serpent"))
    return GCRY_CIPHER_SERPENT256;
  if (!strcmp(name, "twofish"))
    return GCRY_CIPHER_TWOFISH;
  if (!strcmp(name, "camellia"))
    return GCRY_CIPHER_CAMELLIA256;
  return gcry_cipher_map_name(name); /* kuznyechik: 0 while libgcrypt lacks it */
}

/* Can libgcrypt (and so the crypt target) run every cipher of the chain? */
static bool chain_available(const struct chain *c)
{
  for (unsigned i = 0; i < c->n; i++)
    if (!cipher_algo(c->ciphers[i]))
      return false;
  return true;
}

/* ---- keyfiles ---- */

static int pool_one_keyfile(uint8_t *pool, size_t pool_len, const char *path, char **errmsg)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vol_fail(errmsg, -errno, "cannot open keyfile %s: %s", path, strerror(errno));
  uint8_t *data = udm_secure_alloc(KEYFILE_MAX);
  if (!data) {
    close(fd);
    return -ENOMEM;
  }
  size_t len = 0;
  while (len < KEYFILE_MAX) {
    ssize_t n = read(fd, data + len, KEYFILE_MAX - len);
    if (n < 0) {
      int e = errno;
      close(fd);
      udm_secure_free(data);
      return vol_fail(errmsg, -e, "cannot read keyfile %s: %s", path, strerror(e));
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  uint32_t crc = ~0u;
  for (size_t i = 0, j = 0; i < len; i++) {
    crc = crc32_update(crc, data + i, 1);
    pool[j++] += (uint8_t)(crc >> 24);
    pool[j++] += (uint8_t)(crc >> 16);
    pool[j++] += (uint8_t)(crc >> 8);
    pool[j++] += (uint8_t)crc;
    j %= pool_len;
  }
  crc = 0;
  udm_secure_free(data);
  return 0;
}

/* A keyfile, or every regular, non-hidden file of a directory (not recursive). */
static int pool_keyfile(uint8_t *pool, size_t pool_len, const char *path, unsigned *count,
                        char **errmsg)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return vol_fail(errmsg, -errno, "keyfile %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (++*count > MAX_KEYFILES)
      return vol_fail(errmsg, -E2BIG, "more than %d keyfiles", MAX_KEYFILES);
    return pool_one_keyfile(pool, pool_len, path, errmsg);
  }
  DIR *d = opendir(path);
  if (!d)
    return vol_fail(errmsg, -errno, "keyfile directory %s: %s", path, strerror(errno));
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    size_t n = strlen(path) + strlen(e->d_name) + 2;
    char *p = malloc(n);
    if (!p) {
      r = -ENOMEM;
      break;
    }
    snprintf(p, n, "%s/%s", path, e->d_name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
      if (++*count > MAX_KEYFILES)
        r = vol_fail(errmsg, -E2BIG, "more than %d keyfiles", MAX_KEYFILES);
      else
        r = pool_one_keyfile(pool, pool_len, p, errmsg);
    }
    free(p);
  }
  closedir(d);
  return r;
}

/* ---- header decryption ---- */

struct parsed {
  bool vera;                   /* "VERA" magic */
  uint16_t version, min_version;
  uint64_t hidden_size, volume_size, mk_offset, mk_size;
  uint32_t flags, sector_size;
};

static int xts_decrypt(const char *cipher, const uint8_t *key1, const uint8_t *key2,
                       uint8_t *buf, size_t len)
{
  int algo = cipher_algo(cipher);
  gcry_cipher_hd_t h;
  if (!algo || gcry_cipher_open(&h, algo, GCRY_CIPHER_MODE_XTS, GCRY_CIPHER_SECURE))
    return -EOPNOTSUPP;
  uint8_t key[64], iv[16] = {0};
  memcpy(key, key1, 32);
  memcpy(key + 32, key2, 32);
  int r = gcry_cipher_setkey(h, key, 64) || gcry_cipher_setiv(h, iv, 16) ||
                  gcry_cipher_decrypt(h, buf, len, NULL, 0)
              ? -EINVAL
              : 0;
  udm_wipe(key, sizeof key);
  gcry_cipher_close(h);
  return r;
}

static int parse_decrypted(const uint8_t *out, const char *magic, struct parsed *p);

/* Decrypt ENC with chain C under header key KEY into OUT; 0 if it is a valid header. */
static int try_chain(const struct chain *c, const uint8_t *key, const uint8_t *enc,
                     const char *magic, uint8_t *out, struct parsed *p)
{
  memcpy(out, enc, ENC_LEN);
  for (unsigned j = c->n; j-- > 0;)
    if (xts_decrypt(c->ciphers[j], key + 32 * j, key + 32 * (c->n + j), out, ENC_LEN) < 0)
      return -EINVAL;
  return parse_decrypted(out, magic, p);
}

/* The fields of a decrypted header OUT (ENC_LEN bytes): 0, or -EPERM when it is not one. */
static int parse_decrypted(const uint8_t *out, const char *magic, struct parsed *p)
{
  if (memcmp(out, magic, 4))
    return -EPERM;
  p->vera = magic[0] == 'V';
  p->version = (uint16_t)(out[4] << 8 | out[5]);
  p->min_version = (uint16_t)(out[6] << 8 | out[7]);
  if (crc32(out + KEYS_OFF, 256) != be32(out + 8))
    return -EPERM;
  if (p->version >= 4 && crc32(out, 188) != be32(out + 188))
    return -EPERM;
  p->hidden_size = be64(out + 28);
  p->volume_size = be64(out + 36);
  p->mk_offset = be64(out + 44);
  p->mk_size = be64(out + 52);
  p->flags = be32(out + 60);
  p->sector_size = p->version >= 5 ? be32(out + 64) : 512;
  return 0;
}

/* One header position with its KDF trials, run by a pool of threads. */
struct search {
  const uint8_t *pwd;
  size_t pwd_len;
  const uint8_t *hdr;     /* 512 bytes as read */
  const struct kdf *list[NKDFS];
  unsigned nlist;
  unsigned pim;
  pthread_mutex_t lock;
  unsigned next;          /* next index into list */
  unsigned limit;         /* the workers stop before this index */
  int found;              /* index into list, -1 */
  const struct chain *chain;
  uint8_t *decrypted;     /* locked, ENC_LEN */
  struct parsed parsed;
  bool failed[NKDFS];     /* list[i] could not run in this libgcrypt */
};

/*
 * VeraCrypt's Argon2id costs: PIM 0 means PIM 12 (416 MiB, 6 passes); the
 * memory grows by 32 MiB a PIM up to 1 GiB (PIM 31), then the passes by one.
 */
static void argon2_cost(unsigned pim, unsigned long *passes, unsigned long *kib)
{
  if (!pim)
    pim = 12;
  unsigned long mib = 64 + (unsigned long)(pim - 1) * 32;
  *kib = (mib > 1024 ? 1024 : mib) * 1024;
  *passes = pim <= 31 ? 3 + (pim - 1) / 3 : 13 + (unsigned long)(pim - 31);
}

static int derive(const struct kdf *k, const struct search *s, uint8_t *key)
{
  if (k->argon2) {
    unsigned long passes, kib;
    argon2_cost(s->pim, &passes, &kib);
    return vol_argon2(GCRY_KDF_ARGON2ID, s->pwd, s->pwd_len, s->hdr, SALT_LEN, passes, kib, 1,
                      key, HDR_KEY_LEN);
  }
  unsigned long iter = s->pim ? k->pim_add + (unsigned long)s->pim * k->pim_mul : k->iterations;
  return gcry_kdf_derive(s->pwd, s->pwd_len, GCRY_KDF_PBKDF2, k->md, s->hdr, SALT_LEN, iter,
                         HDR_KEY_LEN, key)
             ? -EINVAL
             : 0;
}

static void *search_worker(void *arg)
{
  struct search *s = arg;
  uint8_t *key = udm_secure_alloc(HDR_KEY_LEN), *out = udm_secure_alloc(ENC_LEN);
  for (;;) {
    pthread_mutex_lock(&s->lock);
    bool stop = s->found >= 0 || s->next >= s->limit || !key || !out;
    unsigned i = stop ? 0 : s->next++;
    pthread_mutex_unlock(&s->lock);
    if (stop)
      break;
    const struct kdf *k = s->list[i];
    if (derive(k, s, key) < 0) {
      pthread_mutex_lock(&s->lock);
      s->failed[i] = true;
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    for (size_t c = 0; c < NCHAINS; c++) {
      struct parsed p;
      if (!chain_available(&chains[c]) ||
          try_chain(&chains[c], key, s->hdr + SALT_LEN, k->veracrypt ? "VERA" : "TRUE", out,
                    &p) < 0)
        continue;
      pthread_mutex_lock(&s->lock);
      if (s->found < 0 || (int)i < s->found) {
        s->found = (int)i;
        s->chain = &chains[c];
        s->parsed = p;
        memcpy(s->decrypted, out, ENC_LEN);
      }
      pthread_mutex_unlock(&s->lock);
      break;
    }
  }
  udm_secure_free(key);
  udm_secure_free(out);
  return NULL;
}

/* Run the workers on list[s->next .. limit). */
static void search_run(struct search *s, unsigned limit)
{
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned nthreads = cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned)cpus;
  if (nthreads > limit - s->next)
    nthreads = limit - s->next;
  s->limit = limit;
  pthread_t th[8];
  unsigned started = 0;
  for (unsigned t = 1; t < nthreads; t++)
    if (pthread_create(&th[started], NULL, search_worker, s) == 0)
      started++;
  search_worker(s);
  for (unsigned t = 0; t < started; t++)
    pthread_join(th[t], NULL);
}

/*
 * Try every KDF x chain on one header; 0 and s->found >= 0 on success.
 * Argon2id (last in the list) runs only once every PBKDF2 has failed, so
 * that its memory and time are not spent beside a PBKDF2 that succeeds.
 */
static int search_header(struct search *s)
{
  unsigned pbkdf2 = 0;
  while (pbkdf2 < s->nlist && !s->list[pbkdf2]->argon2)
    pbkdf2++;
  search_run(s, pbkdf2);
  if (s->found < 0 && pbkdf2 < s->nlist)
    search_run(s, s->nlist);
  return s->found >= 0 ? 0 : -EPERM;
}

/* ---- public ---- */

/* Append ", NAME" (or NAME first) to a list of at most CAP bytes, once. */
static void list_add(char *list, size_t cap, const char *name)
{
  size_t n = strlen(name), len = strlen(list);
  for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
    if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
      return;
  snprintf(list + len, cap - len, "%s%s", len ? ", " : "", name);
}

/*
 * No header opened.  The header is encrypted under a key that depends on the
 * KDF, so a KDF or cipher udm lacks looks just like a wrong passphrase: say
 * what was tried, so that the user of such a volume does not hunt for a typo.
 */
static int no_key(const struct search *s, const struct udm_tcrypt_params *prm, char **errmsg)
{
  char kdfs[512] = "", failed[256] = "", ciphers[256] = "", missing[128] = "", name[64];
  for (unsigned i = 0; i < s->nlist; i++) {
    const struct kdf *k = s->list[i];
    snprintf(name, sizeof name, "%s%s", k->argon2 ? "" : "PBKDF2-HMAC-", k->name);
    list_add(s->failed[i] ? failed : kdfs, s->failed[i] ? sizeof failed : sizeof kdfs, name);
  }
  for (size_t c = 0; c < NCHAINS; c++)
    if (chains[c].n == 1)
      list_add(chain_available(&chains[c]) ? ciphers : missing,
               chain_available(&chains[c]) ? sizeof ciphers : sizeof missing, chains[c].name);
  char pim[32] = "";
  if (prm->pim)
    snprintf(pim, sizeof pim, " (PIM %u)", prm->pim);
  return vol_fail(errmsg, -EPERM,
                  "No key available with this passphrase. udm tried the header KDFs %s%s%s%s%s "
                  "with the ciphers %s and their cascades; %s%s%s%s cannot be opened by udm.%s",
                  kdfs, pim, *failed ? " (this libgcrypt cannot compute " : "", failed,
                  *failed ? ")" : "", ciphers,
                  prm->veracrypt ? "a volume whose header uses another KDF" :
                                   "a volume of TrueCrypt 4.x or earlier (SHA-1, LRW or CBC)",
                  *missing ? " or the cipher " : "", missing,
                  *missing ? " (missing from this libgcrypt)" : "",
                  prm->system ? " --tcrypt-system reads the header in sector 62 of a whole "
                                "drive image; a partition image without its drive has none." : "");
}

/*
 * The minimum program version as the program names it: TrueCrypt's are
 * BCD with a letter nibble (0x071a is 7.1a); VeraCrypt's numbering changed
 * over time (0x010b is 1.11, 0x0126 is 1.26), so it stays hexadecimal.
 */
static void program_version(char *buf, size_t len, bool vera, unsigned v)
{
  unsigned letter = v & 0xf;
  if (vera)
    snprintf(buf, len, "0x%04x", v);
  else if (letter >= 0xa)
    snprintf(buf, len, "%x.%x%c", v >> 8, (v >> 4) & 0xf, 'a' + (int)(letter - 0xa));
  else if (letter)
    snprintf(buf, len, "%x.%x.%x", v >> 8, (v >> 4) & 0xf, letter);
  else
    snprintf(buf, len, "%x.%x", v >> 8, (v >> 4) & 0xf);
}

/* Where the data lies, from a header that decrypted: bytes on the device. */
struct area {
  uint64_t offset;    /* of the mapped area */
  uint64_t iv_offset; /* XTS data unit of its first sector, in bytes */
  uint64_t size;
};

/*
 * Check every field udm relies on and compute the area to map.  A header
 * whose fields udm does not fully understand is refused with its values
 * named: mapping it anyway would read garbage and, worse, let writes land
 * on headers or on data that is not encrypted.
 */
static int header_area(const char *path, const struct udm_tcrypt_params *prm,
                       const struct parsed *p, uint64_t dev, bool tc5_position, struct area *a,
                       char **errmsg)
{
  const char *prog = p->vera ? "VeraCrypt" : "TrueCrypt";
  char have[16], limit[16];
  program_version(have, sizeof have, p->vera, p->min_version);
  if (!p->vera && p->version < 3)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: TrueCrypt header version %u (before TrueCrypt 5) "
                                         "is not supported", path, p->version);
  if (p->version > 5 || (p->vera && p->version < 5))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: %s header version %u is not supported (udm knows "
                                         "%s)", path, prog, p->version,
                    p->vera ? "version 5" : "versions 3 to 5");
  bool legacy = p->version == 3; /* TrueCrypt 5.x */
  if (p->vera ? p->min_version > VC_LAST_PROG : p->min_version > TC_LAST_PROG) {
    program_version(limit, sizeof limit, p->vera, p->vera ? VC_LAST_PROG : TC_LAST_PROG);
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: the volume requires %s %s or newer; udm knows "
                                         "the format up to %s %s%s", path, prog, have, prog,
                    limit, p->vera ? " (VeraCrypt 1.26)" : "");
  }
  if (p->vera ? p->min_version < VC_FIRST_PROG : legacy != (p->min_version < TC_FIRST_V4_PROG))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: %s header version %u with required program "
                                         "version %s is a layout udm does not know", path, prog,
                    p->version, have);
  if (p->sector_size % 512 || p->sector_size < SECTOR_MIN || p->sector_size > SECTOR_MAX)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: unsupported sector size %u (%s uses 512 to 4096 "
                                         "bytes)", path, p->sector_size, prog);
  if (p->flags & ~(FLAG_SYSTEM | FLAG_INPLACE))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: unknown header flags 0x%x", path,
                    p->flags & ~(FLAG_SYSTEM | FLAG_INPLACE));
  if (prm->system && !(p->flags & FLAG_SYSTEM))
    return vol_fail(errmsg, -EINVAL, "%s: the header in sector 62 is not a system-encryption "
                                     "header", path);
  if (!prm->system && (p->flags & FLAG_SYSTEM))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: a system-encryption header; open the whole drive "
                                         "with --tcrypt-system", path);
  if (prm->system && (p->flags & FLAG_INPLACE))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: a system-encryption header that also has the "
                                         "in-place encryption flag (flags 0x%x)", path, p->flags);
  if (p->hidden_size && !prm->hidden)
    return vol_fail(errmsg, -EINVAL, "%s: the header at the %s position is a hidden volume's "
                                     "(hidden volume size %llu bytes)", path,
                    prm->system ? "system" : "outer volume's",
                    (unsigned long long)p->hidden_size);
  if (prm->hidden && p->hidden_size != p->volume_size)
    return vol_fail(errmsg, -EINVAL, "%s: the hidden volume's header gives a hidden volume "
                                     "size of %llu bytes but a volume size of %llu bytes",
                    path, (unsigned long long)p->hidden_size,
                    (unsigned long long)p->volume_size);
  if (legacy != tc5_position && prm->hidden)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: a TrueCrypt %s header at the hidden-volume "
                                         "position of TrueCrypt %s", path, legacy ? "5" : "6+",
                    legacy ? "6 and later (64 KiB)" : "5 (the end - 1536 bytes)");

  uint64_t off = p->mk_offset, size = p->volume_size, done = p->mk_size;
  if (tc5_position) {
    /* TrueCrypt 5's hidden volume ends right before its header. */
    if (size > dev - TC5_HIDDEN_END)
      return vol_fail(errmsg, -EINVAL, "%s: the hidden volume (%llu bytes) is larger than the "
                                       "device (%llu bytes)", path, (unsigned long long)size,
                      (unsigned long long)dev);
    off = dev - TC5_HIDDEN_END - size;
    done = size;
  } else if (legacy && !prm->system) {
    /* TrueCrypt 5 left the scope fields 0: its data follow the one header. */
    if (off && off != TC5_DATA_OFFSET)
      return vol_fail(errmsg, -EOPNOTSUPP, "%s: a TrueCrypt 5 header whose data offset is %llu "
                                           "bytes (TrueCrypt 5 volumes start at 512)", path,
                      (unsigned long long)off);
    off = TC5_DATA_OFFSET;
    done = size;
  }
  if (!size || size % 512 || off % 512)
    return vol_fail(errmsg, -EINVAL, "%s: the header's data area (offset %llu, size %llu bytes) "
                                     "is not a whole number of 512-byte sectors", path,
                    (unsigned long long)off, (unsigned long long)size);
  if (done != size) {
    if (done > size)
      return vol_fail(errmsg, -EINVAL, "%s: inconsistent header: the encrypted length (%llu "
                                       "bytes) exceeds the volume size (%llu bytes)", path,
                      (unsigned long long)done, (unsigned long long)size);
    if (prm->system || (p->flags & FLAG_INPLACE))
      return vol_fail(errmsg, -EOPNOTSUPP, "%s: the %s encryption is not finished (%llu of %llu "
                                           "bytes encrypted); udm maps only a fully encrypted "
                                           "volume", path, prm->system ? "system" : "in-place",
                      (unsigned long long)done, (unsigned long long)size);
    return vol_fail(errmsg, -EINVAL, "%s: inconsistent header: the encrypted length (%llu "
                                     "bytes) differs from the volume size (%llu bytes)", path,
                    (unsigned long long)done, (unsigned long long)size);
  }
  /* The bytes no data may touch: the headers (and the boot loader's track). */
  uint64_t lo = prm->system ? BOOT_AREA : legacy ? TC5_DATA_OFFSET : HDR_GROUP;
  uint64_t hi = prm->system || legacy ? dev : dev > HDR_GROUP ? dev - HDR_GROUP : 0;
  if (off < lo)
    return vol_fail(errmsg, -EINVAL, "%s: the data area starts at byte %llu, inside the "
                                     "header area (the first %llu bytes)", path,
                    (unsigned long long)off, (unsigned long long)lo);
  if ((off > hi || size > hi - off) && hi == dev)
    return vol_fail(errmsg, -EINVAL, "%s: the data area (bytes %llu to %llu) runs past the end "
                                     "of the device (%llu bytes)", path, (unsigned long long)off,
                    (unsigned long long)(off + size), (unsigned long long)dev);
  if (off > hi || size > hi - off)
    return vol_fail(errmsg, -EINVAL, "%s: the data area (bytes %llu to %llu) runs into the "
                                     "backup header area (the last %u of %llu bytes)", path,
                    (unsigned long long)off, (unsigned long long)(off + size), HDR_GROUP,
                    (unsigned long long)dev);
  a->offset = off;
  a->iv_offset = off;
  a->size = size;
  return 0;
}

int udm_tcrypt_check_header(const uint8_t *decrypted, const struct udm_tcrypt_params *prm,
                            uint64_t dev_bytes, bool tc5_hidden, uint64_t *offset,
                            uint64_t *bytes, char **errmsg)
{
  if (errmsg)
    *errmsg = NULL;
  if (tc5_hidden && (!prm->hidden || dev_bytes < TC5_HIDDEN_END + OFF_HIDDEN))
    return vol_fail(errmsg, -EINVAL, "TrueCrypt 5's hidden-volume position needs a hidden "
                    "volume on a device of at least %u bytes", TC5_HIDDEN_END + OFF_HIDDEN);
  struct parsed p;
  const char *magic = prm->veracrypt && decrypted[0] == 'V' ? "VERA" : "TRUE";
  if (parse_decrypted(decrypted, magic, &p) < 0)
    return vol_fail(errmsg, -EPERM, "not a %s header (magic or CRC32 wrong)",
                    prm->veracrypt ? "VeraCrypt" : "TrueCrypt");
  struct area a;
  int r = header_area("header", prm, &p, dev_bytes, tc5_hidden, &a, errmsg);
  if (r < 0)
    return r;
  *offset = a.offset;
  *bytes = a.size;
  return 0;
}

int udm_tcrypt_open(const char *path, const char *passphrase, size_t len,
                    const struct udm_tcrypt_params *prm, struct udm_tcrypt_volume **out,
                    char **errmsg)
{
  crypt_gcrypt_init(); /* libgcrypt's secure memory kept out of core dumps */
  if (errmsg)
    *errmsg = NULL;
  if (prm->system && prm->hidden)
    return vol_fail(errmsg, -EOPNOTSUPP, "hidden system volumes are not supported");
  if (prm->pim && !prm->veracrypt)
    return vol_fail(errmsg, -EINVAL, "a PIM is a VeraCrypt parameter (use --type veracrypt)");
  size_t max_pass = prm->veracrypt && len > POOL_TC ? POOL_VC : POOL_TC;
  if (len > max_pass)
    return vol_fail(errmsg, -EINVAL, "Maximum TCRYPT passphrase length (%zu) exceeded.", max_pass);

  /* The password buffer: the passphrase added onto the keyfile pool. */
  uint8_t *pwd = udm_secure_alloc(POOL_VC);
  uint8_t hdr[HDR_SIZE];
  struct udm_tcrypt_volume *vol = calloc(1, sizeof *vol);
  int fd = -1, r = -ENOMEM;
  struct search s = {.found = -1};
  bool lock_ok = false;
  if (!pwd || !vol)
    goto out;
  size_t pwd_len = len;
  if (prm->nkeyfiles) {
    unsigned count = 0;
    for (size_t i = 0; i < prm->nkeyfiles; i++) {
      r = pool_keyfile(pwd, max_pass, prm->keyfiles[i], &count, errmsg);
      if (r < 0)
        goto out;
    }
    pwd_len = max_pass;
  }
  for (size_t i = 0; i < len; i++)
    pwd[i] += (uint8_t)passphrase[i];

  vol->path = strdup(path);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r = vol_fail(errmsg, -errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0) {
    r = vol_fail(errmsg, -errno, "%s: cannot get the size", path);
    goto out;
  }
  uint64_t size = (uint64_t)end;
  uint64_t where[3];
  unsigned nwhere = 0;
  if (prm->system) {
    where[nwhere++] = OFF_SYSTEM;
  } else if (prm->hidden) {
    where[nwhere++] = OFF_HIDDEN;
    if (size >= BACKUP_HIDDEN_END + HDR_SIZE)
      where[nwhere++] = size - BACKUP_HIDDEN_END;
    /* where[2], not a backup; --type tcrypt only (VeraCrypt dropped TrueCrypt 5's layout) */
    if (!prm->veracrypt && nwhere == 2 && size >= TC5_HIDDEN_END + OFF_HIDDEN)
      where[nwhere++] = size - TC5_HIDDEN_END;
  } else {
    where[nwhere++] = 0;
    if (size >= BACKUP_END + OFF_HIDDEN)
      where[nwhere++] = size - BACKUP_END;
  }
  if (size < where[0] + HDR_SIZE) {
    r = vol_fail(errmsg, -EINVAL, "%s is too small for a %s volume header (%llu bytes)", path,
             prm->veracrypt ? "VeraCrypt" : "TrueCrypt", (unsigned long long)size);
    goto out;
  }

  s.pwd = pwd;
  s.pwd_len = pwd_len;
  s.pim = prm->pim;
  s.decrypted = udm_secure_alloc(ENC_LEN);
  if (!s.decrypted)
    goto out;
  /*
   * VeraCrypt's PBKDF2s first when asked for (the slow ones), then
   * TrueCrypt's, then Argon2id (search_header runs it last of all).
   */
  for (int pass = 0; pass < 3; pass++)
    for (size_t k = 0; k < NKDFS; k++) {
      const struct kdf *kd = &kdfs[k];
      int kd_pass = kd->argon2 ? 2 : kd->veracrypt ? 0 : 1;
      if (kd_pass != pass || (kd->veracrypt && !prm->veracrypt) ||
          (!kd->veracrypt && prm->pim))
        continue;
      if (kd->use != KDF_BOTH && (kd->use == KDF_SYSTEM) != prm->system)
        continue;
      s.list[s.nlist++] = kd;
    }
  if (pthread_mutex_init(&s.lock, NULL)) {
    r = -ENOMEM;
    goto out;
  }
  lock_ok = true;
  unsigned used = 0;
  r = -EPERM;
  for (unsigned w = 0; w < nwhere && r == -EPERM; w++) {
    r = vol_read_at(fd, where[w], hdr, sizeof hdr);
    if (r < 0) {
      if (w == 0) {
        r = vol_fail(errmsg, r, "%s: cannot read the volume header: %s", path,
                 r == -ENODATA ? "the device is truncated" : strerror(-r));
        goto out;
      }
      r = -EPERM;
      continue;
    }
    s.hdr = hdr;
    s.next = 0;
    s.found = -1;
    r = search_header(&s);
    used = w;
  }
  if (r == -EPERM) {
    r = no_key(&s, prm, errmsg);
    goto out;
  }
  struct area area = {0};
  r = header_area(path, prm, &s.parsed, size, prm->hidden && used == 2, &area, errmsg);
  if (r < 0)
    goto out;
  if (used > 0 && !(prm->hidden && used == 2)) {
    vol->warning = vol_format("%s: the %s header does not open (damaged?); using the backup "
                          "header at the end of the device", path,
                          prm->hidden ? "hidden volume's" : "primary");
    if (!vol->warning) {
      r = -ENOMEM;
      goto out;
    }
  }
  vol->kdf = s.list[s.found];
  vol->chain = s.chain;
  vol->veracrypt = vol->kdf->veracrypt;
  vol->keys = udm_secure_alloc(256);
  if (!vol->keys) {
    r = -ENOMEM;
    goto out;
  }
  memcpy(vol->keys, s.decrypted + KEYS_OFF, 256);
  vol->offset = area.offset / 512;
  vol->iv_offset = area.iv_offset / 512;
  vol->sectors = area.size / 512;
  r = 0;
out:
  if (lock_ok)
    pthread_mutex_destroy(&s.lock);
  udm_secure_free(s.decrypted);
  udm_wipe(hdr, sizeof hdr);
  udm_secure_free(pwd);
  if (fd >= 0)
    close(fd);
  if (r < 0) {
    udm_tcrypt_free(vol);
    return r;
  }
  *out = vol;
  return 0;
}

const char *udm_tcrypt_warning(const struct udm_tcrypt_volume *vol)
{
  return vol->warning;
}

bool udm_tcrypt_is_veracrypt(const struct udm_tcrypt_volume *vol)
{
  return vol->veracrypt;
}

const char *udm_tcrypt_cipher_name(const struct udm_tcrypt_volume *vol)
{
  return vol->chain->name;
}

const char *udm_tcrypt_hash_name(const struct udm_tcrypt_volume *vol)
{
  return vol->kdf->name;
}

unsigned udm_tcrypt_levels(const struct udm_tcrypt_volume *vol)
{
  return vol->chain->n;
}

uint64_t udm_tcrypt_sectors(const struct udm_tcrypt_volume *vol)
{
  return vol->sectors;
}

int udm_tcrypt_table(const struct udm_tcrypt_volume *vol, unsigned level, const char *lower,
                     unsigned flags, char **table)
{
  unsigned n = vol->chain->n;
  if (level >= n || (level + 1 < n && !lower))
    return -EINVAL;
  bool bottom = level + 1 == n;
  uint8_t key[64];
  memcpy(key, vol->keys + 32 * level, 32);
  memcpy(key + 32, vol->keys + 32 * (n + level), 32);
  char *cipher = vol_format("%s-xts-plain64", vol->chain->ciphers[level]);
  struct vol_crypt_line line = {.length = vol->sectors, .cipher = cipher, .key = key,
                                .key_len = 64, .show_key = (flags & UDM_TABLE_SHOWKEYS) != 0,
                                .iv_offset = vol->iv_offset, .device = bottom ? vol->path : lower,
                                .offset = bottom ? vol->offset : 0, .sector_size = 512};
  int r = cipher ? vol_crypt_table(&line, table, NULL) : -ENOMEM;
  udm_wipe(key, sizeof key);
  free(cipher);
  return r;
}

void udm_tcrypt_free(struct udm_tcrypt_volume *vol)
{
  if (!vol)
    return;
  udm_secure_free(vol->keys);
  free(vol->path);
  free(vol->warning);
  free(vol);
}
