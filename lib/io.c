/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O path: requests, their pieces, the gate.  No context-wide lock is
 * taken here.
 *
 * A request (struct udm_req) is what a frontend or a stacked table asks of
 * a device.  It is split at segment and max_io_len boundaries into pieces
 * (struct udm_piece, dm's clones), each mapped by its target: remapped onto
 * a backing device and submitted there asynchronously, completed at once,
 * owned by the target until udm_io_complete(), or held.  The request
 * completes when its last piece does, with the first error.  Nothing here
 * waits: a request in flight costs memory, not a thread.  The blocking calls
 * are an asynchronous submission and a wait (see sync_depth for the one made
 * on behalf of a target).
 *
 * The gate: every request passing it, and every piece between map() and its
 * completion, counts in d->in_flight; suspend sets d->suspended and waits
 * for zero.  With sequentially consistent atomics a request either sees the
 * flag, or is counted before the suspender looks at the counter.  A request
 * that meets a suspended device is queued on d->deferred (under gate_lock,
 * rechecking the flag), and a piece a target requeues goes on d->held; both
 * start again at resume, on the table then live, and neither counts in
 * in_flight.  The live table is swapped only while the gate is closed and
 * drained, so whatever is counted may use the table without a lock.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reqq.h"

#define SS UDM_SECTOR_SIZE

struct udm_req {
  struct udm_device *dev;
  enum udm_op op;
  unsigned flags;
  udm_sector_t sector;
  uint64_t nr_sectors;
  char *buf;
  void (*done)(struct udm_req *rq, int err);
  atomic_uint pending;     /* pieces not yet completed, +1 while dispatching */
  atomic_int error;        /* the first error */
  struct udm_req *next;    /* d->deferred */
};

struct udm_piece {
  struct udm_io io;        /* what map() sees, and what is submitted */
  struct udm_req *rq;
  struct udm_target *ti;
  /* The piece as cut, for a retry after UDM_MAPIO_REQUEUE. */
  enum udm_op op;
  unsigned flags;
  udm_sector_t sector;
  uint64_t nr_sectors;
  char *buf;
  unsigned target_io_nr;
  unsigned kick_gen;       /* d->kick_gen when map() or end_io() was called */
  struct udm_piece *next;  /* d->held */
  max_align_t per_io[];    /* ti->per_io_size bytes */
};

/* Write-zeroes for targets that cannot is written from here: never written to. */
#define ZERO_CHUNK_SECTORS 2048u
static char zero_chunk[ZERO_CHUNK_SECTORS * SS];

/*
 * Set while this thread runs a blocking request for a target
 * (udm_dev_submit on a udm device): its pieces stay on this thread, on the
 * backing devices' synchronous paths.  Such a wait may run where nothing
 * else would complete it (in a completion, on an engine thread), so it must
 * not depend on another thread.  The public blocking calls are made by
 * applications' own threads and go the asynchronous way, so that the
 * pieces of one request still run side by side.
 */
static _Thread_local unsigned sync_depth;

/* ---- the gate ---- */

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
  while (atomic_load(&d->in_flight))
    pthread_cond_wait(&d->gate_cond, &d->gate_lock);
  pthread_mutex_unlock(&d->gate_lock);
}

static void take_backlog_locked(struct udm_device *d, struct udm_io_backlog *work)
{
  work->deferred = d->deferred;
  work->held = d->held;
  d->deferred = NULL;
  d->deferred_tail = &d->deferred;
  d->held = NULL;
}

void udm__io_take_backlog(struct udm_device *d, struct udm_io_backlog *work)
{
  pthread_mutex_lock(&d->gate_lock);
  take_backlog_locked(d, work);
  pthread_mutex_unlock(&d->gate_lock);
}

void udm__gate_open(struct udm_device *d, struct udm_io_backlog *work)
{
  pthread_mutex_lock(&d->gate_lock);
  atomic_store(&d->suspended, false);
  if (work)
    take_backlog_locked(d, work);
  pthread_cond_broadcast(&d->gate_cond);
  pthread_mutex_unlock(&d->gate_lock);
}

/*
 * Count rq in, or queue it until resume.  True: it passed and counts in
 * in_flight.
 */
