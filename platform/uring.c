/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io_uring for the I/O engine.  Submitters take the ring's lock to fill an
 * SQE and enter the kernel; at most DEPTH operations are in the kernel at
 * once (so the completion queue, twice as deep, never overflows), and the
 * rest wait in a FIFO that the completion thread feeds into the ring as
 * entries free up.  Nothing is dropped and no submitter waits for room.
 *
 * The completion thread resubmits short transfers for the remainder, retries
 * -EAGAIN, -EINTR and -ECANCELED, and calls op->done() without holding the lock, so
 * done() may submit again (dev_file.c chains FUA's fdatasync that way).
 * Taking the lock after reaping, before touching an op, also orders the
 * submitter's writes to the op before the completion thread's reads.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#include "uring.h"

/* The kernel moves at most about 2 GiB per call; ask for less, resume the rest. */
#define MAX_CHUNK (1u << 30)
#define REAP_BATCH 64

struct udm_uring {
  struct io_uring ring;
  pthread_mutex_t lock;     /* the submission side; inflight; the FIFO */
  unsigned depth;
  unsigned inflight;        /* SQEs handed to the kernel, not yet reaped */
  struct udm_engine_op *wait_head, **wait_tail; /* no room in the ring yet */
  pthread_t reaper;
};

/*
 * The ring whose completions this thread is running, if any: what done()
 * submits from there enters the kernel once per batch, not once per op.
 */
static _Thread_local struct udm_uring *reaping;

static void pause_briefly(void)
{
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
}

/* Hand filled SQEs to the kernel.  u->lock held. */
static void enter_locked(struct udm_uring *u)
{
  for (;;) {
    int r = io_uring_submit(&u->ring);
    if (r >= 0 || (r != -EINTR && r != -EAGAIN && r != -EBUSY))
      return; /* any other error leaves the SQEs queued for the next enter */
    if (r != -EINTR)
      pause_briefly(); /* the kernel is short of memory: try again */
  }
}

/* Put op in an SQE if there is room.  u->lock held. */
static bool prep_locked(struct udm_uring *u, struct udm_engine_op *op)
{
  if (u->inflight >= u->depth)
    return false;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (!sqe)
    return false;
  size_t left = op->len - op->moved;
  unsigned n = left > MAX_CHUNK ? MAX_CHUNK : (unsigned)left;
  char *p = (char *)op->buf + op->moved;
  switch (op->op) {
  case UDM_OP_READ:
    io_uring_prep_read(sqe, op->fd, p, n, op->off + op->moved);
    break;
  case UDM_OP_WRITE:
    io_uring_prep_write(sqe, op->fd, p, n, op->off + op->moved);
    break;
  default: /* FLUSH; lib/engine.c sends nothing else */
    io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
    break;
  }
  io_uring_sqe_set_data(sqe, op);
  u->inflight++;
  return true;
}

/* Move waiting ops into the ring while it has room.  u->lock held. */
static void feed_locked(struct udm_uring *u)
{
  while (u->wait_head && prep_locked(u, u->wait_head)) {
    u->wait_head = u->wait_head->next;
    if (!u->wait_head)
      u->wait_tail = &u->wait_head;
  }
}

void udm_platform_uring_submit(struct udm_uring *u, struct udm_engine_op *op)
{
  op->next = NULL;
  pthread_mutex_lock(&u->lock);
  /* Behind earlier waiters, so that nothing overtakes them for ever. */
  if (!u->wait_head && prep_locked(u, op)) {
    if (reaping != u)
      enter_locked(u);
  } else {
    *u->wait_tail = op;
    u->wait_tail = &op->next;
  }
  pthread_mutex_unlock(&u->lock);
}

/* One completion: finish op, or send it round again. */
static void complete(struct udm_uring *u, struct udm_engine_op *op, int res)
{
  /*
   * Retried: EAGAIN and EINTR; and ECANCELED, since udm cancels nothing, so
   * it can only be a kernel cancelling what a thread that exited had in its
   * io-wq (the resubmission is this long-lived thread's).
   */
  if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
    udm_platform_uring_submit(u, op);
    return;
  }
  if (res < 0 || op->op == UDM_OP_FLUSH) {
    op->done(op, res < 0 ? res : 0);
    return;
  }
  if (res == 0) {
    if (op->op == UDM_OP_WRITE) { /* no progress: do not spin */
      op->done(op, -EIO);
      return;
    }
    /* End of file: the rest reads as a hole. */
    memset((char *)op->buf + op->moved, 0, op->len - op->moved);
    op->moved = op->len;
  } else {
    op->moved += (size_t)res;
  }
  if (op->moved < op->len)
    udm_platform_uring_submit(u, op); /* short transfer: the remainder */
  else
    op->done(op, 0);
}

