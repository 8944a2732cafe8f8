/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udmz, read-only: udm's compressed image with a bad-block map, for disk
 * recovery and archiving (docs/formats/udmz.md).  Chunks are decompressed
 * and checked (stored CRC before decompression, data CRC after) on every
 * cache miss; a checksum mismatch is an I/O error, never silent data.
 *
 * Table syntax:  udmz:PATH        (no options of its own; bad= is the core's)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <udm/driver.h>

#include "../common/blockcache.h"
#include "../common/crc32c.h"
#include "../common/util.h"
#include "udmz_format.h"

#define CHUNK_CACHE_BYTES (16u << 20)
#define DCTX_POOL 8

struct chunk {
  uint64_t offset;
  uint32_t stored_len;
  uint16_t kind;
  uint32_t stored_crc;
  uint32_t data_crc;
};

struct meta {
  char *key;
  char *value;
};

struct udmz {
  char *path;
  int fd;
  uint64_t file_size;
  uint64_t size;
  uint32_t chunk_size;
  unsigned chunk_bits;
  uint32_t lbs, pbs;
  uint64_t nchunks;
  struct chunk *chunks;
  uint64_t nbad;
  uint64_t *bad_off, *bad_len;
  unsigned nmeta;
  struct meta *meta;
  struct udm_blockcache cache;
  /* Decompression contexts reused across reads: creating one per chunk costs
   * more than decompressing a small chunk. */
  pthread_mutex_t dctx_lock;
  ZSTD_DCtx *dctx[DCTX_POOL];
  unsigned ndctx;
  bool accel;  /* the context's crc32c-accel setting */
  struct udm_ctx *ctx; /* the opener's (may be NULL): check's progress */
};

static uint32_t crc_with_zeroed_field(const struct udmz *z, const void *s, size_t len,
                                      size_t crc_off)
{
  uint8_t copy[128];
  memcpy(copy, s, len);
  memset(copy + crc_off, 0, 4);
  return udm_crc32c_with(z->accel, 0, copy, len);
}

/* ---- opening ---- */

static uint32_t chunk_bytes(const struct udmz *z, uint64_t ci)
{
  uint64_t start = ci << z->chunk_bits;
  return z->size - start < z->chunk_size ? (uint32_t)(z->size - start) : z->chunk_size;
}


static int load_table(struct udmz *z, uint64_t off, uint64_t len, uint32_t want,
                      uint32_t kind, const char *what, uint8_t **out, char **errmsg)
{
  if (off < UDMZ_DATA_START || off > z->file_size - sizeof(struct udmz_trailer) ||
      len > z->file_size - sizeof(struct udmz_trailer) - off || len > (1ull << 34)) {
    *errmsg = udm_drv_strf("%s: the %s (offset %llu, %llu bytes) lies outside the file",
                           z->path, what, (unsigned long long)off,
                           (unsigned long long)len);
    return -EINVAL;
  }
  uint8_t *t = malloc(len ? len : 1);
  if (!t)
    return -ENOMEM;
  int r = udm_drv_pread_exact(z->fd, t, len, off);
  if (r < 0) {
    *errmsg = udm_drv_strf("%s: cannot read the %s: %s", z->path, what, strerror(-r));
    free(t);
    return r;
  }
  if ((udm_crc32c_with(z->accel, 0, t, len) ^ kind) != want) {
    *errmsg = udm_drv_strf("%s: checksum mismatch in the %s", z->path, what);
    free(t);
    return -EIO;
  }
  *out = t;
  return 0;
}

static int parse_index(struct udmz *z, const uint8_t *t, char **errmsg)
{
  size_t bound = ZSTD_compressBound(z->chunk_size);
  z->chunks = calloc(z->nchunks ? z->nchunks : 1, sizeof *z->chunks);
  if (!z->chunks)
    return -ENOMEM;
  for (uint64_t i = 0; i < z->nchunks; i++) {
    const struct udmz_index_entry *e = (const void *)(t + i * sizeof *e);
    struct chunk *c = &z->chunks[i];
    c->offset = le64_get(e->offset);
    c->stored_len = le32_get(e->stored_len);
    c->kind = le16_get(e->kind);
    c->stored_crc = le32_get(e->stored_crc);
    c->data_crc = le32_get(e->data_crc);
    const char *bad = NULL;
    if (c->kind > UDMZ_CHUNK_ZSTD)
      bad = "has an unknown kind";
    else if (c->kind == UDMZ_CHUNK_ZERO && c->stored_len)
      bad = "is a zero chunk with stored bytes";
    else if (c->kind == UDMZ_CHUNK_RAW && c->stored_len != chunk_bytes(z, i))
      bad = "is a raw chunk of the wrong length";
    else if (c->kind == UDMZ_CHUNK_ZSTD && (c->stored_len == 0 || c->stored_len > bound))
      bad = "has an impossible compressed length";
    else if (c->kind != UDMZ_CHUNK_ZERO &&
             (c->offset < UDMZ_DATA_START || c->offset > z->file_size ||
              c->stored_len > z->file_size - c->offset))
      bad = "points past the end of the file";
    if (bad) {
      *errmsg = udm_drv_strf("%s: index entry %llu %s", z->path, (unsigned long long)i,
                             bad);
      return -EINVAL;
    }
  }
  return 0;
}

static int parse_badmap(struct udmz *z, const uint8_t *t, char **errmsg)
{
  z->bad_off = calloc(z->nbad ? z->nbad : 1, sizeof *z->bad_off);
  z->bad_len = calloc(z->nbad ? z->nbad : 1, sizeof *z->bad_len);
  if (!z->bad_off || !z->bad_len)
    return -ENOMEM;
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < z->nbad; i++) {
    const struct udmz_bad_range *b = (const void *)(t + i * sizeof *b);
    uint64_t off = le64_get(b->offset), len = le64_get(b->length);
    if (len == 0 || off > z->size || len > z->size - off || (i && off < prev_end)) {
      *errmsg = udm_drv_strf("%s: bad-block range %llu (%llu+%llu) is empty, unsorted, "
                             "overlapping or past the end of the device",
                             z->path, (unsigned long long)i, (unsigned long long)off,
                             (unsigned long long)len);
      return -EINVAL;
    }
    z->bad_off[i] = off;
    z->bad_len[i] = len;
    prev_end = off + len;
  }
  return 0;
}