static bool gate_pass(struct udm_device *d, struct udm_req *rq)
{
  for (;;) {
    atomic_fetch_add(&d->in_flight, 1);
    if (!atomic_load(&d->suspended))
      return true;
    udm__io_leave(d);
    pthread_mutex_lock(&d->gate_lock);
    if (atomic_load(&d->suspended)) {
      if (!d->deferred_tail)
        d->deferred_tail = &d->deferred;
      rq->next = NULL;
      *d->deferred_tail = rq;
      d->deferred_tail = &rq->next;
      pthread_mutex_unlock(&d->gate_lock);
      return false;
    }
    pthread_mutex_unlock(&d->gate_lock);
  }
}

/* ---- requests and pieces ---- */

static void rq_error(struct udm_req *rq, int err)
{
  int zero = 0;
  if (err < 0)
    atomic_compare_exchange_strong(&rq->error, &zero, err);
}

static void rq_put(struct udm_req *rq)
{
  if (atomic_fetch_sub(&rq->pending, 1) == 1)
    rq->done(rq, atomic_load(&rq->error));
}

static bool is_write_op(enum udm_op op)
{
  return op == UDM_OP_WRITE || op == UDM_OP_DISCARD || op == UDM_OP_WRITE_ZEROES;
}

static void piece_end(struct udm_io *io, int err);

static struct udm_piece *piece_new(struct udm_req *rq, struct udm_target *ti,
                                   enum udm_op op, unsigned flags, udm_sector_t sector,
                                   uint64_t nr, char *buf)
{
  size_t extra = ti ? ti->per_io_size : 0;
  struct udm_piece *p = malloc(sizeof *p + extra);
  if (!p)
    return NULL;
  memset(p, 0, sizeof *p + extra);
  p->rq = rq;
  p->ti = ti;
  p->op = op;
  p->flags = flags;
  p->sector = sector;
  p->nr_sectors = nr;
  p->buf = buf;
  atomic_fetch_add(&rq->pending, 1);
  return p;
}

static void piece_free(struct udm_piece *p)
{
  struct udm_req *rq = p->rq;
  free(p);
  rq_put(rq);
}

static void piece_retry(struct udm_piece *p, int err);

/*
 * Put p on the hold list.  A target decides to hold a piece (no path) and
 * another thread may then make it mappable and kick before the piece gets
 * here: such a piece, seeing a kick newer than its map()/end_io(), is
 * mapped again now instead of waiting for a kick that already happened.
 */
static void hold_piece(struct udm_piece *p)
{
  struct udm_device *d = p->rq->dev;
  pthread_mutex_lock(&d->gate_lock);
  bool kicked = p->kick_gen != atomic_load(&d->kick_gen) && !atomic_load(&d->suspended);
  if (!kicked) {
    p->next = d->held;
    d->held = p;
  }
  pthread_mutex_unlock(&d->gate_lock);
  udm__io_leave(d);
  if (kicked)
    piece_retry(p, 0);
}

/* What a backing device refuses before any I/O: past its end, writes to a read-only open. */
static int dev_check(const struct udm_dev *dev, const struct udm_io *io)
{
  if (io->op != UDM_OP_FLUSH &&
      (io->sector > dev->size || io->nr_sectors > dev->size - io->sector))
    return -EIO;
  if (is_write_op(io->op) && !(dev->mode & UDM_DEV_WRITE))
    return -EROFS;
  return 0;
}

int udm_dev_submit(struct udm_dev *dev, struct udm_io *io)
{
  int r = dev_check(dev, io);
  return r < 0 ? r : dev->ops->submit(dev, io);
}

/* Start io on a backing device; its completion is io->end_io. */
void udm_dev_submit_async(struct udm_dev *dev, struct udm_io *io)
{
  int r = dev_check(dev, io);
  if (r < 0)
    udm_io_complete(io, r);
  else if (dev->ops->submit_async && sync_depth == 0)
    dev->ops->submit_async(dev, io);
  else
    udm_io_complete(io, dev->ops->submit(dev, io));
}

void udm_io_complete(struct udm_io *io, int err)
{
  io->end_io(io, err);
}

/*
 * Map a counted piece.  The flush pieces of one request that land on a
 * device already flushed by this request are completed at once (seen).
 */
