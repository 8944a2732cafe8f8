/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image devices: a driver instance (qcow2, udmz, a plugin) wrapped as a
 * backing device, written in tables as FORMAT:PATH[?key=value&...].
 *
 * The core owns one option, the bad-block policy, and never passes it on:
 *   bad=eio        (default) a read touching a range the image marks bad fails
 *   bad=zero       the bad part reads as zeros, the good parts are read
 *   bad=fill:0xNN  the bad part reads as the byte NN
 * Every read that touches a bad range counts one bad-block hit, whatever the
 * policy; udm_device_info() reports the sum over a table's images.
 *
 * Drivers return -EIO for reads that touch bad ranges; only then does the core
 * ask the driver's extents() where the bad ranges are, so good reads pay
 * nothing for the policy.
 *
 * Asynchronous requests: a driver with aio() (API version 2) starts them
 * itself, its data I/O on the engine (udm_image_req_file_io), and completes
 * them from the engine's completion; whatever it declines, and every request
 * of a driver without aio(), runs the blocking callback on the engine's pool
 * and completes from there.  A driver's file I/O through the page cache (a
 * read, or a write under 256 KiB, on a descriptor without O_DIRECT) is a
 * memory copy and is done on the submitting thread, as lib/dev_file.c does
 * for files; direct I/O, flushes and large writes go to the engine.
 * UDM_IMAGE_AIO (read when an image is opened): off sends everything to the
 * pool; engine sends every file operation to the engine, page-cache copies
 * too; both for comparisons and tests.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/driver.h>

#include "../drivers/common/util.h"
#include "engine.h"
#include "internal.h"
#include "platform.h"

/* Page-cache writes below this many bytes are copied on the submitting thread. */
#define IMAGE_INLINE_WRITE_MAX (256u * 1024)

enum bad_policy { BAD_EIO, BAD_FILL };

struct image_dev {
  const struct udm_image_driver *drv;
  void *handle;
  enum bad_policy policy;
  unsigned char fill;
  bool use_aio; /* the driver's aio(), unless UDM_IMAGE_AIO=off */
  bool engine_only; /* UDM_IMAGE_AIO=engine: page-cache copies through the engine too */
  atomic_uint_fast64_t bad_hits;
  /*
   * Whether the descriptors the driver hands to udm_image_req_file_io bypass
   * the cache, asked once per descriptor: entries are (fd + 1) << 1 | direct,
   * 0 while free, set once and kept while the image is open (its driver
   * keeps them open meanwhile).  More descriptors than this are asked each
   * time.
   */
  atomic_int_fast64_t fd_direct[4];
};

/* Does fd bypass the page cache?  One system call per descriptor, not per request. */
static bool fd_direct(struct image_dev *im, int fd)
{
  int_fast64_t key = ((int_fast64_t)fd + 1) << 1;
  for (unsigned i = 0; i < sizeof im->fd_direct / sizeof im->fd_direct[0]; i++) {
    int_fast64_t e = atomic_load_explicit(&im->fd_direct[i], memory_order_relaxed);
    if (e == 0) {
      int_fast64_t mine = key | (udm_platform_fd_is_direct(fd) ? 1 : 0);
      if (atomic_compare_exchange_strong(&im->fd_direct[i], &e, mine))
        return mine & 1;
    }
    if ((e & ~(int_fast64_t)1) == key)
      return e & 1;
  }
  return udm_platform_fd_is_direct(fd);
}

/* ---- reads with the bad-block policy ---- */

#define MAX_BAD_RANGES 64

struct bad_ranges {
  unsigned n;
  bool overflow;
  uint64_t covered; /* end of the last extent the driver reported */
  uint64_t off[MAX_BAD_RANGES], len[MAX_BAD_RANGES];
};

static int collect_bad(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct bad_ranges *b = opaque;
  b->covered = off + len;
  if (!(flags & UDM_EXTENT_BAD) || len == 0)
    return 0;
  if (b->n > 0 && b->off[b->n - 1] + b->len[b->n - 1] == off) {
    b->len[b->n - 1] += len;
    return 0;
  }
  if (b->n == MAX_BAD_RANGES) {
    b->overflow = true;
    return 1;
  }
  b->off[b->n] = off;
  b->len[b->n++] = len;
  return 0;
}

