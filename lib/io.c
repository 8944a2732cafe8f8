/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O path.  No context-wide lock is taken here.
 *
 * The gate: a request increments d->in_flight, then checks d->suspended.
 * If the device is suspended it backs out and sleeps until resume.  suspend
 * sets d->suspended, then waits for in_flight to reach zero.  With
 * sequentially consistent atomics a request either sees the flag, or is
 * counted before the suspender looks at the counter, so nothing slips past a
 * suspend.  The live table is swapped only while the gate is closed and
 * drained, so a request that passed the gate may use it without a lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

udm_table *udm__io_enter(struct udm_device *d)
{
  for (;;) {
    atomic_fetch_add(&d->in_flight, 1);
    if (!atomic_load(&d->suspended))
      return atomic_load(&d->live);
    udm__io_leave(d);
    pthread_mutex_lock(&d->gate_lock);
    while (atomic_load(&d->suspended))
      pthread_cond_wait(&d->gate_cond, &d->gate_lock);
    pthread_mutex_unlock(&d->gate_lock);
  }
}

void udm__io_leave(struct udm_device *d)
{
  if (atomic_fetch_sub(&d->in_flight, 1) == 1 && atomic_load(&d->suspended)) {
    pthread_mutex_lock(&d->gate_lock);
    pthread_cond_broadcast(&d->gate_cond);
    pthread_mutex_unlock(&d->gate_lock);
  }
}

void udm__gate_close(struct udm_device *d)
{
  pthread_mutex_lock(&d->gate_lock);
  atomic_store(&d->suspended, true);
  if (atomic_load(&d->in_flight)) {
    pthread_mutex_unlock(&d->ctx->lock);
    while (atomic_load(&d->in_flight))
      pthread_cond_wait(&d->gate_cond, &d->gate_lock);
    pthread_mutex_unlock(&d->gate_lock);
    pthread_mutex_lock(&d->ctx->lock);
    return;
  }
  pthread_mutex_unlock(&d->gate_lock);
}

void udm__gate_open(struct udm_device *d)
{
  pthread_mutex_lock(&d->gate_lock);
  atomic_store(&d->suspended, false);
  pthread_cond_broadcast(&d->gate_cond);
  pthread_mutex_unlock(&d->gate_lock);
}

static bool is_write_op(enum udm_op op)
{
  return op == UDM_OP_WRITE || op == UDM_OP_DISCARD || op == UDM_OP_WRITE_ZEROES;
}

static int map_and_submit(struct udm_target *ti, struct udm_io *io)
{
  int r = ti->type->map(ti, io);
  if (r == UDM_MAPIO_REMAPPED)
    return io->dev ? udm_dev_submit(io->dev, io) : -EIO;
  if (r == UDM_MAPIO_DONE)
    return 0;
  return r < 0 ? r : -EIO;
}

/* Write-zeroes for a target that cannot: plain writes of a zero buffer. */
static int zero_by_writing(struct udm_target *ti, const struct udm_io *io)
{
  const uint64_t chunk = 2048; /* sectors: 1 MiB */
  uint64_t n = io->nr_sectors < chunk ? io->nr_sectors : chunk;
  void *zeros = calloc(n, UDM_SECTOR_SIZE);
  if (!zeros)
    return -ENOMEM;
  int r = 0;
  for (uint64_t done = 0; done < io->nr_sectors && r == 0; done += n) {
    if (io->nr_sectors - done < n)
      n = io->nr_sectors - done;
    struct udm_io w = {
        .op = UDM_OP_WRITE,
        .flags = io->flags & UDM_IO_FUA,
        .sector = io->sector + done,
        .nr_sectors = n,
        .buf = zeros,
    };
    r = map_and_submit(ti, &w);
  }
  free(zeros);
  return r;
}