static void piece_map(struct udm_piece *p, struct udm_dev **seen, unsigned *nseen,
                      unsigned maxseen)
{
  struct udm_target *ti = p->ti;
  p->io = (struct udm_io){
      .op = p->op,
      .flags = p->flags,
      .sector = p->sector,
      .nr_sectors = p->nr_sectors,
      .buf = p->buf,
      .target_io_nr = p->target_io_nr,
      .end_io = piece_end,
      .per_io = ti->per_io_size ? p->per_io : NULL,
  };
  if (ti->per_io_size)
    memset(p->per_io, 0, ti->per_io_size);
  p->kick_gen = atomic_load(&p->rq->dev->kick_gen);
  int r = ti->type->map ? ti->type->map(ti, &p->io)
                        : udm_remap(ti, &p->io, ti->remap_dev, ti->remap_start);
  switch (r) {
  case UDM_MAPIO_REMAPPED:
    if (!p->io.dev) {
      piece_end(&p->io, -EIO);
      return;
    }
    if (p->op == UDM_OP_FLUSH && seen) {
      for (unsigned k = 0; k < *nseen; k++)
        if (seen[k] == p->io.dev) {
          piece_end(&p->io, 0);
          return;
        }
      if (*nseen < maxseen)
        seen[(*nseen)++] = p->io.dev;
    }
    p->io.end_io = piece_end; /* a target must not change it; make sure */
    udm_dev_submit_async(p->io.dev, &p->io);
    return;
  case UDM_MAPIO_DONE:
    piece_end(&p->io, 0);
    return;
  case UDM_MAPIO_SUBMITTED:
    return;
  case UDM_MAPIO_REQUEUE:
    hold_piece(p);
    return;
  default:
    piece_end(&p->io, r < 0 ? r : -EIO);
    return;
  }
}

static void piece_end(struct udm_io *io, int err)
{
  struct udm_piece *p = (struct udm_piece *)((char *)io - offsetof(struct udm_piece, io));
  struct udm_target *ti = p->ti;
  struct udm_device *d = p->rq->dev;
  if (ti && ti->type->end_io) {
    p->kick_gen = atomic_load(&d->kick_gen);
    int r = ti->type->end_io(ti, io, &err);
    if (r == UDM_ENDIO_INCOMPLETE)
      return;
    if (r == UDM_ENDIO_REQUEUE) {
      hold_piece(p);
      return;
    }
  }
  rq_error(p->rq, err);
  udm__io_leave(d);
  piece_free(p);
}

static void map_one(struct udm_req *rq, struct udm_target *ti, enum udm_op op,
                    unsigned flags, udm_sector_t sector, uint64_t n, char *buf,
                    struct udm_dev **seen, unsigned *nseen, unsigned maxseen)
{
  struct udm_piece *p = piece_new(rq, ti, op, flags, sector, n, buf);
  if (!p) {
    rq_error(rq, -ENOMEM);
    return;
  }
  atomic_fetch_add(&rq->dev->in_flight, 1);
  piece_map(p, seen, nseen, maxseen);
}

static void flush_table(struct udm_req *rq, udm_table *t, unsigned flags)
{
  struct udm_dev *seen[16];
  unsigned nseen = 0;
  for (unsigned i = 0; i < t->num_targets; i++) {
    struct udm_target *ti = &t->targets[i];
    for (unsigned n = 0; n < ti->num_flush_ios; n++) {
      struct udm_piece *p = piece_new(rq, ti, UDM_OP_FLUSH, flags, ti->begin, 0, NULL);
      if (!p) {
        rq_error(rq, -ENOMEM);
        return;
      }
      p->target_io_nr = n;
      atomic_fetch_add(&rq->dev->in_flight, 1);
      piece_map(p, seen, &nseen, UDM_ARRAY_SIZE(seen));
    }
  }
}

/*
 * Split [sector, sector+nr) at segment and max_io_len boundaries and map
 * each piece.  As in the kernel, every piece is issued even when an earlier
 * one failed (a write that straddles an error segment still lands where it
 * can); the request reports the first error.
 */