/* The bad ranges in [off, off+len), clipped to it. */
static int find_bad(struct image_dev *im, uint64_t len, uint64_t off,
                    struct bad_ranges *b)
{
  memset(b, 0, sizeof *b);
  uint64_t pos = off, end = off + len;
  /* extents() may answer a prefix only: ask again from where it stopped. */
  while (pos < end && !b->overflow) {
    b->covered = pos;
    int r = im->drv->extents(im->handle, end - pos, pos, collect_bad, b);
    if (r < 0)
      return r;
    if (b->covered <= pos)
      break;
    pos = b->covered;
  }
  for (unsigned i = 0; i < b->n; i++) {
    uint64_t s = b->off[i] < off ? off : b->off[i];
    uint64_t e = b->off[i] + b->len[i] > end ? end : b->off[i] + b->len[i];
    b->off[i] = s;
    b->len[i] = e > s ? e - s : 0;
  }
  return 0;
}

static int image_read(struct image_dev *im, void *buf, size_t len, uint64_t off)
{
  int r = im->drv->pread(im->handle, buf, len, off);
  if (r != -EIO || !im->drv->extents)
    return r;
  struct bad_ranges b;
  if (find_bad(im, len, off, &b) < 0 || b.n == 0)
    return -EIO; /* a real I/O error, not a bad block */
  atomic_fetch_add(&im->bad_hits, 1);
  if (im->policy == BAD_EIO || b.overflow)
    return -EIO;
  uint64_t pos = off;
  char *p = buf;
  for (unsigned i = 0; i <= b.n; i++) {
    uint64_t good_end = i < b.n ? b.off[i] : off + len;
    if (good_end > pos) {
      r = im->drv->pread(im->handle, p + (pos - off), (size_t)(good_end - pos), pos);
      if (r < 0)
        return r;
    }
    if (i < b.n) {
      memset(p + (b.off[i] - off), im->fill, (size_t)b.len[i]);
      pos = b.off[i] + b.len[i];
    }
  }
  return 0;
}

static int write_zero_buffers(struct image_dev *im, uint64_t off, uint64_t len,
                              unsigned flags)
{
  const size_t chunk = 1u << 20;
  void *z = calloc(1, chunk);
  if (!z)
    return -ENOMEM;
  int r = 0;
  while (len > 0 && r == 0) {
    size_t n = len < chunk ? (size_t)len : chunk;
    r = im->drv->pwrite(im->handle, z, n, off, flags & UDM_IO_FUA);
    off += n;
    len -= n;
  }
  free(z);
  return r;
}

static int image_submit(struct udm_dev *d, struct udm_io *io)
{
  struct image_dev *im = d->priv;
  const struct udm_image_driver *drv = im->drv;
  uint64_t off = io->sector * UDM_SECTOR_SIZE;
  uint64_t len = io->nr_sectors * UDM_SECTOR_SIZE;
  switch (io->op) {
  case UDM_OP_READ:
    return image_read(im, io->buf, (size_t)len, off);
  case UDM_OP_WRITE:
    return drv->pwrite ? drv->pwrite(im->handle, io->buf, (size_t)len, off,
                                     io->flags & UDM_IO_FUA)
                       : -EROFS;
  case UDM_OP_FLUSH:
    return drv->flush ? drv->flush(im->handle) : 0;
  case UDM_OP_DISCARD:
    return drv->discard ? drv->discard(im->handle, len, off) : -EOPNOTSUPP;
  case UDM_OP_WRITE_ZEROES:
    if (!drv->pwrite)
      return -EROFS;
    if (io->flags & UDM_IO_NO_FALLBACK)
      return -EOPNOTSUPP;
    return write_zero_buffers(im, off, len, io->flags);
  }
  return -EINVAL;
}

/* ---- asynchronous requests ---- */

struct image_aio;

/* One file operation of a driver's asynchronous request. */
struct image_fio {
  struct udm_engine_op eop;
  struct image_aio *a;
  udm_image_io_done_fn done;
  void *opaque;
  bool embedded;
};

struct image_aio {
  struct udm_image_req req; /* the driver's view */
  struct udm_dev *dev;
  struct udm_io *io;
  /* The first file operation needs no allocation; more are malloc'd. */
  struct image_fio fio;
  atomic_flag fio_busy;
};

static void image_aio_run(void *arg)
{
  struct image_aio *a = arg;
  struct udm_io *io = a->io;
  int r = image_submit(a->dev, io);
  free(a);
  udm_io_complete(io, r);
}

