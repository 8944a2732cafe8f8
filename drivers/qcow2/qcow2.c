/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2, read-only: versions 2 and 3, zero clusters, compressed clusters
 * (zlib and zstd), extended L2 entries (subclusters) and backing chains.
 * Written from the format specification (qemu's docs/interop/qcow2.txt).
 *
 * Table syntax:  qcow2:PATH[?backing=contained|allow-any|none]
 *                           [&backing-format=raw|qcow2]
 *   backing=contained  (default) every file of the backing chain must lie in
 *                      the directory of PATH or below it (after resolving
 *                      symbolic links): an image cannot make udm read files
 *                      elsewhere on the host.
 *   backing=allow-any  follow backing files anywhere.
 *   backing=none       ignore the backing file: unallocated clusters read as
 *                      zeros.
 *   backing-format=F   the format of a backing file whose image does not
 *                      record one (the format is never guessed).
 * Cycles in the chain are refused, and so are chains deeper than 64.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <udm/driver.h>

#include "../common/blockcache.h"
#include "../common/endian.h"
#include "../common/util.h"

/* ---- on-disk layout (all big-endian) ---- */

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

struct qcow2_header {
  udm_be32 magic;
  udm_be32 version;
  udm_be64 backing_file_offset;
  udm_be32 backing_file_size;
  udm_be32 cluster_bits;
  udm_be64 size;
  udm_be32 crypt_method;
  udm_be32 l1_size;
  udm_be64 l1_table_offset;
  udm_be64 refcount_table_offset;
  udm_be32 refcount_table_clusters;
  udm_be32 nb_snapshots;
  udm_be64 snapshots_offset;
  /* version 3 from here */
  udm_be64 incompatible_features;
  udm_be64 compatible_features;
  udm_be64 autoclear_features;
  udm_be32 refcount_order;
  udm_be32 header_length;
  uint8_t compression_type; /* present when header_length > 104 */
  uint8_t padding[7];
};
_Static_assert(sizeof(struct qcow2_header) == 112, "qcow2 header layout");
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u

struct qcow2_ext_header {
  udm_be32 type;
  udm_be32 len;
};
_Static_assert(sizeof(struct qcow2_ext_header) == 8, "qcow2 extension header");

#define EXT_END 0u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_FEATURE_TABLE 0x6803f857u
#define EXT_CRYPTO 0x0537be77u
#define EXT_DATA_FILE 0x44415441u

/* One entry of the feature name table extension. */
struct qcow2_feature_name {
  uint8_t type; /* 0 incompatible, 1 compatible, 2 autoclear */
  uint8_t bit;
  char name[46];
};
_Static_assert(sizeof(struct qcow2_feature_name) == 48, "qcow2 feature name entry");

#define INCOMPAT_DIRTY 0x1ull
#define INCOMPAT_CORRUPT 0x2ull
#define INCOMPAT_DATA_FILE 0x4ull
#define INCOMPAT_COMPRESSION 0x8ull
#define INCOMPAT_EXTL2 0x10ull
#define INCOMPAT_KNOWN (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | \
                        INCOMPAT_EXTL2)

#define L1_OFFSET_MASK 0x00fffffffffffe00ull
#define L2_OFFSET_MASK 0x00fffffffffffe00ull
#define L2_COMPRESSED (1ull << 62)
#define L2_ZERO 0x1ull

#define COMP_ZLIB 0
#define COMP_ZSTD 1

#define MAX_CHAIN 64
#define L2_CACHE_MAX 64
#define ZCACHE_SLOTS 8

/* ---- in memory ---- */

struct qcow2;

enum backing_kind { BACKING_NONE, BACKING_RAW, BACKING_QCOW2 };

struct qcow2 {
  char *path;
  int fd;
  uint64_t file_size;
  unsigned version;
  unsigned cluster_bits;
  uint64_t cluster_size;
  unsigned l2_bits;       /* log2 of entries per L2 table */
  bool extended_l2;
  unsigned sc_bits;       /* log2 of the subcluster size */
  unsigned compression;
  uint64_t incompat;
  uint64_t size;
  uint32_t l1_size;
  uint64_t *l1;
  char *backing_name;     /* as recorded in the image */
  char *backing_format;   /* as recorded, or from the option */
  enum backing_kind backing_kind;
  int backing_fd;         /* BACKING_RAW */
  uint64_t backing_size;
  struct qcow2 *backing;  /* BACKING_QCOW2 */
  struct udm_blockcache l2_cache;
  struct udm_blockcache z_cache;   /* decompressed clusters */
};

/* Facts shared while a chain is opened. */
struct chain {
  enum { POLICY_CONTAINED, POLICY_ANY, POLICY_NONE } policy;
  const char *backing_format_opt;
  const struct udm_image_options *opts; /* for udm_image_check_file */
  char *root_dir;         /* canonical directory of the top image */
  unsigned depth;
  dev_t devs[MAX_CHAIN + 1];
  ino_t inos[MAX_CHAIN + 1];
  char *names[MAX_CHAIN + 1];
};

static void qcow2_free(struct qcow2 *q);

/* ---- table entries ---- */

/* Where the bytes of a guest range come from. */
enum map_kind { MAP_DATA, MAP_ZERO, MAP_BACKING, MAP_COMPRESSED };

struct mapping {
  enum map_kind kind;
  uint64_t host;  /* MAP_DATA: file offset of the first byte */
  uint64_t desc;  /* MAP_COMPRESSED: the L2 entry */
  uint64_t len;   /* bytes of the guest range this mapping covers */
};

