/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cache (dm-cache): a fast cache device in front of a slow origin, blocks
 * of the origin promoted into cache blocks by a policy, with its metadata
 * in the kernel's format (metadata.c) on a third device.
 *
 *   cache <metadata dev> <cache dev> <origin dev> <block size>
 *         <#features> [writethrough|writeback|passthrough|metadata2|no_discard_passdown]...
 *         <policy> <#policy args> [<key> <value>]...
 *
 * As in the kernel (dm-cache-target.c):
 *   - the target's length is the origin's used size; the cache holds
 *     cache dev size / block size blocks; the block size is 64..2097152
 *     sectors, a multiple of 64;
 *   - reads and writes of a cached block go to the cache device (in
 *     writethrough mode writes go to both; in passthrough mode everything
 *     goes to the origin and a write to a cached block first invalidates
 *     it), others to the origin;
 *   - promotions (origin -> cache), writebacks (cache -> origin) and
 *     demotions run in the background through the copy service while at
 *     most migration_threshold sectors are being moved; I/O to a block
 *     being moved waits (the core's hold list) until the move is done and
 *     its metadata committed, and a move starts only when earlier I/O to
 *     its block has completed;
 *   - a new mapping is committed before the block is used; dirty bits,
 *     hints, the discard bitset and the statistics are written at a clean
 *     suspend, which sets the clean-shutdown flag: metadata opened without
 *     it has every mapped block dirty;
 *   - a flush commits the metadata, then flushes both devices.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <udm/target.h>

#include "cache.h"

#define MIN_BLOCK_SECTORS 64u
#define MAX_BLOCK_SECTORS 2097152u
#define DEFAULT_MIGRATION_THRESHOLD 2048u
#define MAX_DISCARD_BLOCKS (1u << 14)
#define NR_BUCKETS 1024u
#define NONE UINT32_MAX
#define COMMIT_PERIOD_NS 1000000000ull
#define IDLE_NS 1000000000ull

enum io_mode { MODE_WRITETHROUGH, MODE_WRITEBACK, MODE_PASSTHROUGH };
/* The metadata's mode, as the kernel's: writable, read-only after a failed
 * operation was rolled back, failed when even the rollback failed. */
enum md_mode { MD_WRITE, MD_READ_ONLY, MD_FAIL };

struct cblock_state {
  uint64_t oblock;
  uint32_t hnext;
  bool valid, dirty, busy;
};

struct migration {
  enum cache_work kind;
  uint64_t oblock;
  uint32_t cblock;
  int err;
  struct cache *cache;
  struct migration *next;
};

struct cache_io {
  struct udm_io *io;
  struct cache *cache; /* for writethrough's completion */
  struct cache_io *next;
  uint32_t bucket;
  bool counted;
};

struct cache_rpc {
  int (*fn)(struct cache *c, void *arg);
  void *arg;
  int result;
  bool done;
  char why[256];
  struct cache_rpc *next;
};

struct cache {
  struct udm_target *ti;
  struct udm_dev *metadata_dev, *cache_dev, *origin_dev;
  uint32_t sectors_per_block;
  uint64_t origin_sectors, nr_oblocks;
  uint32_t nr_cblocks;
  enum io_mode mode;
  unsigned metadata_version;
  bool discard_passdown;
  _Atomic uint64_t migration_threshold;
  unsigned nr_ctr_args;
  char **ctr_args;

  struct cache_md md;
  bool md_open;
  struct cache_policy *policy;

  pthread_mutex_t lock; /* everything below that is not atomic */
  pthread_cond_t rpc_done;
  bool lock_ready;
  struct cblock_state *cb;
  uint32_t *hash, hash_mask;
  uint32_t *free_list, nr_free;
  uint64_t discard_block_size, nr_dblocks;
  uint64_t *discard_bits;
  struct migration *waiting, *done;
  unsigned nr_migrations;
  struct cache_io *flushes;
  struct cache_rpc *rpcs;
  bool suspending;
  bool changed;
  enum md_mode md_mode; /* MD_WRITE until a metadata operation fails */
  uint32_t nr_dirty;

  _Atomic uint32_t inflight[NR_BUCKETS];
  _Atomic uint64_t last_io_ns;
  _Atomic uint32_t read_hits, read_misses, write_hits, write_misses, demotions, promotions;
  _Atomic uint64_t md_used, md_total;
  _Atomic bool needs_check;

  struct udm_worker *worker;
  struct udm_work work;
  struct udm_timer tick;
  struct udm_copier *copier;
};

static void wake(struct cache *c) { udm_worker_queue(c->worker, &c->work); }

static uint32_t bucket_of(uint64_t oblock)
{
  return (uint32_t)((oblock * 0x9e3779b97f4a7c15ull) >> 40) & (NR_BUCKETS - 1);
}

/* ---- the in-core mapping: a hash of origin block -> cache block ---- */

static uint32_t hash_slot(const struct cache *c, uint64_t oblock)
{
  return (uint32_t)((oblock * 0x9e3779b97f4a7c15ull) >> 32) & c->hash_mask;
}

static uint32_t lookup(const struct cache *c, uint64_t oblock)
{
  for (uint32_t b = c->hash[hash_slot(c, oblock)]; b != NONE; b = c->cb[b].hnext)
    if (c->cb[b].oblock == oblock)
      return b;
  return NONE;
}

static void hash_insert(struct cache *c, uint32_t b)
{
  uint32_t s = hash_slot(c, c->cb[b].oblock);
  c->cb[b].hnext = c->hash[s];
  c->hash[s] = b;
}

static void hash_remove(struct cache *c, uint32_t b)
{
  for (uint32_t *p = &c->hash[hash_slot(c, c->cb[b].oblock)]; *p != NONE;
       p = &c->cb[*p].hnext)
    if (*p == b) {
      *p = c->cb[b].hnext;
      c->cb[b].hnext = NONE;
      return;
    }
}

/* ---- policy queries (under the lock) ---- */

static bool q_dirty(void *ctx, uint32_t b) { return ((struct cache *)ctx)->cb[b].dirty; }
static bool q_busy(void *ctx, uint32_t b) { return ((struct cache *)ctx)->cb[b].busy; }
static bool q_cached(void *ctx, uint64_t ob) { return lookup(ctx, ob) != NONE; }

/* ---- migrations (the worker) ---- */

static void copy_done(void *opaque, int err, const int *errs)
{
  (void)errs;
  struct migration *m = opaque;
  struct cache *c = m->cache;
  m->err = err;
  pthread_mutex_lock(&c->lock);
  m->next = c->done;
  c->done = m;
  pthread_mutex_unlock(&c->lock);
  wake(c);
}

static bool discarded(const struct cache *c, uint64_t dblock);
static void set_discarded(struct cache *c, uint64_t dblock, bool on);

static void launch(struct cache *c, struct migration *m)
{
  uint64_t spb = c->sectors_per_block;
  /* A discarded origin block holds nothing worth moving (the kernel's
   * mg_full_copy): the move updates the metadata without a copy. */
  pthread_mutex_lock(&c->lock);
  bool nothing = m->kind != WORK_DEMOTE &&
                 discarded(c, m->oblock * spb / c->discard_block_size);
  pthread_mutex_unlock(&c->lock);
  if (nothing) {
    copy_done(m, 0, NULL);
    return;
  }
  struct udm_region origin = {c->origin_dev, m->oblock * spb};
  struct udm_region cache = {c->cache_dev, (uint64_t)m->cblock * spb};
  struct udm_copy job = {.n = 1, .nr_sectors = spb, .done = copy_done, .opaque = m};
  if (m->kind == WORK_PROMOTE) {
    job.from = &origin;
    job.to = &cache;
  } else if (m->kind == WORK_WRITEBACK) {
    job.from = &cache;
    job.to = &origin;
  } else {
    copy_done(m, 0, NULL); /* a demotion of a clean block moves no data */
    return;
  }
  int r = udm_copy_start(c->copier, &job, NULL);
  if (r < 0)
    copy_done(m, r, NULL);
}

static bool spare_bandwidth(struct cache *c)
{
  return (uint64_t)(c->nr_migrations + 1) * c->sectors_per_block <=
         atomic_load(&c->migration_threshold);
}

/* Queue a migration of a block made busy (under the lock). */
static void add_waiting(struct cache *c, struct migration *m)
{
  m->cache = c;
  m->next = c->waiting;
  c->waiting = m;
  c->nr_migrations++;
}

static void start_migrations(struct cache *c)
{
  pthread_mutex_lock(&c->lock);
  while (!c->suspending && spare_bandwidth(c)) {
    /* Read-only metadata: writebacks still run (they change no metadata), as
     * in the kernel; promotions and demotions, which would fail, are not tried. */
    struct policy_query q = {q_dirty, q_busy, q_cached, c, c->nr_free > 0,
                             udm_now_ns() - atomic_load(&c->last_io_ns) > IDLE_NS,
                             c->md_mode != MD_WRITE};
    uint64_t ob = 0;
    uint32_t cb = NONE;
    enum cache_work w = policy_next_work(c->policy, &q, &ob, &cb);
    if (w == WORK_NONE)
      break;
    struct migration *m = calloc(1, sizeof *m);
    if (!m)
      break;
    m->kind = w;
    if (w == WORK_PROMOTE) {
      cb = c->free_list[--c->nr_free];
      c->cb[cb] = (struct cblock_state){.oblock = ob, .hnext = NONE, .valid = true};
      hash_insert(c, cb);
    }
    c->cb[cb].busy = true;
    m->cblock = cb;
    m->oblock = c->cb[cb].oblock;
    add_waiting(c, m);
  }
  /* Start those whose block has no I/O left in flight. */
  struct migration *ready = NULL, **p = &c->waiting;
  while (*p) {
    struct migration *m = *p;
    if (c->suspending || atomic_load(&c->inflight[bucket_of(m->oblock)]) == 0) {
      *p = m->next;
      m->next = ready;
      ready = m;
    } else {
      p = &m->next;
    }
  }
  bool suspending = c->suspending;
  pthread_mutex_unlock(&c->lock);
  while (ready) {
    struct migration *m = ready;
    ready = m->next;
    if (suspending)
      copy_done(m, -ECANCELED, NULL);
    else
      launch(c, m);
  }
}

static void update_usage(struct cache *c)
{
  uint64_t used, total;
  cache_md_usage(&c->md, &used, &total);
  atomic_store(&c->md_used, used);
  atomic_store(&c->md_total, total);
}

/*
 * A metadata operation failed (the kernel's metadata_operation_failed): the
 * transaction is rolled back to the last commit, needs_check is set in the
 * superblock, and the metadata turns read-only; when the rollback or the flag
 * cannot even be read, the cache fails.  An event tells "udm wait".  Worker only.
 */
static void metadata_failed(struct cache *c)
{
  pthread_mutex_lock(&c->lock);
  enum md_mode old = c->md_mode;
  pthread_mutex_unlock(&c->lock);
  if (old != MD_WRITE)
    return;
  enum md_mode now = MD_READ_ONLY;
  if (cache_md_abort(&c->md, c->metadata_dev) < 0 || cache_md_set_needs_check(&c->md) < 0)
    now = MD_FAIL;
  atomic_store(&c->needs_check, true);
  pthread_mutex_lock(&c->lock);
  c->md_mode = now;
  pthread_mutex_unlock(&c->lock);
  udm_target_event(c->ti);
}

/* A commit; -EINVAL once the metadata is read-only or failed, as the kernel's. */
static int commit(struct cache *c, bool clean)
{
  pthread_mutex_lock(&c->lock);
  bool writable = c->md_mode == MD_WRITE;
  pthread_mutex_unlock(&c->lock);
  if (!writable)
    return -EINVAL;
  c->md.read_hits = atomic_load(&c->read_hits);
  c->md.read_misses = atomic_load(&c->read_misses);
  c->md.write_hits = atomic_load(&c->write_hits);
  c->md.write_misses = atomic_load(&c->write_misses);
  int r = cache_md_commit(&c->md, clean);
  if (r < 0)
    metadata_failed(c);
  else
    update_usage(c);
  return r;
}

static int flush_dev(struct udm_dev *dev)
{
  struct udm_io io = {.op = UDM_OP_FLUSH};
  return udm_dev_submit(dev, &io);
}

static void finish_migrations(struct cache *c)
{
  pthread_mutex_lock(&c->lock);
  struct migration *list = c->done;
  c->done = NULL;
  pthread_mutex_unlock(&c->lock);
  if (!list)
    return;
  pthread_mutex_lock(&c->lock);
  int r = c->md_mode == MD_WRITE ? 0 : -EINVAL; /* moves under way when it failed */
  pthread_mutex_unlock(&c->lock);
  /* What a new mapping points to (the promoted copy), and the origin's copy
   * a removed mapping leaves the block to, must be durable before the commit
   * that publishes them: a cache that loses its write cache with the power
   * would otherwise map garbage, or lose a written-back block. */
  bool to_cache = false, to_origin = false;
  for (struct migration *m = list; m; m = m->next)
    if (m->err == 0) {
      to_cache |= m->kind == WORK_PROMOTE;
      to_origin |= m->kind == WORK_DEMOTE;
    }
  if (r == 0 && to_cache)
    r = flush_dev(c->cache_dev);
  if (r == 0 && to_origin)
    r = flush_dev(c->origin_dev);
  for (struct migration *m = list; m && r == 0; m = m->next) {
    if (m->kind == WORK_PROMOTE && m->err == 0)
      r = cache_md_insert(&c->md, m->cblock, m->oblock, false);
    else if (m->kind == WORK_DEMOTE && m->err == 0)
      r = cache_md_remove(&c->md, m->cblock);
    if (r < 0)
      metadata_failed(c);
  }
  if (r == 0)
    r = commit(c, false);
  pthread_mutex_lock(&c->lock);
  while (list) {
    struct migration *m = list;
    list = m->next;
    struct cblock_state *s = &c->cb[m->cblock];
    bool ok = m->err == 0 && r == 0;
    if (m->kind == WORK_PROMOTE) {
      if (ok) {
        /* As the kernel: the block is in the cache now, no longer discarded. */
        set_discarded(c, m->oblock * c->sectors_per_block / c->discard_block_size, false);
        policy_inserted(c->policy, m->cblock);
        atomic_fetch_add(&c->promotions, 1);
      } else {
        hash_remove(c, m->cblock);
        s->valid = false;
        if (r == 0) /* never in the metadata: free now */
          c->free_list[c->nr_free++] = m->cblock;
      }
    } else if (m->kind == WORK_DEMOTE && ok) {
      hash_remove(c, m->cblock);
      s->valid = false;
      policy_removed(c->policy, m->cblock);
      c->free_list[c->nr_free++] = m->cblock;
      atomic_fetch_add(&c->demotions, 1);
    } else if (m->kind == WORK_WRITEBACK && ok && s->dirty) {
      s->dirty = false;
      c->nr_dirty--;
    }
    s->busy = false;
    c->nr_migrations--;
    free(m);
  }
  pthread_mutex_unlock(&c->lock);
  udm_target_kick(c->ti);
}

static void flush_done(void *opaque, int err, const int *errs)
{
  (void)errs;
  udm_io_complete(opaque, err);
}

static void process_flushes(struct cache *c)
{
  pthread_mutex_lock(&c->lock);
  struct cache_io *list = c->flushes;
  c->flushes = NULL;
  pthread_mutex_unlock(&c->lock);
  if (!list)
    return;
  /* Read-only metadata has nothing to commit (the rollback left no change):
   * flushes pass; once failed, they fail (the kernel's commit_op). */
  pthread_mutex_lock(&c->lock);
  enum md_mode mode = c->md_mode;
  pthread_mutex_unlock(&c->lock);
  int r = mode == MD_WRITE ? commit(c, false) : mode == MD_READ_ONLY ? 0 : -EIO;
  while (list) {
    struct cache_io *e = list;
    list = e->next;
    if (r < 0) {
      udm_io_complete(e->io, -EIO);
      continue;
    }
    struct udm_region both[2] = {{c->cache_dev, 0}, {c->origin_dev, 0}};
    if (udm_dmio_submit(both, 2, UDM_OP_FLUSH, 0, 0, NULL, flush_done, e->io) < 0)
      udm_io_complete(e->io, -EIO);
  }
}

static void process_rpcs(struct cache *c)
{
  pthread_mutex_lock(&c->lock);
  struct cache_rpc *calls = c->rpcs;
  c->rpcs = NULL;
  pthread_mutex_unlock(&c->lock);
  for (struct cache_rpc *r = calls; r; r = r->next) {
    r->result = r->fn(c, r->arg);
    if (r->result < 0)
      snprintf(r->why, sizeof r->why, "%s", udm_errmsg());
  }
  if (!calls)
    return;
  pthread_mutex_lock(&c->lock);
  for (struct cache_rpc *r = calls; r; r = r->next)
    r->done = true;
  pthread_cond_broadcast(&c->rpc_done);
  pthread_mutex_unlock(&c->lock);
}

static void do_work(struct udm_work *w)
{
  struct cache *c = (struct cache *)((char *)w - offsetof(struct cache, work));
  finish_migrations(c);
  start_migrations(c);
  process_flushes(c);
  process_rpcs(c);
}

static void do_tick(struct udm_timer *t)
{
  struct cache *c = (struct cache *)((char *)t - offsetof(struct cache, tick));
  pthread_mutex_lock(&c->lock);
  bool suspending = c->suspending;
  pthread_mutex_unlock(&c->lock);
  if (suspending)
    return;
  do_work(&c->work); /* idle writebacks, waiting moves */
  udm_timer_arm(&c->tick, udm_now_ns() + COMMIT_PERIOD_NS);
}

static int in_worker(struct cache *c, int (*fn)(struct cache *, void *), void *arg, char *why,
                     size_t n)
{
  struct cache_rpc rpc = {.fn = fn, .arg = arg};
  pthread_mutex_lock(&c->lock);
  rpc.next = c->rpcs;
  c->rpcs = &rpc;
  pthread_mutex_unlock(&c->lock);
  wake(c);
  pthread_mutex_lock(&c->lock);
  while (!rpc.done)
    pthread_cond_wait(&c->rpc_done, &c->lock);
  pthread_mutex_unlock(&c->lock);
  if (rpc.result < 0 && why)
    snprintf(why, n, "%s", rpc.why);
  return rpc.result;
}

/* ---- map ---- */

static bool discarded(const struct cache *c, uint64_t dblock)
{
  return c->discard_bits[dblock / 64] >> (dblock % 64) & 1;
}

static void set_discarded(struct cache *c, uint64_t dblock, bool on)
{
  if (on)
    c->discard_bits[dblock / 64] |= 1ull << (dblock % 64);
  else
    c->discard_bits[dblock / 64] &= ~(1ull << (dblock % 64));
}

static void count(struct cache *c, struct udm_io *io, uint64_t oblock)
{
  struct cache_io *e = io->per_io;
  e->bucket = bucket_of(oblock);
  e->counted = true;
  atomic_fetch_add(&c->inflight[e->bucket], 1);
}

static void uncount(struct cache *c, struct cache_io *e)
{
  if (!e->counted)
    return;
  e->counted = false;
  if (atomic_fetch_sub(&c->inflight[e->bucket], 1) == 1) {
    pthread_mutex_lock(&c->lock);
    bool waiting = c->waiting != NULL;
    pthread_mutex_unlock(&c->lock);
    if (waiting)
      wake(c);
  }
}

static void writethrough_done(void *opaque, int err, const int *errs)
{
  (void)errs;
  struct udm_io *io = opaque;
  struct cache_io *e = io->per_io;
  uncount(e->cache, e);
  udm_io_complete(io, err);
}

static int cache_map(struct udm_target *ti, struct udm_io *io)
{
  struct cache *c = ti->private;
  struct cache_io *e = io->per_io;
  e->io = io;
  if (io->op == UDM_OP_FLUSH) {
    pthread_mutex_lock(&c->lock);
    e->next = c->flushes;
    c->flushes = e;
    pthread_mutex_unlock(&c->lock);
    wake(c);
    return UDM_MAPIO_SUBMITTED;
  }
  atomic_store_explicit(&c->last_io_ns, udm_now_ns(), memory_order_relaxed);
  uint64_t spb = c->sectors_per_block;
  uint64_t off = udm_target_offset(ti, io->sector);
  uint64_t oblock = off / spb;
  bool write = io->op != UDM_OP_READ;
  pthread_mutex_lock(&c->lock);
  if (io->op == UDM_OP_DISCARD) {
    /* Every discard block the discard covers whole (it comes unsplit:
     * whole_discards), as the kernel's calc_discard_block_range. */
    uint64_t dbs = c->discard_block_size;
    uint64_t b = (off + dbs - 1) / dbs, e = io->nr_sectors < dbs ? b : (off + io->nr_sectors) / dbs;
    for (; b < e && b < c->nr_dblocks; b++)
      set_discarded(c, b, true);
    if (!c->discard_passdown) {
      pthread_mutex_unlock(&c->lock);
      return UDM_MAPIO_DONE;
    }
    count(c, io, oblock);
    pthread_mutex_unlock(&c->lock);
    io->dev = c->origin_dev;
    io->sector = off;
    return UDM_MAPIO_REMAPPED;
  }
  uint32_t b = lookup(c, oblock);
  if (b != NONE && c->cb[b].busy) {
    pthread_mutex_unlock(&c->lock);
    return UDM_MAPIO_REQUEUE;
  }
  if (write && discarded(c, off / c->discard_block_size))
    set_discarded(c, off / c->discard_block_size, false);
  if (b == NONE) {
    atomic_fetch_add(write ? &c->write_misses : &c->read_misses, 1);
    bool whole = (oblock + 1) * spb <= c->origin_sectors;
    bool want = c->mode != MODE_PASSTHROUGH && whole && policy_miss(c->policy, oblock);
    count(c, io, oblock);
    pthread_mutex_unlock(&c->lock);
    if (want)
      wake(c);
    io->dev = c->origin_dev;
    io->sector = off;
    return UDM_MAPIO_REMAPPED;
  }
  atomic_fetch_add(write ? &c->write_hits : &c->read_hits, 1);
  policy_hit(c->policy, b);
  uint64_t csector = (uint64_t)b * spb + off % spb;
  if (c->mode == MODE_PASSTHROUGH) {
    if (write) { /* invalidate first: the origin alone will hold the block */
      if (c->md_mode != MD_WRITE) {
        pthread_mutex_unlock(&c->lock);
        return -EIO; /* the metadata cannot drop the block any more */
      }
      struct migration *m = calloc(1, sizeof *m);
      if (!m) {
        pthread_mutex_unlock(&c->lock);
        return -ENOMEM;
      }
      m->kind = WORK_DEMOTE;
      m->cblock = b;
      m->oblock = oblock;
      c->cb[b].busy = true;
      add_waiting(c, m);
      pthread_mutex_unlock(&c->lock);
      wake(c);
      return UDM_MAPIO_REQUEUE;
    }
    count(c, io, oblock);
    pthread_mutex_unlock(&c->lock);
    io->dev = c->origin_dev;
    io->sector = off;
    return UDM_MAPIO_REMAPPED;
  }
  if (write && c->mode == MODE_WRITETHROUGH) {
    count(c, io, oblock);
    pthread_mutex_unlock(&c->lock);
    struct udm_region both[2] = {{c->origin_dev, off}, {c->cache_dev, csector}};
    e->cache = c;
    int r = udm_dmio_submit(both, 2, io->op, io->flags, io->nr_sectors, io->buf,
                            writethrough_done, io);
    if (r < 0) {
      uncount(c, e);
      return r;
    }
    return UDM_MAPIO_SUBMITTED;
  }
  if (write && !c->cb[b].dirty) {
    c->cb[b].dirty = true;
    c->nr_dirty++;
  }
  count(c, io, oblock);
  pthread_mutex_unlock(&c->lock);
  io->dev = c->cache_dev;
  io->sector = csector;
  return UDM_MAPIO_REMAPPED;
}

static int cache_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  (void)err;
  uncount(ti->private, io->per_io);
  return UDM_ENDIO_DONE;
}

