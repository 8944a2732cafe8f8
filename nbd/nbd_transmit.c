/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transmission phase: requests of one connection served in parallel.
 *
 * A connection has a few worker threads and no dispatcher: the worker that
 * holds recv_lock reads the next request (and its write payload), plus
 * every further small request already sitting complete in the receive
 * buffer, lets go (so another worker reads on), runs its batch on the udm
 * device, and sends all the replies in one sendmsg() under send_lock.
 * With many small requests in flight this costs one recv() and one send()
 * per batch instead of per request; with large ones, workers run them in
 * parallel.  No queue, no hand-off between threads, no lock shared with
 * other connections.
 *
 * A batch of small reads and writes (at most 16 KiB each, no FUA) keeps
 * recv_lock while it is served and sent, and its worker reads the next
 * batch straight away.  The device answers such requests in microseconds
 * from the page cache, and handing the lock over costs two futex calls and
 * a wake-up per batch.  The other workers wait, and the next batch is
 * bigger.  That halves the system calls per 4 KiB read.  Any batch of small
 * requests that takes longer than SMALL_SLOW_NS (a cold disk, a delay
 * target) turns this off until a batch is quick again, so slow small
 * requests still run in parallel.
 *
 * Everything the client sends is checked before it is used: a request whose
 * payload we cannot take (a write longer than 32 MiB) or a bad magic ends
 * the connection; every other bad request gets an error reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "nbd_conn.h"
#include "nbd_proto.h"

/* A batch: at most this many requests, and this many bytes of data after its first. */
#define BATCH_MAX 32u
#define BATCH_BYTES (1u << 20)
/* Buffers above this are freed after use rather than kept per worker. */
#define KEEP_BUFFER_MAX (4u << 20)
/* Block status work per request: NBD lets the reply cover less than asked. */
#define EXTENTS_MAX 1024u
#define EXTENTS_BYTES_MAX (1ull << 30)
/* Requests up to this size may be served holding recv_lock... */
#define SMALL_BYTES (16u * 1024)
/* ...while batches of them take less than this. */
#define SMALL_SLOW_NS 200000
/* Error messages sent to the client are cut to this. */
#define WHY_MAX 256u
/* Largest reply header: a structured chunk plus an 8-byte offset. */
/* Room for the largest reply head: two block-status chunk headers. */
#define HDR_MAX (2 * (NBD_STRUCTURED_SIZE + 4))

struct request {
  uint16_t flags;
  uint16_t type;
  unsigned char cookie[8];
  uint64_t off;
  uint32_t len;
  int err;          /* an NBD error decided while receiving */
  const char *why;  /* its message */
  size_t data;      /* where its data lives in the worker's buffer */
};

struct worker {
  struct nbd_conn *c;
  pthread_t thread;
  unsigned char *buf;
  size_t cap;
  unsigned n;                            /* requests in the batch */
  struct request rq[BATCH_MAX];
  unsigned char hdr[BATCH_MAX][HDR_MAX]; /* reply headers */
  char why[BATCH_MAX][WHY_MAX];          /* messages outlive udm_errmsg() */
  struct iovec iov[4 * BATCH_MAX]; /* block status: 2 chunks, 2 pieces each */
  int niov;
};

/* Grow the buffer keeping its contents (earlier requests of the batch). */
static int reserve(struct worker *w, size_t len)
{
  if (len <= w->cap)
    return 0;
  unsigned char *p = realloc(w->buf, len);
  if (!p)
    return -ENOMEM;
  w->buf = p;
  w->cap = len;
  return 0;
}

static void release_if_large(struct worker *w)
{
  if (w->cap > KEEP_BUFFER_MAX) {
    free(w->buf);
    w->buf = NULL;
    w->cap = 0;
  }
}

static int nbd_error(int e)
{
  switch (e) {
  case 0:
    return 0;
  case EPERM:
  case EROFS:
    return NBD_EPERM;
  case ENOMEM:
    return NBD_ENOMEM;
  case EINVAL:
    return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return NBD_ENOSPC;
  case EOVERFLOW:
    return NBD_EOVERFLOW;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  default:
    /* ENOTSUP and EOPNOTSUPP are one value on some systems, two on others. */
    if (e == ENOTSUP || e == EOPNOTSUPP)
      return NBD_ENOTSUP;
    return NBD_EIO;
  }
}

