/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mirror: keep two to nine legs identical (dm-raid1), with a dirty region
 * log (dirty_log.c) that says which regions may differ after a crash.
 *
 * The device is cut into regions of <region_size> sectors (requests are
 * split at region boundaries).  A region is, as in dm-region-hash:
 *   CLEAN      in sync, and clean in the log;
 *   MARKING    in sync, marked dirty in the log by the worker, which sends
 *              its writes once the log is flushed;
 *   DIRTY      in sync, writes in flight, marked dirty in the log (and the
 *              log flushed) before the first of them went out;
 *   CLEANING   DIRTY whose last write completed: the worker marks it clean
 *              in the log (disk logs; a core log is cleaned at once);
 *   NOSYNC     the legs may differ: writes go to the default leg only,
 *              reads come from it, until the region is recovered;
 *   RECOVERING being copied from the default leg to the others: writes to
 *              it wait, and go out (to every leg) once it is in sync.
 * Recovery takes regions in order, up to four at a time, through the copy service,
 * at the rate set by the "resync_rate" message; new writes keep flowing to
 * the other regions meanwhile.  A region is quiesced (its writes in flight
 * completed) before it is copied, so no write can be overwritten by the
 * copy, and the writes delayed meanwhile land on every leg after it.
 *
 * Writes go to every leg at once through the fan-out service.  In map(), a
 * write to a region already DIRTY (or any in-sync region with a core log)
 * is sent at once; the others are queued for the worker (dm's kmirrord),
 * which marks regions, flushes the log, and only then sends them.  Reads
 * of an in-sync region are spread over the legs without errors (by region
 * number); a failed read is retried on another leg.
 *
 * Leg failures follow dm-raid1: a failing leg is marked (A/D/S/R/F in the
 * status) and its region becomes NOSYNC.  Without handle_errors the write
 * succeeds if some leg took it.  With handle_errors an event is raised
 * (udm wait), the default leg moves to a healthy one when the mirror is in
 * sync (or keep_log), and the write is held until the table is reloaded
 * and resumed (the core's hold list: it then goes to the new table, as
 * with the kernel's noflush suspend); with keep_log it succeeds instead,
 * unless the log failed.  A failed log with handle_errors holds writes
 * that need it; block_on_error (udm's extension of the disk log) does the
 * same without handle_errors.
 *
 * Where udm differs from the kernel (docs/architecture.md): reads are
 * spread over the in-sync legs (the kernel reads the default leg); a write
 * to a region already marked dirty skips the worker; held writes survive
 * any suspend (the kernel fails them with EIO unless the suspend is
 * "noflush"); block_on_error and the resync_rate message are udm's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <udm/target.h>

#include "dirty_log.h"

#define MAX_NR_MIRRORS 9 /* the kernel's: kcopyd's 8 destinations plus the source */
#define MAX_RECOVERY 4   /* regions copied at once (the kernel: 1) */

enum leg_error { ERR_WRITE, ERR_FLUSH, ERR_SYNC, ERR_READ };

enum region_state { RH_CLEAN, RH_MARKING, RH_DIRTY, RH_CLEANING, RH_NOSYNC, RH_RECOVERING };

enum recovery_state {
  REC_NONE,
  REC_QUIESCING, /* writes to the region still in flight */
  REC_QUIESCED,  /* ready to copy */
  REC_COPYING,
  REC_DONE_OK,
  REC_DONE_FAIL,
};

struct leg {
  struct udm_dev *dev;
  udm_sector_t offset;
  unsigned error_count; /* changed under m->lock, atomically: reads look without it */
  unsigned error_type;  /* bits of enum leg_error */
};

/* Per request (io->per_io). */
struct mirror_io {
  struct mirror *m;
  struct udm_io *io;
  struct mirror_io *next;  /* the worker's queues */
  uint64_t region;
  udm_sector_t toff;       /* sector inside the segment */
  unsigned leg;            /* reads: the leg read */
  bool counted;            /* a write holding a pending count on its region */
  bool default_only;       /* a write sent to the default leg only */
  bool requeue;            /* complete into the core's hold list */
  bool finished;           /* the target completed it: end_io passes it on */
  struct udm_io child;     /* a read retried on another leg */
};

struct mirror {
  struct udm_target *ti;
  pthread_mutex_t lock;
  bool lock_ready;
  struct mlog log;
  bool log_ready;
  bool handle_errors, keep_log;
  unsigned nr;
  struct leg leg[MAX_NR_MIRRORS];
  unsigned default_leg;     /* as error_count */
  bool in_sync;
  bool leg_failure;
  bool log_failure;
  bool flush_failure;
  bool resumed, suspending;
  uint8_t *state;          /* per region */
  uint32_t *pending;       /* writes in flight per region */
  uint64_t *cleaning;      /* regions that went CLEANING, for the worker */
  size_t ncleaning, cleaning_cap;
  struct mirror_io *writes, **writes_tail; /* for the worker */
  struct mirror_io *delayed, **delayed_tail; /* waiting for a recovering region */
  struct recovery {
    struct mirror *m;
    uint64_t region;
    unsigned src;            /* the leg it is copied from */
    enum recovery_state state;
  } rec[MAX_RECOVERY];
  struct udm_copier *copier;
  struct udm_worker *worker;
  struct udm_work work;
};

static struct mirror *work_mirror(struct udm_work *w)
{
  return (struct mirror *)(void *)((char *)w - offsetof(struct mirror, work));
}

static void wake(struct mirror *m)
{
  udm_worker_queue(m->worker, &m->work);
}

static uint64_t region_of(const struct mirror *m, udm_sector_t toff)
{
  return toff / m->log.region_size;
}

/* ---- legs and their failures (m->lock held) ---- */

static bool leg_ok(const struct mirror *m, unsigned i)
{
  return __atomic_load_n(&m->leg[i].error_count, __ATOMIC_RELAXED) == 0;
}

static int valid_leg(const struct mirror *m)
{
  for (unsigned i = 0; i < m->nr; i++)
    if (leg_ok(m, i))
      return (int)i;
  return -1;
}

/*
 * Record an error of TYPE on leg I (dm's fail_mirror).  Returns true when
 * an event must be raised (the caller does it once the lock is dropped).
 */
static bool fail_leg(struct mirror *m, unsigned i, enum leg_error type)
{
  struct leg *l = &m->leg[i];
  m->leg_failure = true;
  __atomic_fetch_add(&l->error_count, 1, __ATOMIC_RELAXED);
  if (l->error_type & (1u << type))
    return false;
  l->error_type |= 1u << type;
  if (!m->handle_errors)
    return false;
  if (i == m->default_leg && (m->in_sync || m->keep_log)) {
    int v = valid_leg(m);
    if (v >= 0)
      __atomic_store_n(&m->default_leg, (unsigned)v, __ATOMIC_RELAXED);
  }
  return true;
}

static char leg_status_char(const struct leg *l)
{
  if (!l->error_count)
    return 'A';
  return l->error_type & (1u << ERR_FLUSH)   ? 'F'
         : l->error_type & (1u << ERR_WRITE) ? 'D'
         : l->error_type & (1u << ERR_SYNC)  ? 'S'
         : l->error_type & (1u << ERR_READ)  ? 'R'
                                             : 'U';
}

/* Flush every leg (the log's flush callback; blocking, from the worker). */
static int flush_legs(void *arg)
{
  struct mirror *m = arg;
  int err = 0;
  bool event = false;
  for (unsigned i = 0; i < m->nr; i++) {
    struct udm_io io = {.op = UDM_OP_FLUSH};
    if (udm_dev_submit(m->leg[i].dev, &io) < 0) {
      pthread_mutex_lock(&m->lock);
      event |= fail_leg(m, i, ERR_FLUSH);
      pthread_mutex_unlock(&m->lock);
      err = -EIO;
    }
  }
  if (event)
    udm_target_event(m->ti);
  return err;
}

/* ---- regions (m->lock held) ---- */

static void push_cleaning(struct mirror *m, uint64_t region)
{
  if (m->ncleaning == m->cleaning_cap) {
    size_t cap = m->cleaning_cap ? 2 * m->cleaning_cap : 64;
    uint64_t *p = realloc(m->cleaning, cap * sizeof *p);
    if (!p) {
      m->state[region] = RH_DIRTY; /* stays dirty in the log: resynced next time */
      return;
    }
    m->cleaning = p;
    m->cleaning_cap = cap;
  }
  m->cleaning[m->ncleaning++] = region;
}

/* A write of REGION is done (dm_rh_dec).  True when the worker must run. */
static bool region_dec(struct mirror *m, uint64_t region)
{
  if (--m->pending[region])
    return false;
  uint8_t *st = &m->state[region];
  if (m->flush_failure) {
    *st = RH_NOSYNC;
  } else if (*st == RH_RECOVERING) {
    for (unsigned k = 0; k < MAX_RECOVERY; k++)
      if (m->rec[k].state == REC_QUIESCING && m->rec[k].region == region) {
        m->rec[k].state = REC_QUIESCED;
        return true;
      }
  } else if (*st == RH_DIRTY) {
    if (!m->log.dev) {
      mlog_clear_region(&m->log, region);
      *st = RH_CLEAN;
      return false;
    }
    *st = RH_CLEANING;
    push_cleaning(m, region);
    return true;
  }
  return false;
}

/* A write of REGION is about to go out (dm_rh_inc). */
static void region_inc(struct mirror *m, uint64_t region)
{
  m->pending[region]++;
  uint8_t *st = &m->state[region];
  if (*st == RH_CLEAN) {
    mlog_mark_region(&m->log, region);
    *st = m->log.dev ? RH_MARKING : RH_DIRTY; /* a disk log must be written first */
  } else if (*st == RH_CLEANING) {
    *st = RH_DIRTY; /* still dirty in the log */
  }
}

static void append(struct mirror_io ***tail, struct mirror_io *mio)
{
  mio->next = NULL;
  **tail = mio;
  *tail = &mio->next;
}

/*
 * Recovery of the current region ended; SUCCESS as the log should record
 * it.  Its delayed writes move to the worker's queue.
 */
static bool complete_resync(struct mirror *m, struct recovery *rc, bool success)
{
  uint64_t r = rc->region;
  mlog_set_region_sync(&m->log, r, success);
  m->state[r] = success ? RH_CLEAN : RH_NOSYNC;
  struct mirror_io *d = m->delayed, *keep = NULL, **keep_tail = &keep;
  m->delayed = NULL;
  m->delayed_tail = &m->delayed;
  while (d) {
    struct mirror_io *next = d->next;
    if (d->region == r)
      append(&m->writes_tail, d);
    else
      append(&keep_tail, d);
    d = next;
  }
  bool moved = m->writes != NULL;
  m->delayed = keep;
  m->delayed_tail = keep ? keep_tail : &m->delayed;
  rc->state = REC_NONE;
  return moved;
}

/*
 * A write failed on a leg (dm's mark_nosync).  True when writes were moved
 * to the worker's queue (the caller wakes it).
 */
static bool mark_nosync(struct mirror *m, struct mirror_io *mio)
{
  if (mio->io->op == UDM_OP_FLUSH) {
    m->flush_failure = true;
    return false;
  }
  if (mio->io->op == UDM_OP_DISCARD)
    return false;
  mlog_set_region_sync(&m->log, mio->region, false);
  bool recovering = m->state[mio->region] == RH_RECOVERING;
  m->state[mio->region] = RH_NOSYNC;
  for (unsigned k = 0; recovering && k < MAX_RECOVERY; k++) {
    struct recovery *rc = &m->rec[k];
    if (rc->region == mio->region &&
        (rc->state == REC_QUIESCING || rc->state == REC_QUIESCED))
      return complete_resync(m, rc, false);
  }
  return false;
}

/* ---- completing writes ---- */

static void write_end(struct mirror *m, struct mirror_io *mio, int err, bool requeue)
{
  bool run = false;
  if (mio->counted) {
    pthread_mutex_lock(&m->lock);
    run = region_dec(m, mio->region);
    pthread_mutex_unlock(&m->lock);
    mio->counted = false;
  }
  if (run)
    wake(m);
  mio->finished = true;
  mio->requeue = requeue;
  udm_io_complete(mio->io, requeue ? 0 : err);
}

/*
 * dm's do_failures for one write that failed on a leg or could not be
 * logged.  EVENT: a leg failure to report, once the region's state says so.
 */
static void write_failed(struct mirror *m, struct mirror_io *mio, bool event)
{
  bool moved = false;
  pthread_mutex_lock(&m->lock);
  if (!m->log_failure) {
    m->in_sync = false;
    moved = mark_nosync(m, mio);
  }
  bool none = valid_leg(m) < 0;
  bool eio = none || (m->keep_log && m->log_failure);
  bool hold = (m->handle_errors && !m->keep_log) || (m->log.block_on_error && m->log_failure);
  pthread_mutex_unlock(&m->lock);
  if (event)
    udm_target_event(m->ti);
  if (moved)
    wake(m);
  if (eio)
    write_end(m, mio, -EIO, false);
  else
    write_end(m, mio, 0, hold);
}

static void write_done(void *opaque, int err, const int *errs)
{
  struct mirror_io *mio = opaque;
  struct mirror *m = mio->m;
  if (!err) {
    write_end(m, mio, 0, false);
    return;
  }
  if (mio->io->op == UDM_OP_DISCARD) {
    write_end(m, mio, -EOPNOTSUPP, false); /* a failed discard degrades nothing */
    return;
  }
  bool event = false;
  pthread_mutex_lock(&m->lock);
  if (mio->default_only)
    event = fail_leg(m, mio->leg, ERR_WRITE);
  else
    for (unsigned i = 0; i < m->nr; i++)
      if (errs[i])
        event |= fail_leg(m, i, ERR_WRITE);
  pthread_mutex_unlock(&m->lock);
  write_failed(m, mio, event);
}

/* Send a write, flush or discard to every leg. */
static void dispatch_all(struct mirror *m, struct mirror_io *mio)
{
  struct udm_region to[MAX_NR_MIRRORS];
  for (unsigned i = 0; i < m->nr; i++)
    to[i] = (struct udm_region){m->leg[i].dev, m->leg[i].offset + mio->toff};
  struct udm_io *io = mio->io;
  mio->default_only = false;
  int r = udm_dmio_submit(to, m->nr, io->op, io->flags, io->nr_sectors,
                          io->op == UDM_OP_FLUSH || io->op == UDM_OP_DISCARD ? NULL : io->buf,
                          write_done, mio);
  if (r < 0)
    write_end(m, mio, r, false);
}

/* A write to a NOSYNC region: the default leg only; recovery copies it later. */
static void dispatch_default(struct mirror *m, struct mirror_io *mio, unsigned leg)
{
  struct udm_region to = {m->leg[leg].dev, m->leg[leg].offset + mio->toff};
  struct udm_io *io = mio->io;
  mio->default_only = true;
  mio->leg = leg;
  int r = udm_dmio_submit(&to, 1, io->op, io->flags, io->nr_sectors, io->buf, write_done, mio);
  if (r < 0)
    write_end(m, mio, r, false);
}

/* ---- the worker (dm's kmirrord) ---- */

static void recovery_done(void *opaque, int err, const int *errs)
{
  struct recovery *rc = opaque;
  struct mirror *m = rc->m;
  bool event = false, write_err = false;
  pthread_mutex_lock(&m->lock);
  for (unsigned i = 0, k = 0; i < m->nr; i++) {
    if (i == rc->src)
      continue;
    if (errs[k++]) {
      write_err = true;
      event |= fail_leg(m, i, ERR_SYNC);
    }
  }
  bool read_err = err < 0 && !write_err; /* the source could not be read */
  if (read_err)
    event |= fail_leg(m, rc->src, ERR_SYNC);
  rc->state = read_err || write_err ? REC_DONE_FAIL : REC_DONE_OK;
  pthread_mutex_unlock(&m->lock);
  if (event)
    udm_target_event(m->ti);
  wake(m);
}

/* Copy the quiesced region from the default leg to the others. */
static void start_recovery(struct mirror *m, struct recovery *rc, uint64_t region,
                           unsigned src)
{
  uint32_t rs = m->log.region_size;
  udm_sector_t start = region * rs;
  uint64_t count = rs;
  if (region == m->log.region_count - 1 && (m->ti->len & (rs - 1)))
    count = m->ti->len & (rs - 1);
  struct udm_region from = {m->leg[src].dev, m->leg[src].offset + start};
  struct udm_region to[MAX_NR_MIRRORS];
  unsigned n = 0;
  for (unsigned i = 0; i < m->nr; i++)
    if (i != src)
      to[n++] = (struct udm_region){m->leg[i].dev, m->leg[i].offset + start};
  struct udm_copy job = {.from = &from, .to = to, .n = n, .nr_sectors = count,
                         .done = recovery_done, .opaque = rc};
  if (udm_copy_start(m->copier, &job, NULL) < 0) {
    pthread_mutex_lock(&m->lock);
    rc->state = REC_DONE_FAIL;
    pthread_mutex_unlock(&m->lock);
    wake(m);
  }
}

/* The recovery step of a worker run (dm's do_recovery).  Locked; may unlock. */
static void do_recovery(struct mirror *m)
{
  bool may_recover = m->resumed && !m->suspending;
  for (unsigned k = 0; k < MAX_RECOVERY; k++) {
    struct recovery *rc = &m->rec[k];
    uint64_t r;
    if (rc->state == REC_NONE && may_recover && mlog_get_resync_work(&m->log, &r)) {
      rc->region = r;
      m->state[r] = RH_RECOVERING;
      rc->state = m->pending[r] ? REC_QUIESCING : REC_QUIESCED;
    }
    if ((rc->state == REC_QUIESCING || rc->state == REC_QUIESCED) && m->suspending)
      complete_resync(m, rc, false); /* the next resume scans the log again */
    if (rc->state == REC_QUIESCED && may_recover) {
      rc->state = REC_COPYING;
      rc->src = m->default_leg;
      pthread_mutex_unlock(&m->lock);
      start_recovery(m, rc, rc->region, rc->src);
      pthread_mutex_lock(&m->lock);
    }
  }
  if (!m->in_sync && m->resumed && m->log.sync_count == m->log.region_count) {
    m->in_sync = true;
    m->leg_failure = false;
    for (unsigned i = 0; i < m->nr; i++)
    {
      __atomic_store_n(&m->leg[i].error_count, 0, __ATOMIC_RELAXED);
      m->leg[i].error_type = 0;
    }
    pthread_mutex_unlock(&m->lock);
    udm_target_event(m->ti);
    pthread_mutex_lock(&m->lock);
  }
}

/* Classify, mark, flush the log, send (dm's do_writes).  Unlocked. */
static void do_writes(struct mirror *m, struct mirror_io *list)
{
  struct mirror_io *sync = NULL, **sync_tail = &sync;
  struct mirror_io *nosync = NULL, **nosync_tail = &nosync;
  pthread_mutex_lock(&m->lock);
  while (list) {
    struct mirror_io *mio = list;
    list = list->next;
    enum udm_op op = mio->io->op;
    if (op == UDM_OP_FLUSH || op == UDM_OP_DISCARD) {
      append(&sync_tail, mio);
      continue;
    }
    switch (m->state[mio->region]) {
    case RH_RECOVERING:
      append(&m->delayed_tail, mio);
      continue;
    case RH_NOSYNC:
      append(&nosync_tail, mio);
      break;
    default:
      append(&sync_tail, mio);
      break;
    }
    region_inc(m, mio->region);
    mio->counted = true;
  }
  pthread_mutex_unlock(&m->lock);
  int r = mlog_flush(&m->log, flush_legs, m);
  pthread_mutex_lock(&m->lock);
  if (r < 0)
    m->log_failure = true;
  for (struct mirror_io *mio = sync; mio; mio = mio->next)
    if (m->state[mio->region] == RH_MARKING)
      m->state[mio->region] = RH_DIRTY;
  bool log_blocked = m->log_failure && (m->handle_errors || m->log.block_on_error);
  bool leg_blocked = m->leg_failure && m->handle_errors && !m->keep_log;
  unsigned def = m->default_leg;
  pthread_mutex_unlock(&m->lock);
  while (sync) {
    struct mirror_io *mio = sync;
    sync = sync->next;
    if (log_blocked)
      write_failed(m, mio, false);
    else
      dispatch_all(m, mio);
  }
  while (nosync) {
    struct mirror_io *mio = nosync;
    nosync = nosync->next;
    if (leg_blocked)
      write_failed(m, mio, false);
    else
      dispatch_default(m, mio, def);
  }
}

static void mirror_work(struct udm_work *w)
{
  struct mirror *m = work_mirror(w);
  pthread_mutex_lock(&m->lock);
  /* dm_rh_update_states: recovered regions, then cleaned ones. */
  for (unsigned k = 0; k < MAX_RECOVERY; k++) {
    struct recovery *rc = &m->rec[k];
    if (rc->state == REC_DONE_OK) {
      mlog_clear_region(&m->log, rc->region);
      complete_resync(m, rc, true);
    } else if (rc->state == REC_DONE_FAIL) {
      complete_resync(m, rc, !m->handle_errors);
    }
  }
  for (size_t i = 0; i < m->ncleaning; i++) {
    uint64_t r = m->cleaning[i];
    if (m->state[r] == RH_CLEANING) {
      mlog_clear_region(&m->log, r);
      m->state[r] = RH_CLEAN;
    }
  }
  m->ncleaning = 0;
  pthread_mutex_unlock(&m->lock);
  mlog_flush(&m->log, flush_legs, m);
  pthread_mutex_lock(&m->lock);
  do_recovery(m);
  struct mirror_io *list = m->writes;
  m->writes = NULL;
  m->writes_tail = &m->writes;
  pthread_mutex_unlock(&m->lock);
  if (list)
    do_writes(m, list);
}

/* ---- constructor ---- */

static const struct udm_arg nr_mirrors_arg = {2, MAX_NR_MIRRORS, "Invalid number of mirrors"};

static int parse_features(struct mirror *m, struct udm_arg_set *as)
{
  struct udm_target *ti = m->ti;
  if (!as->argc)
    return 0;
  unsigned n;
  const char *word = udm_shift_arg(as);
  if (udm_parse_uint(word, &n) < 0) {
    udm_target_error(ti, "Invalid number of features '%s'", word);
    return -EINVAL;
  }
  if (n > as->argc) {
    udm_target_error(ti, "Not enough arguments to support feature count (%u features, "
                         "%u words left)",
                     n, as->argc);
    return -EINVAL;
  }
  for (unsigned i = 0; i < n; i++) {
    word = udm_shift_arg(as);
    if (!strcmp(word, "handle_errors")) {
      m->handle_errors = true;
    } else if (!strcmp(word, "keep_log")) {
      m->keep_log = true;
    } else {
      udm_target_error(ti, "Unrecognised feature requested: '%s' (handle_errors or "
                           "keep_log)",
                       word);
      return -EINVAL;
    }
  }
  if (m->keep_log && !m->handle_errors) {
    udm_target_error(ti, "keep_log feature requires the handle_errors feature");
    return -EINVAL;
  }
  return 0;
}

static int parse_log(struct mirror *m, struct udm_arg_set *as)
{
  struct udm_target *ti = m->ti;
  if (as->argc < 2) {
    udm_target_error(ti, "Insufficient mirror log arguments");
    return -EINVAL;
  }
  const char *type = udm_shift_arg(as);
  const char *count = udm_shift_arg(as);
  unsigned n;
  if (udm_parse_uint(count, &n) < 0) {
    udm_target_error(ti, "Invalid mirror log argument count '%s'", count);
    return -EINVAL;
  }
  if (n > as->argc) {
    udm_target_error(ti, "Insufficient mirror log arguments (%u given to the %s log, %u "
                         "words left)",
                     n, type, as->argc);
    return -EINVAL;
  }
  bool disk = !strcmp(type, "disk");
  if (!disk && strcmp(type, "core")) {
    udm_target_error(ti, "Error creating mirror dirty log: unknown log type '%s' (core or "
                         "disk)",
                     type);
    return -EINVAL;
  }
  char **argv = as->argv;
  udm_consume_args(as, n);
  int r = mlog_ctr(&m->log, ti, disk, n, argv);
  m->log_ready = true;
  return r;
}

/*
 * Construct a mirror mapping:
 *   <log type> <#log args> <log args...> <#mirrors> <dev> <offset> [<dev> <offset>]...
 *   [<#features> <feature>...]
 * Log types:
 *   core <region_size> [sync|nosync]
 *   disk <log dev> <region_size> [sync|nosync] [block_on_error]
 * Two to nine legs; features: handle_errors, keep_log (needs handle_errors).
 */
static int mirror_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct mirror *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  ti->private = m;
  m->ti = ti;
  if (pthread_mutex_init(&m->lock, NULL) != 0)
    return -ENOMEM;
  m->lock_ready = true;
  m->writes_tail = &m->writes;
  m->delayed_tail = &m->delayed;
  for (unsigned k = 0; k < MAX_RECOVERY; k++)
    m->rec[k].m = m;
  struct udm_arg_set as = {argc, argv};
  int r = parse_log(m, &as);
  if (r < 0)
    return r;
  if (!as.argc) {
    udm_target_error(ti, "Invalid number of mirrors (missing)");
    return -EINVAL;
  }
  if (udm_read_arg(&as, &nr_mirrors_arg, &m->nr, ti) < 0)
    return -EINVAL;
  if (as.argc < m->nr * 2) {
    udm_target_error(ti, "Too few mirror arguments (%u legs need %u words, %u given)", m->nr,
                     m->nr * 2, as.argc);
    return -EINVAL;
  }
  for (unsigned i = 0; i < m->nr; i++) {
    const char *path = udm_shift_arg(&as);
    const char *off = udm_shift_arg(&as);
    if (udm_parse_u64(off, &m->leg[i].offset) < 0) {
      udm_target_error(ti, "Invalid offset '%s' of mirror leg %u", off, i);
      return -EINVAL;
    }
    r = udm_get_device(ti, path, UDM_DEV_READ | UDM_DEV_WRITE, &m->leg[i].dev);
    if (r < 0) {
      char *why = ti->error ? strdup(ti->error) : NULL;
      udm_target_error(ti, "Device lookup failure: %s", why ? why : path);
      free(why);
      return r;
    }
  }
  r = parse_features(m, &as);
  if (r < 0)
    return r;
  if (as.argc) {
    udm_target_error(ti, "Too many mirror arguments (from '%s')", as.argv[0]);
    return -EINVAL;
  }
  uint64_t nreg = m->log.region_count;
  m->state = malloc(nreg);
  m->pending = calloc(nreg, sizeof *m->pending);
  if (!m->state || !m->pending) {
    udm_target_error(ti, "Cannot allocate mirror context (%llu regions)",
                     (unsigned long long)nreg);
    return -ENOMEM;
  }
  for (uint64_t i = 0; i < nreg; i++)
    m->state[i] = mlog_in_sync(&m->log, i) ? RH_CLEAN : RH_NOSYNC;
  /* The kernel's first kmirrord run, at construction, finds a nosync log in sync. */
  m->in_sync = m->log.sync_count == nreg;
  ti->max_io_len = m->log.region_size;
  ti->num_flush_ios = 1;
  ti->num_discard_ios = 1;
  ti->num_write_zeroes_ios = 0; /* dm-raid1 has none: the core writes zeros */
  ti->per_io_size = sizeof(struct mirror_io);
  r = udm_worker_create(ti, &m->worker);
  if (r < 0) {
    udm_target_error(ti, "couldn't start kmirrord (the mirror's worker thread)");
    return r;
  }
  m->work.fn = mirror_work;
  r = udm_copier_create(ti, &m->copier);
  if (r == 0) {
    /* Chunks smaller than a region, several in flight, for the resync's speed. */
    uint64_t chunk = m->log.region_size < 256 ? m->log.region_size : 256;
    r = udm_copier_set_chunk_size(m->copier, chunk);
  }
  if (r < 0) {
    udm_target_error(ti, "cannot create the resync copier");
    return r;
  }
  return 0;
}

static void mirror_dtr(struct udm_target *ti)
{
  struct mirror *m = ti->private;
  if (!m)
    return;
  udm_copier_destroy(m->copier);
  udm_worker_destroy(m->worker);
  for (unsigned i = 0; i < m->nr; i++)
    if (m->leg[i].dev)
      udm_put_device(ti, m->leg[i].dev);
  if (m->log_ready)
    mlog_dtr(&m->log);
  free(m->state);
  free(m->pending);
  free(m->cleaning);
  if (m->lock_ready)
    pthread_mutex_destroy(&m->lock);
  free(m);
}

/* ---- I/O ---- */

/* The leg to read an in-sync region from: spread by region, skipping failed legs. */
static int choose_leg(const struct mirror *m, uint64_t region)
{
  for (unsigned k = 0; k < m->nr; k++) {
    unsigned i = (unsigned)((region + k) % m->nr);
    if (leg_ok(m, i))
      return (int)i;
  }
  return -1;
}

/*
 * Where a read of REGION may go now, or -1 (dm's do_reads).  Without the
 * lock, as the kernel's map does: a read racing a leg failure or a
 * resync's end sees the state just before or just after it.
 */
static int read_leg(const struct mirror *m, uint64_t region)
{
  if (mlog_in_sync(&m->log, region))
    return choose_leg(m, region);
  unsigned def = __atomic_load_n(&m->default_leg, __ATOMIC_RELAXED);
  return leg_ok(m, def) ? (int)def : -1;
}

static void read_retried(struct udm_io *child, int err);

/* Retry a failed read on another leg, or fail it.  true: retried. */
static bool retry_read(struct mirror *m, struct mirror_io *mio)
{
  bool event;
  int leg;
  pthread_mutex_lock(&m->lock);
  event = fail_leg(m, mio->leg, ERR_READ);
  leg = read_leg(m, mio->region);
  pthread_mutex_unlock(&m->lock);
  if (event)
    udm_target_event(m->ti);
  if (leg < 0)
    return false;
  struct udm_io *io = mio->io;
  mio->leg = (unsigned)leg;
  mio->child = (struct udm_io){
      .op = UDM_OP_READ,
      .flags = io->flags,
      .sector = m->leg[leg].offset + mio->toff,
      .nr_sectors = io->nr_sectors,
      .buf = io->buf,
      .end_io = read_retried,
      .end_private = mio,
  };
  udm_dev_submit_async(m->leg[leg].dev, &mio->child);
  return true;
}

static void read_retried(struct udm_io *child, int err)
{
  struct mirror_io *mio = child->end_private;
  if (err && err != -EOPNOTSUPP && retry_read(mio->m, mio))
    return;
  mio->finished = true;
  udm_io_complete(mio->io, err);
}

static int mirror_map(struct udm_target *ti, struct udm_io *io)
{
  struct mirror *m = ti->private;
  struct mirror_io *mio = io->per_io;
  mio->m = m;
  mio->io = io;
  mio->toff = io->op == UDM_OP_FLUSH ? 0 : udm_target_offset(ti, io->sector);
  mio->region = region_of(m, mio->toff);
  if (io->op == UDM_OP_READ) {
    int leg = read_leg(m, mio->region);
    if (leg < 0)
      return -EIO;
    mio->leg = (unsigned)leg;
    return udm_remap(ti, io, m->leg[leg].dev, m->leg[leg].offset);
  }
  bool now = false;
  pthread_mutex_lock(&m->lock);
  if (!m->writes && !m->log_failure) {
    if (io->op != UDM_OP_WRITE) {
      now = true; /* flushes and discards take no region */
    } else {
      uint8_t st = m->state[mio->region];
      if (st == RH_DIRTY || st == RH_CLEANING || (st == RH_CLEAN && !m->log.dev)) {
        region_inc(m, mio->region);
        mio->counted = true;
        now = true;
      }
    }
  }
  if (!now)
    append(&m->writes_tail, mio);
  pthread_mutex_unlock(&m->lock);
  if (now)
    dispatch_all(m, mio);
  else
    wake(m);
  return UDM_MAPIO_SUBMITTED;
}

static int mirror_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  struct mirror *m = ti->private;
  struct mirror_io *mio = io->per_io;
  if (mio->finished)
    return mio->requeue ? UDM_ENDIO_REQUEUE : UDM_ENDIO_DONE;
  /* A read remapped by map(). */
  if (*err == 0 || *err == -EOPNOTSUPP)
    return UDM_ENDIO_DONE;
  return retry_read(m, mio) ? UDM_ENDIO_INCOMPLETE : UDM_ENDIO_DONE;
}

/* ---- suspend and resume ---- */

/* Stop recovery, send what waits, and let the worker settle. */
static void mirror_presuspend(struct udm_target *ti)
{
  struct mirror *m = ti->private;
  pthread_mutex_lock(&m->lock);
  m->suspending = true;
  pthread_mutex_unlock(&m->lock);
  for (;;) {
    udm_copier_wait(m->copier);
    wake(m);
    udm_worker_drain(m->worker);
    pthread_mutex_lock(&m->lock);
    /* Queued writes are in flight for the core, which waits for them. */
    bool settled = !m->delayed;
    for (unsigned k = 0; k < MAX_RECOVERY; k++)
      settled &= m->rec[k].state == REC_NONE;
    pthread_mutex_unlock(&m->lock);
    if (settled)
      break;
  }
}

/* The writes are done: clean their regions in the log and write it. */
static void mirror_postsuspend(struct udm_target *ti)
{
  struct mirror *m = ti->private;
  wake(m);
  udm_worker_drain(m->worker);
}

static void mirror_resume(struct udm_target *ti)
{
  struct mirror *m = ti->private;
  mlog_resume(&m->log); /* a disk log is read again: regions it calls dirty are resynced */
  pthread_mutex_lock(&m->lock);
  for (uint64_t i = 0; i < m->log.region_count; i++)
    m->state[i] = mlog_in_sync(&m->log, i) ? RH_CLEAN : RH_NOSYNC;
  for (unsigned k = 0; k < MAX_RECOVERY; k++)
    m->rec[k].state = REC_NONE;
  m->suspending = false;
  m->resumed = true;
  pthread_mutex_unlock(&m->lock);
  wake(m);
}

/*
 * INFO:  <#legs> <leg>... <in-sync regions>/<regions> 1 <leg states> <log INFO>
 *        (leg states: A alive, D write failed, S resync failed, R read
 *        failed, F flush failed)
 * TABLE: the constructor line.
 */
static void mirror_status(struct udm_target *ti, enum udm_status_type type, unsigned flags,
                          struct udm_buf *out)
{
  struct mirror *m = ti->private;
  (void)flags;
  pthread_mutex_lock(&m->lock);
  if (type == UDM_STATUS_INFO) {
    char states[MAX_NR_MIRRORS + 1];
    udm_buf_printf(out, "%u ", m->nr);
    for (unsigned i = 0; i < m->nr; i++) {
      udm_buf_printf(out, "%s ", udm_dev_name(m->leg[i].dev));
      states[i] = leg_status_char(&m->leg[i]);
    }
    states[m->nr] = '\0';
    udm_buf_printf(out, "%llu/%llu 1 %s ", (unsigned long long)m->log.sync_count,
                   (unsigned long long)m->log.region_count, states);
    mlog_status(&m->log, type, out);
  } else {
    mlog_status(&m->log, type, out);
    udm_buf_printf(out, "%u", m->nr);
    for (unsigned i = 0; i < m->nr; i++)
      udm_buf_printf(out, " %s %llu", udm_dev_name(m->leg[i].dev),
                     (unsigned long long)m->leg[i].offset);
    unsigned nf = m->handle_errors + m->keep_log;
    if (nf)
      udm_buf_printf(out, " %u%s%s", nf, m->handle_errors ? " handle_errors" : "",
                     m->keep_log ? " keep_log" : "");
  }
  pthread_mutex_unlock(&m->lock);
}

/*
 * Messages (udm's; the kernel's mirror takes none):
 *   resync_rate <bytes per second>   throttle the resync (0: unthrottled)
 */
static int mirror_message(struct udm_target *ti, unsigned argc, char **argv,
                          struct udm_buf *out)
{
  struct mirror *m = ti->private;
  (void)out;
  uint64_t rate;
  if (argc == 2 && !strcmp(argv[0], "resync_rate")) {
    if (udm_parse_u64(argv[1], &rate) < 0) {
      udm_target_error(ti, "invalid resync_rate '%s' (bytes per second, 0 for no limit)",
                       argv[1]);
      return -EINVAL;
    }
    int r = udm_copier_set_throttle(m->copier, rate);
    if (r < 0) {
      udm_target_error(ti, "resync_rate: %s", udm_errmsg());
      return r;
    }
    return 0;
  }
  udm_target_error(ti, "unrecognised mirror message '%s' (resync_rate <bytes/s>)",
                   argc ? argv[0] : "");
  return -EINVAL;
}

static int mirror_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                  void *data)
{
  struct mirror *m = ti->private;
  int r = 0;
  for (unsigned i = 0; i < m->nr && r == 0; i++)
    r = fn(ti, m->leg[i].dev, m->leg[i].offset, ti->len, data);
  return r;
}

const struct udm_target_type udm_target_type_mirror = {
    UDM_TARGET_TYPE_INIT,
    .name = "mirror",
    .version = {1, 14, 0},
    .ctr = mirror_ctr,
    .dtr = mirror_dtr,
    .map = mirror_map,
    .end_io = mirror_end_io,
    .status = mirror_status,
    .message = mirror_message,
    .iterate_devices = mirror_iterate_devices,
    .presuspend = mirror_presuspend,
    .postsuspend = mirror_postsuspend,
    .resume = mirror_resume,
};