static int flush_table(udm_table *t, const struct udm_io *io)
{
  struct udm_dev *done[16];
  unsigned ndone = 0;
  for (unsigned i = 0; i < t->num_targets; i++) {
    struct udm_target *ti = &t->targets[i];
    for (unsigned n = 0; n < ti->num_flush_ios; n++) {
      struct udm_io c = {
          .op = UDM_OP_FLUSH,
          .flags = io->flags,
          .sector = ti->begin,
          .target_io_nr = n,
      };
      int r = ti->type->map(ti, &c);
      if (r == UDM_MAPIO_DONE)
        continue;
      if (r != UDM_MAPIO_REMAPPED)
        return r < 0 ? r : -EIO;
      bool seen = false;
      for (unsigned k = 0; k < ndone; k++)
        seen |= done[k] == c.dev;
      if (seen)
        continue;
      r = c.dev ? udm_dev_submit(c.dev, &c) : -EIO;
      if (r < 0)
        return r;
      if (ndone < UDM_ARRAY_SIZE(done))
        done[ndone++] = c.dev;
    }
  }
  return 0;
}

/*
 * Split io at segment and max_io_len boundaries and map each piece.  As in
 * the kernel, every piece is issued even when an earlier one failed (a write
 * that straddles an error segment still lands where it can); the request
 * reports the first error.
 */
static int dispatch(udm_table *t, struct udm_io *io)
{
  if (io->op == UDM_OP_FLUSH)
    return flush_table(t, io);
  int first_error = 0;
  udm_sector_t sector = io->sector;
  uint64_t left = io->nr_sectors;
  char *buf = io->buf;
  while (left > 0) {
    struct udm_target *ti = &t->targets[udm__table_find(t, sector)];
    uint64_t n = ti->begin + ti->len - sector;
    if (n > left)
      n = left;
    if (ti->max_io_len) {
      uint64_t to_boundary = ti->max_io_len - (sector - ti->begin) % ti->max_io_len;
      if (n > to_boundary)
        n = to_boundary;
    }
    struct udm_io c = {
        .op = io->op,
        .flags = io->flags,
        .sector = sector,
        .nr_sectors = n,
        .buf = buf,
    };
    int r;
    if (io->op == UDM_OP_DISCARD && !ti->num_discard_ios)
      r = -EOPNOTSUPP;
    else if (io->op == UDM_OP_WRITE_ZEROES && !ti->num_write_zeroes_ios)
      r = (io->flags & UDM_IO_NO_FALLBACK) ? -EOPNOTSUPP : zero_by_writing(ti, &c);
    else
      r = map_and_submit(ti, &c);
    if (r < 0 && !first_error)
      first_error = r;
    sector += n;
    left -= n;
    if (buf)
      buf += n * UDM_SECTOR_SIZE;
  }
  return first_error;
}

/* Dispatch io on t, the table d's gate gave (NULL: none), checking it first. */
static int submit_on(struct udm_device *d, udm_table *t, struct udm_io *io)
{
  if (atomic_load(&d->dead) || !t)
    return -EIO;
  if (is_write_op(io->op) && (d->flags & UDM_DEVICE_READONLY))
    return -EROFS;
  if (io->op != UDM_OP_FLUSH &&
      (io->sector > t->size || io->nr_sectors > t->size - io->sector))
    return -EIO; /* beyond the end of the device, as the kernel answers */
  return dispatch(t, io);
}

int udm__device_submit(struct udm_device *d, struct udm_io *io)
{
  udm_table *t = udm__io_enter(d);
  int r = submit_on(d, t, io);
  udm__io_leave(d);
  return r;
}

struct extent_shift {
  udm_extent_fn fn;
  void *opaque;
  udm_sector_t add;
};

static int shift_extent(void *opaque, udm_sector_t sector, uint64_t nr, unsigned flags)
{
  struct extent_shift *s = opaque;
  return s->fn(s->opaque, sector + s->add, nr, flags);
}

int udm__device_extents(struct udm_device *d, udm_sector_t sector, uint64_t nr,
                        udm_extent_fn fn, void *opaque)
{
  udm_table *t = udm__io_enter(d);
  int r = 0;
  if (atomic_load(&d->dead) || !t || sector >= t->size) {
    r = -EIO;
    goto out;
  }
  if (nr > t->size - sector)
    nr = t->size - sector;
  while (nr > 0 && r == 0) {
    struct udm_target *ti = &t->targets[udm__table_find(t, sector)];
    uint64_t n = ti->begin + ti->len - sector;
    if (n > nr)
      n = nr;
    if (ti->type->extents) {
      struct extent_shift s = {fn, opaque, ti->begin};
      r = ti->type->extents(ti, sector - ti->begin, n, shift_extent, &s);
    } else {
      r = fn(opaque, sector, n, 0);
    }
    sector += n;
    nr -= n;
  }
out:
  udm__io_leave(d);
  return r;
}