static void map_range(struct udm_req *rq, udm_table *t, enum udm_op op, unsigned flags,
                      udm_sector_t sector, uint64_t left, char *buf)
{
  while (left > 0) {
    struct udm_target *ti = &t->targets[udm__table_find(t, sector)];
    uint64_t n = ti->begin + ti->len - sector;
    if (n > left)
      n = left;
    if (ti->max_io_len && !(op == UDM_OP_DISCARD && ti->whole_discards)) {
      uint64_t to_boundary = ti->max_io_len - (sector - ti->begin) % ti->max_io_len;
      if (n > to_boundary)
        n = to_boundary;
    }
    uint64_t md = t->limits.max_discard_sectors;
    if (op == UDM_OP_DISCARD && md && n > md - (sector - ti->begin) % md)
      n = md - (sector - ti->begin) % md;
    if (op == UDM_OP_DISCARD && !ti->num_discard_ios) {
      rq_error(rq, -EOPNOTSUPP);
    } else if (op == UDM_OP_WRITE_ZEROES && !ti->num_write_zeroes_ios) {
      if (flags & UDM_IO_NO_FALLBACK)
        rq_error(rq, -EOPNOTSUPP);
      else
        /* Plain writes of zeros, as the kernel's fallback does. */
        for (uint64_t done = 0, c; done < n; done += c) {
          c = n - done < ZERO_CHUNK_SECTORS ? n - done : ZERO_CHUNK_SECTORS;
          map_one(rq, ti, UDM_OP_WRITE, flags & UDM_IO_FUA, sector + done, c,
                  zero_chunk, NULL, NULL, 0);
        }
    } else {
      map_one(rq, ti, op, flags, sector, n, buf, NULL, NULL, 0);
    }
    sector += n;
    left -= n;
    if (buf)
      buf += n * SS;
  }
}

/* Check rq against table t (NULL: none): 0 or the error to fail it with. */
static int check_request(struct udm_device *d, udm_table *t, const struct udm_req *rq)
{
  if (atomic_load(&d->dead) || !t)
    return -EIO;
  if (is_write_op(rq->op) && (d->flags & UDM_DEVICE_READONLY))
    return -EROFS;
  if (rq->op == UDM_OP_FLUSH)
    return 0;
  if (rq->sector > t->size || rq->nr_sectors > t->size - rq->sector)
    return -EIO; /* beyond the end of the device, as the kernel answers */
  uint64_t spb = t->limits.logical_block_size / SS;
  if (rq->sector % spb || rq->nr_sectors % spb)
    return -EINVAL; /* smaller than the table's blocks (reloaded meanwhile) */
  return 0;
}

/* Start rq (rq->pending == 1: the dispatcher's own reference). */
static void dispatch(struct udm_req *rq)
{
  struct udm_device *d = rq->dev;
  if (!gate_pass(d, rq))
    return; /* deferred: dispatched again at resume, still holding its reference */
  udm_table *t = atomic_load(&d->live);
  int r = check_request(d, t, rq);
  if (r < 0)
    rq_error(rq, r);
  else if (rq->op == UDM_OP_FLUSH)
    flush_table(rq, t, rq->flags);
  else if (rq->nr_sectors)
    map_range(rq, t, rq->op, rq->flags, rq->sector, rq->nr_sectors, rq->buf);
  udm__io_leave(d);
  rq_put(rq);
}

/* Map a held piece again on the live table, or keep holding it. */
static void piece_retry(struct udm_piece *p, int err)
{
  struct udm_req *rq = p->rq;
  struct udm_device *d = rq->dev;
  if (err < 0 || atomic_load(&d->dead)) {
    rq_error(rq, err < 0 ? err : -EIO);
    piece_free(p);
    return;
  }
  atomic_fetch_add(&d->in_flight, 1);
  if (atomic_load(&d->suspended)) {
    hold_piece(p); /* resume retries it */
    return;
  }
  udm_table *t = atomic_load(&d->live);
  struct udm_req probe = {.op = p->op, .sector = p->sector, .nr_sectors = p->nr_sectors};
  int r = check_request(d, t, &probe);
  if (r < 0)
    rq_error(rq, r);
  else if (p->op == UDM_OP_FLUSH)
    flush_table(rq, t, p->flags); /* a held flush flushes the whole table */
  else
    map_range(rq, t, p->op, p->flags, p->sector, p->nr_sectors, p->buf);
  udm__io_leave(d);
  piece_free(p); /* its share of rq->pending now belongs to the new pieces */
}

