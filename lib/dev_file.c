/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File-backed ("vnode") devices: regular files and block devices.
 * Sparse files keep their holes: discard punches holes, write-zeroes with
 * MAY_UNMAP punches too, flush is fdatasync.  With direct=on the page cache
 * is bypassed and misaligned buffers are bounced.
 *
 * Asynchronous requests: reads, writes and flushes go through the context's
 * I/O engine (engine.h), a FUA write as the write and then its fdatasync;
 * discard and write-zeroes, which may take long in fallocate or write zero
 * buffers, run the blocking path on the engine's pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../platform/platform.h"
#include "engine.h"
#include "internal.h"

#define DIRECT_ALIGN 4096u

struct file_dev {
  int fd;
  bool blockdev;
  bool direct;
  unsigned block_size; /* direct I/O alignment */
};

static bool needs_bounce(const struct file_dev *f, const struct udm_io *io)
{
  uint64_t off = io->sector * UDM_SECTOR_SIZE;
  uint64_t len = io->nr_sectors * UDM_SECTOR_SIZE;
  return f->direct && (((uintptr_t)io->buf % DIRECT_ALIGN) || (off % f->block_size) ||
                       (len % f->block_size));
}

static int bounce_io(struct file_dev *f, struct udm_io *io, size_t len, uint64_t off)
{
  void *b;
  if (posix_memalign(&b, DIRECT_ALIGN, len))
    return -ENOMEM;
  int r;
  if (io->op == UDM_OP_READ) {
    r = udm__full_pread(f->fd, b, len, off);
    if (r == 0)
      memcpy(io->buf, b, len);
  } else {
    memcpy(b, io->buf, len);
    r = udm__full_pwrite(f->fd, b, len, off);
  }
  free(b);
  return r;
}

static int write_zero_buffers(int fd, uint64_t off, uint64_t len)
{
  static const size_t chunk = 1u << 20;
  void *z;
  if (posix_memalign(&z, DIRECT_ALIGN, chunk))
    return -ENOMEM;
  memset(z, 0, chunk);
  int r = 0;
  while (len > 0 && r == 0) {
    size_t n = len < chunk ? (size_t)len : chunk;
    r = udm__full_pwrite(fd, z, n, off);
    off += n;
    len -= n;
  }
  free(z);
  return r;
}

static int file_submit(struct udm_dev *d, struct udm_io *io)
{
  struct file_dev *f = d->priv;
  uint64_t off = io->sector * UDM_SECTOR_SIZE;
  uint64_t len = io->nr_sectors * UDM_SECTOR_SIZE;
  int r;
  switch (io->op) {
  case UDM_OP_READ:
  case UDM_OP_WRITE:
    if (needs_bounce(f, io))
      r = bounce_io(f, io, (size_t)len, off);
    else if (io->op == UDM_OP_READ)
      r = udm__full_pread(f->fd, io->buf, (size_t)len, off);
    else
      r = udm__full_pwrite(f->fd, io->buf, (size_t)len, off);
    if (r == 0 && io->op == UDM_OP_WRITE && (io->flags & UDM_IO_FUA))
      r = udm__sync_fd(f->fd);
    return r;
  case UDM_OP_FLUSH:
    return udm__sync_fd(f->fd);
  case UDM_OP_DISCARD:
    r = udm_platform_punch_hole(f->fd, f->blockdev, off, len);
    break;
  case UDM_OP_WRITE_ZEROES:
    r = -EOPNOTSUPP;
    if (io->flags & UDM_IO_MAY_UNMAP)
      r = udm_platform_punch_hole(f->fd, f->blockdev, off, len);
    if (r == -EOPNOTSUPP || r == -ENOTTY)
      r = udm_platform_zero_range(f->fd, f->blockdev, off, len);
    if ((r == -EOPNOTSUPP || r == -ENOTTY) && !(io->flags & UDM_IO_NO_FALLBACK))
      r = write_zero_buffers(f->fd, off, len);
    if (r == -ENOTTY)
      r = -EOPNOTSUPP;
    break;
  default:
    return -EINVAL;
  }
  if (r == 0 && (io->flags & UDM_IO_FUA))
    r = udm__sync_fd(f->fd);
  return r;
}

