/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy service (Linux's dm-kcopyd): copy a region of one device to
 * several others, or zero several, in chunks, with a bounded number of
 * chunks in flight and an optional rate (see <udm/target.h>).
 *
 * Everything is driven by completions.  One mutex per copier guards its
 * jobs and counters.  The "pump" issues chunks and calls the callers'
 * progress and done callbacks; one thread pumps at a time (whoever finds
 * it idle: the caller of udm_copy_start, a completing chunk, the throttle
 * timer, a canceller), and the others only record what happened and leave
 * it to that thread.  So a copier's callbacks never run concurrently,
 * progress values only grow, a job's done comes after its last progress,
 * and a device that completes inline cannot make the stack grow with the
 * number of chunks: the pump loops instead of recursing.
 *
 * A chunk is one allocation (header, its destination list, its buffer):
 * read from the source with udm_dev_submit_async(), then written to every
 * destination still healthy with udm_dmio_submit() (zeroing skips the
 * read and writes zeroes).  A destination that fails gets no further
 * writes; the job goes on while one remains, and stops at a read error or
 * a cancel once its chunks in flight are back.
 *
 * The throttle spaces chunk starts: a chunk of B bytes moves the next
 * allowed start B / rate seconds past max(now, the previous one).  Waiting
 * for it is the only thing that needs a thread: the copier's worker, made
 * when a rate is first set, whose timer wakes the pump.
 */
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define COPY_DEFAULT_CHUNK_SECTORS 1024u  /* 512 KiB */
#define COPY_DEFAULT_IN_FLIGHT 8u
#define COPY_MAX_CHUNK_SECTORS (1u << 17) /* 64 MiB: keeps rate arithmetic in 64 bits */
#define COPY_BUF_ALIGN 4096u              /* O_DIRECT backing files */

struct copy_job {
  struct udm_copier *c;
  struct copy_job *next;    /* c->jobs */
  uint64_t id;
  bool zero;
  bool cancelled;
  unsigned flags;
  struct udm_region from;
  unsigned n;
  uint64_t total;           /* sectors */
  uint64_t issued;          /* sectors handed to chunks */
  uint64_t done;            /* sectors read and written to a destination */
  uint64_t reported;        /* sectors given to progress */
  unsigned chunks;          /* in flight */
  unsigned healthy;         /* destinations without an error */
  int read_err;
  udm_copy_progress_fn progress;
  udm_copy_done_fn done_fn;
  void *opaque;
  int *errs;                /* n, in this allocation */
  struct udm_region to[];   /* n, then errs */
};

struct copy_chunk {
  struct copy_job *job;
  uint64_t offset;          /* sectors from the start of the job */
  uint64_t nr;
  struct udm_io read;
  unsigned ndst;
  unsigned *idx;            /* job destination of each region */
  struct udm_region *regions;
  void *buf;                /* NULL when zeroing */
};

struct udm_copier {
  struct udm_target *ti;
  pthread_mutex_t lock;
  pthread_cond_t idle;      /* the pump stopped, or the last job finished */
  uint64_t chunk_sectors;
  unsigned max_in_flight;
  uint64_t rate;            /* bytes per second, 0: unthrottled */
  uint64_t next_start;      /* udm_now_ns() of the next throttled chunk */
  uint64_t timer_at;        /* the timer's deadline, 0 when not armed */
  struct udm_worker *worker;
  struct udm_timer timer;
  unsigned in_flight;       /* chunks */
  struct copy_job *jobs;    /* in round-robin order */
  uint64_t next_id;
  bool pumping;
};

static void pump_locked(struct udm_copier *c);

int udm_copier_create(struct udm_target *ti, struct udm_copier **out)
{
  struct udm_copier *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->ti = ti;
  c->chunk_sectors = COPY_DEFAULT_CHUNK_SECTORS;
  c->max_in_flight = COPY_DEFAULT_IN_FLIGHT;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->idle, NULL);
  *out = c;
  return 0;
}

