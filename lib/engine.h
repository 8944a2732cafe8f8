/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O engine below file-backed devices: asynchronous reads, writes and
 * syncs on file descriptors, and a pool of threads for blocking work (image
 * drivers, fallocate, bounce buffers).  One engine per context, made on
 * first use.  io_uring on Linux (platform/), a portable thread engine
 * elsewhere or when io_uring is refused; UDM_IO_ENGINE=io_uring|threads
 * forces one.  The number of threads never grows with the queue depth.
 */
#ifndef UDM_LIB_ENGINE_H
#define UDM_LIB_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/target.h>

struct udm_ctx;
struct udm_engine;

/* One file operation.  The caller owns it until done(op, res) is called. */
struct udm_engine_op {
  int fd;
  enum udm_op op;   /* UDM_OP_READ, UDM_OP_WRITE, UDM_OP_FLUSH (fdatasync) */
  void *buf;
  size_t len;
  uint64_t off;
  /*
   * res: 0 when all len bytes moved (a read past the end of the file reads
   * zeros, as a hole), or -errno.  Runs on an engine thread or inline.
   */
  void (*done)(struct udm_engine_op *op, int res);
  void *opaque;     /* the caller's */
  size_t moved;     /* the engine's: bytes done so far (short transfers resume) */
  struct udm_engine_op *next; /* the engine's: its queues */
  struct udm_engine *engine;  /* the engine's: whose op this is while in flight */
  void (*caller_done)(struct udm_engine_op *op, int res); /* the engine's */
};

/* The context's engine, made on first call; NULL with -errno in *err. */
struct udm_engine *udm__engine_get(struct udm_ctx *ctx, int *err);
/*
 * The same, for callers that can report why: 0, or -errno with *errmsg (to
 * free; may stay NULL when out of memory) naming the cause, e.g. a forced
 * UDM_IO_ENGINE=io_uring that the kernel refuses.  A failure is not cached.
 */
int udm__engine_open(struct udm_ctx *ctx, struct udm_engine **out, char **errmsg);

enum udm_engine_kind {
  UDM_ENGINE_AUTO,     /* UDM_IO_ENGINE if set, else io_uring if it can be set up */
  UDM_ENGINE_THREADS,
  UDM_ENGINE_IO_URING, /* an error (naming why) when io_uring cannot be set up */
};
/* A new engine, not tied to a context (the context's is made with AUTO). */
int udm__engine_new(enum udm_engine_kind kind, struct udm_engine **out, char **errmsg);
/*
 * Stops the engine's threads.  Every op must have completed: nothing may be
 * in flight, and no done() or run job may still submit more.
 */
void udm__engine_free(struct udm_engine *e);
/* "io_uring" or "threads". */
const char *udm__engine_name(const struct udm_engine *e);
/* Start op. */
void udm__engine_submit(struct udm_engine *e, struct udm_engine_op *op);
/*
 * Run fn(arg) on a pool thread: blocking work that must not hold the caller.
 * (Only when no memory is left for the job's queue entry does fn run inline.)
 */
void udm__engine_run(struct udm_engine *e, void (*fn)(void *arg), void *arg);

/*
 * Counters (never timings) for tests and benchmarks: what went to the pool.
 * A request that completes from the engine without a run job costs no
 * thread; one that runs a job holds a pool thread until the job returns.
 */
struct udm_engine_stats {
  uint64_t jobs;             /* run jobs queued since the engine was made */
  uint64_t ops;              /* file operations submitted */
  unsigned jobs_running_max; /* the most run jobs on pool threads at once */
  unsigned threads;          /* the pool's threads (fixed when the engine is made) */
};
void udm__engine_stats(struct udm_engine *e, struct udm_engine_stats *st);

/* ---- shared with the blocking paths of dev_file.c and with platform/ ---- */
/* All len bytes (zeros past the end of the file, as a hole); 0 or -errno. */
int udm__full_pread(int fd, void *buf, size_t len, uint64_t off);
int udm__full_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* fdatasync: the sync behind UDM_OP_FLUSH and UDM_IO_FUA. */
int udm__sync_fd(int fd);
/* A thread with every signal blocked, so signals go to the program's threads. */
int udm__engine_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