/* One asynchronous request in flight. */
struct file_aio {
  struct udm_engine_op eop;
  struct udm_dev *dev;
  struct udm_io *io;
  void *bounce;     /* direct=on and a misaligned buffer: the aligned copy */
  bool sync_after;  /* UDM_IO_FUA on a write: fdatasync once it is written */
};

static void file_aio_finish(struct file_aio *a, int err)
{
  struct udm_io *io = a->io;
  free(a->bounce);
  free(a);
  udm_io_complete(io, err);
}

static void file_aio_done(struct udm_engine_op *eop, int res)
{
  struct file_aio *a = eop->opaque;
  if (res == 0 && a->bounce && eop->op == UDM_OP_READ)
    memcpy(a->io->buf, a->bounce, eop->len);
  if (res == 0 && a->sync_after) {
    a->sync_after = false;
    eop->op = UDM_OP_FLUSH;
    udm__engine_submit(a->dev->engine, eop);
    return;
  }
  file_aio_finish(a, res);
}

static void file_aio_blocking(void *arg)
{
  struct file_aio *a = arg;
  file_aio_finish(a, file_submit(a->dev, a->io));
}

/* Page-cache writes this large (256 KiB) are copied on the pool, not here. */
#define PAGE_CACHE_POOL_SECTORS 512u

static void file_submit_async(struct udm_dev *d, struct udm_io *io)
{
  struct file_dev *f = d->priv;
  /*
   * Page-cache I/O is a memory copy: cheaper here, on the submitting thread,
   * than a hand-off to the engine and back (4K random reads at QD32 over
   * NBD on tmpfs: 115k IOPS here, 82k through the thread engine, 26k through
   * io_uring, which hands buffered I/O to its own workers).  A page-cache
   * miss waits here, as it always did.  Direct I/O goes to the disk, and
   * that is what the engine is for.
   */
  bool big_write = io->op == UDM_OP_WRITE && io->nr_sectors >= PAGE_CACHE_POOL_SECTORS;
  if (!f->direct && !big_write) {
    udm_io_complete(io, file_submit(d, io));
    return;
  }
  struct file_aio *a = calloc(1, sizeof *a);
  if (!a) {
    udm_io_complete(io, -ENOMEM);
    return;
  }
  a->dev = d;
  a->io = io;
  /*
   * Large page-cache writes go to the pool, so that several copies into the
   * page cache run side by side (io_uring would hand them to workers that
   * write one file one request at a time).
   */
  if ((io->op != UDM_OP_READ && io->op != UDM_OP_WRITE && io->op != UDM_OP_FLUSH) ||
      !f->direct) {
    udm__engine_run(d->engine, file_aio_blocking, a);
    return;
  }
  struct udm_engine_op *eop = &a->eop;
  eop->fd = f->fd;
  eop->op = io->op;
  eop->done = file_aio_done;
  eop->opaque = a;
  if (io->op != UDM_OP_FLUSH) {
    eop->buf = io->buf;
    eop->len = (size_t)(io->nr_sectors * UDM_SECTOR_SIZE);
    eop->off = io->sector * UDM_SECTOR_SIZE;
    a->sync_after = io->op == UDM_OP_WRITE && (io->flags & UDM_IO_FUA);
    if (needs_bounce(f, io)) {
      if (posix_memalign(&a->bounce, DIRECT_ALIGN, eop->len ? eop->len : 1)) {
        a->bounce = NULL;
        file_aio_finish(a, -ENOMEM);
        return;
      }
      if (io->op == UDM_OP_WRITE)
        memcpy(a->bounce, io->buf, eop->len);
      eop->buf = a->bounce;
    }
  }
  udm__engine_submit(d->engine, eop);
}

/*
 * Holes come from SEEK_DATA/SEEK_HOLE.  Extents are whole sectors: a hole is
 * rounded inwards and data outwards, so a sector that is partly data is data.
 */
