/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crypt: transparent encryption, sector for sector what Linux dm-crypt
 * writes for the same table.  Ciphers come from libgcrypt; the IV
 * generators (plain, plain64, plain64be, essiv, benbi, null, eboiv, lmk,
 * tcw) and LRW chaining are computed here from the sector number exactly as
 * the kernel defines them.
 *
 * Concurrency: libgcrypt handles are not thread-safe, so each target keeps
 * a small pool of "slots", each with its own handles and write bounce
 * buffer.  A request takes the first free slot (trylock), so threads
 * rarely wait, only busy slots ever hold a bounce buffer, and no handle is
 * ever created on the I/O path.
 *
 * Writes are encrypted into the slot's bounce buffer (the caller's buffer
 * is never modified); reads are decrypted in place after the backing read.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gcrypt.h>

#include <udm/target.h>

#include "crypt_iv.h"
#include "crypt_mem.h"
#include "platform.h"
#include "xts_accel.h"

#define SECTOR_SHIFT 9
#define BOUNCE_BYTES (1024u * 1024u)
/* Requests up to this are en/decrypted where they are; larger ones by the workers. */
#define INLINE_BYTES (16u * 1024u)
/* A request is spread over the workers in chunks of at least this. */
#define CHUNK_BYTES (128u * 1024u)
#define MAX_WORKERS 16u
#define MAX_KEY_BYTES 8192u
#define MAX_TFMS 64u
/*
 * A key reference that cannot be resolved: Linux's "Required key not
 * available"; systems without ENOKEY (macOS) say "No such file or directory".
 */
#ifdef ENOKEY
#define ERR_NO_KEY ENOKEY
#else
#define ERR_NO_KEY ENOENT
#endif
#define LMK_SEED_SIZE 64u
#define TCW_WHITENING_SIZE 16u

enum chain_mode { CHAIN_ECB, CHAIN_CBC, CHAIN_XTS, CHAIN_LRW };

enum iv_mode {
  IV_NONE, IV_PLAIN, IV_PLAIN64, IV_PLAIN64BE, IV_ESSIV, IV_BENBI, IV_NULL,
  IV_EBOIV, IV_LMK, IV_TCW,
};

/* Optional parameters, in the order the kernel prints them. */
#define OPT_ALLOW_DISCARDS     0x01u
#define OPT_SAME_CPU           0x02u
#define OPT_SUBMIT_FROM_CPUS   0x04u
#define OPT_NO_READ_WQ         0x08u
#define OPT_NO_WRITE_WQ        0x10u
#define OPT_IV_LARGE_SECTORS   0x20u

/* Key material and everything derived from it, in one locked mapping. */
struct crypt_secret {
  size_t map_len;
  bool locked;
  uint8_t lmk_seed[LMK_SEED_SIZE];
  uint8_t tcw_iv_seed[16];
  uint8_t tcw_whitening[TCW_WHITENING_SIZE];
  struct udm_gf128 lrw_key[MAX_TFMS];
  struct udm_gf128 (*lrw_inc)[128]; /* per tfm: K2 * (2^(k+1) - 1) */
  struct xts_accel *accel;          /* expanded AES-XTS keys, when cc->accel */
  uint8_t *key;                     /* key_size bytes */
};

struct crypt_slot {
  pthread_mutex_t lock;
  gcry_cipher_hd_t hd[MAX_TFMS];    /* data cipher per key index */
  gcry_cipher_hd_t essiv[MAX_TFMS]; /* ESSIV: ECB under hash(subkey) */
  gcry_cipher_hd_t eboiv;           /* EBOIV: ECB under subkey 0 */
  void *lrw_tweaks;                 /* sector_size bytes of LRW tweaks */
};

struct crypt {
  struct udm_dev *dev;
  udm_sector_t start;
  uint64_t iv_offset;
  char *cipher_string;
  char *key_ref;           /* "type:description" for key references, else NULL */
  unsigned key_size;
  unsigned key_parts, key_extra_size, tfms_count;
  unsigned subkey_size;    /* bytes handed to one data cipher handle */
  bool cipher_null;
  enum chain_mode chain;
  enum iv_mode iv;
  int algo;                /* libgcrypt cipher (data) */
  int essiv_algo;
  int essiv_hash;
  unsigned essiv_dlen; /* bytes of the digest used as the ESSIV key */
  unsigned block_size, iv_size;
  unsigned sector_size, sector_shift; /* shift: log2(sector_size / 512) */
  unsigned opts;
  bool xts_counting;       /* see xts_counting_ok() */
  bool accel;              /* runs go to xts_accel (see xts_accel.h) */
  atomic_bool key_valid;
  atomic_bool suspended;
  struct crypt_secret *secret;
  unsigned nslots;
  struct crypt_slot *slots;
  atomic_uint next_slot;
  /* Workers for large requests, one per CPU (dm-crypt's kcryptd). */
  unsigned nworkers;
  struct udm_worker *workers[MAX_WORKERS];
  atomic_uint next_worker;
  /* Write bounce buffers of BOUNCE_BYTES, kept for reuse (at most nslots). */
  pthread_mutex_t bounce_lock;
  bool bounce_lock_ready;
  uint8_t **bounce_free;
  unsigned nbounce_free;
};

struct crypt_io;

/* One worker's share of a request. */
struct crypt_chunk {
  struct udm_work work;
  struct crypt_io *cio;
  uint64_t first, n;           /* 512-byte sectors into the request */
};

/* Per request (io->per_io). */
struct crypt_io {
  struct udm_io *io;
  struct crypt *cc;
  uint64_t off;                /* sectors into the segment */
  struct udm_io child;         /* the request on the backing device */
  uint8_t *bounce;             /* writes: the ciphertext */
  size_t bounce_len;
  atomic_uint chunks_left;
  atomic_int err;
  struct crypt_chunk *chunks;
};

static int workers_init(struct udm_target *ti, struct crypt *cc);

/* ---- libgcrypt ---- */

/* ---- locked memory for keys ---- */

static void wipe(void *p, size_t n)
{
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

static struct crypt_secret *secret_alloc(unsigned key_size, unsigned tfms, bool lrw, bool accel)
{
  size_t lrw_bytes = lrw ? (size_t)tfms * 128 * sizeof(struct udm_gf128) : 0;
  /* The accelerated keys first, 64-byte aligned; the mapping is page-aligned. */
  size_t accel_at = (sizeof(struct crypt_secret) + 63) / 64 * 64;
  size_t accel_bytes = accel ? udm_xts_accel_size() : 0;
  size_t len = accel_at + accel_bytes + lrw_bytes + key_size + 1;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0)
    page = 4096;
  len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  struct crypt_secret *s = m;
  memset(s, 0, sizeof *s);
  s->map_len = len;
  /* Best effort: without privilege or RLIMIT_MEMLOCK room, keys stay pageable. */
  s->locked = mlock(m, len) == 0;
  udm_platform_no_core(m, len);
  unsigned char *p = (unsigned char *)s + accel_at;
  if (accel) {
    s->accel = (struct xts_accel *)(void *)p;
    p += accel_bytes;
  }
  if (lrw) {
    s->lrw_inc = (struct udm_gf128 (*)[128])(void *)p;
    p += lrw_bytes;
  }
  s->key = p;
  return s;
}

static void secret_free(struct crypt_secret *s)
{
  if (!s)
    return;
  size_t len = s->map_len;
  bool locked = s->locked;
  wipe(s, len);
  if (locked)
    munlock(s, len);
  munmap(s, len);
}

/* ---- cipher names ---- */

struct cipher_name {
  const char *name;
  unsigned keylen[3];
  int algo[3];
};

static const struct cipher_name cipher_names[] = {
    {"aes", {16, 24, 32}, {GCRY_CIPHER_AES128, GCRY_CIPHER_AES192, GCRY_CIPHER_AES256}},
    {"twofish", {16, 32, 0}, {GCRY_CIPHER_TWOFISH128, GCRY_CIPHER_TWOFISH, 0}},
    {"serpent", {16, 24, 32}, {GCRY_CIPHER_SERPENT128, GCRY_CIPHER_SERPENT192,
                               GCRY_CIPHER_SERPENT256}},
    {"camellia", {16, 24, 32}, {GCRY_CIPHER_CAMELLIA128, GCRY_CIPHER_CAMELLIA192,
                                GCRY_CIPHER_CAMELLIA256}},
    {"cast5", {16, 0, 0}, {GCRY_CIPHER_CAST5, 0, 0}},
    {"blowfish", {16, 0, 0}, {GCRY_CIPHER_BLOWFISH, 0, 0}},
    {"des3_ede", {24, 0, 0}, {GCRY_CIPHER_3DES, 0, 0}},
    {"des", {8, 0, 0}, {GCRY_CIPHER_DES, 0, 0}},
    {"sm4", {16, 0, 0}, {GCRY_CIPHER_SM4, 0, 0}},
};