/* ---- suspend and resume ---- */

static int open_metadata(struct cache *c);

static void reset_in_core(struct cache *c)
{
  memset(c->hash, 0xff, sizeof(uint32_t) * (c->hash_mask + 1));
  for (uint32_t b = 0; b < c->nr_cblocks; b++)
    c->cb[b] = (struct cblock_state){.hnext = NONE};
  memset(c->discard_bits, 0, (c->nr_dblocks / 64 + 1) * sizeof(uint64_t));
  c->nr_free = 0;
  c->nr_dirty = 0;
  for (uint32_t b = 0; b < c->nr_cblocks; b++)
    policy_removed(c->policy, b);
}

static uint32_t hint_of(void *ctx, uint32_t b)
{
  struct cache *c = ctx;
  return c->cb[b].valid ? policy_hint(c->policy, b) : 0;
}

/* Dirty bits, hints, discards and statistics, then a commit with the clean flag. */
static int rpc_clean_shutdown(struct cache *c, void *arg)
{
  (void)arg;
  finish_migrations(c);
  if (!c->md_open) /* never resumed, or its first resume failed: nothing to write */
    return 0;
  int r = 0;
  pthread_mutex_lock(&c->lock);
  if (c->md_mode != MD_WRITE) { /* read-only: nothing written, as the kernel */
    pthread_mutex_unlock(&c->lock);
    return 0;
  }
  pthread_mutex_unlock(&c->lock);
  /* The clean bits written below rely on the written-back copies. */
  if ((r = flush_dev(c->origin_dev)) < 0)
    return r;
  pthread_mutex_lock(&c->lock);
  for (uint32_t b = 0; r == 0 && b < c->nr_cblocks; b++)
    if (c->cb[b].valid)
      r = cache_md_set_dirty(&c->md, b, c->cb[b].oblock, c->cb[b].dirty);
  if (r == 0)
    r = cache_md_write_hints(&c->md, policy_name(c->policy), policy_version(c->policy),
                             hint_of, c);
  if (r == 0)
    r = cache_md_discard_resize(&c->md, c->discard_block_size, c->nr_dblocks);
  for (uint64_t d = 0; r == 0 && d < c->nr_dblocks; d++)
    r = cache_md_set_discard(&c->md, d, discarded(c, d));
  pthread_mutex_unlock(&c->lock);
  if (r < 0)
    metadata_failed(c);
  else
    r = commit(c, true);
  return r;
}