void udm_image_req_complete(struct udm_image_req *req, int err)
{
  struct image_aio *a = (struct image_aio *)req;
  struct image_dev *im = a->dev->priv;
  /* A bad block, maybe: the policy's path reads around it, on the pool. */
  if (err == -EIO && req->op == UDM_OP_READ && im->drv->extents) {
    udm__engine_run(a->dev->engine, image_aio_run, a);
    return;
  }
  struct udm_io *io = a->io;
  free(a);
  udm_io_complete(io, err);
}

static void image_fio_done(struct udm_engine_op *eop, int res)
{
  struct image_fio *f = eop->opaque;
  struct image_aio *a = f->a;
  udm_image_io_done_fn done = f->done;
  void *opaque = f->opaque;
  if (f->embedded)
    atomic_flag_clear(&a->fio_busy);
  else
    free(f);
  done(&a->req, opaque, res);
}

void udm_image_req_file_io(struct udm_image_req *req, enum udm_op op, int fd, void *buf,
                           size_t len, uint64_t off, udm_image_io_done_fn done,
                           void *opaque)
{
  struct image_aio *a = (struct image_aio *)req;
  struct image_fio *f = &a->fio;
  if (atomic_flag_test_and_set(&a->fio_busy)) {
    if (!(f = calloc(1, sizeof *f))) {
      done(req, opaque, -ENOMEM);
      return;
    }
  } else {
    memset(f, 0, sizeof *f);
    f->embedded = true;
  }
  f->a = a;
  f->done = done;
  f->opaque = opaque;
  f->eop.fd = fd;
  f->eop.op = op;
  f->eop.buf = buf;
  f->eop.len = op == UDM_OP_FLUSH ? 0 : len;
  f->eop.off = op == UDM_OP_FLUSH ? 0 : off;
  f->eop.done = image_fio_done;
  f->eop.opaque = f;
  /*
   * Reads and small writes through the page cache are a memory copy: done
   * here, as lib/dev_file.c does for files, cheaper than a hand-off to the
   * engine and back (io_uring hands buffered I/O to its own workers).
   * Direct I/O, flushes and large writes go to the engine.
   */
  struct image_dev *im = a->dev->priv;
  if (!im->engine_only &&
      (op == UDM_OP_READ || (op == UDM_OP_WRITE && len < IMAGE_INLINE_WRITE_MAX)) &&
      !fd_direct(im, fd)) {
    image_fio_done(&f->eop, op == UDM_OP_READ ? udm__full_pread(fd, buf, len, off)
                                              : udm__full_pwrite(fd, buf, len, off));
    return;
  }
  udm__engine_submit(a->dev->engine, &f->eop);
}

struct image_defer {
  struct image_aio *a;
  void (*fn)(struct udm_image_req *req, void *opaque);
  void *opaque;
};

static void image_defer_run(void *arg)
{
  struct image_defer j = *(struct image_defer *)arg;
  free(arg);
  j.fn(&j.a->req, j.opaque);
}

void udm_image_req_defer(struct udm_image_req *req,
                         void (*fn)(struct udm_image_req *req, void *opaque),
                         void *opaque)
{
  struct image_aio *a = (struct image_aio *)req;
  struct image_defer *j = malloc(sizeof *j);
  if (!j) { /* nowhere to note it: run it here rather than lose the request */
    fn(req, opaque);
    return;
  }
  j->a = a;
  j->fn = fn;
  j->opaque = opaque;
  udm__engine_run(a->dev->engine, image_defer_run, j);
}

/*
 * A driver with aio() starts the request itself and holds no thread while
 * its file I/O is in flight; what it declines (-EWOULDBLOCK), write-zeroes,
 * and every request of a driver without aio() run the blocking callbacks on
 * the engine's pool.
 */
static void image_submit_async(struct udm_dev *d, struct udm_io *io)
{
  struct image_dev *im = d->priv;
  /* What the driver cannot do is answered here, without a pool job. */
  if (io->op == UDM_OP_FLUSH && !im->drv->flush) {
    udm_io_complete(io, 0);
    return;
  }
  if (io->op == UDM_OP_DISCARD && !im->drv->discard) {
    udm_io_complete(io, -EOPNOTSUPP);
    return;
  }
  struct image_aio *a = calloc(1, sizeof *a);
  if (!a) {
    udm_io_complete(io, -ENOMEM);
    return;
  }
  a->dev = d;
  a->io = io;
  atomic_flag_clear(&a->fio_busy);
  if (im->drv->aio && im->use_aio && io->op != UDM_OP_WRITE_ZEROES) {
    a->req.op = io->op;
    a->req.flags = io->flags & UDM_IO_FUA;
    a->req.buf = io->buf;
    a->req.len = (size_t)(io->nr_sectors * UDM_SECTOR_SIZE);
    a->req.off = io->sector * UDM_SECTOR_SIZE;
    int r = im->drv->aio(im->handle, &a->req);
    if (r == 0)
      return; /* the driver's now; a may already be gone */
    if (r != -EWOULDBLOCK && r != -EAGAIN) {
      free(a);
      udm_io_complete(io, r);
      return;
    }
  }
  udm__engine_run(d->engine, image_aio_run, a);
}