static const struct cipher_name *find_cipher(const char *name)
{
  for (size_t i = 0; i < sizeof cipher_names / sizeof cipher_names[0]; i++)
    if (strcmp(cipher_names[i].name, name) == 0)
      return &cipher_names[i];
  return NULL;
}

/* The libgcrypt algorithm for a cipher family and key length, or 0. */
static int cipher_algo(const struct cipher_name *c, unsigned keylen)
{
  for (unsigned i = 0; i < 3; i++)
    if (c->keylen[i] && c->keylen[i] == keylen)
      return c->algo[i];
  return 0;
}

static void key_lengths_text(const struct cipher_name *c, char *buf, size_t n)
{
  buf[0] = '\0';
  for (unsigned i = 0; i < 3; i++)
    if (c->keylen[i]) {
      size_t l = strlen(buf);
      snprintf(buf + l, n - l, "%s%u", l ? "/" : "", c->keylen[i] * 8);
    }
}

/*
 * Kernel hash names (as used after "essiv:") to libgcrypt, and the digest
 * length when the kernel's hash is a truncation (wp384 and wp256 are the
 * first 48 and 32 bytes of Whirlpool, as the kernel's wp512 module makes
 * them; 0: the algorithm's own length).
 */
static int hash_algo(const char *name, unsigned *dlen)
{
  static const struct {
    const char *kernel;
    int algo;
    unsigned dlen;
  } map[] = {
      {"sha1", GCRY_MD_SHA1, 0},         {"sha224", GCRY_MD_SHA224, 0},
      {"sha256", GCRY_MD_SHA256, 0},     {"sha384", GCRY_MD_SHA384, 0},
      {"sha512", GCRY_MD_SHA512, 0},     {"md5", GCRY_MD_MD5, 0},
      {"rmd160", GCRY_MD_RMD160, 0},     {"ripemd160", GCRY_MD_RMD160, 0},
      {"wp512", GCRY_MD_WHIRLPOOL, 0},   {"whirlpool", GCRY_MD_WHIRLPOOL, 0},
      {"wp384", GCRY_MD_WHIRLPOOL, 48},  {"wp256", GCRY_MD_WHIRLPOOL, 32},
      {"sm3", GCRY_MD_SM3, 0},           {"streebog256", GCRY_MD_STRIBOG256, 0},
      {"streebog512", GCRY_MD_STRIBOG512, 0}, {"sha3-256", GCRY_MD_SHA3_256, 0},
      {"sha3-512", GCRY_MD_SHA3_512, 0},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(map[i].kernel, name) == 0) {
      *dlen = map[i].dlen ? map[i].dlen : gcry_md_get_algo_dlen(map[i].algo);
      return map[i].algo;
    }
  return 0;
}

/* ---- table parsing ---- */

static bool is_pow2(unsigned v)
{
  return v && !(v & (v - 1));
}