static int parse_meta(struct udmz *z, const uint8_t *t, uint64_t len, char **errmsg)
{
  /* Two passes: count, then copy. */
  for (int pass = 0; pass < 2; pass++) {
    uint64_t pos = 0;
    unsigned n = 0;
    while (pos < len) {
      if (len - pos < sizeof(struct udmz_meta_entry))
        goto bad;
      const struct udmz_meta_entry *e = (const void *)(t + pos);
      uint64_t kl = le16_get(e->key_len), vl = le32_get(e->value_len);
      pos += sizeof *e;
      if (kl == 0 || kl + vl > len - pos)
        goto bad;
      if (pass == 1) {
        z->meta[n].key = strndup((const char *)t + pos, kl);
        z->meta[n].value = strndup((const char *)t + pos + kl, vl);
        if (!z->meta[n].key || !z->meta[n].value)
          return -ENOMEM;
      }
      pos += kl + vl;
      n++;
    }
    if (pass == 0) {
      z->meta = calloc(n ? n : 1, sizeof *z->meta);
      if (!z->meta)
        return -ENOMEM;
      z->nmeta = n;
    }
  }
  return 0;
bad:
  *errmsg = udm_drv_strf("%s: malformed metadata entry", z->path);
  return -EINVAL;
}

static void udmz_free(struct udmz *z)
{
  if (!z)
    return;
  if (z->fd >= 0)
    close(z->fd);
  udm_blockcache_free(&z->cache);
  for (unsigned i = 0; i < z->ndctx; i++)
    ZSTD_freeDCtx(z->dctx[i]);
  pthread_mutex_destroy(&z->dctx_lock);
  for (unsigned i = 0; z->meta && i < z->nmeta; i++) {
    free(z->meta[i].key);
    free(z->meta[i].value);
  }
  free(z->meta);
  free(z->chunks);
  free(z->bad_off);
  free(z->bad_len);
  free(z->path);
  free(z);
}