/* ---- replies: built into the worker's iovec, sent once per batch ---- */

static void add_iov(struct worker *w, void *base, size_t len)
{
  w->iov[w->niov].iov_base = base;
  w->iov[w->niov].iov_len = len;
  w->niov++;
}

static void put_simple(unsigned char *h, const struct request *rq, uint32_t err)
{
  nbd_put32(h, NBD_SIMPLE_MAGIC);
  nbd_put32(h + 4, err);
  memcpy(h + 8, rq->cookie, 8);
}

static void put_chunk(unsigned char *h, const struct request *rq, uint16_t flags,
                      uint16_t type, uint32_t len)
{
  nbd_put32(h, NBD_STRUCTURED_MAGIC);
  nbd_put16(h + 4, flags);
  nbd_put16(h + 6, type);
  memcpy(h + 8, rq->cookie, 8);
  nbd_put32(h + 16, len);
}

static void reply_ok(struct worker *w, unsigned i)
{
  put_simple(w->hdr[i], &w->rq[i], 0); /* allowed with structured replies: no payload */
  add_iov(w, w->hdr[i], NBD_SIMPLE_SIZE);
}

static void reply_error(struct worker *w, unsigned i, int nbd_err, const char *msg)
{
  const struct request *rq = &w->rq[i];
  unsigned char *h = w->hdr[i];
  if (!w->c->structured) {
    put_simple(h, rq, (uint32_t)nbd_err);
    add_iov(w, h, NBD_SIMPLE_SIZE);
    return;
  }
  /* A structured error carries the reason for a human to read. */
  snprintf(w->why[i], WHY_MAX, "%s", msg ? msg : "");
  size_t n = strlen(w->why[i]);
  put_chunk(h, rq, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, (uint32_t)(6 + n));
  nbd_put32(h + NBD_STRUCTURED_SIZE, (uint32_t)nbd_err);
  nbd_put16(h + NBD_STRUCTURED_SIZE + 4, (uint16_t)n);
  add_iov(w, h, NBD_STRUCTURED_SIZE + 6);
  if (n)
    add_iov(w, w->why[i], n);
}

static void reply_read(struct worker *w, unsigned i)
{
  const struct request *rq = &w->rq[i];
  unsigned char *h = w->hdr[i];
  if (!w->c->structured) {
    put_simple(h, rq, 0);
    add_iov(w, h, NBD_SIMPLE_SIZE);
  } else {
    put_chunk(h, rq, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 8 + rq->len);
    nbd_put64(h + NBD_STRUCTURED_SIZE, rq->off);
    add_iov(w, h, NBD_STRUCTURED_SIZE + 8);
  }
  add_iov(w, w->buf + rq->data, rq->len);
}

/* Replies go out whole, one batch at a time; a client that cannot take them is gone. */
static void send_batch(struct worker *w)
{
  struct nbd_conn *c = w->c;
  if (w->niov == 0)
    return;
  pthread_mutex_lock(&c->send_lock);
  int r = nbd_sendv(c->fd, w->iov, w->niov);
  pthread_mutex_unlock(&c->send_lock);
  w->niov = 0;
  if (r < 0) {
    atomic_store(&c->quit, true);
    shutdown(c->fd, SHUT_RDWR);
  }
}

/* ---- receiving ---- */

static void parse(const unsigned char *h, struct request *rq)
{
  rq->flags = nbd_get16(h + 4);
  rq->type = nbd_get16(h + 6);
  memcpy(rq->cookie, h + 8, 8);
  rq->off = nbd_get64(h + 16);
  rq->len = nbd_get32(h + 24);
  rq->err = 0;
  rq->why = NULL;
  rq->data = 0;
}

/* Bytes of the worker's buffer a request uses (oversized ones are refused later). */
static size_t data_need(const struct nbd_conn *c, const struct request *rq)
{
  switch (rq->type) {
  case NBD_CMD_READ: /* no buffer for a read that will be refused */
    return rq->len <= NBD_PAYLOAD_MAX && rq->off <= c->size && rq->len <= c->size - rq->off
               ? rq->len
               : 0;
  case NBD_CMD_WRITE: /* the payload comes anyway */
    return rq->len <= NBD_PAYLOAD_MAX ? rq->len : 0;
  case NBD_CMD_BLOCK_STATUS: /* one extent list per context */
    return 2 * 8u * EXTENTS_MAX;
  default:
    return 0;
  }
}