/* ---- the public byte-addressed API ---- */

/*
 * Each call passes the gate once and works on the table it got, so the
 * logical block size it aligns to is the one of the table that serves it,
 * even when a reload changes it meanwhile.
 */

#define SS UDM_SECTOR_SIZE

static unsigned block_size_of(const udm_table *t)
{
  return t ? t->limits.logical_block_size : SS;
}

/* [off, off+len), whole blocks, on table t. */
static int table_io(struct udm_device *d, udm_table *t, enum udm_op op, unsigned flags,
                    void *buf, uint64_t off, uint64_t len)
{
  struct udm_io io = {
      .op = op,
      .flags = flags,
      .sector = off / SS,
      .nr_sectors = len / SS,
      .buf = buf,
  };
  return submit_on(d, t, &io);
}

/* Is [off, off+len) inside the device?  Past the end the kernel answers EIO. */
static int in_device(struct udm_device *d, udm_table *t, uint64_t off, uint64_t len)
{
  if (atomic_load(&d->dead) || !t)
    return -EIO;
  uint64_t size = t->size * SS;
  return off > size || len > size - off ? -EIO : 0;
}

/*
 * Read-modify-write of the blocks covering [off, off+len): SRC's bytes, or
 * zeros when SRC is NULL.  Not atomic against a racing writer of the same
 * blocks, as on any block device.
 */
static int rmw(struct udm_device *d, udm_table *t, const void *src, uint64_t off,
               uint64_t len, unsigned flags)
{
  unsigned bs = block_size_of(t);
  int r = in_device(d, t, off, len);
  if (r == 0 && (d->flags & UDM_DEVICE_READONLY))
    r = -EROFS;
  if (r < 0)
    return r;
  uint64_t a0 = off / bs * bs, a1 = (off + len + bs - 1) / bs * bs;
  char *b = malloc(a1 - a0);
  if (!b)
    return -ENOMEM;
  r = table_io(d, t, UDM_OP_READ, 0, b, a0, a1 - a0);
  if (r == 0) {
    if (src)
      memcpy(b + (off - a0), src, len);
    else
      memset(b + (off - a0), 0, len);
    r = table_io(d, t, UDM_OP_WRITE, flags & UDM_IO_FUA, b, a0, a1 - a0);
  }
  free(b);
  return r;
}

static int op_fail(struct udm_device *dev, const char *op, int r, uint64_t off,
                   uint64_t len)
{
  return udm__fail(-r, "%s %s: %llu bytes at offset %llu: %s", op, dev->name,
                   (unsigned long long)len, (unsigned long long)off, strerror(-r));
}

static bool aligned(uint64_t off, uint64_t len, unsigned bs)
{
  return off % bs == 0 && len % bs == 0;
}

int udm_device_pread(struct udm_device *dev, void *buf, size_t len, uint64_t off)
{
  if (len == 0)
    return 0;
  if (off + len < off)
    return op_fail(dev, "read", -EINVAL, off, len);
  udm_table *t = udm__io_enter(dev);
  unsigned bs = block_size_of(t);
  int r;
  if (aligned(off, len, bs)) {
    r = table_io(dev, t, UDM_OP_READ, 0, buf, off, len);
  } else if ((r = in_device(dev, t, off, len)) == 0) {
    uint64_t a0 = off / bs * bs, a1 = (off + len + bs - 1) / bs * bs;
    char *b = malloc(a1 - a0);
    r = b ? table_io(dev, t, UDM_OP_READ, 0, b, a0, a1 - a0) : -ENOMEM;
    if (r == 0)
      memcpy(buf, b + (off - a0), len);
    free(b);
  }
  udm__io_leave(dev);
  return r < 0 ? op_fail(dev, "read", r, off, len) : 0;
}