/* Driver extents are bytes; device extents are whole sectors, in order. */
struct to_sectors {
  udm_extent_fn fn;
  void *opaque;
  udm_sector_t next;  /* first sector not reported yet */
  udm_sector_t end;
};

static int extent_to_sectors(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct to_sectors *s = opaque;
  udm_sector_t first = off / UDM_SECTOR_SIZE;
  udm_sector_t last = (off + len + UDM_SECTOR_SIZE - 1) / UDM_SECTOR_SIZE;
  if (first < s->next)
    first = s->next; /* a sector already reported keeps its first answer */
  if (last > s->end)
    last = s->end;
  if (last <= first)
    return 0;
  s->next = last;
  return s->fn(s->opaque, first, last - first, flags);
}

static int image_extents(struct udm_dev *d, udm_sector_t sector, uint64_t nr,
                         udm_extent_fn fn, void *opaque)
{
  struct image_dev *im = d->priv;
  if (!im->drv->extents)
    return fn(opaque, sector, nr, 0);
  struct to_sectors s = {fn, opaque, sector, sector + nr};
  int r = im->drv->extents(im->handle, nr * UDM_SECTOR_SIZE, sector * UDM_SECTOR_SIZE,
                           extent_to_sectors, &s);
  if (r == 0 && s.next == sector) /* the driver said nothing: data */
    r = fn(opaque, sector, nr, 0);
  return r;
}

static void image_close(struct udm_dev *d)
{
  struct image_dev *im = d->priv;
  if (im) {
    if (im->handle)
      im->drv->close(im->handle);
    free(im);
  }
  free(d->name);
  free(d);
}

static const struct udm_dev_ops image_ops = {
    .submit = image_submit,
    .submit_async = image_submit_async,
    .extents = image_extents,
    .close = image_close,
};

uint64_t udm__table_bad_block_hits(const struct udm_table_ctx *t)
{
  uint64_t n = 0;
  for (const struct udm_dev *d = t ? t->devs : NULL; d; d = d->next)
    if (d->ops == &image_ops)
      n += atomic_load(&((struct image_dev *)d->priv)->bad_hits);
  return n;
}

/* ---- opening ---- */

static int parse_bad_policy(struct image_dev *im, const char *v, char **errmsg)
{
  if (strcmp(v, "eio") == 0) {
    im->policy = BAD_EIO;
    return 0;
  }
  if (strcmp(v, "zero") == 0) {
    im->policy = BAD_FILL;
    im->fill = 0;
    return 0;
  }
  if (strncmp(v, "fill:", 5) == 0) {
    char *end;
    const char *num = v + 5;
    unsigned long x = (*num >= '0' && *num <= '9') ? strtoul(num, &end, 0) : 256;
    if (x <= 255 && *end == '\0') {
      im->policy = BAD_FILL;
      im->fill = (unsigned char)x;
      return 0;
    }
  }
  *errmsg = udm__strf("invalid bad-block policy 'bad=%s' (expected eio, zero or fill:0xNN)",
                 v);
  return -EINVAL;
}

/* Split "k=v&k=v" in place into keys/values, taking out the core's options. */
static int split_options(struct image_dev *im, char *opts, const char **keys,
                         const char **values, unsigned *count, char **errmsg)
{
  unsigned n;
  int r = udm_drv_split_options(opts, keys, values, &n, errmsg);
  *count = 0;
  for (unsigned i = 0; i < n && r == 0; i++) {
    if (strcmp(keys[i], "bad") == 0) {
      r = parse_bad_policy(im, values[i], errmsg);
      continue;
    }
    keys[*count] = keys[i];
    values[(*count)++] = values[i];
  }
  return r;
}