static int udmz_open_file(const char *path, bool accel, struct udmz **out, char **errmsg)
{
  struct udmz *z = calloc(1, sizeof *z);
  if (!z || !(z->path = strdup(path))) {
    free(z);
    return -ENOMEM;
  }
  z->accel = accel;
  pthread_mutex_init(&z->dctx_lock, NULL);
  uint8_t *index = NULL, *badmap = NULL, *meta = NULL;
  int r;
  struct stat st;
  z->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (z->fd < 0 || fstat(z->fd, &st) < 0) {
    r = -errno;
    *errmsg = udm_drv_strf("cannot open %s: %s", path, strerror(-r));
    goto fail;
  }
  z->file_size = (uint64_t)st.st_size;
  struct udmz_header h;
  struct udmz_trailer t;
  r = -EINVAL;
  if (z->file_size < UDMZ_DATA_START + sizeof t) {
    *errmsg = udm_drv_strf("%s: too short for a udmz image (%llu bytes; truncated?)",
                           path, (unsigned long long)z->file_size);
    goto fail;
  }
  if ((r = udm_drv_pread_exact(z->fd, &h, sizeof h, 0)) < 0 ||
      (r = udm_drv_pread_exact(z->fd, &t, sizeof t, z->file_size - sizeof t)) < 0) {
    *errmsg = udm_drv_strf("cannot read %s: %s", path, strerror(-r));
    goto fail;
  }
  r = -EINVAL;
  if (memcmp(h.magic, UDMZ_MAGIC, 8) != 0) {
    *errmsg = udm_drv_strf("%s: not a udmz image (bad magic)", path);
    goto fail;
  }
  if (le32_get(h.version) != UDMZ_VERSION || le32_get(h.header_size) != sizeof h) {
    *errmsg = udm_drv_strf("%s: udmz version %u is not supported (this reader knows %u)",
                           path, le32_get(h.version), UDMZ_VERSION);
    r = -ENOTSUP;
    goto fail;
  }
  if ((crc_with_zeroed_field(z, &h, sizeof h, offsetof(struct udmz_header, crc)) ^
       UDMZ_CRC_HEADER) != le32_get(h.crc)) {
    *errmsg = udm_drv_strf("%s: header checksum mismatch", path);
    r = -EIO;
    goto fail;
  }
  if (le32_get(h.incompat_features) & ~UDMZ_INCOMPAT_KNOWN) {
    *errmsg = udm_drv_strf("%s: unknown incompatible features 0x%x", path,
                           le32_get(h.incompat_features));
    r = -ENOTSUP;
    goto fail;
  }
  if (memcmp(t.magic, UDMZ_TRAILER_MAGIC, 8) != 0 ||
      le32_get(t.trailer_size) != sizeof t) {
    *errmsg = udm_drv_strf("%s: no udmz trailer at the end of the file (truncated or "
                           "still being written?)",
                           path);
    goto fail;
  }
  if ((crc_with_zeroed_field(z, &t, sizeof t, offsetof(struct udmz_trailer, crc)) ^
       UDMZ_CRC_TRAILER) != le32_get(t.crc)) {
    *errmsg = udm_drv_strf("%s: trailer checksum mismatch", path);
    r = -EIO;
    goto fail;
  }
  if (memcmp(t.image_id, h.image_id, sizeof h.image_id) != 0) {
    *errmsg = udm_drv_strf("%s: header and trailer belong to different images", path);
    goto fail;
  }
  z->size = le64_get(h.device_size);
  z->chunk_size = le32_get(h.chunk_size);
  z->lbs = le32_get(h.logical_block_size);
  z->pbs = le32_get(h.physical_block_size);
  z->nchunks = le64_get(h.chunk_count);
  if (z->chunk_size < UDMZ_MIN_CHUNK || z->chunk_size > UDMZ_MAX_CHUNK ||
      (z->chunk_size & (z->chunk_size - 1))) {
    *errmsg = udm_drv_strf("%s: invalid chunk size %u", path, z->chunk_size);
    goto fail;
  }
  while ((1u << z->chunk_bits) < z->chunk_size)
    z->chunk_bits++;
  if (le32_get(h.compression) != UDMZ_COMPRESSION_ZSTD) {
    *errmsg = udm_drv_strf("%s: unknown compression %u", path, le32_get(h.compression));
    r = -ENOTSUP;
    goto fail;
  }
  if (z->nchunks != (z->size + z->chunk_size - 1) / z->chunk_size ||
      le64_get(t.chunk_count) != z->nchunks ||
      z->nchunks > (z->file_size / sizeof(struct udmz_index_entry))) {
    *errmsg = udm_drv_strf("%s: chunk count %llu does not match the device size %llu",
                           path, (unsigned long long)z->nchunks,
                           (unsigned long long)z->size);
    goto fail;
  }
  z->nbad = le64_get(t.bad_count);
  uint64_t meta_len = le64_get(t.meta_len);
  if (z->nbad > z->file_size / sizeof(struct udmz_bad_range)) {
    *errmsg = udm_drv_strf("%s: bad map larger than the file", path);
    goto fail;
  }
  if ((r = load_table(z, le64_get(t.index_offset),
                      z->nchunks * sizeof(struct udmz_index_entry), le32_get(t.index_crc),
                      UDMZ_CRC_INDEX, "chunk index", &index, errmsg)) < 0 ||
      (r = load_table(z, le64_get(t.badmap_offset),
                      z->nbad * sizeof(struct udmz_bad_range), le32_get(t.badmap_crc),
                      UDMZ_CRC_BADMAP, "bad-block map", &badmap, errmsg)) < 0 ||
      (r = load_table(z, le64_get(t.meta_offset), meta_len, le32_get(t.meta_crc),
                      UDMZ_CRC_META, "metadata", &meta, errmsg)) < 0)
    goto fail;
  if ((r = parse_index(z, index, errmsg)) < 0 || (r = parse_badmap(z, badmap, errmsg)) < 0 ||
      (r = parse_meta(z, meta, meta_len, errmsg)) < 0)
    goto fail;
  unsigned slots = CHUNK_CACHE_BYTES / z->chunk_size;
  if ((r = udm_blockcache_init(&z->cache, slots < 2 ? 2 : slots, z->chunk_size)) < 0)
    goto fail;
  free(index);
  free(badmap);
  free(meta);
  *out = z;
  return 0;
fail:
  free(index);
  free(badmap);
  free(meta);
  udmz_free(z);
  return r;
}