void udm__io_restart(struct udm_io_backlog *work, int err)
{
  struct udm_piece *p = work->held;
  struct udm_req *rq = work->deferred;
  work->held = NULL;
  work->deferred = NULL;
  /* Held pieces were mapped first; they go first again, oldest first. */
  struct udm_piece *rev = NULL;
  while (p) {
    struct udm_piece *next = p->next;
    p->next = rev;
    rev = p;
    p = next;
  }
  for (p = rev; p;) {
    struct udm_piece *next = p->next;
    piece_retry(p, err);
    p = next;
  }
  while (rq) {
    struct udm_req *next = rq->next;
    if (err < 0) {
      rq_error(rq, err);
      rq_put(rq);
    } else {
      dispatch(rq);
    }
    rq = next;
  }
}

void udm_target_kick(struct udm_target *ti)
{
  struct udm_device *d = ti->table->owner;
  if (!d)
    return;
  struct udm_piece *mine = NULL, **keep;
  pthread_mutex_lock(&d->gate_lock);
  if (atomic_load(&d->suspended)) {
    pthread_mutex_unlock(&d->gate_lock);
    return; /* resume retries everything held */
  }
  atomic_fetch_add(&d->kick_gen, 1);
  keep = &d->held;
  while (*keep) {
    struct udm_piece *p = *keep;
    if (p->ti == ti) {
      *keep = p->next;
      p->next = mine;
      mine = p;
    } else {
      keep = &p->next;
    }
  }
  pthread_mutex_unlock(&d->gate_lock);
  struct udm_io_backlog work = {.held = mine};
  udm__io_restart(&work, 0);
}

void udm_target_event(struct udm_target *ti)
{
  struct udm_device *d = ti->table->owner;
  if (!d)
    return;
  pthread_mutex_lock(&d->gate_lock);
  atomic_fetch_add(&d->event_nr, 1);
  pthread_cond_broadcast(&d->event_cond);
  pthread_mutex_unlock(&d->gate_lock);
}

int udm_remap(struct udm_target *ti, struct udm_io *io, struct udm_dev *dev,
              udm_sector_t start)
{
  io->dev = dev;
  if (io->op != UDM_OP_FLUSH)
    io->sector = start + udm_target_offset(ti, io->sector);
  return UDM_MAPIO_REMAPPED;
}

void udm_target_set_remap(struct udm_target *ti, struct udm_dev *dev, udm_sector_t start)
{
  ti->remap_dev = dev;
  ti->remap_start = start;
}

/* ---- submitting: asynchronous, and blocking on top of it ---- */

/* A request that ends by completing a udm_io (stacking, blocking calls). */
struct io_req {
  struct udm_req rq;
  struct udm_io *io;
};

static void io_req_done(struct udm_req *rq, int err)
{
  struct io_req *ir = (struct io_req *)rq;
  struct udm_io *io = ir->io;
  free(ir);
  udm_io_complete(io, err);
}

static struct udm_req *rq_init(struct udm_req *rq, struct udm_device *d, enum udm_op op,
                               unsigned flags, udm_sector_t sector, uint64_t nr,
                               void *buf, void (*done)(struct udm_req *, int))
{
  rq->dev = d;
  rq->op = op;
  rq->flags = flags;
  rq->sector = sector;
  rq->nr_sectors = nr;
  rq->buf = buf;
  rq->done = done;
  atomic_init(&rq->pending, 1);
  atomic_init(&rq->error, 0);
  rq->next = NULL;
  return rq;
}

void udm__device_submit_async(struct udm_device *d, struct udm_io *io)
{
  struct io_req *ir = malloc(sizeof *ir);
  if (!ir) {
    udm_io_complete(io, -ENOMEM);
    return;
  }
  ir->io = io;
  dispatch(rq_init(&ir->rq, d, io->op, io->flags, io->sector, io->nr_sectors, io->buf,
                   io_req_done));
}

/* A blocking call waits on a udm__sync (reqq.c); its completion callback: */
static void sync_done(void *opaque, int err)
{
  udm__sync_done(opaque, err);
}

/* A blocking request for a target: its pieces stay on this thread (sync_depth). */
struct waiter {
  struct udm_req rq;
  struct udm__sync *s;
};

static void waiter_done(struct udm_req *rq, int err)
{
  sync_done(((struct waiter *)rq)->s, err);
}