/*
 * Read L2 entry INDEX (and its bitmap) of the table at L2_OFF.  CACHED_ONLY:
 * -EWOULDBLOCK instead of reading a table that is not in the cache.
 */
static int l2_entry(struct qcow2 *q, uint64_t l2_off, uint64_t index, bool cached_only,
                    uint64_t *entry, uint64_t *bitmap)
{
  size_t esz = q->extended_l2 ? 16 : 8;
  uint8_t e[16];
  if (!udm_blockcache_get(&q->l2_cache, l2_off, (size_t)(index * esz), e, esz)) {
    if (cached_only)
      return -EWOULDBLOCK;
    uint8_t *t = malloc(q->cluster_size);
    if (!t)
      return -ENOMEM;
    int r = udm_drv_pread_exact(q->fd, t, q->cluster_size, l2_off);
    if (r < 0) {
      free(t);
      return r;
    }
    memcpy(e, t + index * esz, esz);
    udm_blockcache_put(&q->l2_cache, l2_off, t);
    free(t);
  }
  *entry = be64_at(e);
  *bitmap = q->extended_l2 ? be64_at(e + 8) : 0;
  return 0;
}

/*
 * How the guest range at OFF (at most MAXLEN bytes, inside the image) maps.
 * CACHED_ONLY: -EWOULDBLOCK when that needs an L2 table not in the cache.
 */
static int map_range_from(struct qcow2 *q, uint64_t off, uint64_t maxlen,
                          bool cached_only, struct mapping *m)
{
  uint64_t in_cluster = off & (q->cluster_size - 1);
  uint64_t cluster_left = q->cluster_size - in_cluster;
  uint64_t cluster_index = off >> q->cluster_bits;
  uint64_t l1_index = cluster_index >> q->l2_bits;
  uint64_t l2_index = cluster_index & ((1ull << q->l2_bits) - 1);
  m->len = maxlen < cluster_left ? maxlen : cluster_left;
  m->kind = MAP_BACKING;
  if (l1_index >= q->l1_size)
    return 0;
  uint64_t l2_off = q->l1[l1_index] & L1_OFFSET_MASK;
  if (l2_off == 0)
    return 0; /* the whole L2 range is unallocated */
  uint64_t entry, bitmap;
  int r = l2_entry(q, l2_off, l2_index, cached_only, &entry, &bitmap);
  if (r < 0)
    return r;
  if (entry & L2_COMPRESSED) {
    m->kind = MAP_COMPRESSED;
    m->desc = entry;
    return 0;
  }
  uint64_t host = entry & L2_OFFSET_MASK;
  if (host & (q->cluster_size - 1))
    return -EIO; /* corrupt: a data cluster must be cluster-aligned */
  if (!q->extended_l2) {
    if (entry & L2_ZERO)
      m->kind = MAP_ZERO;
    else if (host) {
      m->kind = MAP_DATA;
      m->host = host + in_cluster;
    }
    return 0;
  }
  /* Subclusters: bit n of the low half says "allocated", of the high "zero". */
  unsigned sc = (unsigned)(in_cluster >> q->sc_bits);
  uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
  if (alloc & zero)
    return -EIO; /* corrupt: a subcluster cannot be both */
  enum map_kind kind = (alloc >> sc & 1) ? MAP_DATA : (zero >> sc & 1) ? MAP_ZERO
                                                                       : MAP_BACKING;
  if (kind == MAP_DATA && !host)
    return -EIO;
  /* Extend over the following subclusters of the same kind. */
  unsigned last = sc;
  while (last + 1 < 32) {
    unsigned n = last + 1;
    enum map_kind k = (alloc >> n & 1) ? MAP_DATA : (zero >> n & 1) ? MAP_ZERO
                                                                    : MAP_BACKING;
    if (k != kind)
      break;
    last = n;
  }
  uint64_t run = ((uint64_t)(last + 1) << q->sc_bits) - in_cluster;
  m->kind = kind;
  m->host = host + in_cluster;
  if (run < m->len)
    m->len = run;
  return 0;
}

static int map_range(struct qcow2 *q, uint64_t off, uint64_t maxlen, struct mapping *m)
{
  return map_range_from(q, off, maxlen, false, m);
}

/* ---- compressed clusters ---- */

static int inflate_raw(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -12) != Z_OK) /* raw deflate, 4 KiB window, as qcow2 writes */
    return -ENOMEM;
  s.next_in = (Bytef *)in;
  s.avail_in = (uInt)in_len;
  s.next_out = out;
  s.avail_out = (uInt)out_len;
  int zr = inflate(&s, Z_FINISH);
  bool full = s.avail_out == 0;
  inflateEnd(&s);
  /* The stored size is rounded up to sectors: trailing bytes are not ours. */
  return (zr == Z_STREAM_END || (zr == Z_BUF_ERROR && full)) && full ? 0 : -EIO;
}

static int unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
  ZSTD_DCtx *d = ZSTD_createDCtx();
  if (!d)
    return -ENOMEM;
  ZSTD_inBuffer ib = {in, in_len, 0};
  ZSTD_outBuffer ob = {out, out_len, 0};
  int r = -EIO;
  while (ob.pos < ob.size) {
    size_t zr = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(zr))
      break;
    if (ob.pos == ob.size) {
      r = 0;
      break;
    }
    if (zr == 0 || ib.pos == ib.size)
      break; /* the frame ended (or the input did) before the cluster did */
  }
  ZSTD_freeDCtx(d);
  return r;
}