static void *reap(void *arg)
{
  struct udm_uring *u = arg;
  bool stop_seen = false;
  reaping = u;
  for (;;) {
    struct io_uring_cqe *cqe;
    int r = io_uring_wait_cqe(&u->ring, &cqe);
    if (r < 0) {
      if (r != -EINTR && r != -EAGAIN)
        pause_briefly(); /* should not happen; never spin */
      continue;
    }
    struct {
      struct udm_engine_op *op;
      int res;
    } batch[REAP_BATCH];
    unsigned n = 0, seen = 0, head;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
      if (seen == REAP_BATCH)
        break;
      seen++;
      struct udm_engine_op *op = io_uring_cqe_get_data(cqe);
      if (!op) {
        stop_seen = true; /* the NOP of udm_platform_uring_free */
        continue;
      }
      batch[n].op = op;
      batch[n++].res = cqe->res;
    }
    io_uring_cq_advance(&u->ring, seen);

    pthread_mutex_lock(&u->lock);
    u->inflight -= seen;
    pthread_mutex_unlock(&u->lock);

    for (unsigned i = 0; i < n; i++)
      complete(u, batch[i].op, batch[i].res);
    /* Into the room made: waiters first, then what the done() calls submitted. */
    pthread_mutex_lock(&u->lock);
    feed_locked(u);
    if (io_uring_sq_ready(&u->ring))
      enter_locked(u);
    pthread_mutex_unlock(&u->lock);
    if (stop_seen) {
      /* Nothing is in flight at free; a done() may still have submitted. */
      pthread_mutex_lock(&u->lock);
      bool idle = u->inflight == 0 && !u->wait_head;
      pthread_mutex_unlock(&u->lock);
      if (idle)
        return NULL;
    }
  }
}

/* The kernel must know the operations we use (READ/WRITE came in 5.6). */
static bool has_ops(struct io_uring *ring)
{
  struct io_uring_probe *p = io_uring_get_probe_ring(ring);
  if (!p)
    return false;
  bool ok = io_uring_opcode_supported(p, IORING_OP_READ) &&
            io_uring_opcode_supported(p, IORING_OP_WRITE) &&
            io_uring_opcode_supported(p, IORING_OP_FSYNC) &&
            io_uring_opcode_supported(p, IORING_OP_NOP);
  io_uring_free_probe(p);
  return ok;
}

int udm_platform_uring_new(unsigned depth, struct udm_uring **out, const char **why)
{
  struct udm_uring *u = calloc(1, sizeof *u);
  if (!u) {
    *why = "out of memory";
    return -ENOMEM;
  }
  int r = io_uring_queue_init(depth, &u->ring, 0);
  if (r < 0) {
    *why = "io_uring_queue_init";
    free(u);
    return r;
  }
  if (!has_ops(&u->ring)) {
    *why = "the kernel lacks IORING_OP_READ/WRITE (Linux 5.6 or later is needed)";
    io_uring_queue_exit(&u->ring);
    free(u);
    return -ENOSYS;
  }
  u->depth = depth;
  u->wait_tail = &u->wait_head;
  pthread_mutex_init(&u->lock, NULL);
  r = udm__engine_thread_create(&u->reaper, reap, u);
  if (r < 0) {
    *why = "cannot start the completion thread";
    pthread_mutex_destroy(&u->lock);
    io_uring_queue_exit(&u->ring);
    free(u);
    return r;
  }
  *out = u;
  return 0;
}

void udm_platform_uring_free(struct udm_uring *u)
{
  if (!u)
    return;
  pthread_mutex_lock(&u->lock);
  struct io_uring_sqe *sqe;
  while (!(sqe = io_uring_get_sqe(&u->ring))) {
    enter_locked(u); /* the SQ is full of unsubmitted entries: push them */
    pthread_mutex_unlock(&u->lock);
    pause_briefly();
    pthread_mutex_lock(&u->lock);
  }
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, NULL);
  u->inflight++;
  enter_locked(u);
  pthread_mutex_unlock(&u->lock);
  pthread_join(u->reaper, NULL);
  io_uring_queue_exit(&u->ring);
  pthread_mutex_destroy(&u->lock);
  free(u);
}