static int rpc_unclean(struct cache *c, void *arg)
{
  (void)arg;
  pthread_mutex_lock(&c->lock);
  bool writable = c->md_mode == MD_WRITE;
  pthread_mutex_unlock(&c->lock);
  return writable ? commit(c, false) : 0;
}

static void cache_presuspend(struct udm_target *ti)
{
  struct cache *c = ti->private;
  pthread_mutex_lock(&c->lock);
  c->suspending = true;
  pthread_mutex_unlock(&c->lock);
  udm_timer_cancel(&c->tick);
  udm_copy_cancel(c->copier, 0);
  udm_copier_wait(c->copier);
  wake(c); /* waiting moves are dropped, finished ones committed */
  udm_worker_drain(c->worker);
}

static void cache_postsuspend(struct udm_target *ti)
{
  struct cache *c = ti->private;
  in_worker(c, rpc_clean_shutdown, NULL, NULL, 0);
  udm_worker_drain(c->worker);
}

static int cache_preresume(struct udm_target *ti)
{
  struct cache *c = ti->private;
  if (!c->md_open) {
    int r = open_metadata(c);
    if (r < 0) { /* back to the state of ctr, for another try */
      cache_md_close(&c->md);
      memset(&c->md, 0, sizeof c->md);
      c->md_open = false;
      reset_in_core(c);
      return r;
    }
  }
  char why[256];
  int r = in_worker(c, rpc_unclean, NULL, why, sizeof why);
  if (r < 0) {
    udm_target_error(ti, "cache: metadata commit failed: %s", why);
    return r;
  }
  atomic_store(&c->last_io_ns, udm_now_ns()); /* idle a second after the resume */
  pthread_mutex_lock(&c->lock);
  c->suspending = false;
  pthread_mutex_unlock(&c->lock);
  udm_timer_arm(&c->tick, udm_now_ns() + COMMIT_PERIOD_NS);
  wake(c);
  return 0;
}