/* May the complete request at the head of the receive buffer join the batch? */
static bool can_batch(const struct nbd_conn *c, const struct worker *w, size_t used)
{
  size_t avail = c->rlen - c->rpos;
  if (w->n == BATCH_MAX || avail < NBD_REQUEST_SIZE)
    return false;
  struct request next;
  parse(c->rbuf + c->rpos, &next);
  if (next.type == NBD_CMD_WRITE && avail - NBD_REQUEST_SIZE < next.len)
    return false; /* its payload is not here yet: do not wait for it */
  return used + data_need(c, &next) <= BATCH_BYTES;
}

/*
 * Read a batch of requests; called with recv_lock held.  Returns 0 to serve
 * the batch, 1 to serve it and then hang up, < 0 to hang up now.
 */
static int receive_batch(struct nbd_conn *c, struct worker *w)
{
  unsigned char h[NBD_REQUEST_SIZE];
  size_t used = 0;
  w->n = 0;
  int r = nbd_recv(c, h, sizeof h); /* the first one may wait */
  for (;;) {
    if (r < 0)
      return w->n ? 1 : r;
    struct request *rq = &w->rq[w->n];
    if (nbd_get32(h) != NBD_REQUEST_MAGIC)
      return w->n ? 1 : -EPROTO;
    parse(h, rq);
    if (rq->type == NBD_CMD_DISC)
      return w->n ? 1 : -ECONNRESET;
    if (rq->type == NBD_CMD_WRITE && rq->len > NBD_PAYLOAD_MAX) {
      /* Skipping up to 4 GiB would let a client keep us busy for nothing. */
      rq->err = NBD_EINVAL;
      rq->why = "write longer than the 32 MiB maximum";
      w->n++;
      return 1;
    }
    size_t need = data_need(c, rq);
    if (need && reserve(w, used + need) < 0) {
      rq->err = NBD_ENOMEM;
      rq->why = "out of memory for the request's data";
      if (rq->type == NBD_CMD_WRITE && (r = nbd_discard(c, rq->len)) < 0)
        return w->n ? 1 : r;
      need = 0;
    } else if (rq->type == NBD_CMD_WRITE) {
      r = nbd_recv(c, w->buf + used, rq->len);
      if (r < 0)
        return w->n ? 1 : r; /* a torn payload is never written */
    }
    rq->data = used;
    used += need;
    w->n++;
    if (!can_batch(c, w, used))
      return 0;
    r = nbd_recv(c, h, sizeof h); /* from the buffer: no system call */
  }
}

/* ---- serving ---- */

/* Checks common to all commands; 0 or an NBD error with *why set. */
static int check(struct nbd_conn *c, const struct request *rq, const char **why)
{
  uint16_t allowed = NBD_CMD_FLAG_FUA;
  bool writes = false, ranged = true, payload = false;
  switch (rq->type) {
  case NBD_CMD_READ:
    if (c->structured)
      allowed |= NBD_CMD_FLAG_DF;
    payload = true;
    break;
  case NBD_CMD_WRITE:
    writes = payload = true;
    break;
  case NBD_CMD_FLUSH:
    ranged = false;
    break;
  case NBD_CMD_TRIM:
    writes = true;
    break;
  case NBD_CMD_WRITE_ZEROES:
    allowed |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    writes = true;
    break;
  case NBD_CMD_CACHE:
    break;
  case NBD_CMD_BLOCK_STATUS:
    if (!c->meta_allocation && !c->meta_bad) {
      *why = "no metadata context was negotiated";
      return NBD_EINVAL;
    }
    allowed |= NBD_CMD_FLAG_REQ_ONE;
    break;
  default:
    *why = "unknown command";
    return NBD_EINVAL;
  }
  if (rq->flags & ~allowed) {
    *why = "command flag not valid for this command";
    return NBD_EINVAL;
  }
  if (!ranged)
    return 0;
  if (rq->len == 0) {
    *why = "zero length";
    return NBD_EINVAL;
  }
  if (payload && rq->len > NBD_PAYLOAD_MAX) {
    *why = "request longer than the 32 MiB maximum";
    return NBD_EINVAL;
  }
  if (rq->off > c->size || rq->len > c->size - rq->off) {
    *why = "request beyond the end of the export";
    /* The protocol's choice: ENOSPC for writes, EINVAL for reads and trims. */
    return rq->type == NBD_CMD_WRITE || rq->type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC
                                                                          : NBD_EINVAL;
  }
  if (writes && (c->tflags & NBD_FLAG_READ_ONLY)) {
    *why = "the export is read-only";
    return NBD_EPERM;
  }
  return 0;
}