static unsigned ilog2u(unsigned v)
{
  unsigned l = 0;
  while (v >>= 1)
    l++;
  return l;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Overwrite key text we were handed, as the kernel does with its copy. */
static void scrub_text(char *s)
{
  if (!s)
    return;
  volatile char *v = s;
  while (*v)
    *v++ = '0';
}

/*
 * Key size from the table's key word: hex digits, "-" (no key), or a key
 * reference ":<size>:<type>:<description>".
 */
static int parse_key_size(struct udm_target *ti, const char *key, unsigned *size)
{
  if (strcmp(key, "-") == 0) {
    *size = 0;
    return 0;
  }
  if (key[0] == ':') {
    char *end;
    unsigned long v = strtoul(key + 1, &end, 10);
    if (end == key + 1 || *end != ':' || v == 0 || v > MAX_KEY_BYTES) {
      udm_target_error(ti, "cannot parse key size in key reference "
                           "(expected ':<size>:<type>:<description>')");
      return -EINVAL;
    }
    *size = (unsigned)v;
    return 0;
  }
  size_t n = strlen(key);
  if (n % 2 || n / 2 > MAX_KEY_BYTES) {
    udm_target_error(ti, "invalid key: %zu hex digits (an even number up to %u is "
                         "required)", n, 2 * MAX_KEY_BYTES);
    return -EINVAL;
  }
  for (size_t i = 0; i < n; i++)
    if (hexval(key[i]) < 0) {
      udm_target_error(ti, "invalid key: character %zu is not a hex digit", i + 1);
      return -EINVAL;
    }
  *size = (unsigned)(n / 2);
  return 0;
}

/*
 * Resolve a key reference "<type>:<description>" through udm's key source:
 * the file <keys-dir>/<description> (the context's keys-dir setting), holding
 * exactly key_size raw bytes.
 * (udm has no kernel keyring to ask; see docs/crypt.md.)
 */
static int load_key_ref(struct udm_target *ti, struct crypt *cc, const char *ref,
                        uint8_t *out)
{
  const char *colon = strchr(ref, ':');
  if (!colon || colon == ref || !colon[1]) {
    udm_target_error(ti, "invalid key reference: expected ':<size>:<type>:<description>'");
    return -EINVAL;
  }
  size_t tlen = (size_t)(colon - ref);
  if (!((tlen == 5 && strncmp(ref, "logon", 5) == 0) ||
        (tlen == 4 && strncmp(ref, "user", 4) == 0))) {
    udm_target_error(ti, "unsupported key type '%.*s' in key reference "
                         "(udm supports 'logon' and 'user')", (int)tlen, ref);
    return -EINVAL;
  }
  const char *desc = colon + 1;
  if (strchr(desc, '/') || desc[0] == '.') {
    udm_target_error(ti, "invalid key description '%s' (no '/' and no leading '.')", desc);
    return -EINVAL;
  }
  char *dir = NULL;
  if (udm_target_get_option(ti, "keys-dir", &dir) < 0)
    return -ENOMEM;
  if (!dir) {
    udm_target_error(ti, "key reference '%s' needs a key directory (the context's "
                         "keys-dir setting, UDM_KEYS_DIR by default: a directory of raw "
                         "key files)", desc);
    return -ERR_NO_KEY;
  }
  size_t plen = strlen(dir) + strlen(desc) + 2;
  char *path = malloc(plen);
  if (!path) {
    free(dir);
    return -ENOMEM;
  }
  snprintf(path, plen, "%s/%s", dir, desc);
  free(dir);
  int checked = udm_target_check_file(ti, path);
  FILE *f = checked < 0 ? NULL : fopen(path, "rbe");
  free(path);
  if (checked < 0)
    return checked;
  if (!f) {
    udm_target_error(ti, "key '%s' not found in the key directory", desc);
    return -ERR_NO_KEY;
  }
  setvbuf(f, NULL, _IONBF, 0); /* no stdio copy of the key */
  size_t got = fread(out, 1, cc->key_size, f);
  int extra = fgetc(f);
  fclose(f);
  if (got != cc->key_size || extra != EOF) {
    wipe(out, cc->key_size);
    udm_target_error(ti, "key '%s' does not hold exactly %u bytes", desc, cc->key_size);
    return -EINVAL;
  }
  return 0;
}

static int parse_options(struct udm_target *ti, struct crypt *cc, struct udm_arg_set *as)
{
  static const struct udm_arg count_arg = {0, 8, "invalid number of feature arguments"};
  unsigned n;
  int r = udm_read_arg_group(as, &count_arg, &n, ti);
  if (r < 0)
    return r;
  while (n--) {
    const char *opt = udm_shift_arg(as);
    if (!strcasecmp(opt, "allow_discards"))
      cc->opts |= OPT_ALLOW_DISCARDS;
    else if (!strcasecmp(opt, "same_cpu_crypt"))
      cc->opts |= OPT_SAME_CPU;
    else if (!strcasecmp(opt, "submit_from_crypt_cpus"))
      cc->opts |= OPT_SUBMIT_FROM_CPUS;
    else if (!strcasecmp(opt, "no_read_workqueue"))
      cc->opts |= OPT_NO_READ_WQ;
    else if (!strcasecmp(opt, "no_write_workqueue"))
      cc->opts |= OPT_NO_WRITE_WQ;
    else if (!strcasecmp(opt, "iv_large_sectors"))
      cc->opts |= OPT_IV_LARGE_SECTORS;
    else if (!strncasecmp(opt, "sector_size:", 12)) {
      unsigned v;
      if (udm_parse_uint(opt + 12, &v) < 0 || v < 512 || v > 4096 || !is_pow2(v)) {
        udm_target_error(ti, "invalid sector_size '%s': a power of two from 512 to 4096",
                         opt + 12);
        return -EINVAL;
      }
      if (ti->len & ((v >> SECTOR_SHIFT) - 1)) {
        udm_target_error(ti, "device size %llu is not a multiple of sector_size %u",
                         (unsigned long long)ti->len, v);
        return -EINVAL;
      }
      cc->sector_size = v;
      cc->sector_shift = ilog2u(v) - SECTOR_SHIFT;
    } else if (!strncasecmp(opt, "integrity:", 10)) {
      udm_target_error(ti, "'%s': authenticated encryption (integrity) is not supported "
                           "by udm", opt);
      return -EOPNOTSUPP;
    } else {
      udm_target_error(ti, "invalid feature argument '%s'", opt);
      return -EINVAL;
    }
  }
  if (as->argc) {
    udm_target_error(ti, "unexpected argument '%s' after the optional parameters",
                     as->argv[0]);
    return -EINVAL;
  }
  return 0;
}

static int parse_ivmode(struct udm_target *ti, struct crypt *cc, const char *ivmode,
                        const char *ivopts)
{
  if (!ivmode) {
    cc->iv = IV_NONE;
  } else if (!strcmp(ivmode, "plain")) {
    cc->iv = IV_PLAIN;
  } else if (!strcmp(ivmode, "plain64")) {
    cc->iv = IV_PLAIN64;
  } else if (!strcmp(ivmode, "plain64be")) {
    cc->iv = IV_PLAIN64BE;
  } else if (!strcmp(ivmode, "essiv")) {
    cc->iv = IV_ESSIV;
    if (!ivopts || !*ivopts) {
      udm_target_error(ti, "digest algorithm missing for ESSIV mode (e.g. essiv:sha256)");
      return -EINVAL;
    }
    cc->essiv_hash = hash_algo(ivopts, &cc->essiv_dlen);
    if (!cc->essiv_hash) {
      udm_target_error(ti, "unknown ESSIV hash '%s'", ivopts);
      return -EINVAL;
    }
  } else if (!strcmp(ivmode, "benbi")) {
    cc->iv = IV_BENBI;
  } else if (!strcmp(ivmode, "null")) {
    cc->iv = IV_NULL;
  } else if (!strcmp(ivmode, "eboiv")) {
    cc->iv = IV_EBOIV;
  } else if (!strcmp(ivmode, "lmk")) {
    cc->iv = IV_LMK;
  } else if (!strcmp(ivmode, "tcw")) {
    cc->iv = IV_TCW;
  } else if (!strcmp(ivmode, "random") || !strcmp(ivmode, "elephant")) {
    udm_target_error(ti, "IV mode '%s' is not implemented by udm", ivmode);
    return -EOPNOTSUPP;
  } else {
    udm_target_error(ti, "invalid IV mode '%s'", ivmode);
    return -EINVAL;
  }
  return 0;
}

static int parse_chain(struct udm_target *ti, struct crypt *cc, const char *chain)
{
  if (!strcmp(chain, "ecb"))
    cc->chain = CHAIN_ECB;
  else if (!strcmp(chain, "cbc"))
    cc->chain = CHAIN_CBC;
  else if (!strcmp(chain, "xts"))
    cc->chain = CHAIN_XTS;
  else if (!strcmp(chain, "lrw"))
    cc->chain = CHAIN_LRW;
  else {
    udm_target_error(ti, "unsupported chaining mode '%s' (udm supports ecb, cbc, xts, lrw)",
                     chain);
    return -EOPNOTSUPP;
  }
  return 0;
}

/*
 * Split the cipher specification, either the legacy
 *   cipher[:keycount]-chainmode-ivmode[:ivopts]
 * or the crypto API form
 *   capi:chainmode(cipher)-ivmode[:ivopts]
 * into cc fields; *cipher_out names the block cipher.
 */
static int parse_cipher_spec(struct udm_target *ti, struct crypt *cc, char *spec,
                             char **cipher_out)
{
  char *ivmode = NULL, *ivopts = NULL, *cipher, *chain;
  int r;
  cc->tfms_count = 1;
  if (!strncmp(spec, "capi:", 5)) {
    char *api = spec + 5;
    ivopts = strrchr(api, ':');
    if (ivopts)
      *ivopts++ = '\0';
    ivmode = strrchr(api, '-');
    if (ivmode)
      *ivmode++ = '\0';
    char *open = strchr(api, '('), *close = strrchr(api, ')');
    if (!open || !close || close[1] || close < open || strchr(open + 1, '(')) {
      udm_target_error(ti, "unsupported crypto API cipher '%s' (udm supports "
                           "capi:<mode>(<cipher>)-<ivmode>)", api);
      return -EOPNOTSUPP;
    }
    *open = '\0';
    *close = '\0';
    chain = api;
    cipher = open + 1;
    if (ivmode && !strcmp(ivmode, "lmk"))
      cc->tfms_count = 64;
  } else {
    if (strchr(spec, '(')) {
      udm_target_error(ti, "bad cipher specification '%s'", spec);
      return -EINVAL;
    }
    char *tmp = spec;
    char *keycount = strsep(&tmp, "-");
    cipher = strsep(&keycount, ":");
    if (keycount) {
      if (udm_parse_uint(keycount, &cc->tfms_count) < 0 || !is_pow2(cc->tfms_count) ||
          cc->tfms_count > MAX_TFMS) {
        udm_target_error(ti, "bad cipher key count '%s' (a power of two up to %u)",
                         keycount, MAX_TFMS);
        return -EINVAL;
      }
    }
    chain = strsep(&tmp, "-");
    ivmode = strsep(&tmp, ":");
    ivopts = tmp;
    if (!chain || (!strcmp(chain, "plain") && !ivmode)) {
      chain = "cbc";
      ivmode = "plain";
    }
    if (strcmp(chain, "ecb") && !ivmode) {
      udm_target_error(ti, "IV mechanism required for chaining mode '%s'", chain);
      return -EINVAL;
    }
  }
  cc->key_parts = cc->tfms_count;
  *cipher_out = cipher;
  if (!strcmp(cipher, "cipher_null")) {
    cc->cipher_null = true;
    cc->chain = CHAIN_ECB;
    cc->iv = IV_NONE;
    return 0;
  }
  r = parse_chain(ti, cc, chain);
  if (r < 0)
    return r;
  return parse_ivmode(ti, cc, cc->chain == CHAIN_ECB ? NULL : ivmode, ivopts);
}

/* ---- keys into handles ---- */

static int handle_setkey(gcry_cipher_hd_t hd, const uint8_t *key, size_t len)
{
  return gcry_cipher_setkey(hd, key, len) ? -EINVAL : 0;
}

/* Program every slot's handles and the derived IV material from secret->key. */
static int apply_key(struct crypt *cc)
{
  struct crypt_secret *s = cc->secret;
  unsigned sk = cc->subkey_size;
  if (cc->cipher_null)
    return 0;
  for (unsigned t = 0; t < cc->tfms_count; t++) {
    const uint8_t *k = s->key + (size_t)t * sk;
    unsigned data_len = cc->chain == CHAIN_LRW ? sk - 16 : sk;
    uint8_t salt[64];
    unsigned salt_len = 0;
    if (cc->iv == IV_ESSIV) {
      /* A secure context: the key passes through the hash's block buffer. */
      gcry_md_hd_t md;
      salt_len = cc->essiv_dlen;
      if (gcry_md_open(&md, cc->essiv_hash, GCRY_MD_FLAG_SECURE))
        return -ENOMEM;
      gcry_md_write(md, k, sk);
      memcpy(salt, gcry_md_read(md, cc->essiv_hash), salt_len);
      gcry_md_close(md);
    }
    if (cc->chain == CHAIN_LRW) {
      udm_gf128_load(&s->lrw_key[t], k + sk - 16);
      struct udm_gf128 ones = {0, 0};
      for (unsigned i = 0; i < 128; i++) {
        if (i < 64)
          ones.lo |= (uint64_t)1 << i;
        else
          ones.hi |= (uint64_t)1 << (i - 64);
        udm_gf128_mul(&s->lrw_inc[t][i], &s->lrw_key[t], &ones);
      }
    }
    for (unsigned i = 0; i < cc->nslots; i++) {
      struct crypt_slot *sl = &cc->slots[i];
      if (handle_setkey(sl->hd[t], k, data_len) < 0)
        return -EINVAL;
      if (cc->iv == IV_ESSIV && handle_setkey(sl->essiv[t], salt, salt_len) < 0) {
        wipe(salt, sizeof salt);
        return -EINVAL;
      }
      if (cc->iv == IV_EBOIV && t == 0 && handle_setkey(sl->eboiv, k, data_len) < 0)
        return -EINVAL;
    }
    wipe(salt, sizeof salt);
  }
  if (cc->accel)
    udm_xts_accel_setkey(s->accel, s->key, cc->key_size);
  if (cc->iv == IV_LMK && cc->key_extra_size)
    memcpy(s->lmk_seed, s->key + (size_t)cc->tfms_count * sk, 16);
  if (cc->iv == IV_TCW) {
    unsigned off = cc->key_size - cc->iv_size - TCW_WHITENING_SIZE;
    memcpy(s->tcw_iv_seed, s->key + off, cc->iv_size);
    memcpy(s->tcw_whitening, s->key + off + cc->iv_size, TCW_WHITENING_SIZE);
  }
  return 0;
}

/* Make every handle useless and forget derived material (key wipe). */
static void wipe_key(struct crypt *cc)
{
  struct crypt_secret *s = cc->secret;
  atomic_store(&cc->key_valid, false);
  gcry_randomize(s->key, cc->key_size, GCRY_STRONG_RANDOM);
  (void)apply_key(cc);
  wipe(s->key, cc->key_size);
  wipe(s->lmk_seed, sizeof s->lmk_seed);
  wipe(s->tcw_iv_seed, sizeof s->tcw_iv_seed);
  wipe(s->tcw_whitening, sizeof s->tcw_whitening);
  wipe(s->lrw_key, sizeof s->lrw_key);
  if (s->accel)
    wipe(s->accel, udm_xts_accel_size());
  if (s->lrw_inc)
    wipe(s->lrw_inc, (size_t)cc->tfms_count * sizeof s->lrw_inc[0]);
  free(cc->key_ref);
  cc->key_ref = NULL;
}

/* Decode and install KEY (hex, "-" or a key reference). */
static int set_key(struct udm_target *ti, struct crypt *cc, const char *key)
{
  int r;
  char *ref = NULL;
  if (key[0] == ':') {
    const char *p = strchr(key + 1, ':');
    ref = strdup(p ? p + 1 : "");
    if (!ref)
      return -ENOMEM;
    r = load_key_ref(ti, cc, ref, cc->secret->key);
    if (r < 0) {
      free(ref);
      return r;
    }
  } else if (cc->key_size) {
    for (unsigned i = 0; i < cc->key_size; i++)
      cc->secret->key[i] = (uint8_t)(hexval(key[2 * i]) << 4 | hexval(key[2 * i + 1]));
  }
  r = apply_key(cc);
  if (r < 0) {
    free(ref);
    udm_target_error(ti, "error setting key: the cipher rejected the key");
    return r;
  }
  free(cc->key_ref);
  cc->key_ref = ref;
  atomic_store(&cc->key_valid, true);
  return 0;
}

/* ---- construction ---- */

static int open_cipher(struct udm_target *ti, gcry_cipher_hd_t *hd, int algo, int mode)
{
  gcry_error_t e = gcry_cipher_open(hd, algo, mode, GCRY_CIPHER_SECURE);
  if (e) {
    udm_target_error(ti, "cannot allocate cipher %s: %s", gcry_cipher_algo_name(algo),
                     gcry_strerror(e));
    return -ENOMEM;
  }
  return 0;
}

static int slots_init(struct udm_target *ti, struct crypt *cc)
{
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned n = cpus > 0 ? (unsigned)cpus * 4 : 16;
  if (n < 16)
    n = 16;
  if (n > 128)
    n = 128;
  if (cc->tfms_count > 1 && n > 32)
    n = 32;
  cc->slots = calloc(n, sizeof *cc->slots);
  if (!cc->slots)
    return -ENOMEM;
  int mode = cc->chain == CHAIN_CBC ? GCRY_CIPHER_MODE_CBC
             : cc->chain == CHAIN_XTS ? GCRY_CIPHER_MODE_XTS
                                      : GCRY_CIPHER_MODE_ECB;
  for (unsigned i = 0; i < n; i++) {
    struct crypt_slot *sl = &cc->slots[i];
    pthread_mutex_init(&sl->lock, NULL);
    cc->nslots = i + 1;
    if (cc->cipher_null)
      continue;
    for (unsigned t = 0; t < cc->tfms_count; t++) {
      int r = open_cipher(ti, &sl->hd[t], cc->algo, mode);
      if (r == 0 && cc->iv == IV_ESSIV)
        r = open_cipher(ti, &sl->essiv[t], cc->essiv_algo, GCRY_CIPHER_MODE_ECB);
      if (r < 0)
        return r;
    }
    if (cc->iv == IV_EBOIV) {
      int r = open_cipher(ti, &sl->eboiv, cc->algo, GCRY_CIPHER_MODE_ECB);
      if (r < 0)
        return r;
    }
    if (cc->chain == CHAIN_LRW) {
      sl->lrw_tweaks = malloc(cc->sector_size);
      if (!sl->lrw_tweaks)
        return -ENOMEM;
    }
  }
  return 0;
}

/* Check the cipher, chaining mode, IV mode and key size fit together. */
static int check_cipher(struct udm_target *ti, struct crypt *cc, const char *cipher)
{
  if (cc->cipher_null) {
    cc->subkey_size = 0;
    return 0;
  }
  const struct cipher_name *cn = find_cipher(cipher);
  if (!cn) {
    udm_target_error(ti, "unknown cipher '%s' (udm supports aes, twofish, serpent, "
                         "camellia, cast5, blowfish, des3_ede, des, sm4, cipher_null)",
                     cipher);
    return -ENOENT;
  }
  int any_algo = cn->algo[0];
  cc->block_size = (unsigned)gcry_cipher_get_algo_blklen(any_algo);
  cc->iv_size = cc->chain == CHAIN_ECB ? 0 : cc->block_size;
  if (cc->iv_size && cc->iv_size < 8)
    cc->iv_size = 8;
  if ((cc->chain == CHAIN_XTS || cc->chain == CHAIN_LRW) && cc->block_size != 16) {
    udm_target_error(ti, "%s needs a 128-bit block cipher; %s has %u-bit blocks",
                     cc->chain == CHAIN_XTS ? "xts" : "lrw", cipher, cc->block_size * 8);
    return -EINVAL;
  }

  /* Key layout, as dm-crypt: [subkey x tfms_count][extra key material]. */
  switch (cc->iv) {
  case IV_LMK:
    if (cc->chain != CHAIN_CBC || cc->block_size != 16) {
      udm_target_error(ti, "lmk needs cbc with a 128-bit block cipher");
      return -EINVAL;
    }
    if (cc->sector_size != 512) {
      udm_target_error(ti, "unsupported sector size %u for LMK", cc->sector_size);
      return -EINVAL;
    }
    if (cc->key_size % cc->key_parts) { /* version 3: a seed follows the keys */
      cc->key_parts++;
      cc->key_extra_size = cc->key_size / cc->key_parts;
    }
    break;
  case IV_TCW:
    if (cc->chain != CHAIN_CBC) {
      udm_target_error(ti, "tcw needs cbc");
      return -EINVAL;
    }
    if (cc->sector_size != 512) {
      udm_target_error(ti, "unsupported sector size %u for TCW", cc->sector_size);
      return -EINVAL;
    }
    cc->key_parts += 2;
    cc->key_extra_size = cc->iv_size + TCW_WHITENING_SIZE;
    if (cc->key_size <= cc->key_extra_size) {
      udm_target_error(ti, "wrong key size %u for TCW", cc->key_size);
      return -EINVAL;
    }
    break;
  case IV_EBOIV:
    if (cc->chain != CHAIN_CBC) {
      udm_target_error(ti, "eboiv is supported with cbc only");
      return -EOPNOTSUPP;
    }
    break;
  case IV_BENBI:
    if (cc->block_size > 512) {
      udm_target_error(ti, "cipher block size is > 512");
      return -EINVAL;
    }
    break;
  default:
    break;
  }
  unsigned data_keys = cc->key_size - cc->key_extra_size;
  if (data_keys % cc->tfms_count) {
    udm_target_error(ti, "key of %u bytes cannot be split into %u keys", cc->key_size,
                     cc->tfms_count);
    return -EINVAL;
  }
  cc->subkey_size = data_keys / cc->tfms_count;
  unsigned cipher_key = cc->subkey_size;
  if (cc->chain == CHAIN_XTS)
    cipher_key = cc->subkey_size % 2 ? 0 : cc->subkey_size / 2;
  else if (cc->chain == CHAIN_LRW)
    cipher_key = cc->subkey_size > 16 ? cc->subkey_size - 16 : 0;
  cc->algo = cipher_algo(cn, cipher_key);
  if (!cc->algo) {
    char lens[32];
    key_lengths_text(cn, lens, sizeof lens);
    udm_target_error(ti, "invalid key size: %u bytes give a %u-bit %s key; %s takes "
                         "%s-bit keys%s", cc->key_size, cipher_key * 8, cipher, cipher,
                     lens,
                     cc->chain == CHAIN_XTS ? " (xts: twice that)"
                     : cc->chain == CHAIN_LRW ? " (lrw: plus 128 bits)" : "");
    return -EINVAL;
  }
  if (cc->iv == IV_ESSIV) {
    unsigned dlen = cc->essiv_dlen;
    cc->essiv_algo = cipher_algo(cn, dlen);
    if (!cc->essiv_algo) {
      udm_target_error(ti, "ESSIV: a %u-bit digest is not a valid %s key", dlen * 8,
                       cipher);
      return -EINVAL;
    }
  }
  return 0;
}

/*
 * True when one libgcrypt XTS handle can do a whole run of crypt sectors
 * after a single setiv: one key (so every sector uses the same handle) and
 * a plain/plain64 IV that grows by one per crypt sector.  libgcrypt's XTS
 * mode increments its 128-bit little-endian tweak after every data unit
 * (documented in its manual), which is exactly the next sector's IV until
 * the IV wraps; crypt_run() sets it again there.
 */
static bool xts_counting_ok(const struct crypt *cc)
{
  return !cc->cipher_null && cc->chain == CHAIN_XTS && cc->tfms_count == 1 &&
         (cc->iv == IV_PLAIN64 || cc->iv == IV_PLAIN) &&
         (cc->sector_size == 512 || (cc->opts & OPT_IV_LARGE_SECTORS));
}

/*
 * True when xts_accel can do the runs: XTS counting runs (above) with AES
 * and a 256- or 512-bit key, on a CPU that has the instructions, and the
 * context's crypt-accel setting allows it.  The
 * libgcrypt handles are still made and keyed, so nothing else changes.
 */
static bool accel_ok(struct udm_target *ti, const struct crypt *cc)
{
  char *on = NULL;
  bool allowed = udm_target_get_option(ti, "crypt-accel", &on) == 0 && on &&
                 strcmp(on, "1") == 0;
  free(on);
  return allowed && cc->xts_counting && (cc->algo == GCRY_CIPHER_AES128 || cc->algo == GCRY_CIPHER_AES256) &&
         udm_xts_accel_usable(cc->key_size);
}

static void crypt_dtr(struct udm_target *ti);

/*
 * Construct an encryption mapping:
 *   <cipher> <key> <iv_offset> <dev> <offset> [<#opt_params> <opt_params>...]
 * cipher: cipher[:keycount]-chainmode-ivmode[:ivopts] or capi:mode(cipher)-ivmode
 * key: hex, "-" for none, or ":<size>:<logon|user>:<description>"
 * opt_params: allow_discards same_cpu_crypt submit_from_crypt_cpus
 *   no_read_workqueue no_write_workqueue sector_size:<bytes> iv_large_sectors
 */
static int crypt_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc < 5) {
    udm_target_error(ti, "not enough arguments: expected '<cipher> <key> <iv_offset> "
                         "<dev> <offset> [<#opt_params> <opt_params>...]'");
    return -EINVAL;
  }
  if (!crypt_gcrypt_init()) {
    udm_target_error(ti, "libgcrypt failed to initialise");
    return -ENOSYS;
  }
  struct crypt *cc = calloc(1, sizeof *cc);
  if (!cc)
    return -ENOMEM;
  ti->private = cc;
  cc->sector_size = 512;
  int r = parse_key_size(ti, argv[1], &cc->key_size);
  if (r < 0)
    goto fail;
  if (argc > 5) {
    struct udm_arg_set as = {argc - 5, argv + 5};
    r = parse_options(ti, cc, &as);
    if (r < 0)
      goto fail;
  }
  cc->cipher_string = strdup(argv[0]);
  char *spec = strdup(argv[0]);
  if (!cc->cipher_string || !spec) {
    free(spec);
    r = -ENOMEM;
    goto fail;
  }
  char *cipher;
  r = parse_cipher_spec(ti, cc, spec, &cipher);
  if (r == 0)
    r = check_cipher(ti, cc, cipher);
  free(spec);
  if (r < 0)
    goto fail;
  if (!cc->cipher_null && cc->key_size == 0) {
    udm_target_error(ti, "cipher %s needs a key ('-' means no key)", argv[0]);
    r = -EINVAL;
    goto fail;
  }
  if (ti->begin & ((cc->sector_size >> SECTOR_SHIFT) - 1)) {
    udm_target_error(ti, "segment start %llu is not aligned to sector_size %u",
                     (unsigned long long)ti->begin, cc->sector_size);
    r = -EINVAL;
    goto fail;
  }
  cc->xts_counting = xts_counting_ok(cc);
  cc->accel = accel_ok(ti, cc);
  cc->secret = secret_alloc(cc->key_size, cc->tfms_count, cc->chain == CHAIN_LRW, cc->accel);
  if (!cc->secret) {
    r = -ENOMEM;
    goto fail;
  }
  r = slots_init(ti, cc);
  if (r < 0)
    goto fail;
  r = set_key(ti, cc, argv[1]);
  if (r < 0)
    goto fail;
  if (udm_parse_u64(argv[2], &cc->iv_offset) < 0 ||
      (cc->iv_offset & ((cc->sector_size >> SECTOR_SHIFT) - 1))) {
    udm_target_error(ti, "invalid iv_offset sector '%s'", argv[2]);
    r = -EINVAL;
    goto fail;
  }
  if (udm_parse_u64(argv[4], &cc->start) < 0) {
    udm_target_error(ti, "invalid device sector '%s'", argv[4]);
    r = -EINVAL;
    goto fail;
  }
  r = udm_get_device(ti, argv[3], UDM_DEV_READ | UDM_DEV_WRITE, &cc->dev);
  if (r < 0)
    goto fail;
  ti->num_flush_ios = 1;
  ti->num_discard_ios = (cc->opts & OPT_ALLOW_DISCARDS) ? 1 : 0;
  ti->num_write_zeroes_ios = 0; /* zeros must be encrypted: the core writes them */
  ti->per_io_size = sizeof(struct crypt_io);
  r = workers_init(ti, cc);
  if (r < 0)
    goto fail;
  scrub_text(argv[1]);
  return 0;