/* ---- construction ---- */

static void cache_dtr(struct udm_target *ti)
{
  struct cache *c = ti->private;
  if (!c)
    return;
  udm_copier_destroy(c->copier);
  udm_worker_destroy(c->worker);
  if (c->md.bm)
    cache_md_close(&c->md);
  policy_destroy(c->policy);
  for (unsigned i = 0; i < c->nr_ctr_args; i++)
    free(c->ctr_args[i]);
  free(c->ctr_args);
  free(c->cb);
  free(c->hash);
  free(c->free_list);
  free(c->discard_bits);
  while (c->waiting) {
    struct migration *m = c->waiting;
    c->waiting = m->next;
    free(m);
  }
  for (int i = 0; i < 3; i++) {
    struct udm_dev *d = i == 0 ? c->metadata_dev : i == 1 ? c->cache_dev : c->origin_dev;
    if (d)
      udm_put_device(ti, d);
  }
  if (c->lock_ready) {
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->rpc_done);
  }
  free(c);
}

static int parse_features(struct cache *c, struct udm_arg_set *as)
{
  static const struct udm_arg arg = {0, 3, "Invalid number of cache feature arguments"};
  unsigned n;
  if (udm_read_arg_group(as, &arg, &n, c->ti) < 0)
    return -EINVAL;
  int modes = 0;
  c->mode = MODE_WRITEBACK;
  c->metadata_version = 1;
  c->discard_passdown = true;
  while (n--) {
    const char *f = udm_shift_arg(as);
    if (!strcasecmp(f, "writeback")) {
      c->mode = MODE_WRITEBACK;
      modes++;
    } else if (!strcasecmp(f, "writethrough")) {
      c->mode = MODE_WRITETHROUGH;
      modes++;
    } else if (!strcasecmp(f, "passthrough")) {
      c->mode = MODE_PASSTHROUGH;
      modes++;
    } else if (!strcasecmp(f, "metadata2")) {
      c->metadata_version = 2;
    } else if (!strcasecmp(f, "no_discard_passdown")) {
      c->discard_passdown = false;
    } else {
      udm_target_error(c->ti, "Unrecognised cache feature requested: '%s'", f);
      return -EINVAL;
    }
    if (modes > 1) {
      udm_target_error(c->ti, "Duplicate cache io_mode features requested");
      return -EINVAL;
    }
  }
  return 0;
}

