/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io_uring for the I/O engine.  One thread, the ring's own, is the only one
 * that enters the kernel: io_uring ties a request to the thread that
 * submitted it, and fails it (EFAULT, ECANCELED) when that thread exits
 * before the request is done, as pool threads of a frontend do.  So other
 * threads put operations on a FIFO under a lock and wake the ring thread
 * through an eventfd whose read it keeps armed in the ring; the ring thread
 * moves them into SQEs, at most DEPTH in the kernel at once (the rest wait
 * in the FIFO: nothing is dropped, no submitter waits for room), submits
 * and waits in one call, and runs the completions.
 *
 * Completions: short transfers are resubmitted for the remainder, EAGAIN,
 * EINTR and ECANCELED retried (udm cancels nothing), then op->done() is
 * called on the ring thread, without the lock, so done() may submit again
 * (dev_file.c chains FUA's fdatasync that way); what it submits is entered
 * with the next batch.  The FIFO's lock also orders a submitter's writes to
 * an op before the ring thread's reads.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "uring.h"

/* The kernel moves at most about 2 GiB per call; ask for less, resume the rest. */
#define MAX_CHUNK (1u << 30)
#define REAP_BATCH 64

struct udm_uring {
  struct io_uring ring;
  unsigned depth;           /* most operations in the kernel at once */
  pthread_t thread;

  pthread_mutex_t lock;     /* the FIFO, kicked, stopping */
  struct udm_engine_op *wait_head, **wait_tail;
  bool kicked;              /* the eventfd was written since the FIFO was emptied */
  bool stopping;

  /* The ring thread's own. */
  unsigned inflight;        /* operations in the kernel */
  int efd;
  uint64_t efd_count;       /* the armed read's buffer */
  bool efd_armed;
};

/*
 * The ring whose thread this is, if any: what done() submits from there
 * needs no wake-up.
 */
static _Thread_local struct udm_uring *ring_thread;

static void pause_briefly(void)
{
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
}

static void kick(struct udm_uring *u)
{
  uint64_t one = 1;
  while (write(u->efd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

void udm_platform_uring_submit(struct udm_uring *u, struct udm_engine_op *op)
{
  op->next = NULL;
  pthread_mutex_lock(&u->lock);
  *u->wait_tail = op;
  u->wait_tail = &op->next;
  bool wake = ring_thread != u && !u->kicked;
  if (wake)
    u->kicked = true;
  pthread_mutex_unlock(&u->lock);
  if (wake)
    kick(u);
}

/* Fill an SQE for op, from where it stands.  Ring thread. */
static void prep(struct udm_uring *u, struct io_uring_sqe *sqe, struct udm_engine_op *op)
{
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
}

/*
 * Move waiting operations into SQEs while there is room, and keep the
 * eventfd's read armed.  Ring thread.  True when the thread should stop.
 */
static bool feed(struct udm_uring *u)
{
  struct io_uring_sqe *sqe;
  if (!u->efd_armed && (sqe = io_uring_get_sqe(&u->ring))) {
    io_uring_prep_read(sqe, u->efd, &u->efd_count, sizeof u->efd_count, 0);
    io_uring_sqe_set_data(sqe, &u->efd_count);
    u->efd_armed = true;
  }
  pthread_mutex_lock(&u->lock);
  while (u->wait_head && u->inflight < u->depth && (sqe = io_uring_get_sqe(&u->ring))) {
    struct udm_engine_op *op = u->wait_head;
    if (!(u->wait_head = op->next))
      u->wait_tail = &u->wait_head;
    prep(u, sqe, op);
  }
  /* From here on a new submission must wake this thread again. */
  u->kicked = false;
  bool stop = u->stopping && u->inflight == 0 && !u->wait_head;
  pthread_mutex_unlock(&u->lock);
  return stop;
}

/* One completion: finish op, or send it round again.  Ring thread. */
static void complete(struct udm_uring *u, struct udm_engine_op *op, int res)
{
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

static void *ring_main(void *arg)
{
  struct udm_uring *u = arg;
  ring_thread = u;
  while (!feed(u)) {
    int r = io_uring_submit_and_wait(&u->ring, 1);
    if (r < 0 && r != -EINTR) {
      /* EAGAIN/EBUSY: the kernel is short of memory; never spin. */
      pause_briefly();
      continue;
    }
    struct {
      struct udm_engine_op *op;
      int res;
    } batch[REAP_BATCH];
    unsigned n = 0, seen = 0, head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
      if (seen == REAP_BATCH)
        break;
      seen++;
      void *data = io_uring_cqe_get_data(cqe);
      if (data == &u->efd_count) {
        u->efd_armed = false; /* woken: rearmed by the next feed */
        continue;
      }
      batch[n].op = data;
      batch[n++].res = cqe->res;
    }
    io_uring_cq_advance(&u->ring, seen);
    u->inflight -= n;
    for (unsigned i = 0; i < n; i++)
      complete(u, batch[i].op, batch[i].res);
  }
  return NULL;
}

/* The kernel must know the operations we use (READ/WRITE came in 5.6). */
static bool has_ops(struct io_uring *ring)
{
  struct io_uring_probe *p = io_uring_get_probe_ring(ring);
  if (!p)
    return false;
  bool ok = io_uring_opcode_supported(p, IORING_OP_READ) &&
            io_uring_opcode_supported(p, IORING_OP_WRITE) &&
            io_uring_opcode_supported(p, IORING_OP_FSYNC);
  io_uring_free_probe(p);
  return ok;
}

int udm_platform_uring_new(unsigned depth, unsigned max_workers, struct udm_uring **out,
                           const char **why)
{
  struct udm_uring *u = calloc(1, sizeof *u);
  if (!u) {
    *why = "out of memory";
    return -ENOMEM;
  }
  /*
   * DEPTH entries: DEPTH - 1 operations and the eventfd's read (small, for
   * kernels before 5.12 that count the rings against RLIMIT_MEMLOCK).
   */
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
  /* The kernel's own workers for blocking work (Linux 5.15; older: its defaults). */
  unsigned workers[2] = {max_workers, max_workers};
  (void)io_uring_register_iowq_max_workers(&u->ring, workers);
  u->efd = eventfd(0, EFD_CLOEXEC);
  if (u->efd < 0) {
    r = -errno;
    *why = "eventfd";
    io_uring_queue_exit(&u->ring);
    free(u);
    return r;
  }
  u->depth = depth - 1;
  u->wait_tail = &u->wait_head;
  pthread_mutex_init(&u->lock, NULL);
  r = udm__engine_thread_create(&u->thread, ring_main, u);
  if (r < 0) {
    *why = "cannot start the ring's thread";
    pthread_mutex_destroy(&u->lock);
    close(u->efd);
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
  u->stopping = true;
  pthread_mutex_unlock(&u->lock);
  kick(u);
  pthread_join(u->thread, NULL);
  /* Cancels the eventfd's read, which still points into u. */
  io_uring_queue_exit(&u->ring);
  close(u->efd);
  pthread_mutex_destroy(&u->lock);
  free(u);
}
