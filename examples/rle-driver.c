/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rle — an example udm image driver, built as a plugin (rle.so).
 *
 * A complete, small, read-only format: the image is a list of runs, each
 * either LENGTH copies of one byte or LENGTH literal bytes, plus a list of
 * bad ranges.  docs/drivers.md walks through this file.
 *
 *   header   "UDMRLE01", le64 size, le32 bad_count, le32 run_count
 *   bad      bad_count  x { le64 offset, le64 length }          (bytes)
 *   runs     run_count  x { le64 length, u8 kind, u8 fill } then, for a
 *            literal run (kind 1), LENGTH bytes of data
 *   kind 0 = fill: LENGTH copies of `fill`;  kind 1 = literal
 *
 * Use it:  udm-image --load ./rle.so info disk.rle
 *          table line:  0 2048 linear rle:/path/disk.rle 0
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udm/driver.h>

struct run {
  uint64_t start;    /* first byte of the device this run covers */
  uint64_t length;
  uint64_t file_off; /* literal runs: where their bytes are */
  unsigned char kind, fill;
};

/* Everything one open image needs; the driver keeps no global state. */
struct rle {
  int fd;
  uint64_t size;
  unsigned nruns, nbad;
  struct run *runs;
  uint64_t *bad_off, *bad_len;
};

static uint64_t le64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint32_t le32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static char *msg(const char *path, const char *what)
{
  size_t n = strlen(path) + strlen(what) + 3;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s: %s", path, what);
  return s;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
  ssize_t n = pread(fd, buf, len, (off_t)off);
  return n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
}

/* probe: only "udm-image info" calls it; tables always name the format. */
static int rle_probe(const void *header, size_t len)
{
  return len >= 8 && memcmp(header, "UDMRLE01", 8) == 0 ? 100 : 0;
}

static void rle_close(void *handle)
{
  struct rle *r = handle;
  if (r->fd >= 0)
    close(r->fd);
  free(r->runs);
  free(r->bad_off);
  free(r->bad_len);
  free(r);
}

/* open: parse and check everything now, so that reads cannot meet surprises. */
static int rle_open(const char *path, const struct udm_image_options *opts,
                    bool writable, void **handle, char **errmsg)
{
  (void)writable; /* no pwrite callback: the core makes writes fail with EROFS */
  if (opts->count) {
    *errmsg = msg(opts->keys[0], "unknown option (rle has none)");
    return -EINVAL;
  }
  struct rle *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (r->fd < 0 || fstat(r->fd, &st) < 0) {
    int e = errno;
    *errmsg = msg(path, strerror(e));
    rle_close(r);
    return -e;
  }
  uint64_t file_size = (uint64_t)st.st_size;
  unsigned char h[24];
  if (read_at(r->fd, h, sizeof h, 0) < 0 || memcmp(h, "UDMRLE01", 8) != 0) {
    *errmsg = msg(path, "not an rle image (bad magic or too short)");
    rle_close(r);
    return -EINVAL;
  }
  r->size = le64(h + 8);
  r->nbad = le32(h + 16);
  r->nruns = le32(h + 20);
  if (r->nbad > file_size / 16 || r->nruns > file_size / 10) {
    *errmsg = msg(path, "run or bad-range count larger than the file");
    rle_close(r);
    return -EINVAL;
  }
  r->bad_off = calloc(r->nbad + 1, sizeof *r->bad_off);
  r->bad_len = calloc(r->nbad + 1, sizeof *r->bad_len);
  r->runs = calloc(r->nruns + 1, sizeof *r->runs);
  if (!r->bad_off || !r->bad_len || !r->runs) {
    rle_close(r);
    return -ENOMEM;
  }
  uint64_t pos = sizeof h;
  for (unsigned i = 0; i < r->nbad; i++, pos += 16) {
    unsigned char b[16];
    if (read_at(r->fd, b, sizeof b, pos) < 0) {
      *errmsg = msg(path, "truncated bad-range list");
      rle_close(r);
      return -EINVAL;
    }
    r->bad_off[i] = le64(b);
    r->bad_len[i] = le64(b + 8);
  }
  uint64_t covered = 0;
  for (unsigned i = 0; i < r->nruns; i++) {
    unsigned char b[10];
    struct run *run = &r->runs[i];
    if (read_at(r->fd, b, sizeof b, pos) < 0) {
      *errmsg = msg(path, "truncated run list");
      rle_close(r);
      return -EINVAL;
    }
    run->start = covered;
    run->length = le64(b);
    run->kind = b[8];
    run->fill = b[9];
    run->file_off = pos + sizeof b;
    pos = run->file_off + (run->kind == 1 ? run->length : 0);
    covered += run->length;
    if (run->kind > 1 || run->length == 0 || pos > file_size || covered > r->size) {
      *errmsg = msg(path, "a run is empty, has an unknown kind or goes past the end");
      rle_close(r);
      return -EINVAL;
    }
  }
  if (covered != r->size) {
    *errmsg = msg(path, "the runs do not add up to the image size");
    rle_close(r);
    return -EINVAL;
  }
  *handle = r;
  return 0;
}