static int set_config_value(struct cache *c, const char *key, const char *value, char *why,
                            size_t n)
{
  if (!strcasecmp(key, "migration_threshold")) {
    uint64_t v;
    if (udm_parse_u64(value, &v) < 0 || v > UINT32_MAX) {
      snprintf(why, n, "invalid migration_threshold '%s'", value);
      return -EINVAL;
    }
    atomic_store(&c->migration_threshold, v);
    return 0;
  }
  snprintf(why, n, "unknown config key '%s' (the %s policy takes none; the core takes "
           "migration_threshold)", key, policy_name(c->policy));
  return -EINVAL;
}

struct load_ctx {
  struct cache *c;
  char why[200];
};

static int load_mapping(void *ctx, uint32_t b, const struct cache_mapping *m)
{
  struct load_ctx *l = ctx;
  struct cache *c = l->c;
  if (b >= c->nr_cblocks) {
    if (m->dirty) {
      snprintf(l->why, sizeof l->why,
               "unable to shrink the cache: cache block %u (past the new size of %u) is dirty",
               b, c->nr_cblocks);
      return -EINVAL;
    }
    return 0; /* dropped by the resize */
  }
  if (m->oblock >= c->nr_oblocks) {
    snprintf(l->why, sizeof l->why, "cache block %u maps origin block %llu, past the origin's "
             "%llu blocks", b, (unsigned long long)m->oblock, (unsigned long long)c->nr_oblocks);
    return -EINVAL;
  }
  if (lookup(c, m->oblock) != NONE) {
    snprintf(l->why, sizeof l->why, "origin block %llu is mapped twice (cache blocks %u and %u)",
             (unsigned long long)m->oblock, lookup(c, m->oblock), b);
    return -EINVAL;
  }
  if (m->dirty && c->mode == MODE_PASSTHROUGH) {
    snprintf(l->why, sizeof l->why, "unable to use passthrough mode: cache block %u is dirty", b);
    return -EINVAL;
  }
  c->cb[b] = (struct cblock_state){.oblock = m->oblock, .hnext = NONE, .valid = true,
                                   .dirty = m->dirty};
  hash_insert(c, b);
  c->nr_dirty += m->dirty;
  policy_load(c->policy, b, m->hint);
  return 0;
}