fail:
  scrub_text(argv[1]);
  return r;
}

static void crypt_dtr(struct udm_target *ti)
{
  struct crypt *cc = ti->private;
  if (!cc)
    return;
  for (unsigned i = 0; i < cc->nslots; i++) {
    struct crypt_slot *sl = &cc->slots[i];
    for (unsigned t = 0; t < MAX_TFMS; t++) {
      if (sl->hd[t])
        gcry_cipher_close(sl->hd[t]); /* libgcrypt wipes the key schedule */
      if (sl->essiv[t])
        gcry_cipher_close(sl->essiv[t]);
    }
    if (sl->eboiv)
      gcry_cipher_close(sl->eboiv);
    if (sl->lrw_tweaks) {
      wipe(sl->lrw_tweaks, cc->sector_size);
      free(sl->lrw_tweaks);
    }
    pthread_mutex_destroy(&sl->lock);
  }
  free(cc->slots);
  for (unsigned i = 0; i < cc->nworkers; i++)
    udm_worker_destroy(cc->workers[i]);
  for (unsigned i = 0; i < cc->nbounce_free; i++)
    free(cc->bounce_free[i]);
  free(cc->bounce_free);
  if (cc->bounce_lock_ready)
    pthread_mutex_destroy(&cc->bounce_lock);
  secret_free(cc->secret);
  if (cc->dev)
    udm_put_device(ti, cc->dev);
  free(cc->cipher_string);
  free(cc->key_ref);
  free(cc);
  ti->private = NULL;
}