int udm_device_pwrite(struct udm_device *dev, const void *buf, size_t len, uint64_t off,
                      unsigned flags)
{
  if (len == 0)
    return 0;
  if (off + len < off)
    return op_fail(dev, "write", -EINVAL, off, len);
  udm_table *t = udm__io_enter(dev);
  int r;
  if (aligned(off, len, block_size_of(t)))
    r = table_io(dev, t, UDM_OP_WRITE, flags & UDM_IO_FUA, (void *)buf, off, len);
  else
    r = rmw(dev, t, buf, off, len, flags);
  udm__io_leave(dev);
  return r < 0 ? op_fail(dev, "write", r, off, len) : 0;
}

int udm_device_flush(struct udm_device *dev)
{
  struct udm_io io = {.op = UDM_OP_FLUSH};
  int r = udm__device_submit(dev, &io);
  return r < 0 ? udm__fail(-r, "flush %s: %s", dev->name, strerror(-r)) : 0;
}

int udm_device_discard(struct udm_device *dev, uint64_t len, uint64_t off,
                       unsigned flags)
{
  if (off + len < off)
    return op_fail(dev, "discard", -EINVAL, off, len);
  udm_table *t = udm__io_enter(dev);
  unsigned bs = block_size_of(t);
  /* Discard is advisory: only the whole blocks inside the range are discarded. */
  uint64_t a0 = (off + bs - 1) / bs * bs, a1 = (off + len) / bs * bs;
  int r = 0;
  if (a1 > a0)
    r = table_io(dev, t, UDM_OP_DISCARD, flags & UDM_IO_FUA, NULL, a0, a1 - a0);
  udm__io_leave(dev);
  return r < 0 ? op_fail(dev, "discard", r, off, len) : 0;
}

int udm_device_write_zeroes(struct udm_device *dev, uint64_t len, uint64_t off,
                            unsigned flags)
{
  if (off + len < off)
    return op_fail(dev, "write-zeroes", -EINVAL, off, len);
  if (len == 0)
    return 0;
  udm_table *t = udm__io_enter(dev);
  unsigned bs = block_size_of(t);
  /* The whole blocks inside the range; the partial ones at its edges are written. */
  uint64_t a0 = (off + bs - 1) / bs * bs, a1 = (off + len) / bs * bs;
  int r = 0;
  if (!aligned(off, len, bs) && (flags & UDM_IO_NO_FALLBACK))
    r = -EOPNOTSUPP;
  else if (a1 <= a0) /* no whole block inside */
    r = rmw(dev, t, NULL, off, len, flags);
  else {
    if (a0 > off)
      r = rmw(dev, t, NULL, off, a0 - off, flags);
    if (r == 0 && a1 < off + len)
      r = rmw(dev, t, NULL, a1, off + len - a1, flags);
    if (r == 0)
      r = table_io(dev, t, UDM_OP_WRITE_ZEROES, flags, NULL, a0, a1 - a0);
  }
  udm__io_leave(dev);
  return r < 0 ? op_fail(dev, "write-zeroes", r, off, len) : 0;
}

struct byte_extents {
  int (*fn)(void *, uint64_t, uint64_t, unsigned);
  void *opaque;
  uint64_t off, end; /* the requested byte range */
};

static int to_bytes(void *opaque, udm_sector_t sector, uint64_t nr, unsigned flags)
{
  struct byte_extents *b = opaque;
  uint64_t s = sector * SS, e = (sector + nr) * SS;
  if (s < b->off)
    s = b->off;
  if (e > b->end)
    e = b->end;
  if (e <= s)
    return 0;
  return b->fn(b->opaque, s, e - s, flags);
}

int udm_device_extents(struct udm_device *dev, uint64_t len, uint64_t off,
                       int (*fn)(void *, uint64_t, uint64_t, unsigned), void *opaque)
{
  if (len == 0 || off + len < off)
    return udm__fail(EINVAL, "extents %s: empty or overflowing range", dev->name);
  struct byte_extents b = {fn, opaque, off, off + len};
  udm_sector_t s0 = off / SS, s1 = (off + len + SS - 1) / SS;
  int r = udm__device_extents(dev, s0, s1 - s0, to_bytes, &b);
  if (r < 0)
    return udm__fail(-r, "extents %s: %s", dev->name, strerror(-r));
  return 0;
}