/*
 * The discard bitset on disk may use another discard block size (an origin
 * resized since): runs of discarded blocks are merged, and only the current
 * blocks they cover whole are marked (the kernel's set_discard_range).
 */
struct discard_load {
  struct cache *c;
  uint64_t old_size, begin, end; /* a run [begin, end) of on-disk blocks */
};

static void mark_discard_run(struct discard_load *l)
{
  struct cache *c = l->c;
  if (l->begin == l->end)
    return;
  uint64_t dbs = c->discard_block_size;
  uint64_t b = (l->begin * l->old_size + dbs - 1) / dbs, e = l->end * l->old_size / dbs;
  for (; b < e && b < c->nr_dblocks; b++)
    set_discarded(c, b, true);
  l->begin = l->end = 0;
}

static int load_discard(void *ctx, uint64_t db)
{
  struct discard_load *l = ctx;
  if (db != l->end || l->begin == l->end) {
    mark_discard_run(l);
    l->begin = db;
  }
  l->end = db + 1;
  return 0;
}

static int open_metadata(struct cache *c)
{
  struct udm_target *ti = c->ti;
  int r = cache_md_open(&c->md, c->metadata_dev, c->sectors_per_block, c->metadata_version);
  if (r < 0) {
    udm_target_error(ti, "Error opening metadata: %s", udm_errmsg());
    return r;
  }
  /* As the kernel: existing metadata keeps its own format whatever the table
   * says (metadata2 applies when formatting). */
  struct load_ctx l = {.c = c};
  r = cache_md_load(&c->md, policy_name(c->policy), policy_version(c->policy), load_mapping, &l);
  if (r < 0) {
    udm_target_error(ti, "Error loading the cache mappings: %s", l.why[0] ? l.why : udm_errmsg());
    return r;
  }
  struct discard_load dl = {.c = c, .old_size = c->md.discard_block_size};
  if (dl.old_size && (r = cache_md_load_discards(&c->md, load_discard, &dl)) < 0) {
    udm_target_error(ti, "Error loading the discard bitset: %s", udm_errmsg());
    return r;
  }
  mark_discard_run(&dl);
  if (c->md.cache_blocks != c->nr_cblocks) {
    r = cache_md_resize(&c->md, c->nr_cblocks);
    if (r == 0)
      r = commit(c, false);
    if (r < 0) {
      udm_target_error(ti, "could not resize the cache metadata to %u blocks: %s",
                       c->nr_cblocks, udm_errmsg());
      return r;
    }
  }
  atomic_store(&c->read_hits, c->md.read_hits);
  atomic_store(&c->read_misses, c->md.read_misses);
  atomic_store(&c->write_hits, c->md.write_hits);
  atomic_store(&c->write_misses, c->md.write_misses);
  atomic_store(&c->needs_check, cache_md_needs_check(&c->md));
  update_usage(c);
  for (uint32_t b = c->nr_cblocks; b-- > 0;)
    if (!c->cb[b].valid)
      c->free_list[c->nr_free++] = b;
  c->md_open = true;
  return 0;
}

