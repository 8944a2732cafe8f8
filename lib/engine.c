/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O engine (engine.h).  Both kinds own a fixed pool of threads, made
 * with the engine, fed from one queue: the thread engine's pool performs
 * file operations (pread/pwrite/fdatasync) and run jobs; the io_uring
 * engine (platform/uring.c) hands file operations to the kernel and keeps a
 * smaller pool for run jobs only.  A request in flight costs its queue
 * entry, never a thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"
#include "platform.h"
#ifdef HAVE_LIBURING
#include "uring.h"
#endif

#define URING_DEPTH 256

struct job {
  void (*fn)(void *arg);
  void *arg;
  struct job *next;
};

/* Threads and their queue: file operations and jobs, served in turn. */
struct pool {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct udm_engine_op *ops, **ops_tail;
  struct job *jobs, **jobs_tail;
  bool stopping;
  unsigned nthreads;
  pthread_t *threads;
};

struct udm_engine {
  const char *name;
  struct udm_uring *uring; /* NULL: the pool does the file operations */
  struct pool pool;
  atomic_uint busy;        /* file operations submitted and not yet done */
  /* udm__engine_stats */
  atomic_uint_fast64_t jobs, ops;
  atomic_uint jobs_running, jobs_running_max;
};

/* udm_io_inline(): this thread waits for its operations when the engine is idle. */
static _Thread_local bool inline_when_idle;

void udm_io_inline(int on)
{
  inline_when_idle = on != 0;
}

/* ---- blocking file operations ---- */

int udm__full_pread(int fd, void *buf, size_t len, uint64_t off)
{
  char *p = buf;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0) { /* past the end of the file: zeros, as a hole */
      memset(p, 0, len);
      return 0;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

int udm__full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0) /* no progress: do not spin */
      return -EIO;
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

int udm__sync_fd(int fd)
{
  return udm_platform_datasync(fd);
}

static int perform(struct udm_engine_op *op)
{
  char *p = (char *)op->buf + op->moved;
  size_t left = op->len - op->moved;
  int r;
  switch (op->op) {
  case UDM_OP_READ:
    r = udm__full_pread(op->fd, p, left, op->off + op->moved);
    break;
  case UDM_OP_WRITE:
    r = udm__full_pwrite(op->fd, p, left, op->off + op->moved);
    break;
  default: /* FLUSH: udm__engine_submit lets nothing else through */
    return udm__sync_fd(op->fd);
  }
  if (r == 0)
    op->moved = op->len;
  return r;
}

/* ---- the pool ---- */

int udm__engine_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return -r;
}

static void job_start(struct udm_engine *e)
{
  unsigned now = atomic_fetch_add(&e->jobs_running, 1) + 1;
  unsigned max = atomic_load(&e->jobs_running_max);
  while (now > max && !atomic_compare_exchange_weak(&e->jobs_running_max, &max, now))
    ;
}