struct extent_list {
  unsigned char *out; /* (length, flags) pairs, big-endian */
  unsigned n, max;
  uint64_t len;       /* bytes covered by the last pair */
  uint32_t flags;
  bool bad;           /* udm:bad rather than base:allocation */
};

static int add_extent(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  (void)off; /* extents arrive in order and back to back */
  struct extent_list *l = opaque;
  uint32_t f = l->bad ? ((flags & UDM_EXTENT_BAD) ? UDM_NBD_STATE_BAD : 0)
                      : ((flags & UDM_EXTENT_HOLE) ? NBD_STATE_HOLE : 0) |
                            ((flags & UDM_EXTENT_ZERO) ? NBD_STATE_ZERO : 0);
  if (l->n > 0 && f == l->flags) {
    l->len += len; /* the range asked for is below 4 GiB, so this fits */
    nbd_put32(l->out + 8 * (l->n - 1), (uint32_t)l->len);
    return 0;
  }
  if (l->n == l->max)
    return 1;
  l->flags = f;
  l->len = len;
  nbd_put32(l->out + 8 * l->n, (uint32_t)len);
  nbd_put32(l->out + 8 * l->n + 4, f);
  l->n++;
  return 0;
}

/* One list of extents for one context, into out (EXTENTS_MAX pairs). */
static int collect_extents(struct nbd_conn *c, const struct request *rq, bool bad,
                           unsigned char *out, unsigned *n)
{
  struct extent_list l = {
      .out = out,
      .max = (rq->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : EXTENTS_MAX,
      .bad = bad,
  };
  uint64_t len = rq->len < EXTENTS_BYTES_MAX ? rq->len : EXTENTS_BYTES_MAX;
  if (udm_device_extents(c->dev, len, rq->off, add_extent, &l) < 0)
    return -1;
  if (l.n == 0) { /* nothing reported: flags 0, which claims nothing */
    nbd_put32(l.out, (uint32_t)len);
    nbd_put32(l.out + 4, 0);
    l.n = 1;
  }
  *n = l.n;
  return 0;
}

/* A block-status chunk per selected context; the last one ends the reply. */
static void serve_block_status(struct worker *w, unsigned i)
{
  struct nbd_conn *c = w->c;
  const struct request *rq = &w->rq[i];
  const struct {
    bool on;
    bool bad;
    uint32_t id;
  } ctx[2] = {{c->meta_allocation, false, NBD_META_ID_ALLOCATION},
              {c->meta_bad, true, NBD_META_ID_BAD}};
  unsigned char *out[2] = {w->buf + rq->data, w->buf + rq->data + 8u * EXTENTS_MAX};
  unsigned n[2] = {0, 0};
  for (unsigned k = 0; k < 2; k++) {
    if (ctx[k].on && collect_extents(c, rq, ctx[k].bad, out[k], &n[k]) < 0) {
      reply_error(w, i, nbd_error(errno), udm_errmsg());
      return;
    }
  }
  unsigned last = ctx[1].on ? 1 : 0;
  for (unsigned k = 0; k < 2; k++) {
    if (!ctx[k].on)
      continue;
    unsigned char *h = w->hdr[i] + k * (NBD_STRUCTURED_SIZE + 4);
    put_chunk(h, rq, k == last ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS,
              4 + 8 * n[k]);
    nbd_put32(h + NBD_STRUCTURED_SIZE, ctx[k].id);
    add_iov(w, h, NBD_STRUCTURED_SIZE + 4);
    add_iov(w, out[k], 8u * n[k]);
  }
}

static void serve(struct worker *w, unsigned i)
{
  struct nbd_conn *c = w->c;
  const struct request *rq = &w->rq[i];
  const char *why = rq->why;
  int err = rq->err ? rq->err : check(c, rq, &why);
  if (err) {
    reply_error(w, i, err, why);
    return;
  }
  unsigned fua = (rq->flags & NBD_CMD_FLAG_FUA) ? UDM_IO_FUA : 0;
  void *data = w->buf + rq->data;
  int r = 0;
  switch (rq->type) {
  case NBD_CMD_READ:
    r = udm_device_pread(c->dev, data, rq->len, rq->off);
    if (r == 0) {
      reply_read(w, i);
      return;
    }
    break;
  case NBD_CMD_WRITE:
    r = udm_device_pwrite(c->dev, data, rq->len, rq->off, fua);
    break;
  case NBD_CMD_FLUSH:
    r = udm_device_flush(c->dev);
    break;
  case NBD_CMD_TRIM:
    r = udm_device_discard(c->dev, rq->len, rq->off, fua);
    if (r < 0 && (errno == EOPNOTSUPP || errno == ENOTSUP))
      r = 0; /* trim is advisory: ignoring it is a valid answer */
    break;
  case NBD_CMD_WRITE_ZEROES: {
    unsigned flags = fua;
    if (!(rq->flags & NBD_CMD_FLAG_NO_HOLE))
      flags |= UDM_IO_MAY_UNMAP;
    if (rq->flags & NBD_CMD_FLAG_FAST_ZERO)
      flags |= UDM_IO_NO_FALLBACK;
    r = udm_device_write_zeroes(c->dev, rq->len, rq->off, flags);
    break;
  }
  case NBD_CMD_CACHE:
    break; /* advisory; udm keeps no cache of its own to fill */
  case NBD_CMD_BLOCK_STATUS:
    serve_block_status(w, i);
    return;
  }
  if (r < 0)
    reply_error(w, i, nbd_error(errno), udm_errmsg());
  else
    reply_ok(w, i);
}

/* Only reads and writes, each at most SMALL_BYTES and without FUA. */
static bool small_batch(const struct worker *w)
{
  for (unsigned i = 0; i < w->n; i++) {
    const struct request *rq = &w->rq[i];
    if ((rq->type != NBD_CMD_READ && rq->type != NBD_CMD_WRITE) || rq->len > SMALL_BYTES ||
        (rq->flags & NBD_CMD_FLAG_FUA))
      return false;
  }
  return true;
}

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  struct nbd_conn *c = w->c;
  bool locked = false; /* recv_lock kept from a small batch */
  for (;;) {
    if (!locked)
      pthread_mutex_lock(&c->recv_lock);
    if (atomic_load(&c->quit)) {
      pthread_mutex_unlock(&c->recv_lock);
      break;
    }
    int r = receive_batch(c, w);
    if (r != 0)
      atomic_store(&c->quit, true);
    bool small = r == 0 && small_batch(w);
    locked = small && !atomic_load(&c->small_slow);
    if (!locked)
      pthread_mutex_unlock(&c->recv_lock);
    if (r < 0)
      break;
    int64_t start = small ? now_ns() : 0;
    for (unsigned i = 0; i < w->n; i++)
      serve(w, i);
    if (small)
      atomic_store(&c->small_slow, now_ns() - start > SMALL_SLOW_NS);
    send_batch(w);
    release_if_large(w);
    if (r > 0)
      break;
  }
  free(w->buf);
  w->buf = NULL;
  return NULL;
}

void nbd_transmit(struct nbd_conn *c)
{
  unsigned n = c->workers ? c->workers : 1;
  struct worker *ws = calloc(n, sizeof *ws);
  if (!ws)
    return;
  unsigned started = 1;
  for (unsigned i = 0; i < n; i++)
    ws[i].c = c;
  for (unsigned i = 1; i < n; i++) {
    if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
      break; /* serve with fewer threads rather than not at all */
    started++;
  }
  worker_main(&ws[0]);
  for (unsigned i = 1; i < started; i++)
    pthread_join(ws[i].thread, NULL);
  free(ws);
  /* The client may not have flushed; make its writes durable before it goes. */
  if (!(c->tflags & NBD_FLAG_READ_ONLY))
    udm_device_flush(c->dev);
}