/* See the top of this file for the table's syntax. */
static int cache_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc < 6) {
    udm_target_error(ti, "Insufficient args (want <metadata dev> <cache dev> <origin dev> "
                         "<block size> <#features> [features] <policy> <#policy args> [args])");
    return -EINVAL;
  }
  struct cache *c = calloc(1, sizeof *c);
  if (!c) {
    udm_target_error(ti, "Error allocating cache context");
    return -ENOMEM;
  }
  ti->private = c;
  c->ti = ti;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->rpc_done, NULL);
  c->lock_ready = true;
  atomic_store(&c->migration_threshold, DEFAULT_MIGRATION_THRESHOLD);
  c->nr_ctr_args = argc - 3;
  c->ctr_args = calloc(c->nr_ctr_args, sizeof(char *));
  if (!c->ctr_args)
    return -ENOMEM;
  for (unsigned i = 0; i < c->nr_ctr_args; i++)
    if (!(c->ctr_args[i] = strdup(argv[3 + i])))
      return -ENOMEM;

  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &c->metadata_dev);
  if (r < 0)
    return r;
  r = udm_get_device(ti, argv[1], UDM_DEV_READ | UDM_DEV_WRITE, &c->cache_dev);
  if (r < 0)
    return r;
  r = udm_get_device(ti, argv[2], UDM_DEV_READ | UDM_DEV_WRITE, &c->origin_dev);
  if (r < 0)
    return r;
  c->origin_sectors = ti->len;
  if (udm_dev_size(c->origin_dev) < ti->len) {
    udm_target_error(ti, "Device size larger than cached device (%llu sectors > origin's %llu)",
                     (unsigned long long)ti->len,
                     (unsigned long long)udm_dev_size(c->origin_dev));
    return -EINVAL;
  }
  if (udm_parse_uint(argv[3], &c->sectors_per_block) < 0 ||
      c->sectors_per_block < MIN_BLOCK_SECTORS || c->sectors_per_block > MAX_BLOCK_SECTORS ||
      c->sectors_per_block % MIN_BLOCK_SECTORS) {
    udm_target_error(ti, "Invalid data block size '%s' (%u..%u sectors, a multiple of %u)",
                     argv[3], MIN_BLOCK_SECTORS, MAX_BLOCK_SECTORS, MIN_BLOCK_SECTORS);
    return -EINVAL;
  }
  uint64_t nr_cblocks = udm_dev_size(c->cache_dev) / c->sectors_per_block;
  if (nr_cblocks == 0 || nr_cblocks >= NONE) {
    udm_target_error(ti, "Invalid cache device size: %llu sectors hold %llu blocks of %u "
                     "sectors (1 to 2^32-2)", (unsigned long long)udm_dev_size(c->cache_dev),
                     (unsigned long long)nr_cblocks, c->sectors_per_block);
    return -EINVAL;
  }
  c->nr_cblocks = (uint32_t)nr_cblocks;
  c->nr_oblocks = (c->origin_sectors + c->sectors_per_block - 1) / c->sectors_per_block;
  if (c->nr_oblocks >= 1ull << 48) {
    udm_target_error(ti, "Origin too large: %llu blocks (the metadata holds 48 bits)",
                     (unsigned long long)c->nr_oblocks);
    return -EINVAL;
  }

  struct udm_arg_set as = {argc - 4, argv + 4};
  if ((r = parse_features(c, &as)) < 0)
    return r;
  const char *policy = udm_shift_arg(&as);
  if (!policy) {
    udm_target_error(ti, "Insufficient args: no policy");
    return -EINVAL;
  }
  static const struct udm_arg parg = {0, 1024, "Invalid number of policy arguments"};
  unsigned npa;
  if (udm_read_arg_group(&as, &parg, &npa, ti) < 0)
    return -EINVAL;
  if (npa % 2) {
    udm_target_error(ti, "Odd number of policy arguments given but they should be "
                         "<key> <value> pairs");
    return -EINVAL;
  }
  char **pargs = as.argv;
  udm_consume_args(&as, npa);
  if (as.argc) {
    udm_target_error(ti, "Too many arguments: '%s' after the policy arguments", as.argv[0]);
    return -EINVAL;
  }
  c->policy = policy_create(policy, c->nr_cblocks, c->nr_oblocks);
  if (!c->policy) {
    udm_target_error(ti, strcmp(policy, "smq") && strcmp(policy, "cleaner") &&
                                 strcmp(policy, "default")
                             ? "Error creating cache's policy: unknown policy '%s' (udm has "
                               "smq, default and cleaner)"
                             : "Error creating cache's policy '%s': out of memory",
                     policy);
    return strcmp(policy, "smq") && strcmp(policy, "cleaner") ? -EINVAL : -ENOMEM;
  }
  for (unsigned i = 0; i < npa; i += 2) {
    char why[200];
    if (set_config_value(c, pargs[i], pargs[i + 1], why, sizeof why) < 0) {
      udm_target_error(ti, "Error setting cache policy's config value: %s", why);
      return -EINVAL;
    }
  }

  /* In-core state. */
  uint32_t hsize = 1;
  while (hsize < c->nr_cblocks)
    hsize <<= 1;
  c->hash_mask = hsize - 1;
  c->discard_block_size = c->sectors_per_block;
  while ((c->origin_sectors / c->discard_block_size) > MAX_DISCARD_BLOCKS)
    c->discard_block_size *= 2;
  c->nr_dblocks = (c->origin_sectors + c->discard_block_size - 1) / c->discard_block_size;
  c->cb = calloc(c->nr_cblocks, sizeof *c->cb);
  c->hash = malloc(sizeof(uint32_t) * hsize);
  c->free_list = malloc(sizeof(uint32_t) * c->nr_cblocks);
  c->discard_bits = calloc(c->nr_dblocks / 64 + 1, sizeof(uint64_t));
  if (!c->cb || !c->hash || !c->free_list || !c->discard_bits) {
    udm_target_error(ti, "Error allocating the cache's in-core state (%u blocks)",
                     c->nr_cblocks);
    return -ENOMEM;
  }
  memset(c->hash, 0xff, sizeof(uint32_t) * hsize);
  for (uint32_t b = 0; b < c->nr_cblocks; b++)
    c->cb[b].hnext = NONE;

  /* Checked now; opened and loaded at the first resume, once a table this
   * one replaces has written its last state (as the kernel loads mappings
   * at its first preresume). */
  if ((r = cache_md_probe(c->metadata_dev, c->sectors_per_block)) < 0) {
    udm_target_error(ti, "Error opening metadata: %s", udm_errmsg());
    return r;
  }
  if ((r = udm_worker_create(ti, &c->worker)) < 0) {
    udm_target_error(ti, "could not create the cache worker");
    return r;
  }
  c->work.fn = do_work;
  udm_timer_init(&c->tick, c->worker, do_tick);
  if ((r = udm_copier_create(ti, &c->copier)) < 0) {
    udm_target_error(ti, "could not create the cache's copier");
    return r;
  }
  c->suspending = true; /* until the first resume */
  ti->max_io_len = c->sectors_per_block;
  ti->num_flush_ios = 1;
  ti->num_discard_ios = 1;
  ti->whole_discards = 1;
  ti->per_io_size = sizeof(struct cache_io);
  return 0;
}

/* ---- status and messages ---- */

static const char *mode_name(const struct cache *c)
{
  return c->mode == MODE_WRITETHROUGH ? "writethrough"
         : c->mode == MODE_PASSTHROUGH ? "passthrough" : "writeback";
}

/*
 * INFO: <metadata block size> <#used metadata blocks>/<#total metadata blocks>
 * <cache block size> <#used cache blocks>/<#total cache blocks> <#read hits>
 * <#read misses> <#write hits> <#write misses> <#demotions> <#promotions>
 * <#dirty> <#features> <features>* <#core args> <core args>* <policy name>
 * <#policy args> <policy args>* <metadata mode> <needs_check>
 * TABLE: the devices and the constructor's other arguments as given.
 */