static int submit_wait(struct udm_device *d, enum udm_op op, unsigned flags,
                       udm_sector_t sector, uint64_t nr, void *buf)
{
  struct udm__sync s;
  struct waiter w = {.s = &s};
  udm__sync_begin(&s);
  rq_init(&w.rq, d, op, flags, sector, nr, buf, waiter_done);
  sync_depth++;
  dispatch(&w.rq);
  sync_depth--;
  return udm__sync_wait(&s);
}

int udm__device_submit(struct udm_device *d, struct udm_io *io)
{
  /* Only the fields of API version 1: an older target's io is that small. */
  return submit_wait(d, io->op, io->flags, io->sector, io->nr_sectors, io->buf);
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

/* The default extents of a remap target: those of its device, shifted. */
static int remap_extents(struct udm_target *ti, udm_sector_t sector, uint64_t nr,
                         udm_extent_fn fn, void *opaque)
{
  struct extent_shift s = {fn, opaque, 0 - ti->remap_start}; /* modulo 2^64: back */
  return udm_dev_extents(ti->remap_dev, ti->remap_start + sector, nr, shift_extent, &s);
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
    struct extent_shift s = {fn, opaque, ti->begin};
    if (ti->type->extents)
      r = ti->type->extents(ti, sector - ti->begin, n, shift_extent, &s);
    else if (!ti->type->map && ti->remap_dev)
      r = remap_extents(ti, sector - ti->begin, n, shift_extent, &s);
    else
      r = fn(opaque, sector, n, 0);
    sector += n;
    nr -= n;
  }
out:
  udm__io_leave(d);
  return r;
}

/* ---- the public byte-addressed API ---- */

/*
 * A call is one or more parts, each a request on whole blocks: a plain one,
 * a read into a bounce buffer copied out (unaligned reads), or a
 * read-modify-write of edge blocks (unaligned writes and write-zeroes; not
 * atomic against a racing writer of the same blocks, as on any block
 * device).  The call completes when its last part does.
 */
struct aio_call {
  udm_io_done_fn done;
  void *opaque;
  atomic_uint parts;
  atomic_int error;
};

struct aio_part {
  struct udm_req rq;
  struct aio_call *call;
  char *bounce;      /* whole blocks [a0, a0 + blen) */
  size_t blen;
  size_t at;         /* the caller's bytes start here in bounce */
  size_t len;
  char *dst;         /* READ_COPY: copy out here */
  const char *src;   /* RMW: patch with these bytes, or zeros when NULL */
  bool rmw, writing;
  unsigned wflags;
};

static void call_put(struct aio_call *c, int err)
{
  int zero = 0;
  if (err < 0)
    atomic_compare_exchange_strong(&c->error, &zero, err);
  if (atomic_fetch_sub(&c->parts, 1) == 1) {
    udm_io_done_fn done = c->done;
    void *opaque = c->opaque;
    int e = atomic_load(&c->error);
    free(c);
    done(opaque, e);
  }
}

static void part_done(struct udm_req *rq, int err)
{
  struct aio_part *pt = (struct aio_part *)rq;
  if (err == 0 && pt->rmw && !pt->writing) {
    if (pt->src)
      memcpy(pt->bounce + pt->at, pt->src, pt->len);
    else
      memset(pt->bounce + pt->at, 0, pt->len);
    pt->writing = true;
    rq_init(&pt->rq, rq->dev, UDM_OP_WRITE, pt->wflags, rq->sector, rq->nr_sectors,
            pt->bounce, part_done);
    dispatch(&pt->rq);
    return;
  }
  if (err == 0 && pt->dst)
    memcpy(pt->dst, pt->bounce + pt->at, pt->len);
  struct aio_call *c = pt->call;
  free(pt->bounce);
  free(pt);
  call_put(c, err);
}

/* The logical block size of the live table, for splitting a call. */
static unsigned live_block_size(struct udm_device *d)
{
  unsigned bs = atomic_load(&d->block_size);
  return bs ? bs : SS;
}

/* A plain part: [off, off+len) in whole blocks. */
static int add_plain(struct udm_device *d, enum udm_op op,
                     unsigned flags, void *buf, uint64_t off, uint64_t len,
                     struct aio_part **out)
{
  struct aio_part *pt = calloc(1, sizeof *pt);
  if (!pt)
    return -ENOMEM;
  rq_init(&pt->rq, d, op, flags, off / SS, len / SS, buf, part_done);
  *out = pt;
  return 0;
}