int udm_image_check_file(const struct udm_image_options *opts, const char *file,
                         char **errmsg)
{
  char *devname = NULL;
  if (!opts || !opts->ctx)
    return 0;
  int r = udm__export_resolve(opts->ctx, file, &devname, errmsg);
  if (r > 0) {
    *errmsg = udm__strf("%s is the file of udm device '%s' in udm's export; an image "
                        "driver cannot read a udm device",
                        file, devname);
    free(devname);
    r = -EINVAL;
  }
  return r;
}

int udm__dev_open_image(struct udm_ctx *ctx, const struct udm_image_driver *drv,
                        const char *name, const char *spec, unsigned mode,
                        struct udm_engine *engine,
                        struct udm_dev **out, char **errmsg)
{
  const char *q = strchr(spec, '?');
  char *path = q ? strndup(spec, (size_t)(q - spec)) : strdup(spec);
  char *opts = q ? strdup(q + 1) : NULL;
  size_t max_opts = q ? strlen(q) : 1;
  const char **keys = calloc(max_opts, sizeof *keys);
  const char **values = calloc(max_opts, sizeof *values);
  struct image_dev *im = calloc(1, sizeof *im);
  struct udm_dev *d = calloc(1, sizeof *d);
  int r = -ENOMEM;
  if (!path || (q && !opts) || !keys || !values || !im || !d ||
      !(d->name = strdup(name)))
    goto fail;
  if (!*path) {
    *errmsg = udm__strf("'%s': no image path after '%s:'", name, drv->name);
    r = -EINVAL;
    goto fail;
  }
  im->drv = drv;
  atomic_init(&im->bad_hits, 0);
  for (unsigned i = 0; i < sizeof im->fd_direct / sizeof im->fd_direct[0]; i++)
    atomic_init(&im->fd_direct[i], 0);
  const char *aio_env = getenv("UDM_IMAGE_AIO");
  if (!aio_env || !*aio_env || strcmp(aio_env, "on") == 0) {
    im->use_aio = true;
  } else if (strcmp(aio_env, "engine") == 0) {
    im->use_aio = im->engine_only = true;
  } else if (strcmp(aio_env, "off") != 0) {
    *errmsg = udm__strf("UDM_IMAGE_AIO='%s' is not 'on', 'off' or 'engine'", aio_env);
    r = -EINVAL;
    goto fail;
  }
  struct udm_image_options o = {.ctx = ctx};
  if (opts) {
    r = split_options(im, opts, keys, values, &o.count, errmsg);
    if (r < 0)
      goto fail;
  }
  o.keys = keys;
  o.values = values;
  /* A read-only driver serves read-write tables too: writes then fail EROFS. */
  bool writable = (mode & UDM_DEV_WRITE) && drv->pwrite;
  if (!writable)
    mode &= ~UDM_DEV_WRITE;
  char *drvmsg = NULL;
  r = drv->open(path, &o, writable, &im->handle, &drvmsg);
  if (r < 0 || !im->handle) {
    if (r >= 0)
      r = -EIO;
    *errmsg = udm__strf("%s: %s", drv->name,
                   drvmsg ? drvmsg : strerror(-r));
    free(drvmsg);
    im->handle = NULL;
    goto fail;
  }
  free(drvmsg);
  uint64_t bytes = drv->size(im->handle);
  if (bytes % UDM_SECTOR_SIZE) {
    *errmsg = udm__strf("%s: image size %llu is not a multiple of %u bytes", name,
                   (unsigned long long)bytes, UDM_SECTOR_SIZE);
    r = -EINVAL;
    goto fail;
  }
  unsigned bs = drv->block_size ? drv->block_size(im->handle) : UDM_SECTOR_SIZE;
  if (bs < UDM_SECTOR_SIZE || bs > UDM_LOGICAL_BLOCK_SIZE_MAX || (bs & (bs - 1))) {
    *errmsg = udm__strf("%s: the %s driver reports a logical block size of %u bytes (a power "
                   "of two from %u to %u is needed)",
                   name, drv->name, bs, UDM_SECTOR_SIZE, UDM_LOGICAL_BLOCK_SIZE_MAX);
    r = -EINVAL;
    goto fail;
  }
  d->ops = &image_ops;
  d->priv = im;
  d->engine = engine;
  d->mode = mode;
  d->size = bytes / UDM_SECTOR_SIZE;
  d->logical_block_size = bs;
  *out = d;
  free(path);
  free(opts);
  free(keys);
  free(values);
  return 0;
fail:
  if (im && im->handle)
    drv->close(im->handle);
  free(im);
  if (d)
    free(d->name);
  free(d);
  free(path);
  free(opts);
  free(keys);
  free(values);
  return r;
}