static void cache_status(struct udm_target *ti, enum udm_status_type type, unsigned flags,
                         struct udm_buf *out)
{
  struct cache *c = ti->private;
  (void)flags;
  if (type == UDM_STATUS_IMA) {
    /* dm-cache's measurement; udm's metadata is read-write until it fails. */
    pthread_mutex_lock(&c->lock);
    enum md_mode mode = c->md_mode;
    pthread_mutex_unlock(&c->lock);
    udm_target_ima_header(ti, out);
    udm_buf_printf(out, ",metadata_mode=%s,cache_metadata_device=%s,cache_device=%s"
                        ",cache_origin_device=%s",
                   mode == MD_FAIL ? "fail" : mode == MD_READ_ONLY ? "ro" : "rw",
                   udm_dev_name(c->metadata_dev),
                   udm_dev_name(c->cache_dev), udm_dev_name(c->origin_dev));
    udm_buf_printf(out, ",writethrough=%c,writeback=%c,passthrough=%c,metadata2=%c"
                        ",no_discard_passdown=%c;",
                   c->mode == MODE_WRITETHROUGH ? 'y' : 'n', c->mode == MODE_WRITEBACK ? 'y' : 'n',
                   c->mode == MODE_PASSTHROUGH ? 'y' : 'n', c->metadata_version == 2 ? 'y' : 'n',
                   c->discard_passdown ? 'n' : 'y');
    return;
  }
  if (type == UDM_STATUS_TABLE) {
    udm_buf_printf(out, "%s %s %s", udm_dev_name(c->metadata_dev), udm_dev_name(c->cache_dev),
                   udm_dev_name(c->origin_dev));
    for (unsigned i = 0; i < c->nr_ctr_args; i++)
      udm_buf_printf(out, " %s", c->ctr_args[i]);
    return;
  }
  pthread_mutex_lock(&c->lock);
  uint32_t used = c->nr_cblocks - c->nr_free, dirty = c->nr_dirty;
  enum md_mode mode = c->md_mode;
  pthread_mutex_unlock(&c->lock);
  if (mode == MD_FAIL) {
    udm_buf_puts(out, "Fail");
    return;
  }
  udm_buf_printf(out, "%u %llu/%llu %u %u/%u %u %u %u %u %u %u %u ", PD_SECTORS_PER_BLOCK,
                 (unsigned long long)atomic_load(&c->md_used),
                 (unsigned long long)atomic_load(&c->md_total), c->sectors_per_block, used,
                 c->nr_cblocks, atomic_load(&c->read_hits), atomic_load(&c->read_misses),
                 atomic_load(&c->write_hits), atomic_load(&c->write_misses),
                 atomic_load(&c->demotions), atomic_load(&c->promotions), dirty);
  unsigned nf = (c->metadata_version == 2) + !c->discard_passdown + 1;
  udm_buf_printf(out, "%u ", nf);
  if (c->metadata_version == 2)
    udm_buf_puts(out, "metadata2 ");
  udm_buf_printf(out, "%s ", mode_name(c));
  if (!c->discard_passdown)
    udm_buf_puts(out, "no_discard_passdown ");
  udm_buf_printf(out, "2 migration_threshold %llu %s 0 %s %s",
                 (unsigned long long)atomic_load(&c->migration_threshold),
                 policy_name(c->policy), mode == MD_READ_ONLY ? "ro" : "rw",
                 atomic_load(&c->needs_check) ? "needs_check" : "-");
}

struct range {
  uint32_t begin, end;
};

static int rpc_invalidate(struct cache *c, void *arg)
{
  const struct range *rg = arg;
  int r = 0;
  for (uint32_t b = rg->begin; r == 0 && b < rg->end; b++) {
    pthread_mutex_lock(&c->lock);
    bool mapped = c->cb[b].valid && !c->cb[b].busy;
    pthread_mutex_unlock(&c->lock);
    if (!mapped)
      continue;
    r = cache_md_remove(&c->md, b);
    if (r < 0)
      metadata_failed(c);
    if (r == 0)
      r = commit(c, false);
    if (r < 0)
      break;
    pthread_mutex_lock(&c->lock);
    hash_remove(c, b);
    c->cb[b].valid = false;
    policy_removed(c->policy, b);
    c->free_list[c->nr_free++] = b;
    pthread_mutex_unlock(&c->lock);
  }
  return r;
}

static int parse_cblock_range(struct cache *c, const char *s, struct range *rg)
{
  char tail;
  unsigned long long b, e;
  if (sscanf(s, "%llu-%llu%c", &b, &e, &tail) == 2) {
  } else if (sscanf(s, "%llu%c", &b, &tail) == 1) {
    e = b + 1;
  } else {
    udm_target_error(c->ti, "Invalid cblock range '%s'", s);
    return -EINVAL;
  }
  if (b >= e || e > c->nr_cblocks) {
    udm_target_error(c->ti, "Invalid cblock range '%s' (the cache has %u blocks; the end is "
                            "exclusive)", s, c->nr_cblocks);
    return -EINVAL;
  }
  rg->begin = (uint32_t)b;
  rg->end = (uint32_t)e;
  return 0;
}

/* Messages: <key> <value> (migration_threshold), invalidate_cblocks <range>... */
static int cache_message(struct udm_target *ti, unsigned argc, char **argv, struct udm_buf *out)
{
  struct cache *c = ti->private;
  (void)out;
  if (argc == 0) {
    udm_target_error(ti, "empty message");
    return -EINVAL;
  }
  pthread_mutex_lock(&c->lock);
  enum md_mode mode = c->md_mode;
  pthread_mutex_unlock(&c->lock);
  if (mode != MD_WRITE) {
    udm_target_error(ti, "unable to service cache target messages in READ_ONLY or FAIL mode "
                         "(the metadata failed)");
    return -EOPNOTSUPP;
  }
  if (!strcasecmp(argv[0], "invalidate_cblocks")) {
    if (c->mode != MODE_PASSTHROUGH) {
      udm_target_error(ti, "cache has to be in passthrough mode for invalidation");
      return -EPERM;
    }
    struct range *rgs = calloc(argc, sizeof *rgs);
    if (!rgs)
      return -ENOMEM;
    int r = 0;
    for (unsigned i = 1; i < argc && r == 0; i++)
      r = parse_cblock_range(c, argv[i], &rgs[i]);
    for (unsigned i = 1; i < argc && r == 0; i++) {
      char why[256];
      r = in_worker(c, rpc_invalidate, &rgs[i], why, sizeof why);
      if (r < 0)
        udm_target_error(ti, "invalidating cache blocks failed: %s", why);
    }
    free(rgs);
    return r;
  }
  if (argc != 2) {
    udm_target_error(ti, "unsupported message '%s' (want <key> <value> or invalidate_cblocks)",
                     argv[0]);
    return -EINVAL;
  }
  char why[200];
  if (set_config_value(c, argv[0], argv[1], why, sizeof why) < 0) {
    udm_target_error(ti, "%s", why);
    return -EINVAL;
  }
  wake(c);
  return 0;
}

static int cache_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn, void *data)
{
  struct cache *c = ti->private;
  int r = fn(ti, c->cache_dev, 0, udm_dev_size(c->cache_dev), data);
  return r ? r : fn(ti, c->origin_dev, 0, ti->len, data);
}

const struct udm_target_type udm_target_type_cache = {
    UDM_TARGET_TYPE_INIT,
    .name = "cache",
    .version = {2, 2, 0},
    .ctr = cache_ctr,
    .dtr = cache_dtr,
    .map = cache_map,
    .end_io = cache_end_io,
    .status = cache_status,
    .message = cache_message,
    .iterate_devices = cache_iterate_devices,
    .presuspend = cache_presuspend,
    .postsuspend = cache_postsuspend,
    .preresume = cache_preresume,
};