/* Decompress the cluster described by L2 entry DESC into OUT (cluster size). */
static int read_compressed(struct qcow2 *q, uint64_t desc, uint8_t *out)
{
  unsigned x = 62 - (q->cluster_bits - 8);
  uint64_t coff = desc & ((1ull << x) - 1);
  uint64_t nsect = ((desc >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
  uint64_t clen = nsect * 512 - (coff & 511);
  if (coff >= q->file_size)
    return -EIO;
  if (clen > q->file_size - coff)
    clen = q->file_size - coff; /* the last compressed cluster may end early */
  uint8_t *in = malloc(clen);
  if (!in)
    return -ENOMEM;
  int r = udm_drv_pread_exact(q->fd, in, clen, coff);
  if (r == 0)
    r = q->compression == COMP_ZSTD ? unzstd(in, clen, out, q->cluster_size)
                                    : inflate_raw(in, clen, out, q->cluster_size);
  free(in);
  return r;
}

static int copy_compressed(struct qcow2 *q, uint64_t desc, uint64_t in_cluster,
                           void *buf, size_t len)
{
  uint64_t key = desc & ~(1ull << 63); /* the "copied" flag does not matter */
  if (udm_blockcache_get(&q->z_cache, key, (size_t)in_cluster, buf, len))
    return 0;
  uint8_t *c = malloc(q->cluster_size);
  if (!c)
    return -ENOMEM;
  int r = read_compressed(q, desc, c);
  if (r == 0) {
    memcpy(buf, c + in_cluster, len);
    udm_blockcache_put(&q->z_cache, key, c);
  }
  free(c);
  return r;
}

/* ---- reading ---- */

static int qcow2_read(struct qcow2 *q, void *buf, size_t len, uint64_t off);

static int read_backing(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t off)
{
  size_t n = 0;
  if (q->backing_kind != BACKING_NONE && off < q->backing_size)
    n = q->backing_size - off < len ? (size_t)(q->backing_size - off) : len;
  if (n < len)
    memset(buf + n, 0, len - n); /* past the end of a shorter backing file */
  if (n == 0)
    return 0;
  if (q->backing_kind == BACKING_RAW)
    return udm_drv_pread_full(q->backing_fd, buf, n, off);
  return qcow2_read(q->backing, buf, n, off);
}

static int read_data(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t host)
{
  /* Only the bytes the guest can see must exist: the cluster holding the
   * last guest sector may be written short.  Anything else past the end of
   * the file is damage (a truncated image), not zeros. */
  if (host > q->file_size || len > q->file_size - host)
    return -EIO;
  return udm_drv_pread_exact(q->fd, buf, len, host);
}

static int qcow2_read(struct qcow2 *q, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;
  /* Contiguous data runs are merged into one pread. */
  uint8_t *pend_buf = NULL;
  uint64_t pend_host = 0;
  size_t pend_len = 0;
  int r = 0;
  while (len > 0) {
    struct mapping m = {0};
    r = map_range(q, off, len, &m);
    if (r < 0)
      break;
    if (pend_len && !(m.kind == MAP_DATA && m.host == pend_host + pend_len)) {
      r = read_data(q, pend_buf, pend_len, pend_host);
      pend_len = 0;
      if (r < 0)
        break;
    }
    switch (m.kind) {
    case MAP_DATA:
      if (!pend_len) {
        pend_buf = p;
        pend_host = m.host;
      }
      pend_len += (size_t)m.len;
      break;
    case MAP_ZERO:
      memset(p, 0, (size_t)m.len);
      break;
    case MAP_BACKING:
      r = read_backing(q, p, (size_t)m.len, off);
      break;
    case MAP_COMPRESSED:
      r = copy_compressed(q, m.desc, off & (q->cluster_size - 1), p, (size_t)m.len);
      break;
    }
    if (r < 0)
      break;
    p += m.len;
    off += m.len;
    len -= (size_t)m.len;
  }
  if (r == 0 && pend_len)
    r = read_data(q, pend_buf, pend_len, pend_host);
  return r;
}

/* ---- opening ---- */

static const char *feature_name(const uint8_t *ext, size_t ext_len, unsigned bit)
{
  for (size_t i = 0; ext && i + sizeof(struct qcow2_feature_name) <= ext_len;
       i += sizeof(struct qcow2_feature_name)) {
    const struct qcow2_feature_name *f = (const void *)(ext + i);
    if (f->type == 0 && f->bit == bit)
      return f->name;
  }
  return NULL;
}

/* Is canonical PATH inside canonical directory DIR? */
static bool inside(const char *path, const char *dir)
{
  size_t n = strlen(dir);
  if (strcmp(dir, "/") == 0)
    return true;
  return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static int qcow2_open_chain(const char *path, struct chain *ch, struct qcow2 **out,
                            char **errmsg);

/* Open the backing file of Q named in its header. */
static int open_backing(struct qcow2 *q, struct chain *ch, char **errmsg)
{
  const char *name = q->backing_name;
  if (ch->policy == POLICY_NONE)
    return 0;
  /* qemu protocol names ("nbd:...", "json:{...}") are not files. */
  bool protocol = strncmp(name, "json:", 5) == 0 ||
                  (strchr(name, ':') && !strchr(name, '/'));
  if (protocol) {
    *errmsg = udm_drv_strf("%s: backing file '%s' is not a plain file name (protocol "
                           "names are not supported)",
                           q->path, name);
    return -EINVAL;
  }
  char *resolved;
  if (name[0] == '/') {
    resolved = strdup(name);
  } else {
    char *d = dir_of(q->path);
    resolved = d ? udm_drv_strf("%s/%s", d, name) : NULL;
    free(d);
  }
  if (!resolved)
    return -ENOMEM;
  /* Not even realpath() of a file in udm's own export (it could wait on us). */
  int checked = udm_image_check_file(ch->opts, resolved, errmsg);
  if (checked < 0) {
    char *why = *errmsg;
    *errmsg = udm_drv_strf("%s: backing file '%s': %s", q->path, name,
                           why ? why : strerror(-checked));
    free(why);
    free(resolved);
    return checked;
  }
  char canon[PATH_MAX];
  if (!realpath(resolved, canon)) {
    int e = errno;
    *errmsg = udm_drv_strf("%s: cannot open backing file '%s' (%s): %s", q->path, name,
                           resolved, strerror(e));
    free(resolved);
    return -e;
  }
  free(resolved);
  if (ch->policy == POLICY_CONTAINED && !inside(canon, ch->root_dir)) {
    *errmsg = udm_drv_strf("%s: backing file '%s' (%s) is outside %s; add "
                           "?backing=allow-any to follow it",
                           q->path, name, canon, ch->root_dir);
    return -EPERM;
  }
  const char *fmt = q->backing_format ? q->backing_format : ch->backing_format_opt;
  if (!fmt) {
    *errmsg = udm_drv_strf("%s: the image does not record the format of its backing "
                           "file '%s'; say it with ?backing-format=raw|qcow2 (udm "
                           "never guesses formats)",
                           q->path, name);
    return -EINVAL;
  }
  if (!q->backing_format && !(q->backing_format = strdup(fmt)))
    return -ENOMEM;
  if (strcmp(fmt, "qcow2") == 0) {
    int r = qcow2_open_chain(canon, ch, &q->backing, errmsg);
    if (r < 0)
      return r;
    q->backing_kind = BACKING_QCOW2;
    q->backing_size = q->backing->size;
    return 0;
  }
  if (strcmp(fmt, "raw") != 0) {
    *errmsg = udm_drv_strf("%s: backing file '%s' has format '%s'; udm's qcow2 reads "
                           "raw and qcow2 backing files",
                           q->path, name, fmt);
    return -ENOTSUP;
  }
  int fd = open(canon, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    *errmsg = udm_drv_strf("%s: cannot open backing file %s: %s", q->path, canon,
                           strerror(e));
    return -e;
  }
  for (unsigned i = 0; i < ch->depth; i++)
    if (ch->devs[i] == st.st_dev && ch->inos[i] == st.st_ino) {
      close(fd);
      *errmsg = udm_drv_strf("%s: backing chain cycle: %s is also an image of the "
                             "chain",
                             q->path, canon);
      return -ELOOP;
    }
  q->backing_kind = BACKING_RAW;
  q->backing_fd = fd;
  q->backing_size = (uint64_t)st.st_size;
  return 0;
}

static int parse_extensions(struct qcow2 *q, const uint8_t *cluster, size_t start,
                            char **errmsg)
{
  const uint8_t *features = NULL;
  size_t features_len = 0;
  size_t pos = start;
  while (pos + sizeof(struct qcow2_ext_header) <= q->cluster_size) {
    const struct qcow2_ext_header *h = (const void *)(cluster + pos);
    uint32_t type = be32_get(h->type), len = be32_get(h->len);
    pos += sizeof *h;
    if (type == EXT_END)
      break;
    if (len > q->cluster_size - pos) {
      *errmsg = udm_drv_strf("%s: header extension 0x%08x is longer than the header "
                             "cluster",
                             q->path, type);
      return -EINVAL;
    }
    const uint8_t *data = cluster + pos;
    switch (type) {
    case EXT_BACKING_FORMAT:
      free(q->backing_format);
      q->backing_format = strndup((const char *)data, len);
      if (!q->backing_format)
        return -ENOMEM;
      break;
    case EXT_FEATURE_TABLE:
      features = data;
      features_len = len;
      break;
    case EXT_CRYPTO:
      *errmsg = udm_drv_strf("%s: the image is encrypted (it has an encryption "
                             "header); udm does not read encrypted qcow2 images",
                             q->path);
      return -ENOTSUP;
    default:
      break; /* unknown extensions are optional by definition */
    }
    pos += (len + 7) & ~(size_t)7;
  }
  uint64_t unknown = q->incompat & ~INCOMPAT_KNOWN;
  if (q->incompat & INCOMPAT_DATA_FILE) {
    *errmsg = udm_drv_strf("%s: the image keeps its data in an external data file, "
                           "which udm does not support",
                           q->path);
    return -ENOTSUP;
  }
  if (unknown) {
    unsigned bit = 0;
    while (!(unknown >> bit & 1))
      bit++;
    const char *name = feature_name(features, features_len, bit);
    char named[64] = "";
    if (name)
      snprintf(named, sizeof named, " (\"%.46s\")", name);
    *errmsg = udm_drv_strf("%s: unknown incompatible feature bit %u%s in the header "
                           "(incompatible features 0x%llx); refusing to read an image "
                           "udm does not understand",
                           q->path, bit, named, (unsigned long long)q->incompat);
    return -ENOTSUP;
  }
  return 0;
}

static int parse_header(struct qcow2 *q, const uint8_t *cluster, size_t got,
                        char **errmsg)
{
  const struct qcow2_header *h = (const void *)cluster;
  if (got < QCOW2_V2_HEADER_LEN || be32_get(h->magic) != QCOW2_MAGIC) {
    *errmsg = udm_drv_strf("%s: not a qcow2 image (%s)", q->path,
                           got < QCOW2_V2_HEADER_LEN ? "shorter than a qcow2 header"
                                                     : "bad magic");
    return -EINVAL;
  }
  q->version = be32_get(h->version);
  if (q->version != 2 && q->version != 3) {
    *errmsg = udm_drv_strf("%s: qcow2 version %u is not supported (2 and 3 are)",
                           q->path, q->version);
    return -ENOTSUP;
  }
  q->cluster_bits = be32_get(h->cluster_bits);
  if (q->cluster_bits < 9 || q->cluster_bits > 21) {
    *errmsg = udm_drv_strf("%s: invalid cluster_bits %u (9 to 21)", q->path,
                           q->cluster_bits);
    return -EINVAL;
  }
  q->cluster_size = 1ull << q->cluster_bits;
  uint32_t crypt = be32_get(h->crypt_method);
  if (crypt) {
    *errmsg = udm_drv_strf("%s: the image is encrypted (%s); udm does not read "
                           "encrypted qcow2 images",
                           q->path, crypt == 1 ? "AES" : crypt == 2 ? "LUKS" : "unknown");
    return -ENOTSUP;
  }
  size_t ext_start = QCOW2_V2_HEADER_LEN;
  if (q->version == 3) {
    uint32_t hlen = be32_get(h->header_length);
    if (got < QCOW2_V3_HEADER_LEN || hlen < QCOW2_V3_HEADER_LEN || hlen % 8 ||
        hlen > q->cluster_size || hlen > got) {
      *errmsg = udm_drv_strf("%s: invalid header length %u", q->path, hlen);
      return -EINVAL;
    }
    ext_start = hlen;
    q->incompat = be64_get(h->incompatible_features);
    if (hlen > QCOW2_V3_HEADER_LEN)
      q->compression = h->compression_type;
    if (q->compression > COMP_ZSTD) {
      *errmsg = udm_drv_strf("%s: unknown compression type %u", q->path, q->compression);
      return -ENOTSUP;
    }
    if (q->compression != COMP_ZLIB && !(q->incompat & INCOMPAT_COMPRESSION)) {
      *errmsg = udm_drv_strf("%s: compression type set without its feature bit", q->path);
      return -EINVAL;
    }
  }
  q->extended_l2 = (q->incompat & INCOMPAT_EXTL2) != 0;
  if (q->extended_l2 && q->cluster_bits < 14) {
    *errmsg = udm_drv_strf("%s: extended L2 entries need clusters of 16 KiB or more",
                           q->path);
    return -EINVAL;
  }
  q->l2_bits = q->cluster_bits - (q->extended_l2 ? 4 : 3);
  q->sc_bits = q->cluster_bits - 5;
  q->size = be64_get(h->size);
  q->l1_size = be32_get(h->l1_size);
  uint64_t l1_off = be64_get(h->l1_table_offset);
  uint64_t per_l1 = q->cluster_size << q->l2_bits; /* guest bytes per L1 entry */
  uint64_t need = q->size / per_l1 + (q->size % per_l1 != 0);
  if (q->l1_size < need || q->l1_size > (32u << 20)) {
    *errmsg = udm_drv_strf("%s: L1 table of %u entries cannot cover the virtual size "
                           "%llu",
                           q->path, q->l1_size, (unsigned long long)q->size);
    return -EINVAL;
  }
  if (q->l1_size && (l1_off & (q->cluster_size - 1) || l1_off >= q->file_size ||
                     (uint64_t)q->l1_size * 8 > q->file_size - l1_off)) {
    *errmsg = udm_drv_strf("%s: L1 table at offset %llu (%u entries) lies outside the "
                           "file (%llu bytes) or is misaligned",
                           q->path, (unsigned long long)l1_off, q->l1_size,
                           (unsigned long long)q->file_size);
    return -EINVAL;
  }
  int r = parse_extensions(q, cluster, ext_start, errmsg);
  if (r < 0)
    return r;
  uint64_t boff = be64_get(h->backing_file_offset);
  uint32_t blen = be32_get(h->backing_file_size);
  if (boff) {
    if (blen == 0 || blen > 1023 || boff > q->cluster_size - blen || boff >= got) {
      *errmsg = udm_drv_strf("%s: backing file name (offset %llu, %u bytes) is not "
                             "inside the header cluster",
                             q->path, (unsigned long long)boff, blen);
      return -EINVAL;
    }
    q->backing_name = strndup((const char *)cluster + boff, blen);
    if (!q->backing_name)
      return -ENOMEM;
  }
  /* L1: every entry must name a cluster-aligned L2 table inside the file. */
  q->l1 = calloc(q->l1_size ? q->l1_size : 1, sizeof *q->l1);
  uint8_t *raw = malloc(q->l1_size ? (size_t)q->l1_size * 8 : 1);
  if (!q->l1 || !raw) {
    free(raw);
    return -ENOMEM;
  }
  r = q->l1_size ? udm_drv_pread_exact(q->fd, raw, (size_t)q->l1_size * 8, l1_off) : 0;
  for (uint32_t i = 0; r == 0 && i < q->l1_size; i++) {
    q->l1[i] = be64_at(raw + 8 * (size_t)i);
    uint64_t l2 = q->l1[i] & L1_OFFSET_MASK;
    if (l2 && ((l2 & (q->cluster_size - 1)) || l2 >= q->file_size ||
               q->cluster_size > q->file_size - l2)) {
      *errmsg = udm_drv_strf("%s: L1 table entry %u points to an L2 table at offset "
                             "%llu, %s",
                             q->path, i, (unsigned long long)l2,
                             (l2 & (q->cluster_size - 1))
                                 ? "which is not cluster-aligned"
                                 : "past the end of the file");
      r = -EINVAL;
    }
  }
  free(raw);
  return r;
}

static int qcow2_open_chain(const char *path, struct chain *ch, struct qcow2 **out,
                            char **errmsg)
{
  struct qcow2 *q = calloc(1, sizeof *q);
  if (!q || !(q->path = strdup(path))) {
    free(q);
    return -ENOMEM;
  }
  q->fd = -1;
  q->backing_fd = -1;
  uint8_t *cluster = NULL;
  int r;
  q->fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (q->fd < 0 || fstat(q->fd, &st) < 0) {
    r = -errno;
    *errmsg = udm_drv_strf("cannot open %s: %s", path, strerror(-r));
    goto fail;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    r = -EINVAL;
    *errmsg = udm_drv_strf("%s: not a regular file or block device", path);
    goto fail;
  }
  for (unsigned i = 0; i < ch->depth; i++) {
    if (ch->devs[i] == st.st_dev && ch->inos[i] == st.st_ino) {
      *errmsg = udm_drv_strf("backing chain cycle: %s leads back to %s", ch->names[ch->depth - 1],
                             path);
      r = -ELOOP;
      goto fail;
    }
  }
  if (ch->depth >= MAX_CHAIN) {
    *errmsg = udm_drv_strf("%s: backing chain deeper than %d images", path, MAX_CHAIN);
    r = -ELOOP;
    goto fail;
  }
  ch->devs[ch->depth] = st.st_dev;
  ch->inos[ch->depth] = st.st_ino;
  ch->names[ch->depth] = q->path;
  ch->depth++;
  q->file_size = (uint64_t)st.st_size;
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(q->fd, 0, SEEK_END);
    q->file_size = end > 0 ? (uint64_t)end : 0;
  }
  /* The header, its extensions and the backing name live in the first cluster. */
  size_t first = 1u << 21;
  cluster = calloc(1, first);
  if (!cluster) {
    r = -ENOMEM;
    goto fail;
  }
  size_t got = q->file_size < first ? (size_t)q->file_size : first;
  r = udm_drv_pread_full(q->fd, cluster, got, 0);
  if (r < 0) {
    *errmsg = udm_drv_strf("cannot read %s: %s", path, strerror(-r));
    goto fail;
  }
  r = parse_header(q, cluster, got, errmsg);
  if (r < 0)
    goto fail;
  unsigned l2_slots = (unsigned)((8u << 20) / q->cluster_size);
  l2_slots = l2_slots < 4 ? 4 : l2_slots > L2_CACHE_MAX ? L2_CACHE_MAX : l2_slots;
  if ((r = udm_blockcache_init(&q->l2_cache, l2_slots, q->cluster_size)) < 0 ||
      (r = udm_blockcache_init(&q->z_cache, ZCACHE_SLOTS, q->cluster_size)) < 0)
    goto fail;
  if (q->backing_name && (r = open_backing(q, ch, errmsg)) < 0)
    goto fail;
  free(cluster);
  *out = q;
  return 0;
fail:
  free(cluster);
  qcow2_free(q);
  return r;
}

static void qcow2_free(struct qcow2 *q)
{
  if (!q)
    return;
  if (q->backing)
    qcow2_free(q->backing);
  if (q->backing_fd >= 0)
    close(q->backing_fd);
  if (q->fd >= 0)
    close(q->fd);
  udm_blockcache_free(&q->l2_cache);
  udm_blockcache_free(&q->z_cache);
  free(q->l1);
  free(q->backing_name);
  free(q->backing_format);
  free(q->path);
  free(q);
}

/* ---- the driver ---- */

static int qcow2_probe(const void *header, size_t len)
{
  const uint8_t *h = header;
  if (len < 8 || be32_at(h) != QCOW2_MAGIC)
    return 0;
  uint32_t v = be32_at(h + 4);
  return v == 2 || v == 3 ? 100 : 50;
}

static int qcow2_drv_open(const char *path, const struct udm_image_options *opts,
                          bool writable, void **handle, char **errmsg)
{
  (void)writable; /* read-only driver: the core never asks for writes */
  struct chain ch;
  memset(&ch, 0, sizeof ch);
  ch.opts = opts;
  for (unsigned i = 0; i < opts->count; i++) {
    const char *k = opts->keys[i], *v = opts->values[i];
    if (strcmp(k, "backing") == 0 && strcmp(v, "contained") == 0)
      ch.policy = POLICY_CONTAINED;
    else if (strcmp(k, "backing") == 0 && strcmp(v, "allow-any") == 0)
      ch.policy = POLICY_ANY;
    else if (strcmp(k, "backing") == 0 && strcmp(v, "none") == 0)
      ch.policy = POLICY_NONE;
    else if (strcmp(k, "backing-format") == 0 &&
             (strcmp(v, "raw") == 0 || strcmp(v, "qcow2") == 0))
      ch.backing_format_opt = v;
    else {
      *errmsg = udm_drv_strf("unknown or invalid option '%s=%s' (known: "
                             "backing=contained|allow-any|none, "
                             "backing-format=raw|qcow2)",
                             k, v);
      return -EINVAL;
    }
  }
  char canon[PATH_MAX];
  if (!realpath(path, canon)) {
    int e = errno;
    *errmsg = udm_drv_strf("cannot open %s: %s", path, strerror(e));
    return -e;
  }
  ch.root_dir = dir_of(canon);
  if (!ch.root_dir)
    return -ENOMEM;
  struct qcow2 *q;
  int r = qcow2_open_chain(canon, &ch, &q, errmsg);
  free(ch.root_dir);
  if (r == 0)
    *handle = q;
  return r;
}

static void qcow2_drv_close(void *handle)
{
  qcow2_free(handle);
}

static uint64_t qcow2_drv_size(void *handle)
{
  return ((struct qcow2 *)handle)->size;
}

static int qcow2_drv_pread(void *handle, void *buf, size_t len, uint64_t off)
{
  struct qcow2 *q = handle;
  if (off > q->size || len > q->size - off)
    return -EIO;
  return qcow2_read(q, buf, len, off);
}

/*
 * Asynchronous reads (driver API 2): when every cluster of the request is
 * data or zeros and its L2 table is cached, the data runs are read through
 * the core's engine and the request completes from there.  Anything else
 * (an L2 miss, a compressed cluster, the backing file) is declined and runs
 * qcow2_drv_pread on the core's pool, which also fills the L2 cache.
 */
struct qcow2_aio {
  atomic_uint pending; /* runs in flight, +1 while submitting */
  atomic_int err;
};

static void qcow2_aio_put(struct udm_image_req *req, struct qcow2_aio *a)
{
  if (atomic_fetch_sub(&a->pending, 1) == 1) {
    int err = atomic_load(&a->err);
    free(a);
    udm_image_req_complete(req, err);
  }
}

static void qcow2_aio_run_done(struct udm_image_req *req, void *opaque, int res)
{
  struct qcow2_aio *a = opaque;
  int none = 0;
  if (res < 0)
    atomic_compare_exchange_strong(&a->err, &none, res);
  qcow2_aio_put(req, a);
}

struct run {
  uint8_t *buf;
  uint64_t host;
  size_t len;
};

static int qcow2_drv_aio(void *handle, struct udm_image_req *req)
{
  struct qcow2 *q = handle;
  if (req->op != UDM_OP_READ)
    return -EWOULDBLOCK;
  if (req->off > q->size || req->len > q->size - req->off)
    return -EIO;
  /* Plan with cached lookups only, so that a decline has started nothing. */
  size_t max_runs = (size_t)(req->len >> q->sc_bits) + 2;
  struct run small[8], *runs = max_runs <= 8 ? small : malloc(max_runs * sizeof *runs);
  if (!runs)
    return -EWOULDBLOCK;
  size_t n = 0;
  uint8_t *p = req->buf;
  uint64_t off = req->off;
  size_t len = req->len;
  int r = 0;
  while (len > 0 && r == 0) {
    struct mapping m;
    r = map_range_from(q, off, len, true, &m);
    if (r < 0)
      break;
    bool from_backing = m.kind == MAP_BACKING && q->backing_kind != BACKING_NONE &&
                        off < q->backing_size;
    if (m.kind == MAP_COMPRESSED || from_backing) {
      r = -EWOULDBLOCK; /* CPU work or another image: the pool's */
      break;
    }
    switch (m.kind) {
    case MAP_DATA:
      if (m.host > q->file_size || m.len > q->file_size - m.host) {
        r = -EWOULDBLOCK; /* damage: the blocking path reports it */
        break;
      }
      if (n && runs[n - 1].host + runs[n - 1].len == m.host)
        runs[n - 1].len += (size_t)m.len;
      else
        runs[n++] = (struct run){p, m.host, (size_t)m.len};
      break;
    case MAP_ZERO:
    case MAP_BACKING: /* no backing data here: zeros */
      memset(p, 0, (size_t)m.len);
      break;
    case MAP_COMPRESSED: /* declined above */
      break;
    }
    p += m.len;
    off += m.len;
    len -= (size_t)m.len;
  }
  struct qcow2_aio *a = r == 0 && n ? malloc(sizeof *a) : NULL;
  if (r == 0 && n && !a)
    r = -EWOULDBLOCK;
  if (r < 0 || n == 0) {
    if (runs != small)
      free(runs);
    if (r < 0)
      return r == -EWOULDBLOCK || r == -EAGAIN ? -EWOULDBLOCK : r;
    udm_image_req_complete(req, 0); /* all zeros */
    return 0;
  }
  atomic_init(&a->pending, (unsigned)n + 1);
  atomic_init(&a->err, 0);
  for (size_t i = 0; i < n; i++)
    udm_image_req_file_io(req, UDM_OP_READ, q->fd, runs[i].buf, runs[i].len,
                          runs[i].host, qcow2_aio_run_done, a);
  if (runs != small)
    free(runs);
  qcow2_aio_put(req, a);
  return 0;
}

static int qcow2_extents(struct qcow2 *q, uint64_t len, uint64_t off,
                         udm_image_extent_fn fn, void *opaque)
{
  uint64_t end = off + len;
  while (off < end) {
    struct mapping m;
    int r = map_range(q, off, end - off, &m);
    if (r < 0)
      return r;
    unsigned flags = 0;
    if (m.kind == MAP_ZERO)
      flags = UDM_EXTENT_ZERO;
    if (m.kind == MAP_BACKING) {
      uint64_t in_backing = off < q->backing_size ? q->backing_size - off : 0;
      if (in_backing > m.len)
        in_backing = m.len;
      if (in_backing && q->backing_kind == BACKING_QCOW2) {
        r = qcow2_extents(q->backing, in_backing, off, fn, opaque);
        if (r)
          return r;
        off += in_backing;
        continue;
      }
      if (!in_backing)
        flags = UDM_EXTENT_HOLE | UDM_EXTENT_ZERO;
      else
        m.len = in_backing; /* raw backing: data */
    }
    r = fn(opaque, off, m.len, flags);
    if (r)
      return r;
    off += m.len;
  }
  return 0;
}

static int qcow2_drv_extents(void *handle, uint64_t len, uint64_t off,
                             udm_image_extent_fn fn, void *opaque)
{
  struct qcow2 *q = handle;
  if (off >= q->size)
    return 0;
  if (len > q->size - off)
    len = q->size - off;
  int r = qcow2_extents(q, len, off, fn, opaque);
  return r > 0 ? 0 : r;
}

static int qcow2_drv_info(void *handle, char **text)
{
  struct qcow2 *q = handle;
  char chain[4096] = "";
  size_t n = 0;
  for (struct qcow2 *b = q; b; b = b->backing) {
    if (!b->backing_name)
      break;
    n += (size_t)snprintf(chain + n, n < sizeof chain ? sizeof chain - n : 0,
                          "Backing file: %s\nBacking format: %s\n", b->backing_name,
                          b->backing_format ? b->backing_format : "(not recorded)");
    if (n >= sizeof chain)
      break;
  }
  *text = udm_drv_strf("Format: qcow2\n"
                       "Version: %u\n"
                       "Virtual size: %llu\n"
                       "Cluster size: %llu\n"
                       "Compression: %s\n"
                       "Extended L2: %s\n"
                       "Dirty: %s\n"
                       "Corrupt flag: %s\n"
                       "%s",
                       q->version, (unsigned long long)q->size,
                       (unsigned long long)q->cluster_size,
                       q->compression == COMP_ZSTD ? "zstd" : "zlib",
                       q->extended_l2 ? "yes" : "no",
                       (q->incompat & INCOMPAT_DIRTY) ? "yes" : "no",
                       (q->incompat & INCOMPAT_CORRUPT) ? "yes" : "no", chain);
  return *text ? 0 : -ENOMEM;
}

/* Walk every L2 table and entry; decompress every compressed cluster. */
static int qcow2_drv_check(void *handle, char **report)
{
  struct qcow2 *q = handle;
  char *out = NULL;
  size_t out_len = 0;
  unsigned problems = 0;
  uint64_t data = 0, zero = 0, compressed = 0;
  FILE *f = open_memstream(&out, &out_len);
  if (!f)
    return -ENOMEM;
  uint8_t *c = malloc(q->cluster_size);
  if (!c) {
    fclose(f);
    free(out);
    return -ENOMEM;
  }
  uint64_t clusters = (q->size + q->cluster_size - 1) >> q->cluster_bits;
  for (uint64_t ci = 0; ci < clusters && problems < 100; ci++) {
    uint64_t l1i = ci >> q->l2_bits;
    uint64_t l2_off = q->l1[l1i] & L1_OFFSET_MASK;
    if (!l2_off) {
      ci = ((l1i + 1) << q->l2_bits) - 1;
      continue;
    }
    uint64_t entry, bitmap;
    int r = l2_entry(q, l2_off, ci & ((1ull << q->l2_bits) - 1), false, &entry,
                     &bitmap);
    if (r < 0) {
      fprintf(f, "cluster %llu: cannot read its L2 table at %llu: %s\n",
              (unsigned long long)ci, (unsigned long long)l2_off, strerror(-r));
      problems++;
      continue;
    }
    if (entry & L2_COMPRESSED) {
      compressed++;
      if (read_compressed(q, entry, c) < 0) {
        fprintf(f, "cluster %llu: compressed data does not decompress to %llu bytes\n",
                (unsigned long long)ci, (unsigned long long)q->cluster_size);
        problems++;
      }
      continue;
    }
    uint64_t host = entry & L2_OFFSET_MASK;
    if (!q->extended_l2 && (entry & L2_ZERO)) {
      zero++;
      continue;
    }
    if (q->extended_l2 && ((uint32_t)bitmap & (uint32_t)(bitmap >> 32))) {
      fprintf(f, "cluster %llu: subclusters marked both allocated and zero\n",
              (unsigned long long)ci);
      problems++;
    }
    if (!host)
      continue;
    data++;
    if ((host & (q->cluster_size - 1)) || host >= q->file_size) {
      fprintf(f, "cluster %llu: data at offset %llu is %s\n", (unsigned long long)ci,
              (unsigned long long)host,
              host >= q->file_size ? "past the end of the file" : "misaligned");
      problems++;
    }
  }
  free(c);
  fprintf(f, "%llu data, %llu zero, %llu compressed clusters; %u problem%s\n",
          (unsigned long long)data, (unsigned long long)zero,
          (unsigned long long)compressed, problems, problems == 1 ? "" : "s");
  fclose(f);
  *report = out;
  return problems ? -EIO : 0;
}

const struct udm_image_driver udm_image_driver_qcow2 = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "qcow2",
    .description = "QEMU copy-on-write v2/v3, read-only (zlib/zstd, backing chains)",
    .probe = qcow2_probe,
    .open = qcow2_drv_open,
    .close = qcow2_drv_close,
    .size = qcow2_drv_size,
    .pread = qcow2_drv_pread,
    .extents = qcow2_drv_extents,
    .info = qcow2_drv_info,
    .check = qcow2_drv_check,
    .aio = qcow2_drv_aio,
};