/* A bounced part over the blocks covering [off, off+len). */
static int add_bounced(struct udm_device *d, unsigned bs,
                       uint64_t off, size_t len, char *dst, const char *src, bool rmw,
                       unsigned wflags, struct aio_part **out)
{
  uint64_t a0 = off / bs * bs, a1 = (off + len + bs - 1) / bs * bs;
  struct aio_part *pt = calloc(1, sizeof *pt);
  if (!pt || !(pt->bounce = malloc(a1 - a0))) {
    free(pt);
    return -ENOMEM;
  }
  pt->blen = a1 - a0;
  pt->at = off - a0;
  pt->len = len;
  pt->dst = dst;
  pt->src = src;
  pt->rmw = rmw;
  pt->wflags = wflags;
  rq_init(&pt->rq, d, UDM_OP_READ, 0, a0 / SS, (a1 - a0) / SS, pt->bounce, part_done);
  *out = pt;
  return 0;
}

/* Start the n parts of a call (none: done at once). */
static int start_call(struct udm_device *d, udm_io_done_fn done, void *opaque,
                      struct aio_part **parts, unsigned n, int err, const char *what,
                      uint64_t off, uint64_t len)
{
  struct aio_call *c = NULL;
  if (err == 0 && !(c = malloc(sizeof *c)))
    err = -ENOMEM;
  if (err < 0) {
    for (unsigned i = 0; i < n; i++)
      if (parts[i]) {
        free(parts[i]->bounce);
        free(parts[i]);
      }
    return udm__fail(-err, "%s %s: %llu bytes at offset %llu: %s", what, d->name,
                     (unsigned long long)len, (unsigned long long)off, strerror(-err));
  }
  c->done = done;
  c->opaque = opaque;
  atomic_init(&c->parts, n + 1);
  atomic_init(&c->error, 0);
  for (unsigned i = 0; i < n; i++) {
    parts[i]->call = c;
    dispatch(&parts[i]->rq);
  }
  call_put(c, 0);
  return 0;
}

static bool aligned(uint64_t off, uint64_t len, unsigned bs)
{
  return off % bs == 0 && len % bs == 0;
}

static int overflow(struct udm_device *d, const char *what, uint64_t off, uint64_t len)
{
  return udm__fail(EINVAL, "%s %s: %llu bytes at offset %llu: the range overflows",
                   what, d->name, (unsigned long long)len, (unsigned long long)off);
}

int udm_device_aio_pread(struct udm_device *dev, void *buf, size_t len, uint64_t off,
                         udm_io_done_fn done, void *opaque)
{
  if (off + len < off)
    return overflow(dev, "read", off, len);
  unsigned bs = live_block_size(dev);
  struct aio_part *p[1] = {NULL};
  unsigned n = len > 0;
  int r = 0;
  if (n && aligned(off, len, bs))
    r = add_plain(dev, UDM_OP_READ, 0, buf, off, len, &p[0]);
  else if (n)
    r = add_bounced(dev, bs, off, len, buf, NULL, false, 0, &p[0]);
  return start_call(dev, done, opaque, p, n, r, "read", off, len);
}

int udm_device_aio_pwrite(struct udm_device *dev, const void *buf, size_t len,
                          uint64_t off, unsigned flags, udm_io_done_fn done, void *opaque)
{
  if (off + len < off)
    return overflow(dev, "write", off, len);
  unsigned bs = live_block_size(dev);
  struct aio_part *p[1] = {NULL};
  unsigned n = len > 0;
  int r = 0;
  flags &= UDM_IO_FUA;
  if (n && aligned(off, len, bs))
    r = add_plain(dev, UDM_OP_WRITE, flags, (void *)buf, off, len, &p[0]);
  else if (n)
    r = add_bounced(dev, bs, off, len, NULL, buf, true, flags, &p[0]);
  return start_call(dev, done, opaque, p, n, r, "write", off, len);
}

int udm_device_aio_flush(struct udm_device *dev, udm_io_done_fn done, void *opaque)
{
  struct aio_part *p[1] = {NULL};
  int r = add_plain(dev, UDM_OP_FLUSH, 0, NULL, 0, 0, &p[0]);
  return start_call(dev, done, opaque, p, 1, r, "flush", 0, 0);
}