/* ---- the per-sector transform ---- */

/*
 * The first free slot, so that only as many slots as there are concurrent
 * requests ever get a bounce buffer; all busy: wait on one, round robin.
 */
static struct crypt_slot *slot_get(struct crypt *cc)
{
  for (unsigned i = 0; i < cc->nslots; i++) {
    struct crypt_slot *sl = &cc->slots[i];
    if (pthread_mutex_trylock(&sl->lock) == 0)
      return sl;
  }
  unsigned next = atomic_fetch_add_explicit(&cc->next_slot, 1, memory_order_relaxed);
  struct crypt_slot *sl = &cc->slots[next % cc->nslots];
  pthread_mutex_lock(&sl->lock);
  return sl;
}

static void slot_put(struct crypt_slot *sl)
{
  pthread_mutex_unlock(&sl->lock);
}

static void put_le64(uint8_t *p, uint64_t v)
{
  for (unsigned i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
  for (unsigned i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void xor_bytes(uint8_t *d, const uint8_t *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    d[i] ^= s[i];
}

/* LMK IV: raw MD5 state over [seed] + plaintext blocks 1..31 + sector tail. */
static void lmk_iv(const struct crypt *cc, const uint8_t *plain, uint64_t iv_sector,
                   uint8_t iv[16])
{
  uint8_t msg[LMK_SEED_SIZE + 496 + 16];
  size_t n = 0;
  if (cc->key_extra_size) {
    memcpy(msg, cc->secret->lmk_seed, LMK_SEED_SIZE);
    n = LMK_SEED_SIZE;
  }
  memcpy(msg + n, plain + 16, 496);
  n += 496;
  uint32_t w[4] = {
      (uint32_t)(iv_sector & 0xffffffffu),
      (uint32_t)(((iv_sector >> 32) & 0x00ffffffu) | 0x80000000u),
      4024,
      0,
  };
  for (unsigned i = 0; i < 4; i++)
    for (unsigned b = 0; b < 4; b++)
      msg[n + 4 * i + b] = (uint8_t)(w[i] >> (8 * b));
  n += 16;
  uint32_t h[4];
  udm_md5_init(h);
  for (size_t off = 0; off + 64 <= n; off += 64) /* no padding, by design */
    udm_md5_block(h, msg + off);
  udm_md5_state_bytes(h, iv);
  wipe(msg, sizeof msg);
}

/* TCW whitening: 8 bytes derived from the whitening key, applied sector-wide. */
static void tcw_whiten(const struct crypt *cc, uint8_t *data, uint64_t iv_sector)
{
  uint8_t buf[TCW_WHITENING_SIZE], sec[8];
  put_le64(sec, iv_sector);
  memcpy(buf, cc->secret->tcw_whitening, TCW_WHITENING_SIZE);
  xor_bytes(buf, sec, 8);
  xor_bytes(buf + 8, sec, 8);
  for (unsigned i = 0; i < 4; i++) {
    uint32_t c = udm_crc32_le_raw(0, buf + 4 * i, 4);
    for (unsigned b = 0; b < 4; b++)
      buf[4 * i + b] = (uint8_t)(c >> (8 * b));
  }
  xor_bytes(buf, buf + 12, 4);
  xor_bytes(buf + 4, buf + 8, 4);
  for (unsigned i = 0; i < 512 / 8; i++)
    xor_bytes(data + 8 * i, buf, 8);
  wipe(buf, sizeof buf);
}

/* LRW: data ^= T_j for each block j, T_j = K2 * (I + j). */
static void lrw_xor_tweaks(const struct crypt *cc, struct crypt_slot *sl, unsigned t,
                           const uint8_t iv[16], uint8_t *data, size_t len, bool compute)
{
  uint8_t *tw = sl->lrw_tweaks;
  size_t nblocks = len / 16;
  if (compute) {
    struct udm_gf128 idx, cur;
    udm_gf128_load(&idx, iv);
    udm_gf128_mul(&cur, &cc->secret->lrw_key[t], &idx);
    for (size_t j = 0; j < nblocks; j++) {
      udm_gf128_store(&cur, tw + 16 * j);
      unsigned k = idx.lo == UINT64_MAX ? 64 + (unsigned)__builtin_ctzll(~idx.hi)
                                        : (unsigned)__builtin_ctzll(~idx.lo);
      if (k > 127)
        k = 127;
      cur.hi ^= cc->secret->lrw_inc[t][k].hi;
      cur.lo ^= cc->secret->lrw_inc[t][k].lo;
      if (++idx.lo == 0)
        idx.hi++;
    }
  }
  xor_bytes(data, tw, nblocks * 16);
}

/*
 * Encrypt (out from in) or decrypt (in place: out == in) one crypt sector of
 * cc->sector_size bytes whose position is cc_sector (512-byte units, iv_offset
 * included).
 */
static int crypt_one(struct crypt *cc, struct crypt_slot *sl, uint8_t *out,
                     const uint8_t *in, uint64_t cc_sector, bool encrypt)
{
  size_t len = cc->sector_size;
  if (cc->cipher_null) {
    if (out != in)
      memcpy(out, in, len);
    return 0;
  }
  unsigned t = (unsigned)(cc_sector & (cc->tfms_count - 1));
  uint64_t iv_sector = cc_sector;
  if (cc->opts & OPT_IV_LARGE_SECTORS)
    iv_sector >>= cc->sector_shift;
  gcry_cipher_hd_t hd = sl->hd[t];
  uint8_t iv[32] = {0};
  gcry_error_t e = 0;

  switch (cc->iv) {
  case IV_NONE:
  case IV_NULL:
    break;
  case IV_PLAIN:
    put_le64(iv, iv_sector & 0xffffffffu);
    break;
  case IV_PLAIN64:
    put_le64(iv, iv_sector);
    break;
  case IV_PLAIN64BE:
    put_be64(iv + cc->iv_size - 8, iv_sector);
    break;
  case IV_ESSIV:
    put_le64(iv, iv_sector);
    e = gcry_cipher_encrypt(sl->essiv[t], iv, cc->iv_size, NULL, 0);
    break;
  case IV_BENBI:
    put_be64(iv + cc->iv_size - 8,
             (iv_sector << (SECTOR_SHIFT - ilog2u(cc->block_size))) + 1);
    break;
  case IV_EBOIV:
    put_le64(iv, iv_sector * cc->sector_size);
    e = gcry_cipher_encrypt(sl->eboiv, iv, cc->iv_size, NULL, 0);
    break;
  case IV_LMK:
    if (encrypt)
      lmk_iv(cc, in, iv_sector, iv); /* reads: IV zero, fixed up below */
    break;
  case IV_TCW:
    if (!encrypt)
      tcw_whiten(cc, out, iv_sector);
    {
      uint8_t sec[8];
      put_le64(sec, iv_sector);
      memcpy(iv, cc->secret->tcw_iv_seed, cc->iv_size);
      xor_bytes(iv, sec, 8);
      if (cc->iv_size > 8)
        xor_bytes(iv + 8, sec, cc->iv_size - 8 < 8 ? cc->iv_size - 8 : 8);
    }
    break;
  }
  if (e)
    return -EIO;

  switch (cc->chain) {
  case CHAIN_CBC:
  case CHAIN_XTS:
    e = gcry_cipher_setiv(hd, iv, cc->iv_size);
    if (!e)
      e = encrypt ? gcry_cipher_encrypt(hd, out, len, in, len)
                  : gcry_cipher_decrypt(hd, out, len, NULL, 0);
    break;
  case CHAIN_ECB:
    e = encrypt ? gcry_cipher_encrypt(hd, out, len, in, len)
                : gcry_cipher_decrypt(hd, out, len, NULL, 0);
    break;
  case CHAIN_LRW:
    if (out != in)
      memcpy(out, in, len);
    lrw_xor_tweaks(cc, sl, t, iv, out, len, true);
    e = encrypt ? gcry_cipher_encrypt(hd, out, len, NULL, 0)
                : gcry_cipher_decrypt(hd, out, len, NULL, 0);
    lrw_xor_tweaks(cc, sl, t, iv, out, len, false);
    break;
  }
  if (e)
    return -EIO;

  if (cc->iv == IV_LMK && !encrypt) {
    lmk_iv(cc, out, iv_sector, iv);
    xor_bytes(out, iv, 16);
  } else if (cc->iv == IV_TCW && encrypt) {
    tcw_whiten(cc, out, iv_sector);
  }
  wipe(iv, sizeof iv);
  return 0;
}

/*
 * Encrypt (out from in) or decrypt (in place: out == in) nr_sectors 512-byte
 * sectors, a whole number of crypt sectors, the first at cc_sector (512-byte
 * units, iv_offset included).
 */
static int crypt_run(struct crypt *cc, struct crypt_slot *sl, uint8_t *out,
                     const uint8_t *in, uint64_t nr_sectors, uint64_t cc_sector,
                     bool encrypt)
{
  uint64_t step = cc->sector_size >> SECTOR_SHIFT;
  if (!cc->xts_counting) {
    for (uint64_t s = 0; s < nr_sectors; s += step) {
      int r = crypt_one(cc, sl, out + (s << SECTOR_SHIFT), in + (s << SECTOR_SHIFT),
                        cc_sector + s, encrypt);
      if (r < 0)
        return r;
    }
    return 0;
  }
  /*
   * With libgcrypt, one call per crypt sector is the floor: libgcrypt 1.10
   * has no multi-data-unit XTS call and no bulk ECB path, and computing the
   * tweaks here around one bulk call over the whole run measured no faster
   * (see docs/benchmarks.md, crypt).  So AES runs go to xts_accel where the
   * CPU allows.  The IV is a public sector number.
   */
  gcry_cipher_hd_t hd = sl->hd[0];
  size_t len = cc->sector_size;
  uint64_t iv_mask = cc->iv == IV_PLAIN ? 0xffffffffu : UINT64_MAX;
  uint64_t iv_sector = cc_sector;
  if (cc->opts & OPT_IV_LARGE_SECTORS)
    iv_sector >>= cc->sector_shift;
  if (cc->accel) {
    uint64_t units = nr_sectors / step;
    while (units > 0) {
      /* Up to where the IV wraps (plain: 2^32; plain64 wraps inside xts_accel). */
      uint64_t iv = iv_sector & iv_mask;
      uint64_t n = iv_mask == UINT64_MAX || iv_mask - iv >= units ? units : iv_mask - iv + 1;
      udm_xts_accel_run(cc->secret->accel, out, in, n, len, iv, encrypt);
      out += n * len;
      in += n * len;
      iv_sector += n;
      units -= n;
    }
    return 0;
  }
  for (uint64_t s = 0; s < nr_sectors; s += step, iv_sector++) {
    gcry_error_t e = 0;
    if (s == 0 || (iv_sector & iv_mask) == 0) { /* first, or the IV wrapped */
      uint8_t iv[16] = {0};
      put_le64(iv, iv_sector & iv_mask);
      e = gcry_cipher_setiv(hd, iv, sizeof iv);
    }
    size_t at = (size_t)s << SECTOR_SHIFT;
    if (!e)
      e = encrypt ? gcry_cipher_encrypt(hd, out + at, len, in + at, len)
                  : gcry_cipher_decrypt(hd, out + at, len, NULL, 0);
    if (e)
      return -EIO;
  }
  return 0;
}

/* ---- requests: asynchronous, spread over the workers when large ---- */

static uint8_t *bounce_get(struct crypt *cc, size_t len)
{
  if (len > BOUNCE_BYTES)
    return malloc(len);
  uint8_t *b = NULL;
  pthread_mutex_lock(&cc->bounce_lock);
  if (cc->nbounce_free)
    b = cc->bounce_free[--cc->nbounce_free];
  pthread_mutex_unlock(&cc->bounce_lock);
  return b ? b : malloc(BOUNCE_BYTES);
}

/* Ciphertext only: kept or freed without wiping. */
static void bounce_put(struct crypt *cc, uint8_t *b, size_t len)
{
  if (!b)
    return;
  if (len <= BOUNCE_BYTES) {
    pthread_mutex_lock(&cc->bounce_lock);
    if (cc->nbounce_free < cc->nslots) {
      cc->bounce_free[cc->nbounce_free++] = b;
      b = NULL;
    }
    pthread_mutex_unlock(&cc->bounce_lock);
  }
  free(b);
}

static int workers_init(struct udm_target *ti, struct crypt *cc)
{
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned n = cpus < 1 ? 1 : cpus > (long)MAX_WORKERS ? MAX_WORKERS : (unsigned)cpus;
  if (pthread_mutex_init(&cc->bounce_lock, NULL) != 0)
    return -ENOMEM;
  cc->bounce_lock_ready = true;
  if (!(cc->bounce_free = calloc(cc->nslots ? cc->nslots : 1, sizeof *cc->bounce_free)))
    return -ENOMEM;
  for (unsigned i = 0; i < n; i++) {
    int r = udm_worker_create(ti, &cc->workers[i]);
    if (r < 0) {
      udm_target_error(ti, "cannot start a crypt worker thread");
      return r;
    }
    cc->nworkers = i + 1;
  }
  return 0;
}

/* En/decrypt sectors [first, first+n) of the request. */
static int crypt_io_transform(struct crypt_io *cio, uint64_t first, uint64_t n)
{
  struct crypt *cc = cio->cc;
  bool encrypt = cio->io->op == UDM_OP_WRITE;
  uint8_t *in = (uint8_t *)cio->io->buf + (first << SECTOR_SHIFT);
  uint8_t *out = encrypt ? cio->bounce + (first << SECTOR_SHIFT) : in;
  struct crypt_slot *sl = slot_get(cc);
  int r = crypt_run(cc, sl, out, in, n, cio->off + first + cc->iv_offset, encrypt);
  slot_put(sl);
  return r;
}

static void crypt_write_done(struct udm_io *child, int err)
{
  struct crypt_io *cio = (struct crypt_io *)((char *)child - offsetof(struct crypt_io, child));
  bounce_put(cio->cc, cio->bounce, cio->bounce_len);
  udm_io_complete(cio->io, err);
}

/* The request's data is transformed (or failed): pass it on or finish it. */
static void crypt_io_transformed(struct crypt_io *cio)
{
  struct udm_io *io = cio->io;
  int err = atomic_load(&cio->err);
  free(cio->chunks);
  cio->chunks = NULL;
  if (io->op == UDM_OP_READ || err < 0) {
    if (io->op == UDM_OP_WRITE)
      bounce_put(cio->cc, cio->bounce, cio->bounce_len);
    udm_io_complete(io, err);
    return;
  }
  cio->child = (struct udm_io){
      .op = UDM_OP_WRITE,
      .flags = io->flags,
      .sector = cio->cc->start + cio->off,
      .nr_sectors = io->nr_sectors,
      .buf = cio->bounce,
      .end_io = crypt_write_done,
  };
  udm_dev_submit_async(cio->cc->dev, &cio->child);
}

static void crypt_chunk_run(struct udm_work *work)
{
  struct crypt_chunk *ch = (struct crypt_chunk *)work;
  struct crypt_io *cio = ch->cio;
  int r = crypt_io_transform(cio, ch->first, ch->n);
  int zero = 0;
  if (r < 0)
    atomic_compare_exchange_strong(&cio->err, &zero, r);
  if (atomic_fetch_sub(&cio->chunks_left, 1) == 1)
    crypt_io_transformed(cio);
}

/*
 * Transform the whole request: here when it is small (or the table says
 * no_read_workqueue / no_write_workqueue), else on the workers, in up to one
 * chunk per worker (one worker with same_cpu_crypt), so that a large
 * request uses every core as dm-crypt's does.
 */
static void crypt_io_transform_all(struct crypt_io *cio, bool inline_ok)
{
  struct crypt *cc = cio->cc;
  uint64_t sectors = cio->io->nr_sectors;
  uint64_t bytes = sectors << SECTOR_SHIFT;
  atomic_init(&cio->err, 0);
  if (inline_ok || bytes <= INLINE_BYTES || cc->cipher_null) {
    int r = crypt_io_transform(cio, 0, sectors);
    atomic_store(&cio->err, r < 0 ? r : 0);
    crypt_io_transformed(cio);
    return;
  }
  uint64_t k = bytes / CHUNK_BYTES;
  if (k > cc->nworkers)
    k = cc->nworkers;
  if (k < 1 || (cc->opts & OPT_SAME_CPU))
    k = 1;
  uint64_t step = cc->sector_size >> SECTOR_SHIFT;
  uint64_t units = sectors / step, per = units / k;
  if (!(cio->chunks = calloc(k, sizeof *cio->chunks))) {
    atomic_store(&cio->err, -ENOMEM);
    crypt_io_transformed(cio);
    return;
  }
  atomic_init(&cio->chunks_left, (unsigned)k);
  unsigned w0 = atomic_fetch_add_explicit(&cc->next_worker, 1, memory_order_relaxed);
  for (uint64_t c = 0, first = 0; c < k; c++) {
    uint64_t n = (c + 1 == k ? units - c * per : per) * step;
    cio->chunks[c] = (struct crypt_chunk){
        .work = {.fn = crypt_chunk_run}, .cio = cio, .first = first, .n = n};
    first += n;
  }
  /* The array is freed by the last chunk to finish, which is queued last. */
  struct crypt_chunk *chunks = cio->chunks;
  for (uint64_t c = 0; c < k; c++)
    udm_worker_queue(cc->workers[(w0 + c) % cc->nworkers], &chunks[c].work);
}

static void crypt_read_done(struct udm_io *child, int err)
{
  struct crypt_io *cio = (struct crypt_io *)((char *)child - offsetof(struct crypt_io, child));
  if (err < 0) {
    udm_io_complete(cio->io, err);
    return;
  }
  crypt_io_transform_all(cio, cio->cc->opts & OPT_NO_READ_WQ);
}

static int crypt_map(struct udm_target *ti, struct udm_io *io)
{
  struct crypt *cc = ti->private;
  if (io->op == UDM_OP_FLUSH || io->op == UDM_OP_DISCARD)
    return udm_remap(ti, io, cc->dev, cc->start);
  if (io->op != UDM_OP_READ && io->op != UDM_OP_WRITE)
    return -EOPNOTSUPP;
  if (!atomic_load(&cc->key_valid))
    return -EIO;
  uint64_t mask = (cc->sector_size >> SECTOR_SHIFT) - 1;
  if ((io->sector & mask) || (io->nr_sectors & mask))
    return -EIO; /* as the kernel: requests must cover whole crypt sectors */
  struct crypt_io *cio = io->per_io;
  cio->io = io;
  cio->cc = cc;
  cio->off = udm_target_offset(ti, io->sector);
  if (io->op == UDM_OP_READ) {
    cio->child = (struct udm_io){
        .op = UDM_OP_READ,
        .flags = io->flags,
        .sector = cc->start + cio->off,
        .nr_sectors = io->nr_sectors,
        .buf = io->buf,
        .end_io = crypt_read_done,
    };
    udm_dev_submit_async(cc->dev, &cio->child);
    return UDM_MAPIO_SUBMITTED;
  }
  cio->bounce_len = io->nr_sectors << SECTOR_SHIFT;
  if (!(cio->bounce = bounce_get(cc, cio->bounce_len)))
    return -ENOMEM;
  crypt_io_transform_all(cio, cc->opts & OPT_NO_WRITE_WQ);
  return UDM_MAPIO_SUBMITTED;
}

/* ---- status, messages, suspend ---- */

static void crypt_status(struct udm_target *ti, enum udm_status_type type,
                         unsigned flags, struct udm_buf *out)
{
  struct crypt *cc = ti->private;
  if (type == UDM_STATUS_IMA) {
    /* dm-crypt's measurement: options, cipher and key sizes, never the key. */
    udm_target_ima_header(ti, out);
    udm_buf_printf(out, ",allow_discards=%c", cc->opts & OPT_ALLOW_DISCARDS ? 'y' : 'n');
    udm_buf_printf(out, ",same_cpu_crypt=%c", cc->opts & OPT_SAME_CPU ? 'y' : 'n');
    /* The kernel's high_priority option is refused by udm: always n. */
    udm_buf_puts(out, ",high_priority=n");
    udm_buf_printf(out, ",submit_from_crypt_cpus=%c",
                   cc->opts & OPT_SUBMIT_FROM_CPUS ? 'y' : 'n');
    udm_buf_printf(out, ",no_read_workqueue=%c", cc->opts & OPT_NO_READ_WQ ? 'y' : 'n');
    udm_buf_printf(out, ",no_write_workqueue=%c", cc->opts & OPT_NO_WRITE_WQ ? 'y' : 'n');
    udm_buf_printf(out, ",iv_large_sectors=%c",
                   cc->opts & OPT_IV_LARGE_SECTORS ? 'y' : 'n');
    /* No integrity_tag_size/cipher_auth: udm refuses integrity: tables. */
    if (cc->sector_size != 512)
      udm_buf_printf(out, ",sector_size=%u", cc->sector_size);
    udm_buf_printf(out, ",cipher_string=%s", cc->cipher_string);
    /* key_mac_size is 0: there is no authenticated mode (integrity:). */
    udm_buf_printf(out, ",key_size=%u,key_parts=%u,key_extra_size=%u,key_mac_size=0;",
                   cc->key_size, cc->key_parts, cc->key_extra_size);
    return;
  }
  if (type != UDM_STATUS_TABLE)
    return; /* INFO is empty, as the kernel's */
  udm_buf_printf(out, "%s ", cc->cipher_string);
  if (cc->key_size == 0) {
    udm_buf_puts(out, "-");
  } else if (cc->key_ref) {
    udm_buf_printf(out, ":%u:%s", cc->key_size, cc->key_ref);
  } else {
    /* Hidden keys print as zeros of the same length, as dmsetup does. */
    static const char hex[] = "0123456789abcdef";
    bool show = (flags & UDM_TABLE_SHOWKEYS) && atomic_load(&cc->key_valid);
    char pair[3] = {0};
    for (unsigned i = 0; i < cc->key_size; i++) {
      uint8_t b = show ? cc->secret->key[i] : 0;
      pair[0] = hex[b >> 4];
      pair[1] = hex[b & 15];
      udm_buf_puts(out, pair);
    }
    wipe(pair, sizeof pair);
  }
  udm_buf_printf(out, " %llu %s %llu", (unsigned long long)cc->iv_offset,
                 udm_dev_name(cc->dev), (unsigned long long)cc->start);
  unsigned n = __builtin_popcount(cc->opts) + (cc->sector_size != 512);
  if (!n)
    return;
  udm_buf_printf(out, " %u", n);
  if (cc->opts & OPT_ALLOW_DISCARDS)
    udm_buf_puts(out, " allow_discards");
  if (cc->opts & OPT_SAME_CPU)
    udm_buf_puts(out, " same_cpu_crypt");
  if (cc->opts & OPT_SUBMIT_FROM_CPUS)
    udm_buf_puts(out, " submit_from_crypt_cpus");
  if (cc->opts & OPT_NO_READ_WQ)
    udm_buf_puts(out, " no_read_workqueue");
  if (cc->opts & OPT_NO_WRITE_WQ)
    udm_buf_puts(out, " no_write_workqueue");
  if (cc->sector_size != 512)
    udm_buf_printf(out, " sector_size:%u", cc->sector_size);
  if (cc->opts & OPT_IV_LARGE_SECTORS)
    udm_buf_puts(out, " iv_large_sectors");
}

/*
 * Messages (only while suspended, as dm-crypt requires):
 *   key set <key>   install a key of the same size (hex or key reference)
 *   key wipe        forget the key; the device cannot resume until key set
 */
static int crypt_message(struct udm_target *ti, unsigned argc, char **argv,
                         struct udm_buf *out)
{
  struct crypt *cc = ti->private;
  (void)out;
  if (argc >= 2 && !strcasecmp(argv[0], "key")) {
    if (!atomic_load(&cc->suspended)) {
      if (argc == 3)
        scrub_text(argv[2]);
      udm_target_error(ti, "the device must be suspended for key manipulation");
      return -EINVAL;
    }
    if (argc == 3 && !strcasecmp(argv[1], "set")) {
      unsigned size;
      int r = parse_key_size(ti, argv[2], &size);
      if (r == 0 && size != cc->key_size) {
        udm_target_error(ti, "key size %u differs from the table's key size %u", size,
                         cc->key_size);
        r = -EINVAL;
      }
      if (r == 0)
        r = set_key(ti, cc, argv[2]);
      scrub_text(argv[2]);
      return r;
    }
    if (argc == 2 && !strcasecmp(argv[1], "wipe")) {
      wipe_key(cc);
      return 0;
    }
  }
  udm_target_error(ti, "unrecognised message (expected 'key set <key>' or 'key wipe')");
  return -EINVAL;
}

static void crypt_postsuspend(struct udm_target *ti)
{
  struct crypt *cc = ti->private;
  atomic_store(&cc->suspended, true);
}

static int crypt_preresume(struct udm_target *ti)
{
  struct crypt *cc = ti->private;
  if (!atomic_load(&cc->key_valid)) {
    udm_target_error(ti, "aborting resume: the crypt key is not set (use 'key set')");
    return -EAGAIN;
  }
  return 0;
}

static void crypt_resume(struct udm_target *ti)
{
  struct crypt *cc = ti->private;
  atomic_store(&cc->suspended, false);
}

static int crypt_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                 void *data)
{
  struct crypt *cc = ti->private;
  return fn(ti, cc->dev, cc->start, ti->len, data);
}

/* The device's logical block size is at least a crypt sector (dm-crypt's io_hints). */
static void crypt_io_hints(struct udm_target *ti, struct udm_limits *limits)
{
  struct crypt *cc = ti->private;
  if (cc->sector_size > limits->logical_block_size)
    limits->logical_block_size = cc->sector_size;
}

const struct udm_target_type udm_target_type_crypt = {
    UDM_TARGET_TYPE_INIT,
    .name = "crypt",
    .version = {1, 24, 0},
    .ctr = crypt_ctr,
    .dtr = crypt_dtr,
    .map = crypt_map,
    .status = crypt_status,
    .message = crypt_message,
    .iterate_devices = crypt_iterate_devices,
    .postsuspend = crypt_postsuspend,
    .preresume = crypt_preresume,
    .resume = crypt_resume,
    .io_hints = crypt_io_hints,
};
