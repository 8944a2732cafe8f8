/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The udmz writer: chunks, then index, bad map, metadata and trailer. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../common/crc32c.h"
#include "../common/util.h"
#include "udmz_format.h"
#include "udmz_write.h"

#define SECTOR 512u

struct range_list {
  struct udmz_range *r;
  size_t n, cap;
};

static int range_add(struct range_list *l, uint64_t off, uint64_t len)
{
  if (len == 0)
    return 0;
  if (l->n && l->r[l->n - 1].off + l->r[l->n - 1].len == off) {
    l->r[l->n - 1].len += len;
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    struct udmz_range *n = realloc(l->r, cap * sizeof *n);
    if (!n)
      return -ENOMEM;
    l->r = n;
    l->cap = cap;
  }
  l->r[l->n].off = off;
  l->r[l->n++].len = len;
  return 0;
}

static int cmp_range(const void *a, const void *b)
{
  const struct udmz_range *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort, clip to SIZE and merge overlapping or touching ranges, in place. */
static void range_normalise(struct range_list *l, uint64_t size)
{
  if (l->n == 0)
    return;
  qsort(l->r, l->n, sizeof *l->r, cmp_range);
  size_t out = 0;
  for (size_t i = 0; i < l->n; i++) {
    uint64_t s = l->r[i].off, e = l->r[i].off + l->r[i].len;
    if (e > size)
      e = size;
    if (s >= e)
      continue;
    if (out && l->r[out - 1].off + l->r[out - 1].len >= s) {
      uint64_t pe = l->r[out - 1].off + l->r[out - 1].len;
      if (e > pe)
        l->r[out - 1].len = e - l->r[out - 1].off;
      continue;
    }
    l->r[out].off = s;
    l->r[out++].len = e - s;
  }
  l->n = out;
}

struct out {
  int fd;
  uint64_t pos;
};

static int out_write(struct out *o, const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t n = write(o->fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
    o->pos += (uint64_t)n;
  }
  return 0;
}

/* Read LEN bytes at OFF; sectors that fail become zeros and bad ranges. */
static int read_source(int fd, uint8_t *buf, size_t len, uint64_t off,
                       struct range_list *bad, uint64_t *errors)
{
  int r = udm_drv_pread_full(fd, buf, len, off);
  if (r != -EIO)
    return r;
  for (size_t pos = 0; pos < len; pos += SECTOR) {
    size_t n = len - pos < SECTOR ? len - pos : SECTOR;
    r = udm_drv_pread_full(fd, buf + pos, n, off + pos);
    if (r == -EIO) {
      memset(buf + pos, 0, n);
      (*errors)++;
      if ((r = range_add(bad, off + pos, n)) < 0)
        return r;
    } else if (r < 0) {
      return r;
    }
  }
  return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
  static const uint8_t zeros[4096];
  while (n >= sizeof zeros) {
    if (memcmp(p, zeros, sizeof zeros))
      return false;
    p += sizeof zeros;
    n -= sizeof zeros;
  }
  return memcmp(p, zeros, n) == 0;
}

static void random_id(uint8_t id[16])
{
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? read(fd, id, 16) : -1;
  if (fd >= 0)
    close(fd);
  if (got != 16) { /* a weaker id still binds the trailer to the header */
    uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 16; i++)
      id[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)(i * 37);
  }
}

int udmz_write(int src_fd, uint64_t size, int dst_fd, const struct udmz_write_opts *o,
               struct udmz_write_stats *st, char **errmsg)
{
  uint32_t cs = o->chunk_size;
  if (cs < UDMZ_MIN_CHUNK || cs > UDMZ_MAX_CHUNK || (cs & (cs - 1))) {
    *errmsg = udm_drv_strf("chunk size %u is not a power of two from %u to %u", cs,
                           UDMZ_MIN_CHUNK, UDMZ_MAX_CHUNK);
    return -EINVAL;
  }
  memset(st, 0, sizeof *st);
  uint64_t nchunks = (size + cs - 1) / cs;
  struct range_list bad = {0};
  struct udmz_index_entry *index = calloc(nchunks ? nchunks : 1, sizeof *index);
  size_t bound = ZSTD_compressBound(cs);
  uint8_t *in = malloc(cs), *z = malloc(bound);
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  uint8_t *meta = NULL;
  int r = -ENOMEM;
  if (!index || !in || !z || !cctx)
    goto out;
  for (size_t i = 0; i < o->nbad; i++)
    if ((r = range_add(&bad, o->bad[i].off, o->bad[i].len)) < 0)
      goto out;