static int file_extents(struct udm_dev *d, udm_sector_t sector, uint64_t nr,
                        udm_extent_fn fn, void *opaque)
{
  struct file_dev *f = d->priv;
  const uint64_t ss = UDM_SECTOR_SIZE;
  uint64_t off = sector * ss, end = (sector + nr) * ss;
  if (f->blockdev)
    return fn(opaque, sector, nr, 0);
  while (off < end) {
    uint64_t data, hole;
    int r = udm_platform_seek_data(f->fd, off, &data);
    if (r == -ENXIO)
      data = end;
    else if (r < 0)
      return fn(opaque, off / ss, (end - off) / ss, 0);
    if (data > end)
      data = end;
    uint64_t hole_end = data / ss * ss;
    if (hole_end > off) {
      r = fn(opaque, off / ss, (hole_end - off) / ss, UDM_EXTENT_HOLE | UDM_EXTENT_ZERO);
      if (r)
        return r;
      off = hole_end;
      continue;
    }
    /* off is data, or a hole shorter than the sector that holds data. */
    if (udm_platform_seek_hole(f->fd, data, &hole) < 0 || hole > end)
      hole = end;
    uint64_t data_end = (hole + ss - 1) / ss * ss;
    if (data_end > end)
      data_end = end;
    r = fn(opaque, off / ss, (data_end - off) / ss, 0);
    if (r)
      return r;
    off = data_end;
  }
  return 0;
}

static void file_close(struct udm_dev *d)
{
  struct file_dev *f = d->priv;
  if (f) {
    close(f->fd);
    free(f);
  }
  free(d->name);
  free(d);
}

static const struct udm_dev_ops file_ops = {
    .submit = file_submit,
    .submit_async = file_submit_async,
    .extents = file_extents,
    .close = file_close,
};

static char *errf(const char *what, const char *path, int err)
{
  const char *why = strerror(err);
  size_t n = strlen(what) + strlen(path) + strlen(why) + 8;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s %s: %s", what, path, why);
  return s;
}

int udm__dev_open_file(const char *name, const char *path, unsigned mode, bool direct,
                       struct udm_engine *engine, struct udm_dev **out, char **errmsg)
{
  int flags = (mode & UDM_DEV_WRITE) ? O_RDWR : O_RDONLY;
  int fd = direct ? udm_platform_open_direct(path, flags) : open(path, flags | O_CLOEXEC);
  if (fd < 0) {
    int e = direct ? -fd : errno;
    *errmsg = errf((mode & UDM_DEV_WRITE) ? "cannot open for reading and writing"
                                          : "cannot open for reading",
                   path, e);
    if (direct && e == EINVAL) {
      free(*errmsg);
      *errmsg = errf("cannot open with direct=on (the file system refuses O_DIRECT)",
                     path, e);
    }
    return -e;
  }
  struct stat st;
  struct file_dev *f = NULL;
  struct udm_dev *d = NULL;
  int r;
  if (fstat(fd, &st) < 0) {
    r = -errno;
    *errmsg = errf("cannot stat", path, -r);
    goto fail;
  }
  f = calloc(1, sizeof *f);
  d = calloc(1, sizeof *d);
  if (!f || !d || !(d->name = strdup(name))) {
    r = -ENOMEM;
    goto fail;
  }
  f->fd = fd;
  f->direct = direct;
  f->block_size = UDM_SECTOR_SIZE;
  uint64_t bytes;
  if (S_ISBLK(st.st_mode)) {
    f->blockdev = true;
    r = udm_platform_blockdev_size(fd, &bytes);
    if (r < 0) {
      *errmsg = errf("cannot get the size of block device", path, -r);
      goto fail;
    }
    unsigned lbs;
    if (direct && udm_platform_blockdev_logical_block_size(fd, &lbs) == 0)
      f->block_size = lbs;
  } else if (S_ISREG(st.st_mode)) {
    bytes = (uint64_t)st.st_size;
  } else {
    r = -EINVAL;
    *errmsg = errf("not a regular file or block device:", path, ENODEV);
    goto fail;
  }
  d->ops = &file_ops;
  d->priv = f;
  d->engine = engine;
  d->mode = mode;
  d->size = bytes / UDM_SECTOR_SIZE;
  /* Through the page cache any 512-byte request works; direct I/O needs blocks. */
  d->logical_block_size = f->block_size;
  *out = d;
  return 0;
fail:
  close(fd);
  free(f);
  if (d)
    free(d->name);
  free(d);
  return r;
}