int udm_device_aio_discard(struct udm_device *dev, uint64_t len, uint64_t off,
                           unsigned flags, udm_io_done_fn done, void *opaque)
{
  if (off + len < off)
    return overflow(dev, "discard", off, len);
  unsigned bs = live_block_size(dev);
  /* Discard is advisory: only the whole blocks inside the range are discarded. */
  uint64_t a0 = (off + bs - 1) / bs * bs, a1 = (off + len) / bs * bs;
  struct aio_part *p[1] = {NULL};
  unsigned n = a1 > a0;
  int r = n ? add_plain(dev, UDM_OP_DISCARD, flags & UDM_IO_FUA, NULL, a0, a1 - a0,
                        &p[0])
            : 0;
  return start_call(dev, done, opaque, p, n, r, "discard", off, len);
}

int udm_device_aio_write_zeroes(struct udm_device *dev, uint64_t len, uint64_t off,
                                unsigned flags, udm_io_done_fn done, void *opaque)
{
  if (off + len < off)
    return overflow(dev, "write-zeroes", off, len);
  unsigned bs = live_block_size(dev);
  /* The whole blocks inside the range; the partial ones at its edges are written. */
  uint64_t a0 = (off + bs - 1) / bs * bs, a1 = (off + len) / bs * bs;
  struct aio_part *p[3] = {NULL, NULL, NULL};
  unsigned n = 0;
  int r = 0;
  if (len == 0)
    ;
  else if (!aligned(off, len, bs) && (flags & UDM_IO_NO_FALLBACK))
    r = -EOPNOTSUPP;
  else if (a1 <= a0) /* no whole block inside */
    r = add_bounced(dev, bs, off, len, NULL, NULL, true, flags & UDM_IO_FUA,
                    &p[n++]);
  else {
    if (a0 > off)
      r = add_bounced(dev, bs, off, a0 - off, NULL, NULL, true, flags & UDM_IO_FUA,
                      &p[n++]);
    if (r == 0 && a1 < off + len)
      r = add_bounced(dev, bs, a1, off + len - a1, NULL, NULL, true,
                      flags & UDM_IO_FUA, &p[n++]);
    if (r == 0)
      r = add_plain(dev, UDM_OP_WRITE_ZEROES, flags, NULL, a0, a1 - a0, &p[n++]);
  }
  return start_call(dev, done, opaque, p, n, r, "write-zeroes", off, len);
}

/* ---- blocking calls: an asynchronous one and a wait (udm__sync) ---- */

/* Wait for a call that started (started == 0); 0 or -1 with udm_errmsg. */
static int sync_end(struct udm__sync *s, int started, struct udm_device *dev,
                    const char *what, uint64_t off, uint64_t len)
{
  if (started < 0) {
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    return -1;
  }
  udm__sync_wait(s);
  if (s->err == 0)
    return 0;
  if (!len && strcmp(what, "flush") == 0)
    return udm__fail(-s->err, "flush %s: %s", dev->name, strerror(-s->err));
  return udm__fail(-s->err, "%s %s: %llu bytes at offset %llu: %s", what, dev->name,
                   (unsigned long long)len, (unsigned long long)off, strerror(-s->err));
}

int udm_device_pread(struct udm_device *dev, void *buf, size_t len, uint64_t off)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  int r = udm_device_aio_pread(dev, buf, len, off, sync_done, &s);
  return sync_end(&s, r, dev, "read", off, len);
}

int udm_device_pwrite(struct udm_device *dev, const void *buf, size_t len, uint64_t off,
                      unsigned flags)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  int r = udm_device_aio_pwrite(dev, buf, len, off, flags, sync_done, &s);
  return sync_end(&s, r, dev, "write", off, len);
}

int udm_device_flush(struct udm_device *dev)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  int r = udm_device_aio_flush(dev, sync_done, &s);
  return sync_end(&s, r, dev, "flush", 0, 0);
}

int udm_device_discard(struct udm_device *dev, uint64_t len, uint64_t off,
                       unsigned flags)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  int r = udm_device_aio_discard(dev, len, off, flags, sync_done, &s);
  return sync_end(&s, r, dev, "discard", off, len);
}

int udm_device_write_zeroes(struct udm_device *dev, uint64_t len, uint64_t off,
                            unsigned flags)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  int r = udm_device_aio_write_zeroes(dev, len, off, flags, sync_done, &s);
  return sync_end(&s, r, dev, "write-zeroes", off, len);
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