  struct out w = {dst_fd, 0};
  struct udmz_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, UDMZ_MAGIC, 8);
  h.version = le32_put(UDMZ_VERSION);
  h.header_size = le32_put(sizeof h);
  h.device_size = le64_put(size);
  h.chunk_size = le32_put(cs);
  h.logical_block_size = le32_put(o->logical_block_size);
  h.physical_block_size = le32_put(o->physical_block_size);
  h.compression = le32_put(UDMZ_COMPRESSION_ZSTD);
  h.chunk_count = le64_put(nchunks);
  random_id(h.image_id);
  h.crc = le32_put(udm_crc32c(0, &h, sizeof h) ^ UDMZ_CRC_HEADER);
  uint8_t pad[UDMZ_DATA_START];
  memset(pad, 0, sizeof pad);
  memcpy(pad, &h, sizeof h);
  if ((r = out_write(&w, pad, sizeof pad)) < 0)
    goto write_failed;

  for (uint64_t ci = 0; ci < nchunks; ci++) {
    uint64_t off = ci * cs;
    size_t n = size - off < cs ? (size_t)(size - off) : cs;
    r = read_source(src_fd, in, n, off, &bad, &st->read_errors);
    if (r < 0) {
      *errmsg = udm_drv_strf("cannot read the source at %llu: %s",
                             (unsigned long long)off, strerror(-r));
      goto out;
    }
    if (o->progress)
      o->progress(o->progress_opaque, off + n, size);
    struct udmz_index_entry *e = &index[ci];
    e->data_crc = le32_put(udm_crc32c(0, in, n));
    if (all_zero(in, n)) {
      e->kind = le16_put(UDMZ_CHUNK_ZERO);
      st->zero_chunks++;
      continue;
    }
    size_t zn = ZSTD_compressCCtx(cctx, z, bound, in, n, o->level);
    const uint8_t *stored = z;
    if (ZSTD_isError(zn) || zn >= n) {
      stored = in;
      zn = n;
      e->kind = le16_put(UDMZ_CHUNK_RAW);
      st->raw_chunks++;
    } else {
      e->kind = le16_put(UDMZ_CHUNK_ZSTD);
    }
    e->offset = le64_put(w.pos);
    e->stored_len = le32_put((uint32_t)zn);
    e->stored_crc = le32_put(udm_crc32c(0, stored, zn));
    if ((r = out_write(&w, stored, zn)) < 0)
      goto write_failed;
    st->stored_bytes += zn;
  }
  st->chunks = nchunks;

  range_normalise(&bad, size);
  struct udmz_trailer t;
  memset(&t, 0, sizeof t);
  memcpy(t.magic, UDMZ_TRAILER_MAGIC, 8);
  t.version = le32_put(UDMZ_VERSION);
  t.trailer_size = le32_put(sizeof t);
  memcpy(t.image_id, h.image_id, sizeof t.image_id);
  t.index_offset = le64_put(w.pos);
  t.chunk_count = le64_put(nchunks);
  t.index_crc = le32_put(udm_crc32c(0, index, nchunks * sizeof *index) ^ UDMZ_CRC_INDEX);
  if ((r = out_write(&w, index, nchunks * sizeof *index)) < 0)
    goto write_failed;

  uint32_t crc = 0;
  t.badmap_offset = le64_put(w.pos);
  t.bad_count = le64_put(bad.n);
  for (size_t i = 0; i < bad.n; i++) {
    struct udmz_bad_range b = {le64_put(bad.r[i].off), le64_put(bad.r[i].len)};
    crc = udm_crc32c(crc, &b, sizeof b);
    if ((r = out_write(&w, &b, sizeof b)) < 0)
      goto write_failed;
    st->bad_bytes += bad.r[i].len;
  }
  st->bad_ranges = bad.n;
  t.badmap_crc = le32_put(crc ^ UDMZ_CRC_BADMAP);

  size_t meta_len = 0;
  for (size_t i = 0; i < o->nmeta; i++)
    meta_len += sizeof(struct udmz_meta_entry) + strlen(o->meta[i].key) +
                strlen(o->meta[i].value);
  meta = malloc(meta_len ? meta_len : 1);
  if (!meta) {
    r = -ENOMEM;
    goto out;
  }
  size_t mp = 0;
  for (size_t i = 0; i < o->nmeta; i++) {
    size_t kl = strlen(o->meta[i].key), vl = strlen(o->meta[i].value);
    if (kl == 0 || kl > 0xffff || vl > 0xffffffffu) {
      *errmsg = udm_drv_strf("metadata key '%s' is empty or too long", o->meta[i].key);
      r = -EINVAL;
      goto out;
    }
    struct udmz_meta_entry e = {le16_put((uint16_t)kl), le32_put((uint32_t)vl)};
    memcpy(meta + mp, &e, sizeof e);
    mp += sizeof e;
    memcpy(meta + mp, o->meta[i].key, kl);
    mp += kl;
    memcpy(meta + mp, o->meta[i].value, vl);
    mp += vl;
  }
  t.meta_offset = le64_put(w.pos);
  t.meta_len = le64_put(meta_len);
  t.meta_crc = le32_put(udm_crc32c(0, meta, meta_len) ^ UDMZ_CRC_META);
  if ((r = out_write(&w, meta, meta_len)) < 0)
    goto write_failed;
  t.crc = le32_put(udm_crc32c(0, &t, sizeof t) ^ UDMZ_CRC_TRAILER);
  if ((r = out_write(&w, &t, sizeof t)) < 0)
    goto write_failed;
  r = 0;
  goto out;
write_failed:
  *errmsg = udm_drv_strf("cannot write the image: %s", strerror(-r));
out:
  ZSTD_freeCCtx(cctx);
  free(in);
  free(z);
  free(index);
  free(bad.r);
  free(meta);
  return r;
}