/* ---- reading ---- */

/* Index of the first bad range ending after OFF (nbad if none). */
static uint64_t first_bad_after(const struct udmz *z, uint64_t off)
{
  uint64_t lo = 0, hi = z->nbad;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (z->bad_off[mid] + z->bad_len[mid] <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static bool touches_bad(const struct udmz *z, uint64_t off, uint64_t len)
{
  uint64_t i = first_bad_after(z, off);
  return i < z->nbad && z->bad_off[i] < off + len;
}

static ZSTD_DCtx *get_dctx(struct udmz *z)
{
  ZSTD_DCtx *d = NULL;
  pthread_mutex_lock(&z->dctx_lock);
  if (z->ndctx)
    d = z->dctx[--z->ndctx];
  pthread_mutex_unlock(&z->dctx_lock);
  return d ? d : ZSTD_createDCtx();
}

static void put_dctx(struct udmz *z, ZSTD_DCtx *d)
{
  pthread_mutex_lock(&z->dctx_lock);
  if (z->ndctx < DCTX_POOL) {
    z->dctx[z->ndctx++] = d;
    d = NULL;
  }
  pthread_mutex_unlock(&z->dctx_lock);
  ZSTD_freeDCtx(d);
}

/* Read, check and decompress chunk CI into OUT (chunk_bytes(ci) bytes). */
static int load_chunk(struct udmz *z, uint64_t ci, uint8_t *out)
{
  const struct chunk *c = &z->chunks[ci];
  uint32_t n = chunk_bytes(z, ci);
  if (c->kind == UDMZ_CHUNK_ZERO) {
    memset(out, 0, n);
    return 0;
  }
  uint8_t *in = c->kind == UDMZ_CHUNK_RAW ? out : malloc(c->stored_len);
  if (!in)
    return -ENOMEM;
  int r = udm_drv_pread_exact(z->fd, in, c->stored_len, c->offset);
  if (r == 0 && udm_crc32c_with(z->accel, 0, in, c->stored_len) != c->stored_crc)
    r = -EIO;
  if (r == 0 && c->kind == UDMZ_CHUNK_ZSTD) {
    ZSTD_DCtx *d = get_dctx(z);
    if (!d) {
      r = -ENOMEM;
    } else {
      size_t got = ZSTD_decompressDCtx(d, out, n, in, c->stored_len);
      put_dctx(z, d);
      if (ZSTD_isError(got) || got != n)
        r = -EIO;
    }
  }
  if (in != out)
    free(in);
  /* A raw chunk's stored bytes are its data: one CRC pass is enough. */
  if (r == 0 && c->kind == UDMZ_CHUNK_ZSTD && udm_crc32c_with(z->accel, 0, out, n) != c->data_crc)
    r = -EIO;
  return r;
}

static int udmz_read(struct udmz *z, uint8_t *buf, size_t len, uint64_t off)
{
  uint8_t *tmp = NULL;
  int r = 0;
  while (len > 0 && r == 0) {
    uint64_t ci = off >> z->chunk_bits;
    uint32_t pos = (uint32_t)(off & (z->chunk_size - 1));
    uint32_t n = chunk_bytes(z, ci);
    size_t take = n - pos < len ? n - pos : len;
    if (z->chunks[ci].kind == UDMZ_CHUNK_ZERO) {
      memset(buf, 0, take);
    } else if (pos == 0 && take == n) {
      r = load_chunk(z, ci, buf); /* a whole chunk: straight into the caller's buffer */
    } else if (!udm_blockcache_get(&z->cache, ci + 1, pos, buf, take)) {
      if (!tmp && !(tmp = malloc(z->chunk_size))) {
        r = -ENOMEM;
        break;
      }
      r = load_chunk(z, ci, tmp);
      if (r == 0) {
        memcpy(buf, tmp + pos, take);
        /* The cache keeps tmp and hands back the buffer it evicts: no chunk-sized copy. */
        tmp = udm_blockcache_put_owned(&z->cache, ci + 1, tmp);
      }
    }
    buf += take;
    off += take;
    len -= take;
  }
  free(tmp);
  return r;
}

/*
 * Asynchronous reads (driver API 2).  The chunk index is in memory, so every
 * request is planned without blocking: zero chunks and cached chunks are
 * copied at once, and each chunk to load is read through the core's engine
 * into the caller's buffer (a whole chunk) or a chunk buffer that then goes
 * into the cache (part of one).  Stored chunks are checked on the engine's
 * completion (one CRC pass); zstd chunks are decompressed on the core's pool
 * (udm_image_req_defer), CPU work that must not hold up completions.  A
 * request touching a bad range is declined: the core's bad-block policy
 * reads around it with udmz_drv_pread on the pool.
 */
struct zaio {
  atomic_uint pending; /* chunks in flight, +1 while submitting */
  atomic_int err;
  struct udmz *z;
};

struct zpiece {
  struct zaio *a;
  uint64_t ci;
  uint8_t *dst;   /* where the request wants the bytes */
  uint32_t pos;   /* of the bytes wanted in the chunk */
  size_t take;
  uint8_t *in;    /* the stored bytes */
  uint8_t *out;   /* the chunk's data: dst for a whole chunk, else a chunk buffer */
};

static void zaio_put(struct udm_image_req *req, struct zaio *a, int err)
{
  int none = 0;
  if (err < 0)
    atomic_compare_exchange_strong(&a->err, &none, err);
  if (atomic_fetch_sub(&a->pending, 1) == 1) {
    int r = atomic_load(&a->err);
    free(a);
    udm_image_req_complete(req, r);
  }
}

static void zpiece_finish(struct udm_image_req *req, struct zpiece *pc, int r)
{
  struct udmz *z = pc->a->z;
  if (pc->in != pc->out)
    free(pc->in);
  if (pc->out != pc->dst) {
    if (r == 0) {
      memcpy(pc->dst, pc->out + pc->pos, pc->take);
      pc->out = udm_blockcache_put_owned(&z->cache, pc->ci + 1, pc->out);
    }
    free(pc->out);
  }
  struct zaio *a = pc->a;
  free(pc);
  zaio_put(req, a, r);
}

static void zpiece_decompress(struct udm_image_req *req, void *opaque)
{
  struct zpiece *pc = opaque;
  struct udmz *z = pc->a->z;
  const struct chunk *c = &z->chunks[pc->ci];
  uint32_t n = chunk_bytes(z, pc->ci);
  int r = 0;
  ZSTD_DCtx *d = get_dctx(z);
  if (!d) {
    r = -ENOMEM;
  } else {
    size_t got = ZSTD_decompressDCtx(d, pc->out, n, pc->in, c->stored_len);
    put_dctx(z, d);
    if (ZSTD_isError(got) || got != n || udm_crc32c(0, pc->out, n) != c->data_crc)
      r = -EIO;
  }
  zpiece_finish(req, pc, r);
}

static void zpiece_read_done(struct udm_image_req *req, void *opaque, int res)
{
  struct zpiece *pc = opaque;
  const struct chunk *c = &pc->a->z->chunks[pc->ci];
  if (res == 0 && udm_crc32c(0, pc->in, c->stored_len) != c->stored_crc)
    res = -EIO;
  if (res == 0 && c->kind == UDMZ_CHUNK_ZSTD) {
    udm_image_req_defer(req, zpiece_decompress, pc);
    return;
  }
  zpiece_finish(req, pc, res);
}

/* A piece for chunk CI, its buffers allocated; NULL when out of memory. */
static struct zpiece *zpiece_new(struct udmz *z, struct zaio *a, uint64_t ci,
                                 uint8_t *dst, uint32_t pos, size_t take)
{
  const struct chunk *c = &z->chunks[ci];
  bool whole = pos == 0 && take == chunk_bytes(z, ci);
  struct zpiece *pc = calloc(1, sizeof *pc);
  if (!pc)
    return NULL;
  *pc = (struct zpiece){a, ci, dst, pos, take, NULL, NULL};
  pc->out = whole ? dst : malloc(z->chunk_size);
  pc->in = c->kind == UDMZ_CHUNK_RAW ? pc->out : malloc(c->stored_len);
  if (!pc->out || !pc->in) {
    if (pc->in != pc->out)
      free(pc->in);
    if (pc->out != dst)
      free(pc->out);
    free(pc);
    return NULL;
  }
  return pc;
}

static int udmz_drv_aio(void *handle, struct udm_image_req *req)
{
  struct udmz *z = handle;
  if (req->op != UDM_OP_READ)
    return -EWOULDBLOCK;
  if (req->off > z->size || req->len > z->size - req->off)
    return -EIO;
  if (touches_bad(z, req->off, req->len))
    return -EWOULDBLOCK; /* the core's bad-block policy, on the pool */
  struct zaio *a = malloc(sizeof *a);
  if (!a)
    return -ENOMEM;
  atomic_init(&a->pending, 1);
  atomic_init(&a->err, 0);
  a->z = z;
  uint8_t *buf = req->buf;
  uint64_t off = req->off;
  size_t len = req->len;
  while (len > 0) {
    uint64_t ci = off >> z->chunk_bits;
    uint32_t pos = (uint32_t)(off & (z->chunk_size - 1));
    uint32_t n = chunk_bytes(z, ci);
    size_t take = n - pos < len ? n - pos : len;
    const struct chunk *c = &z->chunks[ci];
    if (c->kind == UDMZ_CHUNK_ZERO) {
      memset(buf, 0, take);
    } else if ((pos != 0 || take != n) &&
               udm_blockcache_get(&z->cache, ci + 1, pos, buf, take)) {
      /* cached: copied */
    } else {
      struct zpiece *pc = zpiece_new(z, a, ci, buf, pos, take);
      if (!pc) {
        atomic_compare_exchange_strong(&a->err, &(int){0}, -ENOMEM);
        break; /* what is in flight finishes; the request fails */
      }
      atomic_fetch_add(&a->pending, 1);
      udm_image_req_file_io(req, UDM_OP_READ, z->fd, pc->in, c->stored_len, c->offset,
                            zpiece_read_done, pc);
    }
    buf += take;
    off += take;
    len -= take;
  }
  zaio_put(req, a, 0);
  return 0;
}

/* ---- the driver ---- */

static int udmz_probe(const void *header, size_t len)
{
  return len >= 8 && memcmp(header, UDMZ_MAGIC, 8) == 0 ? 100 : 0;
}

static int udmz_drv_open(const char *path, const struct udm_image_options *opts,
                         bool writable, void **handle, char **errmsg)
{
  (void)writable;
  if (opts->count) {
    *errmsg = udm_drv_strf("unknown option '%s' (udmz has no options of its own; the "
                           "core's are bad=eio|zero|fill:0xNN)",
                           opts->keys[0]);
    return -EINVAL;
  }
  /* Checksums follow the context's crc32c-accel setting (on without a context). */
  char *accel = NULL;
  if (opts->ctx && udm_ctx_get_option(opts->ctx, "crc32c-accel", &accel) < 0)
    return -ENOMEM;
  bool on = !accel || strcmp(accel, "0") != 0;
  free(accel);
  struct udmz *z;
  int r = udmz_open_file(path, on, &z, errmsg);
  if (r == 0) {
    z->ctx = opts->ctx;
    *handle = z;
  }
  return r;
}

static void udmz_drv_close(void *handle)
{
  udmz_free(handle);
}

static uint64_t udmz_drv_size(void *handle)
{
  return ((struct udmz *)handle)->size;
}

static unsigned udmz_drv_block_size(void *handle)
{
  return ((struct udmz *)handle)->lbs;
}

static int udmz_drv_pread(void *handle, void *buf, size_t len, uint64_t off)
{
  struct udmz *z = handle;
  if (off > z->size || len > z->size - off)
    return -EIO;
  if (touches_bad(z, off, len))
    return -EIO;
  return udmz_read(z, buf, len, off);
}

static int udmz_drv_extents(void *handle, uint64_t len, uint64_t off,
                            udm_image_extent_fn fn, void *opaque)
{
  struct udmz *z = handle;
  if (off >= z->size)
    return 0;
  uint64_t end = len > z->size - off ? z->size : off + len;
  uint64_t bi = first_bad_after(z, off);
  uint64_t run_start = off;
  unsigned run_flags = ~0u;
  while (off < end) {
    uint64_t next;
    unsigned flags;
    if (bi < z->nbad && z->bad_off[bi] <= off) {
      flags = UDM_EXTENT_BAD;
      next = z->bad_off[bi] + z->bad_len[bi];
      bi++;
    } else {
      uint64_t ci = off >> z->chunk_bits;
      flags = z->chunks[ci].kind == UDMZ_CHUNK_ZERO ? UDM_EXTENT_HOLE | UDM_EXTENT_ZERO
                                                    : 0;
      next = (ci + 1) << z->chunk_bits;
      if (bi < z->nbad && z->bad_off[bi] < next)
        next = z->bad_off[bi];
    }
    if (next > end)
      next = end;
    if (flags != run_flags && run_flags != ~0u) {
      int r = fn(opaque, run_start, off - run_start, run_flags);
      if (r)
        return r > 0 ? 0 : r;
      run_start = off;
    }
    run_flags = flags;
    off = next;
  }
  int r = fn(opaque, run_start, end - run_start, run_flags);
  return r > 0 ? 0 : r;
}

static int udmz_drv_info(void *handle, char **text)
{
  struct udmz *z = handle;
  char *out = NULL;
  size_t out_len = 0;
  FILE *f = open_memstream(&out, &out_len);
  if (!f)
    return -ENOMEM;
  uint64_t stored = 0, zero = 0, bad_bytes = 0;
  for (uint64_t i = 0; i < z->nchunks; i++) {
    stored += z->chunks[i].stored_len;
    zero += z->chunks[i].kind == UDMZ_CHUNK_ZERO;
  }
  for (uint64_t i = 0; i < z->nbad; i++)
    bad_bytes += z->bad_len[i];
  fprintf(f,
          "Format: udmz\n"
          "Version: %u\n"
          "Virtual size: %llu\n"
          "Logical block size: %u\n"
          "Physical block size: %u\n"
          "Chunk size: %u\n"
          "Chunks: %llu (%llu zero)\n"
          "Compression: zstd\n"
          "Checksums: crc32c, %s\n"
          "Stored bytes: %llu\n"
          "Bad ranges: %llu\n"
          "Bad bytes: %llu\n",
          UDMZ_VERSION, (unsigned long long)z->size, z->lbs, z->pbs, z->chunk_size,
          (unsigned long long)z->nchunks, (unsigned long long)zero,
          udm_crc32c_impl(z->accel), (unsigned long long)stored, (unsigned long long)z->nbad,
          (unsigned long long)bad_bytes);
  for (uint64_t i = 0; i < z->nbad && i < 20; i++)
    fprintf(f, "Bad range: %llu+%llu\n", (unsigned long long)z->bad_off[i],
            (unsigned long long)z->bad_len[i]);
  if (z->nbad > 20)
    fprintf(f, "Bad range: ... (%llu more)\n", (unsigned long long)(z->nbad - 20));
  for (unsigned i = 0; i < z->nmeta; i++)
    fprintf(f, "Meta %s: %s\n", z->meta[i].key, z->meta[i].value);
  fclose(f);
  *text = out;
  return out ? 0 : -ENOMEM;
}

static int udmz_drv_check(void *handle, char **report)
{
  struct udmz *z = handle;
  char *out = NULL;
  size_t out_len = 0;
  FILE *f = open_memstream(&out, &out_len);
  uint8_t *buf = malloc(z->chunk_size);
  if (!f || !buf) {
    if (f)
      fclose(f);
    free(out);
    free(buf);
    return -ENOMEM;
  }
  uint64_t problems = 0;
  udm_ctx_progress(z->ctx, "verify", 0, z->size);
  for (uint64_t i = 0; i < z->nchunks; i++) {
    int r = load_chunk(z, i, buf);
    udm_ctx_progress(z->ctx, "verify", (i << z->chunk_bits) + chunk_bytes(z, i), z->size);
    if (r < 0) {
      problems++;
      if (problems <= 100)
        fprintf(f, "chunk %llu (bytes %llu+%u): %s\n", (unsigned long long)i,
                (unsigned long long)(i << z->chunk_bits), chunk_bytes(z, i),
                r == -EIO ? "checksum mismatch or undecodable data" : strerror(-r));
    }
  }
  fprintf(f, "%llu chunks checked, %llu bad\n", (unsigned long long)z->nchunks,
          (unsigned long long)problems);
  fclose(f);
  free(buf);
  *report = out;
  return problems ? -EIO : 0;
}

const struct udm_image_driver udm_image_driver_udmz = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "udmz",
    .description = "udm compressed image with a bad-block map (zstd chunks, CRC-32C)",
    .probe = udmz_probe,
    .open = udmz_drv_open,
    .close = udmz_drv_close,
    .size = udmz_drv_size,
    .block_size = udmz_drv_block_size,
    .pread = udmz_drv_pread,
    .aio = udmz_drv_aio,
    .extents = udmz_drv_extents,
    .info = udmz_drv_info,
    .check = udmz_drv_check,
};
