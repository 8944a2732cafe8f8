/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transmission phase: requests of one connection served asynchronously.
 *
 * Two threads per connection, whatever the queue depth: the reader (the
 * connection's own thread) reads each request with its payload, checks it
 * and submits it with udm_device_aio_*; the sender sends replies in the
 * order the requests complete.  A request in flight costs a struct request
 * and its buffer, never a thread.  Up to QUEUE_DEPTH requests (and
 * INFLIGHT_BYTES_MAX bytes of their buffers) are in flight per connection;
 * at the cap the reader stops reading until replies free slots, so a client
 * that never reads its replies holds a bounded amount of memory.
 *
 * Completions (done, on any thread: inline in the submitting call, or on a
 * libudm I/O thread) only build the reply header and queue the request;
 * they never touch the socket, which a client can stall.  The sender takes
 * the whole done list at once and sends it with one sendmsg(), so replies
 * that complete together leave together.
 *
 * Requests the device answers inline (a file in the page cache) cost no
 * hand-off: the reader reads requests through the connection's 64 KiB
 * receive buffer (one recv() for a burst of headers), keeps the replies it
 * completed itself on a list of its own, and before it could block (an
 * empty buffer, a cap) sends them itself with one non-blocking sendmsg(),
 * provided they are small (DIRECT_SEND_MAX), nobody else is sending and
 * nothing older waits.  What the socket does not take at once goes to the
 * sender, first in line.  So a burst of quick 4 KiB reads costs one recv()
 * and one send() and no wake-up, and the reader never waits for the
 * client's reading.  Large replies (1 MiB reads) go to the sender, so that
 * the next request's device work overlaps the previous reply's copy, and
 * large writes are started by the sender (serve() says why).
 *
 * Request and buffer memory is recycled through a free list: buffers up to
 * KEEP_BUFFER_MAX are kept, POOL_BYTES_MAX in all per connection.
 *
 * The end (EOF, NBD_CMD_DISC, a bad magic, a failed send, the server
 * stopping): the reader stops reading and waits until every request it
 * submitted has completed and its reply has been sent (or dropped, when the
 * client is gone); only then does the sender stop and the connection go.
 * That is the NBD spec's DISC too: requests in flight finish first.
 *
 * Everything the client sends is checked before it is used: a request whose
 * payload we cannot take (a write longer than 32 MiB) or a bad magic ends
 * the connection; every other bad request gets an error reply.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nbd_conn.h"
#include "nbd_proto.h"

/* Requests in flight per connection; the reader waits at this many. */
#define QUEUE_DEPTH 256u
/* ...and at this many bytes of request buffers (one request may always run). */
#define INFLIGHT_BYTES_MAX (64u << 20)
/* Buffers up to this size are kept for the next request... */
#define KEEP_BUFFER_MAX (4u << 20)
/* ...up to this many bytes of them per connection. */
#define POOL_BYTES_MAX (32u << 20)
#define BUFFER_ALIGN 4096u
/* Block status work per request: NBD lets the reply cover less than asked. */
#define EXTENTS_MAX 1024u
#define EXTENTS_BYTES_MAX (1ull << 30)
/* Error messages sent to the client are cut to this. */
#define WHY_MAX 256u
/* Room for the largest reply head: two block-status chunk headers. */
#define HDR_MAX (2 * (NBD_STRUCTURED_SIZE + 4))
/* The reader sends its own replies when they are at most this many bytes. */
#define DIRECT_SEND_MAX (256u * 1024)
/* Writes of at least this many bytes are started by the sender (see serve). */
#define SENDER_STARTS_MIN (256u * 1024)
/* Pieces of one sendmsg(): up to 4 per reply (block status: 2 chunks of 2). */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define SEND_IOV IOV_MAX
#else
#define SEND_IOV 1024
#endif

struct transmit;

struct request {
  struct transmit *t;
  struct request *next;    /* the done list or the free list */
  uint16_t flags;
  uint16_t type;
  unsigned char cookie[8];
  uint64_t off;
  uint32_t len;
  size_t need;             /* bytes of buf counted in flight */
  unsigned char *buf;      /* payload, read data or extents */
  size_t cap;
  unsigned char hdr[HDR_MAX];
  char why[WHY_MAX];       /* a structured error's message */
  struct iovec iov[4];     /* the reply */
  int niov;
};

struct transmit {
  struct nbd_conn *c;
  pthread_t reader;
  pthread_t sender;
  pthread_mutex_t lock;       /* the lists and flags up to the reader's own */
  pthread_cond_t sender_cv;   /* done list not empty, or stop */
  pthread_cond_t reader_cv;   /* a slot freed */
  struct request *done_head;  /* replies ready, in completion order */
  struct request **done_tail;
  struct request *free_list;  /* recycled by the sender */
  struct request *start_head; /* large writes for the sender to start */
  struct request **start_tail;
  bool sender_waiting;
  bool reader_waiting;
  bool send_failed;           /* the client is gone: replies are dropped */
  bool socket_busy;           /* the sender or the reader is sending */
  bool stop;                  /* nothing in flight and nothing more will come */
  /*
   * Changed under the lock when they shrink (the reader waits on them),
   * read without it on the reader's fast path.
   */
  atomic_uint inflight;       /* requests taken by the reader and not yet recycled */
  atomic_size_t inflight_bytes;
  atomic_size_t pool_bytes;   /* buffers kept: free_list and the reader's cache */
  /*
   * The reader's own, no lock: replies it completed inline (sent or handed
   * over in one go before it may block), and free requests taken from
   * free_list in one go.
   */
  struct request *pending;
  struct request **pending_tail;
  size_t pending_bytes;
  struct request *cache;
  struct iovec iov[SEND_IOV];
};

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

/* ---- replies: built into the request, sent by the sender ---- */

static void add_iov(struct request *rq, void *base, size_t len)
{
  rq->iov[rq->niov].iov_base = base;
  rq->iov[rq->niov].iov_len = len;
  rq->niov++;
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

static void reply_ok(struct request *rq)
{
  put_simple(rq->hdr, rq, 0); /* allowed with structured replies: no payload */
  add_iov(rq, rq->hdr, NBD_SIMPLE_SIZE);
}

static void reply_error(struct request *rq, int nbd_err, const char *msg)
{
  unsigned char *h = rq->hdr;
  if (!rq->t->c->structured) {
    put_simple(h, rq, (uint32_t)nbd_err);
    add_iov(rq, h, NBD_SIMPLE_SIZE);
    return;
  }
  /* A structured error carries the reason for a human to read. */
  if (msg != rq->why)
    snprintf(rq->why, WHY_MAX, "%s", msg ? msg : "");
  size_t n = strlen(rq->why);
  put_chunk(h, rq, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, (uint32_t)(6 + n));
  nbd_put32(h + NBD_STRUCTURED_SIZE, (uint32_t)nbd_err);
  nbd_put16(h + NBD_STRUCTURED_SIZE + 4, (uint16_t)n);
  add_iov(rq, h, NBD_STRUCTURED_SIZE + 6);
  if (n)
    add_iov(rq, rq->why, n);
}

static void reply_read(struct request *rq)
{
  unsigned char *h = rq->hdr;
  if (!rq->t->c->structured) {
    put_simple(h, rq, 0);
    add_iov(rq, h, NBD_SIMPLE_SIZE);
  } else {
    put_chunk(h, rq, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 8 + rq->len);
    nbd_put64(h + NBD_STRUCTURED_SIZE, rq->off);
    add_iov(rq, h, NBD_STRUCTURED_SIZE + 8);
  }
  add_iov(rq, rq->buf, rq->len);
}

/* ---- the done list and the slots ---- */

static bool on_reader(const struct transmit *t)
{
  return pthread_equal(pthread_self(), t->reader) != 0;
}

static size_t reply_bytes(const struct request *rq)
{
  size_t n = 0;
  for (int i = 0; i < rq->niov; i++)
    n += rq->iov[i].iov_len;
  return n;
}

static void hand_over(struct transmit *t);

/* The reply is built: hand the request to the sender.  Any thread. */
static void complete(struct request *rq)
{
  struct transmit *t = rq->t;
  rq->next = NULL;
  if (on_reader(t)) { /* inline: the reader sends or hands over before it may block */
    *t->pending_tail = rq;
    t->pending_tail = &rq->next;
    t->pending_bytes += reply_bytes(rq);
    if (t->pending_bytes <= DIRECT_SEND_MAX)
      return;
    /* Too much for the reader to send: the sender starts on it now. */
  }
  pthread_mutex_lock(&t->lock);
  if (on_reader(t)) {
    hand_over(t);
  } else {
    *t->done_tail = rq;
    t->done_tail = &rq->next;
    if (t->sender_waiting && !t->socket_busy)
      pthread_cond_signal(&t->sender_cv);
  }
  pthread_mutex_unlock(&t->lock);
}

/* The reader's pending replies onto the done list; with t->lock held. */
static void hand_over(struct transmit *t)
{
  if (!t->pending)
    return;
  *t->done_tail = t->pending;
  t->done_tail = t->pending_tail;
  t->pending = NULL;
  t->pending_tail = &t->pending;
  t->pending_bytes = 0;
  if (t->sender_waiting && !t->socket_busy)
    pthread_cond_signal(&t->sender_cv);
}

static void recycle(struct transmit *t, struct request *rq);

/* Drop the first `sent` bytes of the replies of list; the first one not sent whole. */
static struct request *consume(struct transmit *t, struct request *list, size_t sent)
{
  while (list) {
    size_t n = reply_bytes(list);
    if (sent < n)
      break;
    sent -= n;
    struct request *next = list->next;
    recycle(t, list);
    list = next;
  }
  if (list && sent) { /* part of this reply went out: the sender sends the rest */
    int k = 0;
    while (sent >= list->iov[k].iov_len)
      sent -= list->iov[k++].iov_len;
    memmove(list->iov, list->iov + k, (size_t)(list->niov - k) * sizeof *list->iov);
    list->niov -= k;
    list->iov[0].iov_base = (char *)list->iov[0].iov_base + sent;
    list->iov[0].iov_len -= sent;
  }
  return list;
}

/*
 * Send small replies the reader completed itself, without waking the
 * sender: one non-blocking sendmsg() while nobody else sends and nothing
 * older waits.  What the socket does not take goes to the sender, first in
 * line.  The reader never blocks on the client here.
 */
static void send_direct(struct transmit *t)
{
  struct request *list = t->pending;
  int n = 0;
  for (struct request *rq = list; rq && n + rq->niov <= SEND_IOV; rq = rq->next) {
    memcpy(t->iov + n, rq->iov, (size_t)rq->niov * sizeof *rq->iov);
    n += rq->niov;
  }
  t->pending = NULL;
  t->pending_tail = &t->pending;
  t->pending_bytes = 0;
  t->socket_busy = true;
  pthread_mutex_unlock(&t->lock);
  ssize_t sent = nbd_sendv_nowait(t->c->fd, t->iov, n);
  bool failed = sent < 0;
  if (failed)
    shutdown(t->c->fd, SHUT_RDWR);
  pthread_mutex_lock(&t->lock);
  t->socket_busy = false;
  if (failed)
    t->send_failed = true;
  struct request *rest = consume(t, list, sent > 0 ? (size_t)sent : 0);
  if (rest) { /* first in line: before anything completed meanwhile */
    struct request **tail = &rest;
    while (*tail)
      tail = &(*tail)->next;
    *tail = t->done_head;
    if (!t->done_head)
      t->done_tail = tail;
    t->done_head = rest;
  }
  if (t->done_head && t->sender_waiting)
    pthread_cond_signal(&t->sender_cv);
}

/* On the reader, before it may block: send its replies, or let the sender have them. */
static void flush_pending(struct transmit *t)
{
  if (!t->pending)
    return;
  pthread_mutex_lock(&t->lock);
  if (!t->socket_busy && !t->done_head && !t->send_failed &&
      t->pending_bytes <= DIRECT_SEND_MAX)
    send_direct(t);
  else
    hand_over(t);
  pthread_mutex_unlock(&t->lock);
}

/* A request's slot and buffer are free again; with t->lock held. */
static void recycle(struct transmit *t, struct request *rq)
{
  atomic_fetch_sub(&t->inflight, 1);
  atomic_fetch_sub(&t->inflight_bytes, rq->need);
  if (rq->cap > KEEP_BUFFER_MAX ||
      atomic_load(&t->pool_bytes) + rq->cap > POOL_BYTES_MAX) {
    free(rq->buf);
    rq->buf = NULL;
    rq->cap = 0;
  }
  atomic_fetch_add(&t->pool_bytes, rq->cap);
  rq->next = t->free_list;
  t->free_list = rq;
}

static bool at_cap(struct transmit *t, size_t need)
{
  unsigned n = atomic_load(&t->inflight);
  return n >= QUEUE_DEPTH ||
         (n > 0 && atomic_load(&t->inflight_bytes) + need > INFLIGHT_BYTES_MAX);
}

/*
 * A slot for a request needing `need` bytes of buffer: waits while the
 * connection is at its cap.  NULL when the client is gone or memory is out.
 * Only the reader takes slots, so what it saw below the cap stays so.
 */
static struct request *take_slot(struct transmit *t, size_t need)
{
  if (at_cap(t, need)) {
    flush_pending(t); /* or no slot may come free */
    pthread_mutex_lock(&t->lock);
    hand_over(t);     /* what the socket did not take */
    while (!t->send_failed && at_cap(t, need)) {
      t->reader_waiting = true;
      pthread_cond_wait(&t->reader_cv, &t->lock);
      t->reader_waiting = false;
    }
    bool failed = t->send_failed;
    pthread_mutex_unlock(&t->lock);
    if (failed)
      return NULL;
  }
  if (!t->cache) {
    pthread_mutex_lock(&t->lock);
    t->cache = t->free_list;
    t->free_list = NULL;
    pthread_mutex_unlock(&t->lock);
  }
  struct request *rq = t->cache;
  if (rq) {
    t->cache = rq->next;
    atomic_fetch_sub(&t->pool_bytes, rq->cap);
  } else if (!(rq = calloc(1, sizeof *rq))) {
    return NULL;
  }
  atomic_fetch_add(&t->inflight, 1);
  atomic_fetch_add(&t->inflight_bytes, need);
  rq->t = t;
  rq->need = need;
  rq->niov = 0;
  rq->why[0] = '\0';
  return rq;
}

/* Give back a slot whose request gets no reply (a torn payload). */
static void drop_slot(struct transmit *t, struct request *rq)
{
  pthread_mutex_lock(&t->lock);
  recycle(t, rq);
  pthread_mutex_unlock(&t->lock);
}

/* A buffer of at least len bytes; its contents need not be kept. */
static int reserve(struct request *rq, size_t len)
{
  if (len <= rq->cap)
    return 0;
  void *p;
  if (posix_memalign(&p, BUFFER_ALIGN, len) != 0)
    return -ENOMEM;
  free(rq->buf);
  rq->buf = p;
  rq->cap = len;
  return 0;
}

/* ---- the sender ---- */

static void start(struct request *rq);

/* Send the replies of list, as few sendmsg() calls as SEND_IOV allows. */
static int send_replies(struct transmit *t, struct request *list, struct iovec *iov)
{
  while (list) {
    int n = 0;
    for (; list && n + list->niov <= SEND_IOV; list = list->next) {
      memcpy(iov + n, list->iov, (size_t)list->niov * sizeof *iov);
      n += list->niov;
    }
    int r = nbd_sendv(t->c->fd, iov, n);
    if (r < 0)
      return r;
  }
  return 0;
}

static void *sender_main(void *arg)
{
  struct transmit *t = arg;
  struct iovec *iov = malloc(SEND_IOV * sizeof *iov);
  pthread_mutex_lock(&t->lock);
  if (!iov)
    t->send_failed = true;
  for (;;) {
    while (!t->start_head && (!t->done_head || t->socket_busy) && !t->stop) {
      t->sender_waiting = true;
      pthread_cond_wait(&t->sender_cv, &t->lock);
      t->sender_waiting = false;
    }
    if (t->start_head) {
      struct request *list = t->start_head;
      t->start_head = NULL;
      t->start_tail = &t->start_head;
      pthread_mutex_unlock(&t->lock);
      while (list) {
        struct request *next = list->next;
        start(list); /* its reply comes back through the done list */
        list = next;
      }
      pthread_mutex_lock(&t->lock);
      continue;
    }
    if (!t->done_head)
      break; /* stop */
    struct request *list = t->done_head;
    t->done_head = NULL;
    t->done_tail = &t->done_head;
    bool failed = t->send_failed;
    t->socket_busy = true;
    pthread_mutex_unlock(&t->lock);
    /* A client that cannot take its replies is gone; drop the rest. */
    if (!failed && send_replies(t, list, iov) < 0) {
      failed = true;
      shutdown(t->c->fd, SHUT_RDWR); /* wakes the reader */
    }
    pthread_mutex_lock(&t->lock);
    t->socket_busy = false;
    while (list) {
      struct request *next = list->next;
      recycle(t, list);
      list = next;
    }
    if (failed)
      t->send_failed = true;
    if (t->reader_waiting)
      pthread_cond_signal(&t->reader_cv);
  }
  pthread_mutex_unlock(&t->lock);
  free(iov);
  return NULL;
}

/* ---- receiving ---- */

static void parse(const unsigned char *h, struct request *rq)
{
  rq->flags = nbd_get16(h + 4);
  rq->type = nbd_get16(h + 6);
  memcpy(rq->cookie, h + 8, 8);
  rq->off = nbd_get64(h + 16);
  rq->len = nbd_get32(h + 24);
}

/* Buffer bytes a request uses (oversized ones are refused later). */
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

/* Is a whole request (with its payload) already in the receive buffer? */
static bool request_buffered(const struct nbd_conn *c)
{
  size_t avail = c->rlen - c->rpos;
  if (avail < NBD_REQUEST_SIZE)
    return false;
  const unsigned char *h = c->rbuf + c->rpos;
  return nbd_get16(h + 6) != NBD_CMD_WRITE || avail - NBD_REQUEST_SIZE >= nbd_get32(h + 24);
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

/*
 * A block-status chunk per selected context; the last one ends the reply.
 * Metadata, answered synchronously on the reader.
 */
static void serve_block_status(struct request *rq)
{
  struct nbd_conn *c = rq->t->c;
  const struct {
    bool on;
    bool bad;
    uint32_t id;
  } ctx[2] = {{c->meta_allocation, false, NBD_META_ID_ALLOCATION},
              {c->meta_bad, true, NBD_META_ID_BAD}};
  unsigned char *out[2] = {rq->buf, rq->buf + 8u * EXTENTS_MAX};
  unsigned n[2] = {0, 0};
  for (unsigned k = 0; k < 2; k++) {
    if (ctx[k].on && collect_extents(c, rq, ctx[k].bad, out[k], &n[k]) < 0) {
      reply_error(rq, nbd_error(udm_errno()), udm_errmsg());
      return;
    }
  }
  unsigned last = ctx[1].on ? 1 : 0;
  for (unsigned k = 0; k < 2; k++) {
    if (!ctx[k].on)
      continue;
    unsigned char *h = rq->hdr + k * (NBD_STRUCTURED_SIZE + 4);
    put_chunk(h, rq, k == last ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS,
              4 + 8 * n[k]);
    nbd_put32(h + NBD_STRUCTURED_SIZE, ctx[k].id);
    add_iov(rq, h, NBD_STRUCTURED_SIZE + 4);
    add_iov(rq, out[k], 8u * n[k]);
  }
}

static const char *op_name(uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ:
    return "read";
  case NBD_CMD_WRITE:
    return "write";
  case NBD_CMD_FLUSH:
    return "flush";
  case NBD_CMD_TRIM:
    return "discard";
  default:
    return "write-zeroes";
  }
}

/*
 * The completion of a device request: on any thread, maybe before the
 * submitting call returned.  udm_errmsg() belongs to whichever thread
 * failed, so the message is made here from err.
 */
static void request_done(void *opaque, int err)
{
  struct request *rq = opaque;
  if (rq->type == NBD_CMD_TRIM && (err == -EOPNOTSUPP || err == -ENOTSUP))
    err = 0; /* trim is advisory: ignoring it is a valid answer */
  if (err == 0) {
    if (rq->type == NBD_CMD_READ)
      reply_read(rq);
    else
      reply_ok(rq);
  } else {
    const char *dev = udm_device_name(rq->t->c->dev);
    if (rq->type == NBD_CMD_FLUSH)
      snprintf(rq->why, WHY_MAX, "flush %s: %s", dev, strerror(-err));
    else
      snprintf(rq->why, WHY_MAX, "%s %s: %lu bytes at offset %llu: %s", op_name(rq->type),
               dev, (unsigned long)rq->len, (unsigned long long)rq->off, strerror(-err));
    reply_error(rq, nbd_error(-err), rq->why);
  }
  complete(rq);
}

/* Serve one request: submit it, or answer it now. */
/* Submit a checked request to the device, or answer it now. */
static void start(struct request *rq)
{
  struct nbd_conn *c = rq->t->c;
  unsigned fua = (rq->flags & NBD_CMD_FLAG_FUA) ? UDM_IO_FUA : 0;
  int r = 0;
  switch (rq->type) {
  case NBD_CMD_READ:
    r = udm_device_aio_pread(c->dev, rq->buf, rq->len, rq->off, request_done, rq);
    break;
  case NBD_CMD_WRITE:
    r = udm_device_aio_pwrite(c->dev, rq->buf, rq->len, rq->off, fua, request_done, rq);
    break;
  case NBD_CMD_FLUSH:
    r = udm_device_aio_flush(c->dev, request_done, rq);
    break;
  case NBD_CMD_TRIM:
    r = udm_device_aio_discard(c->dev, rq->len, rq->off, fua, request_done, rq);
    break;
  case NBD_CMD_WRITE_ZEROES: {
    unsigned flags = fua;
    if (!(rq->flags & NBD_CMD_FLAG_NO_HOLE))
      flags |= UDM_IO_MAY_UNMAP;
    if (rq->flags & NBD_CMD_FLAG_FAST_ZERO)
      flags |= UDM_IO_NO_FALLBACK;
    r = udm_device_aio_write_zeroes(c->dev, rq->len, rq->off, flags, request_done, rq);
    break;
  }
  case NBD_CMD_CACHE: /* advisory; udm keeps no cache of its own to fill */
    reply_ok(rq);
    complete(rq);
    return;
  case NBD_CMD_BLOCK_STATUS:
    flush_pending(rq->t); /* it may wait (a suspended device) */
    serve_block_status(rq);
    complete(rq);
    return;
  }
  if (r < 0) { /* nothing started: done will not run; the message is ours */
    int e = udm_errno();
    if (rq->type == NBD_CMD_TRIM && (e == EOPNOTSUPP || e == ENOTSUP))
      reply_ok(rq);
    else
      reply_error(rq, nbd_error(e), udm_errmsg());
    complete(rq);
  }
}

/*
 * Serve one request on the reader: check it, then start it, or hand a
 * large write to the sender to start.  A write to a file that the device
 * does inline copies the data into the file during the submission; on the
 * reader that copy would wait for the copy of the payload from the socket
 * and hold up the next one, and the client's sending stalls meanwhile.  The
 * sender, idle while only short write replies go out, makes it beside the
 * reader's next receive (1 MiB writes at QD 4 on tmpfs: +18 %,
 * docs/benchmarks.md).
 */
static void serve(struct request *rq, int err, const char *why)
{
  struct transmit *t = rq->t;
  if (!err)
    err = check(t->c, rq, &why);
  if (err) {
    reply_error(rq, err, why);
    complete(rq);
    return;
  }
  if (rq->type != NBD_CMD_WRITE || rq->len < SENDER_STARTS_MIN) {
    /*
     * The only request of a client that has sent nothing more (queue depth
     * 1): the reader would only wait for the client, so it waits for the
     * disk instead, and the reply goes out from here (udm_io_inline).
     */
    bool alone = atomic_load(&t->inflight) == 1 && !request_buffered(t->c) &&
                 !nbd_readable(t->c->fd);
    if (alone)
      udm_io_inline(1);
    start(rq);
    if (alone)
      udm_io_inline(0);
    return;
  }
  flush_pending(t); /* replies completed earlier go first */
  rq->next = NULL;
  pthread_mutex_lock(&t->lock);
  *t->start_tail = rq;
  t->start_tail = &rq->next;
  if (t->sender_waiting)
    pthread_cond_signal(&t->sender_cv);
  pthread_mutex_unlock(&t->lock);
}

/*
 * Read one request (with its payload) and serve it.  0 to go on, 1 when the
 * connection ends after it, < 0 when it ends now.
 */
static int read_request(struct transmit *t)
{
  struct nbd_conn *c = t->c;
  if (!request_buffered(c))
    flush_pending(t); /* the reads below may wait for the client */
  unsigned char h[NBD_REQUEST_SIZE];
  int r = nbd_recv(c, h, sizeof h);
  if (r < 0)
    return r;
  if (nbd_get32(h) != NBD_REQUEST_MAGIC)
    return -EPROTO;
  struct request head;
  parse(h, &head);
  if (head.type == NBD_CMD_DISC)
    return -ECONNRESET;
  bool too_long = head.type == NBD_CMD_WRITE && head.len > NBD_PAYLOAD_MAX;
  size_t need = data_need(c, &head);
  struct request *rq = take_slot(t, need);
  if (!rq)
    return -ENOMEM;
  parse(h, rq);
  if (too_long) {
    /* Skipping up to 4 GiB would let a client keep us busy for nothing. */
    serve(rq, NBD_EINVAL, "write longer than the 32 MiB maximum");
    return 1;
  }
  if (need && reserve(rq, need) < 0) {
    if (rq->type == NBD_CMD_WRITE && (r = nbd_discard(c, rq->len)) < 0) {
      drop_slot(t, rq);
      return r;
    }
    serve(rq, NBD_ENOMEM, "out of memory for the request's data");
    return 0;
  }
  if (rq->type == NBD_CMD_WRITE && (r = nbd_recv(c, rq->buf, rq->len)) < 0) {
    drop_slot(t, rq); /* a torn payload is never written */
    return r;
  }
  serve(rq, 0, NULL);
  return 0;
}

/* Wait until every request has been answered (or dropped), then stop the sender. */
static void drain(struct transmit *t)
{
  flush_pending(t);
  pthread_mutex_lock(&t->lock);
  hand_over(t);
  while (atomic_load(&t->inflight) > 0) {
    t->reader_waiting = true;
    pthread_cond_wait(&t->reader_cv, &t->lock);
    t->reader_waiting = false;
  }
  t->stop = true;
  pthread_cond_signal(&t->sender_cv);
  pthread_mutex_unlock(&t->lock);
  pthread_join(t->sender, NULL);
}

static void free_requests(struct request *list)
{
  while (list) {
    struct request *next = list->next;
    free(list->buf);
    free(list);
    list = next;
  }
}

void nbd_transmit(struct nbd_conn *c)
{
  struct transmit *t = calloc(1, sizeof *t);
  if (!t)
    return;
  t->c = c;
  t->reader = pthread_self();
  t->done_tail = &t->done_head;
  t->start_tail = &t->start_head;
  t->pending_tail = &t->pending;
  atomic_init(&t->inflight, 0);
  atomic_init(&t->inflight_bytes, 0);
  atomic_init(&t->pool_bytes, 0);
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->sender_cv, NULL);
  pthread_cond_init(&t->reader_cv, NULL);
  if (pthread_create(&t->sender, NULL, sender_main, t) == 0) {
    while (read_request(t) == 0)
      ;
    drain(t);
  }
  free_requests(t->free_list);
  free_requests(t->cache);
  pthread_cond_destroy(&t->reader_cv);
  pthread_cond_destroy(&t->sender_cv);
  pthread_mutex_destroy(&t->lock);
  free(t);
  /* The client may not have flushed; make its writes durable before it goes. */
  if (!(c->tflags & NBD_FLAG_READ_ONLY))
    udm_device_flush(c->dev);
}