static void *pool_thread(void *arg)
{
  struct udm_engine *e = arg;
  struct pool *p = &e->pool;
  bool jobs_first = false;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (!p->ops && !p->jobs) {
      if (p->stopping)
        break;
      pthread_cond_wait(&p->cond, &p->lock);
      continue;
    }
    /* Alternate, so that neither kind of work starves the other. */
    jobs_first = !jobs_first;
    if (p->jobs && (jobs_first || !p->ops)) {
      struct job *j = p->jobs;
      if (!(p->jobs = j->next))
        p->jobs_tail = &p->jobs;
      pthread_mutex_unlock(&p->lock);
      job_start(e);
      j->fn(j->arg);
      atomic_fetch_sub(&e->jobs_running, 1);
      free(j);
    } else {
      struct udm_engine_op *op = p->ops;
      if (!(p->ops = op->next))
        p->ops_tail = &p->ops;
      pthread_mutex_unlock(&p->lock);
      op->done(op, perform(op));
    }
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

static void pool_stop(struct pool *p)
{
  pthread_mutex_lock(&p->lock);
  p->stopping = true;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
}

static int pool_start(struct udm_engine *e, unsigned n)
{
  struct pool *p = &e->pool;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->ops_tail = &p->ops;
  p->jobs_tail = &p->jobs;
  p->threads = calloc(n, sizeof *p->threads);
  if (!p->threads) {
    pool_stop(p);
    return -ENOMEM;
  }
  for (; p->nthreads < n; p->nthreads++) {
    int r = udm__engine_thread_create(&p->threads[p->nthreads], pool_thread, e);
    if (r < 0) {
      pool_stop(p);
      return r;
    }
  }
  return 0;
}

static unsigned online_cpus(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* ---- engines ---- */

/* Every file operation ends here, on whichever thread did it. */
static void op_done(struct udm_engine_op *op, int res)
{
  struct udm_engine *e = op->engine; /* done() may free op */
  op->done = op->caller_done;
  op->done(op, res);
  atomic_fetch_sub(&e->busy, 1);
}

void udm__engine_submit(struct udm_engine *e, struct udm_engine_op *op)
{
  op->moved = 0;
  op->next = NULL;
  if (op->op != UDM_OP_READ && op->op != UDM_OP_WRITE && op->op != UDM_OP_FLUSH) {
    op->done(op, -EINVAL);
    return;
  }
  if (op->op != UDM_OP_FLUSH && op->len == 0) {
    op->done(op, 0);
    return;
  }
  /*
   * Nothing else in flight and a caller with nothing better to do than wait
   * (udm_io_inline): the operation is done here.  A hand-off to the engine's
   * thread and back costs two wake-ups, which at queue depth 1 is as much
   * as the disk's own latency; with anything else in flight the engine
   * keeps them side by side.
   */
  unsigned idle = 0;
  if (inline_when_idle && atomic_compare_exchange_strong(&e->busy, &idle, 1)) {
    atomic_fetch_add_explicit(&e->ops, 1, memory_order_relaxed);
    op->engine = e;
    op->caller_done = op->done;
    op_done(op, perform(op));
    return;
  }
  atomic_fetch_add(&e->busy, 1);
  atomic_fetch_add_explicit(&e->ops, 1, memory_order_relaxed);
  op->engine = e;
  op->caller_done = op->done;
  op->done = op_done;
#ifdef HAVE_LIBURING
  if (e->uring) {
    udm_platform_uring_submit(e->uring, op);
    return;
  }
#endif
  struct pool *p = &e->pool;
  pthread_mutex_lock(&p->lock);
  *p->ops_tail = op;
  p->ops_tail = &op->next;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

void udm__engine_run(struct udm_engine *e, void (*fn)(void *arg), void *arg)
{
  atomic_fetch_add_explicit(&e->jobs, 1, memory_order_relaxed);
  struct job *j = malloc(sizeof *j);
  if (!j) { /* nowhere to queue it: do the work here rather than lose it */
    fn(arg);
    return;
  }
  j->fn = fn;
  j->arg = arg;
  j->next = NULL;
  struct pool *p = &e->pool;
  pthread_mutex_lock(&p->lock);
  *p->jobs_tail = j;
  p->jobs_tail = &j->next;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

void udm__engine_stats(struct udm_engine *e, struct udm_engine_stats *st)
{
  st->jobs = atomic_load(&e->jobs);
  st->ops = atomic_load(&e->ops);
  st->jobs_running_max = atomic_load(&e->jobs_running_max);
  st->threads = e->pool.nthreads;
}

const char *udm__engine_name(const struct udm_engine *e)
{
  return e->name;
}

/* The kind UDM_IO_ENGINE asks for; AUTO when unset or empty. */
static int kind_from_env(enum udm_engine_kind *kind, char **errmsg)
{
  const char *v = getenv("UDM_IO_ENGINE");
  *kind = UDM_ENGINE_AUTO;
  if (!v || !*v)
    return 0;
  if (strcmp(v, "io_uring") == 0)
    *kind = UDM_ENGINE_IO_URING;
  else if (strcmp(v, "threads") == 0)
    *kind = UDM_ENGINE_THREADS;
  else {
    *errmsg = udm__strf("UDM_IO_ENGINE='%s' is not an I/O engine (io_uring or threads)",
                        v);
    return -EINVAL;
  }
  return 0;
}

int udm__engine_new(enum udm_engine_kind kind, struct udm_engine **out, char **errmsg)
{
  bool from_env = kind == UDM_ENGINE_AUTO;
  if (from_env) {
    int r = kind_from_env(&kind, errmsg);
    if (r < 0)
      return r;
  }
  struct udm_engine *e = calloc(1, sizeof *e);
  if (!e)
    return -ENOMEM;
  unsigned ncpu = online_cpus();
  unsigned nthreads = clamp(2 * ncpu, 4, 32);
  if (kind != UDM_ENGINE_THREADS) {
#ifdef HAVE_LIBURING
    const char *why = "";
    int r = udm_platform_uring_new(URING_DEPTH, nthreads, &e->uring, &why);
    if (r == 0) {
      e->name = "io_uring";
      nthreads = clamp(ncpu, 4, 16); /* run jobs only */
    } else if (kind == UDM_ENGINE_IO_URING) {
      *errmsg = udm__strf("%sio_uring cannot be set up: %s: %s",
                          from_env ? "UDM_IO_ENGINE=io_uring: " : "", why, strerror(-r));
      free(e);
      return r;
    }
#else
    if (kind == UDM_ENGINE_IO_URING) {
      *errmsg = udm__strf("%sio_uring is not available: udm was built without liburing",
                          from_env ? "UDM_IO_ENGINE=io_uring: " : "");
      free(e);
      return -ENOSYS;
    }
#endif
  }
  if (!e->uring)
    e->name = "threads"; /* asked for, or io_uring refused: silently */
  int r = pool_start(e, nthreads);
  if (r < 0) {
    *errmsg = udm__strf("cannot start the I/O engine's threads: %s", strerror(-r));
#ifdef HAVE_LIBURING
    udm_platform_uring_free(e->uring);
#endif
    free(e);
    return r;
  }
  *out = e;
  return 0;
}

void udm__engine_free(struct udm_engine *e)
{
  if (!e)
    return;
#ifdef HAVE_LIBURING
  udm_platform_uring_free(e->uring);
#endif
  pool_stop(&e->pool);
  free(e);
}

int udm__engine_open(struct udm_ctx *ctx, struct udm_engine **out, char **errmsg)
{
  struct udm_engine *e = atomic_load_explicit(&ctx->engine, memory_order_acquire);
  int r = 0;
  if (!e) {
    pthread_mutex_lock(&ctx->engine_lock);
    e = atomic_load_explicit(&ctx->engine, memory_order_relaxed);
    if (!e) {
      r = udm__engine_new(UDM_ENGINE_AUTO, &e, errmsg);
      if (r == 0)
        atomic_store_explicit(&ctx->engine, e, memory_order_release);
    }
    pthread_mutex_unlock(&ctx->engine_lock);
  }
  if (r == 0)
    *out = e;
  return r;
}

struct udm_engine *udm__engine_get(struct udm_ctx *ctx, int *err)
{
  struct udm_engine *e = NULL;
  char *msg = NULL;
  *err = udm__engine_open(ctx, &e, &msg);
  free(msg);
  return *err < 0 ? NULL : e;
}