static uint64_t rle_size(void *handle)
{
  return ((struct rle *)handle)->size;
}

/* The run holding byte OFF (binary search: runs are in order). */
static const struct run *find_run(const struct rle *r, uint64_t off)
{
  unsigned lo = 0, hi = r->nruns;
  while (hi - lo > 1) {
    unsigned mid = lo + (hi - lo) / 2;
    if (r->runs[mid].start <= off)
      lo = mid;
    else
      hi = mid;
  }
  return &r->runs[lo];
}

/*
 * pread: called from many threads at once.  It only reads shared state set
 * up by open, and pread(2) has no file position, so no lock is needed.
 * A read touching a bad range fails with EIO; the core then applies the
 * user's bad-block policy (bad=zero ...) with the help of extents().
 */
static int rle_pread(void *handle, void *buf, size_t len, uint64_t off)
{
  struct rle *r = handle;
  for (unsigned i = 0; i < r->nbad; i++)
    if (r->bad_off[i] < off + len && off < r->bad_off[i] + r->bad_len[i])
      return -EIO;
  unsigned char *p = buf;
  while (len > 0) {
    const struct run *run = find_run(r, off);
    uint64_t in_run = off - run->start;
    size_t n = run->length - in_run < len ? (size_t)(run->length - in_run) : len;
    if (run->kind == 0)
      memset(p, run->fill, n);
    else {
      int e = read_at(r->fd, p, n, run->file_off + in_run);
      if (e < 0)
        return e;
    }
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* extents: bad ranges first, then zero-fill runs; the rest is data. */
static int rle_extents(void *handle, uint64_t len, uint64_t off, udm_image_extent_fn fn,
                       void *opaque)
{
  struct rle *r = handle;
  for (unsigned i = 0; i < r->nbad; i++) {
    if (r->bad_off[i] <= off && off < r->bad_off[i] + r->bad_len[i]) {
      uint64_t n = r->bad_off[i] + r->bad_len[i] - off;
      return fn(opaque, off, n < len ? n : len, UDM_EXTENT_BAD);
    }
  }
  const struct run *run = find_run(r, off);
  uint64_t n = run->start + run->length - off;
  for (unsigned i = 0; i < r->nbad; i++) /* stop where the next bad range starts */
    if (r->bad_off[i] > off && r->bad_off[i] - off < n)
      n = r->bad_off[i] - off;
  unsigned flags = run->kind == 0 && run->fill == 0 ? UDM_EXTENT_ZERO : 0;
  return fn(opaque, off, n < len ? n : len, flags);
}

static int rle_info(void *handle, char **text)
{
  struct rle *r = handle;
  char buf[256];
  snprintf(buf, sizeof buf, "Format: rle\nVirtual size: %llu\nRuns: %u\nBad ranges: %u\n",
           (unsigned long long)r->size, r->nruns, r->nbad);
  *text = strdup(buf);
  return *text ? 0 : -ENOMEM;
}

static const struct udm_image_driver rle_driver = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "rle",
    .description = "example: run-length encoded image with bad ranges (plugin)",
    .probe = rle_probe,
    .open = rle_open,
    .close = rle_close,
    .size = rle_size,
    .pread = rle_pread,
    .extents = rle_extents,
    .info = rle_info,
};

/* The one symbol a plugin exports; udm_image_driver_load() looks it up. */
const struct udm_image_driver *udm_image_driver_entry(void)
{
  return &rle_driver;
}