void udm_copier_destroy(struct udm_copier *c)
{
  if (!c)
    return;
  udm_copy_cancel(c, 0);
  udm_copier_wait(c);
  udm_worker_destroy(c->worker); /* joins a timer callback still leaving the pump */
  pthread_cond_destroy(&c->idle);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

int udm_copier_set_chunk_size(struct udm_copier *c, uint64_t sectors)
{
  if (sectors == 0 || sectors > COPY_MAX_CHUNK_SECTORS) {
    udm__fail(EINVAL, "copy: chunk size %llu sectors is outside 1..%u",
              (unsigned long long)sectors, COPY_MAX_CHUNK_SECTORS);
    return -EINVAL;
  }
  pthread_mutex_lock(&c->lock);
  c->chunk_sectors = sectors;
  pthread_mutex_unlock(&c->lock);
  return 0;
}

int udm_copier_set_max_in_flight(struct udm_copier *c, unsigned chunks)
{
  if (chunks == 0) {
    udm__fail(EINVAL, "copy: at least one chunk must be allowed in flight");
    return -EINVAL;
  }
  pthread_mutex_lock(&c->lock);
  c->max_in_flight = chunks;
  pump_locked(c); /* a higher limit may start chunks now */
  return 0;
}

static void copier_timer(struct udm_timer *t)
{
  struct udm_copier *c = (struct udm_copier *)(void *)((char *)t -
                                                      offsetof(struct udm_copier, timer));
  pthread_mutex_lock(&c->lock);
  c->timer_at = 0;
  pump_locked(c);
}

int udm_copier_set_throttle(struct udm_copier *c, uint64_t bytes_per_second)
{
  pthread_mutex_lock(&c->lock);
  if (bytes_per_second && !c->worker) {
    int r = udm_worker_create(c->ti, &c->worker);
    if (r < 0) {
      pthread_mutex_unlock(&c->lock);
      udm__fail(-r, "copy: cannot start the throttle's timer thread: %s", strerror(-r));
      return r;
    }
    udm_timer_init(&c->timer, c->worker, copier_timer);
  }
  c->rate = bytes_per_second;
  c->next_start = 0; /* the new rate counts from now */
  pump_locked(c);    /* chunks waiting for the old rate may go */
  return 0;
}

/* ---- jobs and chunks (c->lock held unless said otherwise) ---- */

static bool job_runnable(const struct copy_job *j)
{
  return !j->cancelled && !j->read_err && j->healthy && j->issued < j->total;
}

static bool job_finished(const struct copy_job *j)
{
  return j->chunks == 0 && !job_runnable(j) && j->reported == j->done;
}

static int job_result(const struct copy_job *j)
{
  if (j->read_err)
    return j->read_err;
  for (unsigned i = 0; i < j->n; i++)
    if (j->errs[i])
      return j->errs[i];
  return j->done < j->total ? -ECANCELED : 0;
}

/*
 * A chunk came back (read_err, or each region's write result): account for
 * it and let the pump go on.  Takes c->lock.
 */
static void chunk_end(struct copy_chunk *ch, int read_err, const int *errs)
{
  struct copy_job *j = ch->job;
  struct udm_copier *c = j->c;
  pthread_mutex_lock(&c->lock);
  bool written = false;
  if (read_err) {
    if (!j->read_err)
      j->read_err = read_err;
  } else {
    for (unsigned i = 0; i < ch->ndst; i++) {
      int *e = &j->errs[ch->idx[i]];
      if (errs[i] == 0)
        written = true;
      else if (*e == 0) {
        *e = errs[i];
        j->healthy--;
      }
    }
  }
  if (written)
    j->done += ch->nr;
  j->chunks--;
  c->in_flight--;
  free(ch);
  pump_locked(c);
}

static void chunk_written(void *opaque, int err, const int *errs)
{
  (void)err;
  chunk_end(opaque, 0, errs);
}

static void chunk_read(struct udm_io *io, int err)
{
  struct copy_chunk *ch = io->end_private;
  struct copy_job *j = ch->job;
  if (err == 0)
    err = udm_dmio_submit(ch->regions, ch->ndst, UDM_OP_WRITE, j->flags, ch->nr, ch->buf,
                          chunk_written, ch);
  if (err < 0)
    chunk_end(ch, err, NULL);
}

/*
 * Make the chunk [offset, offset + nr) of j for its healthy destinations
 * (sampled under c->lock), or NULL when out of memory.
 */
static struct copy_chunk *chunk_new(struct copy_job *j, uint64_t offset, uint64_t nr)
{
  size_t head = sizeof(struct copy_chunk) + j->n * sizeof(struct udm_region) +
                j->n * sizeof(unsigned);
  size_t bytes = j->zero ? 0 : (size_t)nr * UDM_SECTOR_SIZE;
  head = (head + COPY_BUF_ALIGN - 1) / COPY_BUF_ALIGN * COPY_BUF_ALIGN;
  void *mem;
  if (posix_memalign(&mem, COPY_BUF_ALIGN, head + bytes))
    return NULL;
  struct copy_chunk *ch = mem;
  _Static_assert(sizeof(struct copy_chunk) % alignof(struct udm_region) == 0 &&
                     sizeof(struct udm_region) % alignof(unsigned) == 0,
                 "the chunk's arrays follow its header");
  *ch = (struct copy_chunk){
      .job = j,
      .offset = offset,
      .nr = nr,
      .regions = (struct udm_region *)(void *)(ch + 1),
      .buf = j->zero ? NULL : (char *)mem + head,
  };
  ch->idx = (unsigned *)(void *)(ch->regions + j->n);
  for (unsigned i = 0; i < j->n; i++)
    if (j->errs[i] == 0) {
      ch->regions[ch->ndst] = (struct udm_region){j->to[i].dev, j->to[i].sector + offset};
      ch->idx[ch->ndst++] = i;
    }
  return ch;
}

/* Start ch (c->lock not held). */
static void chunk_start(struct copy_chunk *ch)
{
  struct copy_job *j = ch->job;
  if (j->zero) {
    int r = udm_dmio_submit(ch->regions, ch->ndst, UDM_OP_WRITE_ZEROES, j->flags, ch->nr,
                            NULL, chunk_written, ch);
    if (r < 0)
      chunk_end(ch, r, NULL);
    return;
  }
  ch->read = (struct udm_io){
      .op = UDM_OP_READ,
      .sector = j->from.sector + ch->offset,
      .nr_sectors = ch->nr,
      .buf = ch->buf,
      .end_io = chunk_read,
      .end_private = ch,
  };
  udm_dev_submit_async(j->from.dev, &ch->read);
}

/* The throttle lets a chunk of BYTES start now; else the timer is armed for it. */
static bool throttle_admits(struct udm_copier *c, uint64_t bytes)
{
  if (!c->rate)
    return true;
  uint64_t now = udm_now_ns();
  if (now < c->next_start) {
    if (c->timer_at == 0 || c->timer_at > c->next_start) {
      c->timer_at = c->next_start;
      udm_timer_arm(&c->timer, c->next_start);
    }
    return false;
  }
  c->next_start = now + bytes * 1000000000u / c->rate;
  return true;
}

/* Move j to the end of the list, so jobs take turns at the chunk slots. */
static void job_rotate(struct udm_copier *c, struct copy_job *j)
{
  struct copy_job **p = &c->jobs;
  while (*p != j)
    p = &(*p)->next;
  *p = j->next;
  j->next = NULL;
  while (*p)
    p = &(*p)->next;
  *p = j;
}

/*
 * With c->lock held, which it releases: unless another thread is pumping,
 * deliver progress, finish jobs and start chunks until nothing is left to
 * do.  Callbacks and I/O run with the lock dropped.
 */
static void pump_locked(struct udm_copier *c)
{
  if (c->pumping) {
    pthread_mutex_unlock(&c->lock);
    return;
  }
  c->pumping = true;
  for (;;) {
    struct copy_job *j, **p;
    for (j = c->jobs; j && j->reported == j->done; j = j->next)
      ;
    if (j) {
      uint64_t v = j->reported = j->done;
      if (j->progress) {
        pthread_mutex_unlock(&c->lock);
        j->progress(j->opaque, v * UDM_SECTOR_SIZE);
        pthread_mutex_lock(&c->lock);
      }
      continue;
    }
    for (p = &c->jobs; *p && !job_finished(*p); p = &(*p)->next)
      ;
    if (*p) {
      j = *p;
      *p = j->next;
      int err = job_result(j);
      pthread_mutex_unlock(&c->lock);
      j->done_fn(j->opaque, err, j->errs);
      free(j);
      pthread_mutex_lock(&c->lock);
      continue;
    }
    if (c->in_flight >= c->max_in_flight)
      break;
    for (j = c->jobs; j && !job_runnable(j); j = j->next)
      ;
    if (!j)
      break;
    uint64_t nr = j->total - j->issued;
    if (nr > c->chunk_sectors)
      nr = c->chunk_sectors;
    if (!throttle_admits(c, nr * UDM_SECTOR_SIZE))
      break;
    struct copy_chunk *ch = chunk_new(j, j->issued, nr);
    if (!ch) {
      if (!j->read_err)
        j->read_err = -ENOMEM; /* stops the job; it finishes when its chunks are back */
      continue;
    }
    j->issued += nr;
    j->chunks++;
    c->in_flight++;
    job_rotate(c, j);
    pthread_mutex_unlock(&c->lock);
    chunk_start(ch);
    pthread_mutex_lock(&c->lock);
  }
  c->pumping = false;
  pthread_cond_broadcast(&c->idle);
  pthread_mutex_unlock(&c->lock);
}

/*
 * 0, or -EINVAL with udm_errmsg() naming the region (destination DST, or
 * the source when DST is negative) and the problem.
 */
static int region_check(const struct udm_region *r, uint64_t nr_sectors, int dst)
{
  char name[40] = "source";
  if (dst >= 0)
    snprintf(name, sizeof name, "destination %d", dst);
  if (!r->dev) {
    udm__fail(EINVAL, "copy: the %s has no device", name);
    return -EINVAL;
  }
  udm_sector_t size = udm_dev_size(r->dev);
  if (r->sector > size || nr_sectors > size - r->sector) {
    udm__fail(EINVAL,
              "copy: the %s (%llu sectors at sector %llu) ends past the end of %s "
              "(%llu sectors)",
              name, (unsigned long long)nr_sectors, (unsigned long long)r->sector,
              udm_dev_name(r->dev), (unsigned long long)size);
    return -EINVAL;
  }
  return 0;
}

int udm_copy_start(struct udm_copier *c, const struct udm_copy *req, uint64_t *id)
{
  if (!req || !req->to || req->n == 0) {
    udm__fail(EINVAL, "copy: no destination");
    return -EINVAL;
  }
  if (!req->done) {
    udm__fail(EINVAL, "copy: no done callback");
    return -EINVAL;
  }
  int r = req->from ? region_check(req->from, req->nr_sectors, -1) : 0;
  for (unsigned i = 0; i < req->n && r == 0; i++)
    r = region_check(&req->to[i], req->nr_sectors, i < INT_MAX ? (int)i : INT_MAX);
  if (r < 0)
    return r;
  size_t head = offsetof(struct copy_job, to);
  _Static_assert(sizeof(struct udm_region) % alignof(int) == 0, "errs follow to[]");
  struct copy_job *j = NULL;
  if (req->n <= (SIZE_MAX - head) / (sizeof(struct udm_region) + sizeof(int)))
    j = malloc(head + req->n * (sizeof(struct udm_region) + sizeof(int)));
  if (!j) {
    udm__fail(ENOMEM, "copy: out of memory for a job of %u destinations", req->n);
    return -ENOMEM;
  }
  *j = (struct copy_job){
      .c = c,
      .zero = !req->from,
      .flags = req->flags,
      .from = req->from ? *req->from : (struct udm_region){0},
      .n = req->n,
      .total = req->nr_sectors,
      .healthy = req->n,
      .progress = req->progress,
      .done_fn = req->done,
      .opaque = req->opaque,
  };
  memcpy(j->to, req->to, req->n * sizeof *j->to);
  j->errs = (int *)(void *)(j->to + req->n);
  memset(j->errs, 0, req->n * sizeof(int));
  pthread_mutex_lock(&c->lock);
  j->id = ++c->next_id;
  if (id)
    *id = j->id;
  struct copy_job **p = &c->jobs;
  while (*p)
    p = &(*p)->next;
  *p = j;
  pump_locked(c);
  return 0;
}

void udm_copy_cancel(struct udm_copier *c, uint64_t id)
{
  pthread_mutex_lock(&c->lock);
  for (struct copy_job *j = c->jobs; j; j = j->next)
    if (id == 0 || j->id == id)
      j->cancelled = true;
  pump_locked(c); /* a job with nothing in flight finishes now */
}

void udm_copier_wait(struct udm_copier *c)
{
  pthread_mutex_lock(&c->lock);
  while (c->jobs || c->pumping)
    pthread_cond_wait(&c->idle, &c->lock);
  pthread_mutex_unlock(&c->lock);
}
