/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TrueCrypt and VeraCrypt volumes (see tcrypt.h), written from the published
 * volume format: a 512-byte header of 64 bytes of salt and 448 encrypted
 * bytes.  The header key is PBKDF2 of the passphrase (mixed with the keyfile
 * pool) over the salt; the header is XTS-encrypted, data unit 0, with the
 * volume's own cipher cascade.  All header integers are big-endian:
 *
 *   0 magic "TRUE"/"VERA"   4 version (u16)      6 minimum program version
 *   8 CRC32 of the keys    12 volume ctime      20 header ctime
 *  28 hidden volume size   36 volume size       44 master key scope offset
 *  52 master key scope size 60 flags            64 sector size
 * 188 CRC32 of bytes 0..187 (version >= 4)     192 256 bytes of key material
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

#include "msg.h"
#include "secure.h"
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
#define FLAG_SYSTEM 0x1u

enum kdf_use { KDF_VOLUME, KDF_SYSTEM, KDF_BOTH };

struct kdf {
  const char *name;
  int md;
  unsigned iterations;        /* with PIM 0 */
  unsigned pim_add, pim_mul;  /* with a PIM: pim_add + pim * pim_mul */
  bool veracrypt;
  enum kdf_use use;
};

/* TrueCrypt's and VeraCrypt's header KDFs, most common first. */
static const struct kdf kdfs[] = {
    {"RIPEMD-160", GCRY_MD_RMD160, 2000, 0, 0, false, KDF_VOLUME},
    {"SHA-512", GCRY_MD_SHA512, 1000, 0, 0, false, KDF_VOLUME},
    {"Whirlpool", GCRY_MD_WHIRLPOOL, 1000, 0, 0, false, KDF_VOLUME},
    {"RIPEMD-160", GCRY_MD_RMD160, 1000, 0, 0, false, KDF_SYSTEM},
    {"SHA-512", GCRY_MD_SHA512, 500000, 15000, 1000, true, KDF_BOTH},
    {"SHA-256", GCRY_MD_SHA256, 500000, 15000, 1000, true, KDF_VOLUME},
    {"SHA-256", GCRY_MD_SHA256, 200000, 0, 2048, true, KDF_SYSTEM},
    {"Whirlpool", GCRY_MD_WHIRLPOOL, 500000, 15000, 1000, true, KDF_BOTH},
    {"BLAKE2s-256", GCRY_MD_BLAKE2S_256, 500000, 15000, 1000, true, KDF_VOLUME},
    {"BLAKE2s-256", GCRY_MD_BLAKE2S_256, 200000, 0, 2048, true, KDF_SYSTEM},
    {"Streebog", GCRY_MD_STRIBOG512, 500000, 15000, 1000, true, KDF_VOLUME},
    {"Streebog", GCRY_MD_STRIBOG512, 200000, 0, 2048, true, KDF_SYSTEM},
    {"RIPEMD-160", GCRY_MD_RMD160, 655331, 15000, 1000, true, KDF_VOLUME},
    {"RIPEMD-160", GCRY_MD_RMD160, 327661, 0, 2048, true, KDF_SYSTEM},
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

static int read_at(int fd, uint64_t off, void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ENODATA;
    done += (size_t)n;
  }
  return 0;
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
  uint16_t version;
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

/* Decrypt ENC with chain C under header key KEY into OUT; 0 if it is a valid header. */
static int try_chain(const struct chain *c, const uint8_t *key, const uint8_t *enc,
                     const char *magic, uint8_t *out, struct parsed *p)
{
  memcpy(out, enc, ENC_LEN);
  for (unsigned j = c->n; j-- > 0;)
    if (xts_decrypt(c->ciphers[j], key + 32 * j, key + 32 * (c->n + j), out, ENC_LEN) < 0)
      return -EINVAL;
  if (memcmp(out, magic, 4))
    return -EPERM;
  p->version = (uint16_t)(out[4] << 8 | out[5]);
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
  int found;              /* index into list, -1 */
  const struct chain *chain;
  uint8_t *decrypted;     /* locked, ENC_LEN */
  struct parsed parsed;
  bool kdf_failed;        /* a hash libgcrypt could not run */
};

static void *search_worker(void *arg)
{
  struct search *s = arg;
  uint8_t *key = udm_secure_alloc(HDR_KEY_LEN), *out = udm_secure_alloc(ENC_LEN);
  for (;;) {
    pthread_mutex_lock(&s->lock);
    unsigned i = s->next++;
    bool stop = s->found >= 0 || i >= s->nlist || !key || !out;
    pthread_mutex_unlock(&s->lock);
    if (stop)
      break;
    const struct kdf *k = s->list[i];
    unsigned long iter = s->pim ? k->pim_add + (unsigned long)s->pim * k->pim_mul : k->iterations;
    if (gcry_kdf_derive(s->pwd, s->pwd_len, GCRY_KDF_PBKDF2, k->md, s->hdr, SALT_LEN, iter,
                        HDR_KEY_LEN, key)) {
      pthread_mutex_lock(&s->lock);
      s->kdf_failed = true;
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

/* Try every KDF x chain on one header; 0 and s->found >= 0 on success. */
static int search_header(struct search *s)
{
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned nthreads = cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned)cpus;
  if (nthreads > s->nlist)
    nthreads = s->nlist;
  pthread_t th[8];
  unsigned started = 0;
  for (unsigned t = 1; t < nthreads; t++)
    if (pthread_create(&th[started], NULL, search_worker, s) == 0)
      started++;
  search_worker(s);
  for (unsigned t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  return s->found >= 0 ? 0 : -EPERM;
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

static int check_layout(const char *path, const struct udm_tcrypt_params *prm,
                        const struct parsed *p, uint64_t dev_bytes, char **errmsg)
{
  if (p->version < 3)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: TrueCrypt header version %u (before TrueCrypt 5) "
                                     "is not supported", path, p->version);
  if (p->sector_size % 512 || p->sector_size == 0 || p->sector_size > 4096)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: unsupported sector size %u", path, p->sector_size);
  if (p->mk_offset % 512 || p->mk_size % 512 || p->mk_size == 0)
    return vol_fail(errmsg, -EINVAL, "%s: the header's encrypted area (offset %llu, size %llu) "
                                 "is not sector aligned", path,
                (unsigned long long)p->mk_offset, (unsigned long long)p->mk_size);
  if (p->mk_offset > dev_bytes || p->mk_size > dev_bytes - p->mk_offset)
    return vol_fail(errmsg, -EINVAL, "%s: the encrypted area (offset %llu, size %llu) runs past "
                                 "the end of the device (%llu bytes)", path,
                (unsigned long long)p->mk_offset, (unsigned long long)p->mk_size,
                (unsigned long long)dev_bytes);
  if (prm->system && !(p->flags & FLAG_SYSTEM))
    return vol_fail(errmsg, -EINVAL, "%s: the header in sector 62 is not a system-encryption "
                                 "header", path);
  if (!prm->system && (p->flags & FLAG_SYSTEM))
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: a system-encryption header; open the whole drive "
                                     "with --tcrypt-system", path);
  if (prm->system && p->mk_size != p->volume_size)
    return vol_fail(errmsg, -EOPNOTSUPP, "%s: the system encryption is incomplete (encrypted "
                                     "%llu of %llu bytes); udm maps only whole areas", path,
                (unsigned long long)p->mk_size, (unsigned long long)p->volume_size);
  return 0;
}

int udm_tcrypt_open(const char *path, const char *passphrase, size_t len,
                    const struct udm_tcrypt_params *prm, struct udm_tcrypt_volume **out,
                    char **errmsg)
{
  pthread_once(&gcrypt_once, gcrypt_init);
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
  uint64_t where[2];
  unsigned nwhere = 0;
  if (prm->system) {
    where[nwhere++] = OFF_SYSTEM;
  } else if (prm->hidden) {
    where[nwhere++] = OFF_HIDDEN;
    if (size >= BACKUP_HIDDEN_END + HDR_SIZE)
      where[nwhere++] = size - BACKUP_HIDDEN_END;
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
  /* VeraCrypt's KDFs first when asked for (the slow ones), then TrueCrypt's. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t k = 0; k < NKDFS; k++) {
      const struct kdf *kd = &kdfs[k];
      bool vc_pass = pass == 0;
      if (kd->veracrypt != vc_pass || (kd->veracrypt && !prm->veracrypt) ||
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
    r = read_at(fd, where[w], hdr, sizeof hdr);
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
    r = vol_fail(errmsg, r, "No key available with this passphrase.");
    goto out;
  }
  r = check_layout(path, prm, &s.parsed, size, errmsg);
  if (r < 0)
    goto out;
  if (used > 0) {
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
  vol->offset = s.parsed.mk_offset / 512;
  vol->iv_offset = s.parsed.mk_offset / 512;
  vol->sectors = s.parsed.mk_size / 512;
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
  char *dev = udm_table_escape(bottom ? vol->path : lower);
  size_t cap = (dev ? strlen(dev) : 0) + 256;
  char *t = malloc(cap);
  if (!dev || !t) {
    free(dev);
    free(t);
    return -ENOMEM;
  }
  int w = snprintf(t, cap, "0 %llu crypt %s-xts-plain64 ", (unsigned long long)vol->sectors,
                   vol->chain->ciphers[level]);
  const uint8_t *k1 = vol->keys + 32 * level, *k2 = vol->keys + 32 * (n + level);
  for (unsigned i = 0; i < 64; i++) {
    uint8_t b = i < 32 ? k1[i] : k2[i - 32];
    w += snprintf(t + w, cap - (size_t)w, "%02x", (flags & UDM_TABLE_SHOWKEYS) ? b : 0);
  }
  snprintf(t + w, cap - (size_t)w, " %llu %s %llu", (unsigned long long)vol->iv_offset, dev,
           bottom ? (unsigned long long)vol->offset : 0ULL);
  free(dev);
  *table = t;
  return 0;
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
