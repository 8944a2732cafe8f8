/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Remote NBD exports as backing devices, written in tables as nbd:URI with
 * any NBD URI libnbd takes (nbd://, nbds:// with TLS, nbd+unix://,
 * nbds+unix://), plus udm's own query parameters, taken out before libnbd
 * sees the URI:
 *
 *   connections=N   1..16 connections (default: 4 when the server allows
 *                   multi-conn, else 1; more than 1 on a server that does
 *                   not allow it is refused)
 *   retries=N       reconnect attempts after a connection is lost (0..1000,
 *                   default 5)
 *   retry-delay=MS  between attempts (1..60000, default 1000)
 *   connect-timeout=S  for each connection attempt (1..600, default 10)
 *   timeout=S       a request unanswered this long means the connection is
 *                   lost (1..3600; default: none, wait as long as it takes)
 *
 * Everything runs through libnbd's asynchronous API on one thread per
 * device (the "poll loop"): submitters queue a request and wake it through
 * a pipe; it issues nbd_aio_* calls, polls the connections and completes
 * requests from the completion callbacks.  A request in flight costs memory,
 * never a thread.
 *
 * Mapping: read/write are NBD_CMD_READ/WRITE, split at the server's maximum
 * block size; FUA is NBD's FUA flag (or a write and then a flush when the
 * server has no FUA but can flush); flush is NBD_CMD_FLUSH (nothing to do
 * on a server that cannot flush); discard is TRIM, write-zeroes is
 * WRITE_ZEROES (NO_HOLE unless MAY_UNMAP; FAST_ZERO for UDM_IO_NO_FALLBACK),
 * or writes of zeros on a server without it.  The server's minimum block
 * size is the device's logical block size.  Extents come from the server's
 * base:allocation (NBD_CMD_BLOCK_STATUS).
 *
 * A lost connection is reconnected: its requests wait (they are sent again
 * once a connection is back, on any connection) for at most
 * retries * retry-delay plus the attempts themselves; then they fail with
 * EIO, as on a failing disk.  Later requests try once more to connect, and
 * fail with EIO at once when that fails too.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "engine.h"
#include "internal.h"
#include "reqq.h"

#define NBD_CONNS_MAX 16
#define NBD_CONNS_MULTI_DEFAULT 4
/* Requests sent on one connection before the rest wait in our queue. */
#define NBD_CONN_DEPTH 128
/* Without a maximum block size from the server, NBD says 32 MiB. */
#define NBD_DEFAULT_MAX_REQUEST (32u << 20)
/* A connection that gave up while others work is tried again this much later. */
#define NBD_REVIVE_NS (30ull * 1000000000u)
/* Trim and write-zeroes: a multiple of any block size, far below 4 GiB. */
#define NBD_MAX_EFFECT_REQUEST (1u << 30)

enum conn_state {
  CONN_DOWN,       /* no handle; a retry is due at retry_at */
  CONN_CONNECTING, /* nbd_aio_connect_uri in progress */
  CONN_READY,
  CONN_FAILED,     /* attempts used up */
};

struct nbd_part;

struct nbd_conn {
  struct nbd_handle *h;
  enum conn_state state;
  unsigned attempts_left;
  uint64_t retry_at;        /* udm_now_ns() */
  uint64_t connect_deadline;
  unsigned in_flight;
  struct nbd_part *sent;    /* issued on h, not completed */
  struct nbd_part *done;    /* completed by a callback, not yet handled */
};

/* One udm_io; READ/WRITE larger than the server's maximum go as several parts. */
struct nbd_cmd {
  struct udm_io *io;        /* NULL for a block-status query (extents) */
  uint64_t st_off, st_len;  /* the query's range */
  uint32_t *st_entries;     /* its answer: (length, flags) pairs for st_off on */
  size_t st_n;
  unsigned parts_left;
  int err;
  bool flush_after;         /* FUA emulated: a flush once every part is written */
  struct udm__sync *wait;   /* a blocking submit's, instead of completing io */
};

struct nbd_part {
  struct nbd_cmd *cmd;
  struct nbd_remote *rm;
  struct nbd_conn *conn;    /* where it is sent; NULL while queued */
  enum udm_op op;
  bool status;              /* NBD_CMD_BLOCK_STATUS (base:allocation) instead of op */
  uint32_t flags;           /* LIBNBD_CMD_FLAG_* */
  void *buf;
  uint64_t off, len;
  uint64_t sent_at;         /* udm_now_ns() when it went on its connection */
  int err;
  struct nbd_part *next;
  struct udm__reqq_node qn; /* on its way to the poll thread */
};

struct nbd_remote {
  char *uri;                /* for libnbd: udm's parameters taken out */
  unsigned nconns;
  unsigned retries;
  unsigned retry_delay_ms;
  unsigned connect_timeout_s;
  uint64_t timeout_ns;      /* 0: requests may take as long as they take */
  uint64_t size;            /* bytes, as first seen: a server back with another size is refused */
  unsigned min_block, max_request;
  bool can_flush, can_fua, can_trim, can_zero, can_fast_zero;
  bool can_status;          /* base:allocation negotiated: holes are reported */
  struct nbd_conn conns[NBD_CONNS_MAX];
  unsigned next_conn;       /* round robin */
  pthread_t thread;
  bool thread_started;
  struct udm__reqq incoming; /* submitters to the poll loop; close stops it */
  /* Poll thread only. */
  struct nbd_part *queued, **queued_tail;
  bool fresh;               /* requests came since the queue last failed */
  char *zeros;              /* max_request bytes of zeros, made when needed */
};

/* ---- parsing ---- */

static const char *const libnbd_params[] = {"socket", "tls-certificates", "tls-psk-file",
                                            "tls-verify-peer", "tls-username"};

static int parse_uint(const char *key, const char *v, unsigned lo, unsigned hi,
                      unsigned *out, char **errmsg)
{
  char *end;
  unsigned long x = (*v >= '0' && *v <= '9') ? strtoul(v, &end, 10) : 0;
  if (!(*v >= '0' && *v <= '9') || *end || x < lo || x > hi) {
    *errmsg = udm__strf("invalid %s=%s in the NBD URI (a number from %u to %u)", key, v,
                        lo, hi);
    return -EINVAL;
  }
  *out = (unsigned)x;
  return 0;
}

/*
 * Check the scheme, take udm's parameters out of the query and refuse any
 * parameter neither udm nor libnbd knows (libnbd ignores unknown ones).
 */
static int parse_uri(struct nbd_remote *rm, const char *uri, bool *conns_given,
                     char **errmsg)
{
  static const char *const schemes[] = {"nbd://", "nbds://", "nbd+unix://",
                                        "nbds+unix://", "nbd+vsock://", "nbds+vsock://"};
  bool ok = false;
  for (unsigned i = 0; i < UDM_ARRAY_SIZE(schemes); i++)
    ok = ok || strncmp(uri, schemes[i], strlen(schemes[i])) == 0;
  if (!ok) {
    *errmsg = udm__strf("bad NBD URI '%s': it must start with nbd://, nbds://, "
                        "nbd+unix:// or nbds+unix://",
                        uri);
    return -EINVAL;
  }
  const char *q = strchr(uri, '?');
  size_t base = q ? (size_t)(q - uri) : strlen(uri);
  struct udm_buf out;
  udm_buf_init(&out);
  udm_buf_printf(&out, "%.*s", (int)base, uri);
  char *copy = q ? strdup(q + 1) : NULL, *save = NULL;
  if (q && !copy) {
    udm_buf_free(&out);
    return -ENOMEM;
  }
  int r = 0;
  bool first = true;
  for (char *o = copy ? strtok_r(copy, "&", &save) : NULL; o && r == 0;
       o = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(o, '=');
    const char *v = eq ? eq + 1 : "";
    if (eq)
      *eq = '\0';
    if (strcmp(o, "connections") == 0) {
      r = parse_uint(o, v, 1, NBD_CONNS_MAX, &rm->nconns, errmsg);
      *conns_given = true;
    } else if (strcmp(o, "retries") == 0) {
      r = parse_uint(o, v, 0, 1000, &rm->retries, errmsg);
    } else if (strcmp(o, "retry-delay") == 0) {
      r = parse_uint(o, v, 1, 60000, &rm->retry_delay_ms, errmsg);
    } else if (strcmp(o, "connect-timeout") == 0) {
      r = parse_uint(o, v, 1, 600, &rm->connect_timeout_s, errmsg);
    } else if (strcmp(o, "timeout") == 0) {
      unsigned t = 0;
      r = parse_uint(o, v, 1, 3600, &t, errmsg);
      rm->timeout_ns = (uint64_t)t * 1000000000u;
    } else {
      bool known = false;
      for (unsigned i = 0; i < UDM_ARRAY_SIZE(libnbd_params); i++)
        known = known || strcmp(o, libnbd_params[i]) == 0;
      if (!known) {
        *errmsg = udm__strf("unknown parameter '%s' in the NBD URI '%s' (known: socket, "
                            "tls-certificates, tls-psk-file, tls-verify-peer, "
                            "tls-username; udm's: connections, retries, retry-delay, "
                            "connect-timeout, timeout)",
                            o, uri);
        r = -EINVAL;
        break;
      }
      udm_buf_printf(&out, "%c%s%s%s", first ? '?' : '&', o, eq ? "=" : "", v);
      first = false;
    }
  }
  free(copy);
  if (r < 0 || out.failed) {
    udm_buf_free(&out);
    return r < 0 ? r : -ENOMEM;
  }
  rm->uri = udm_buf_steal(&out);
  return rm->uri ? 0 : -ENOMEM;
}

/* ---- connections (poll thread, or the opener before the thread starts) ---- */

static void conn_close(struct nbd_conn *c)
{
  if (c->h)
    nbd_close(c->h);
  c->h = NULL;
}

/* Start connecting c; false (with libnbd's error) when it failed at once. */
static bool conn_start(struct nbd_remote *rm, struct nbd_conn *c)
{
  conn_close(c);
  c->h = nbd_create();
  if (!c->h)
    return false;
  /* The table's author chose the certificate and PSK files of the URI. */
  if (nbd_set_uri_allow_local_file(c->h, true) < 0 ||
      nbd_add_meta_context(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
      nbd_aio_connect_uri(c->h, rm->uri) < 0) {
    conn_close(c);
    return false;
  }
  c->state = CONN_CONNECTING;
  c->connect_deadline = udm_now_ns() + (uint64_t)rm->connect_timeout_s * 1000000000u;
  return true;
}

/* What a READY handle says; -errno and *why when it differs from the first. */
static int conn_check(struct nbd_remote *rm, struct nbd_conn *c, bool first, char **why)
{
  int64_t size = nbd_get_size(c->h);
  if (size < 0) {
    *why = udm__strf("%s", nbd_get_error());
    return -EIO;
  }
  if (first) {
    rm->size = (uint64_t)size;
    int64_t minb = nbd_get_block_size(c->h, LIBNBD_SIZE_MINIMUM);
    int64_t maxb = nbd_get_block_size(c->h, LIBNBD_SIZE_MAXIMUM);
    rm->min_block = minb > UDM_SECTOR_SIZE ? (unsigned)minb : UDM_SECTOR_SIZE;
    rm->max_request = maxb > 0 && maxb < NBD_DEFAULT_MAX_REQUEST ? (unsigned)maxb
                                                                 : NBD_DEFAULT_MAX_REQUEST;
    rm->max_request -= rm->max_request % rm->min_block;
    rm->can_flush = nbd_can_flush(c->h) > 0;
    rm->can_fua = nbd_can_fua(c->h) > 0;
    rm->can_trim = nbd_can_trim(c->h) > 0;
    rm->can_zero = nbd_can_zero(c->h) > 0;
    rm->can_fast_zero = nbd_can_fast_zero(c->h) > 0;
    rm->can_status = nbd_can_meta_context(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
    return 0;
  }
  if ((uint64_t)size != rm->size) {
    *why = udm__strf("the export is now %lld bytes, not %llu", (long long)size,
                     (unsigned long long)rm->size);
    return -EIO;
  }
  return 0;
}

static short conn_events(struct nbd_conn *c)
{
  unsigned dir = nbd_aio_get_direction(c->h);
  short ev = 0;
  if (dir & LIBNBD_AIO_DIRECTION_READ)
    ev |= POLLIN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    ev |= POLLOUT;
  return ev;
}

/* Drive c's handshake on this thread until ready, dead or its deadline. */
static int conn_connect_blocking(struct nbd_remote *rm, struct nbd_conn *c, char **why)
{
  if (!conn_start(rm, c)) {
    *why = udm__strf("%s", nbd_get_error());
    return -ECONNREFUSED;
  }
  while (nbd_aio_is_connecting(c->h)) {
    uint64_t now = udm_now_ns();
    if (now >= c->connect_deadline) {
      *why = udm__strf("no answer within %u s (connect-timeout)", rm->connect_timeout_s);
      conn_close(c);
      return -ETIMEDOUT;
    }
    struct pollfd p = {.fd = nbd_aio_get_fd(c->h), .events = conn_events(c)};
    int ms = (int)((c->connect_deadline - now) / 1000000u) + 1;
    int n = poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) {
      *why = udm__strf("poll: %s", strerror(errno));
      conn_close(c);
      return -EIO;
    }
    if (n > 0) {
      if (p.revents & (POLLIN | POLLHUP | POLLERR))
        nbd_aio_notify_read(c->h);
      else if (p.revents & POLLOUT)
        nbd_aio_notify_write(c->h);
    }
  }
  if (!nbd_aio_is_ready(c->h)) {
    const char *e = nbd_get_error();
    *why = udm__strf("%s", e && *e ? e : "the server closed the connection");
    conn_close(c);
    return -ECONNREFUSED;
  }
  c->state = CONN_READY;
  return 0;
}

/* ---- requests (poll thread) ---- */

static void queue_part(struct nbd_remote *rm, struct nbd_part *p)
{
  p->conn = NULL;
  p->next = NULL;
  *rm->queued_tail = p;
  rm->queued_tail = &p->next;
}

static void cmd_finish(struct nbd_cmd *cmd)
{
  if (cmd->wait) {
    udm__sync_done(cmd->wait, cmd->err);
    return; /* the waiter frees cmd */
  }
  struct udm_io *io = cmd->io;
  int err = cmd->err;
  free(cmd);
  udm_io_complete(io, err);
}

static void part_finish(struct nbd_part *p, int err)
{
  struct nbd_cmd *cmd = p->cmd;
  struct nbd_remote *rm = p->rm;
  if (err && !cmd->err)
    cmd->err = err;
  if (--cmd->parts_left > 0) {
    free(p);
    return;
  }
  if (cmd->flush_after && !cmd->err) {
    /* FUA without server FUA: the parts are written; now the flush. */
    cmd->flush_after = false;
    cmd->parts_left = 1;
    *p = (struct nbd_part){.cmd = cmd, .rm = rm, .op = UDM_OP_FLUSH};
    queue_part(rm, p);
    return;
  }
  free(p);
  cmd_finish(cmd);
}

/*
 * A command's completion.  It returns 0: libnbd keeps the command until
 * conn_retire takes it.  Returning 1 (retire at once) let libnbd 1.14 free
 * a command that a send found dead inside the nbd_aio_* call issuing it,
 * and that call then returned the freed command's cookie: any number, -1
 * too when the allocator had filled the memory (MALLOC_PERTURB_).  The part
 * then looked refused while its callback had already ended it; taken back
 * twice, it sat on two lists and completed its request twice or after its
 * memory was freed (tests/remote/test-nbd-lost.c).
 */
static int part_done_cb(void *opaque, int *error)
{
  struct nbd_part *p = opaque;
  struct nbd_conn *c = p->conn;
  if (!c)
    return 0; /* taken back from a closed connection: already queued again */
  for (struct nbd_part **pp = &c->sent; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  c->in_flight--;
  p->err = *error ? -*error : 0;
  p->next = c->done;
  c->done = p;
  return 0;
}

/* Let libnbd free the commands whose completion part_done_cb has seen. */
static void conn_retire(struct nbd_conn *c)
{
  int64_t cookie;
  while ((cookie = nbd_aio_peek_command_completed(c->h)) > 0)
    nbd_aio_command_completed(c->h, cookie);
}

static int part_extents_cb(void *opaque, const char *context, uint64_t offset,
                           uint32_t *entries, size_t n, int *error)
{
  struct nbd_part *p = opaque;
  struct nbd_cmd *cmd = p->cmd;
  (void)offset;
  (void)error;
  if (!p->conn || strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || cmd->st_entries)
    return 0;
  cmd->st_entries = malloc(n * sizeof *entries);
  if (cmd->st_entries) {
    memcpy(cmd->st_entries, entries, n * sizeof *entries);
    cmd->st_n = n;
  }
  return 0;
}

/* Send p on c; false when libnbd refused it (c is then looked at for death). */
static bool part_send(struct nbd_conn *c, struct nbd_part *p)
{
  nbd_completion_callback cb = {.callback = part_done_cb, .user_data = p};
  struct nbd_handle *h = c->h;
  int64_t cookie = -1;
  p->conn = c;
  p->sent_at = udm_now_ns();
  p->next = c->sent;
  c->sent = p;
  c->in_flight++;
  if (p->status) {
    /* Sent again after a reconnection: an answer from before is dropped. */
    free(p->cmd->st_entries);
    p->cmd->st_entries = NULL;
    p->cmd->st_n = 0;
    nbd_extent_callback ecb = {.callback = part_extents_cb, .user_data = p};
    cookie = nbd_aio_block_status(h, p->len, p->off, ecb, cb, 0);
  } else switch (p->op) {
  case UDM_OP_READ:
    cookie = nbd_aio_pread(h, p->buf, p->len, p->off, cb, 0);
    break;
  case UDM_OP_WRITE:
    cookie = nbd_aio_pwrite(h, p->buf, p->len, p->off, cb, p->flags);
    break;
  case UDM_OP_FLUSH:
    cookie = nbd_aio_flush(h, cb, 0);
    break;
  case UDM_OP_DISCARD:
    cookie = nbd_aio_trim(h, p->len, p->off, cb, p->flags);
    break;
  case UDM_OP_WRITE_ZEROES:
    cookie = nbd_aio_zero(h, p->len, p->off, cb, p->flags);
    break;
  }
  if (cookie >= 0)
    return true;
  /* Not sent: the callback will not run. */
  int err = nbd_get_errno();
  for (struct nbd_part **pp = &c->sent; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  c->in_flight--;
  p->conn = NULL;
  p->err = err ? -err : -EIO;
  return false;
}

/* Split a request into parts on the queue, or complete it at once. */
static void cmd_start(struct nbd_remote *rm, struct nbd_part *first)
{
  struct nbd_cmd *cmd = first->cmd;
  struct udm_io *io = cmd->io;
  if (!io) {
    /* A block-status query: one request, as much as NBD's 32 bits take. */
    cmd->parts_left = 1;
    *first = (struct nbd_part){.cmd = cmd, .rm = rm, .status = true, .off = cmd->st_off,
                               .len = cmd->st_len < NBD_MAX_EFFECT_REQUEST
                                          ? cmd->st_len
                                          : NBD_MAX_EFFECT_REQUEST};
    queue_part(rm, first);
    return;
  }
  uint64_t off = io->sector * UDM_SECTOR_SIZE, len = io->nr_sectors * UDM_SECTOR_SIZE;
  uint32_t fua = (io->flags & UDM_IO_FUA) && rm->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  enum udm_op op = io->op;
  uint32_t flags = 0;
  void *buf = io->buf;
  switch (op) {
  case UDM_OP_FLUSH:
    if (!rm->can_flush) {
      free(first);
      cmd_finish(cmd);
      return;
    }
    len = 0;
    break;
  case UDM_OP_READ:
    break;
  case UDM_OP_WRITE:
    flags = fua;
    break;
  case UDM_OP_DISCARD:
    if (!rm->can_trim) {
      cmd->err = -EOPNOTSUPP;
      free(first);
      cmd_finish(cmd);
      return;
    }
    flags = fua;
    break;
  case UDM_OP_WRITE_ZEROES:
    if (rm->can_zero && (!(io->flags & UDM_IO_NO_FALLBACK) || rm->can_fast_zero)) {
      flags = fua | ((io->flags & UDM_IO_MAY_UNMAP) ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) |
              ((io->flags & UDM_IO_NO_FALLBACK) ? LIBNBD_CMD_FLAG_FAST_ZERO : 0);
      break;
    }
    if (io->flags & UDM_IO_NO_FALLBACK) {
      cmd->err = -EOPNOTSUPP;
      free(first);
      cmd_finish(cmd);
      return;
    }
    if (!rm->zeros && !(rm->zeros = calloc(1, rm->max_request))) {
      cmd->err = -ENOMEM;
      free(first);
      cmd_finish(cmd);
      return;
    }
    op = UDM_OP_WRITE; /* a server without WRITE_ZEROES: write zeros */
    flags = fua;
    break;
  }
  cmd->flush_after = (io->flags & UDM_IO_FUA) && !rm->can_fua && rm->can_flush &&
                     op != UDM_OP_FLUSH && op != UDM_OP_READ;
  /*
   * Reads and writes go in pieces of at most max_request; trim and zero in
   * pieces of 1 GiB, since NBD's length field has 32 bits.
   */
  uint64_t step = (op == UDM_OP_READ || op == UDM_OP_WRITE) ? rm->max_request
                                                            : NBD_MAX_EFFECT_REQUEST;
  unsigned n = len == 0 ? 1 : (unsigned)((len + step - 1) / step);
  cmd->parts_left = n;
  struct nbd_part *p = first;
  for (unsigned i = 0; i < n; i++) {
    if (!p && !(p = calloc(1, sizeof *p))) {
      /* Parts already queued finish; the rest fail here. */
      cmd->err = -ENOMEM;
      cmd->parts_left -= n - i;
      if (cmd->parts_left == 0)
        cmd_finish(cmd);
      return;
    }
    uint64_t l = len - (uint64_t)i * step < step ? len - (uint64_t)i * step : step;
    *p = (struct nbd_part){.cmd = cmd, .rm = rm, .op = op, .flags = flags,
                           .off = off + (uint64_t)i * step, .len = l};
    if (op == UDM_OP_READ || io->op == UDM_OP_WRITE)
      p->buf = (char *)buf + (size_t)i * step;
    else if (op == UDM_OP_WRITE)
      p->buf = rm->zeros;
    queue_part(rm, p);
    p = NULL;
  }
}

static struct nbd_conn *pick_conn(struct nbd_remote *rm)
{
  for (unsigned k = 0; k < rm->nconns; k++) {
    struct nbd_conn *c = &rm->conns[(rm->next_conn + k) % rm->nconns];
    if (c->state == CONN_READY && c->in_flight < NBD_CONN_DEPTH) {
      rm->next_conn = (rm->next_conn + k + 1) % rm->nconns;
      return c;
    }
  }
  return NULL;
}

static bool any_state(struct nbd_remote *rm, enum conn_state s)
{
  for (unsigned i = 0; i < rm->nconns; i++)
    if (rm->conns[i].state == s)
      return true;
  return false;
}

static void fail_queued(struct nbd_remote *rm, int err)
{
  struct nbd_part *p = rm->queued;
  rm->fresh = false;
  rm->queued = NULL;
  rm->queued_tail = &rm->queued;
  while (p) {
    struct nbd_part *next = p->next;
    part_finish(p, err);
    p = next;
  }
}

/*
 * A connection went away: its requests wait for another, and it reconnects.
 * They are those still sent on it and those its death completed with an
 * error: libnbd ends every command of a connection that dies inside the
 * nbd_aio_* call that finds it dead, which may be a send (send_queued), so
 * they can be on c->done before conn_reap looks.  Those the server had
 * answered finish (also when a live connection is given up: timeout).
 */
static void conn_lost(struct nbd_remote *rm, struct nbd_conn *c)
{
  bool dead = !c->h || nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h);
  struct nbd_part *p = c->done;
  c->done = NULL;
  while (p) {
    struct nbd_part *next = p->next;
    if (dead && p->err)
      queue_part(rm, p); /* failed by the connection's end, not by the server */
    else
      part_finish(p, p->err);
    p = next;
  }
  while (c->sent) {
    p = c->sent;
    c->sent = p->next;
    queue_part(rm, p);
  }
  c->in_flight = 0;
  conn_close(c); /* callbacks it may still run see p->conn == NULL */
  if (c->state == CONN_READY || c->state == CONN_CONNECTING) {
    if (c->state == CONN_READY)
      c->attempts_left = rm->retries;
    c->state = c->attempts_left > 0 ? CONN_DOWN : CONN_FAILED;
    /* The first attempt at once, the next ones retry_delay apart. */
    c->retry_at = udm_now_ns();
    if (c->attempts_left < rm->retries)
      c->retry_at += (uint64_t)rm->retry_delay_ms * 1000000u;
    /* Given up while others may live: tried again later (poll_loop). */
    if (c->state == CONN_FAILED)
      c->retry_at = udm_now_ns() + NBD_REVIVE_NS;
  }
}

/* Handle c's completions; a dead connection sends its requests back to the queue. */
static void conn_reap(struct nbd_remote *rm, struct nbd_conn *c)
{
  if (c->h && (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h))) {
    conn_lost(rm, c);
    return;
  }
  conn_retire(c);
  struct nbd_part *p = c->done;
  c->done = NULL;
  while (p) {
    struct nbd_part *next = p->next;
    part_finish(p, p->err);
    p = next;
  }
}

/* Start attempts that are due; a connection made READY revives failed ones. */
static void conn_retry(struct nbd_remote *rm, struct nbd_conn *c)
{
  if (c->attempts_left > 0)
    c->attempts_left--;
  if (!conn_start(rm, c)) {
    c->state = CONN_CONNECTING; /* counted as a failed attempt below */
    conn_lost(rm, c);
  }
}

static void conn_progress(struct nbd_remote *rm, struct nbd_conn *c)
{
  if (c->state != CONN_CONNECTING || !c->h)
    return;
  if (nbd_aio_is_connecting(c->h)) {
    if (udm_now_ns() >= c->connect_deadline)
      conn_lost(rm, c);
    return;
  }
  char *why = NULL;
  if (nbd_aio_is_ready(c->h) && conn_check(rm, c, false, &why) == 0) {
    c->state = CONN_READY;
    for (unsigned i = 0; i < rm->nconns; i++)
      if (rm->conns[i].state == CONN_FAILED) {
        rm->conns[i].state = CONN_DOWN;
        rm->conns[i].attempts_left = rm->retries;
        rm->conns[i].retry_at = udm_now_ns();
      }
    return;
  }
  free(why); /* a server back with another size: not the same disk */
  conn_lost(rm, c);
}

/* A connection with a request unanswered for timeout_ns is taken as lost. */
static void expire_requests(struct nbd_remote *rm, uint64_t now, uint64_t *wake_at)
{
  for (unsigned i = 0; i < rm->nconns; i++) {
    struct nbd_conn *c = &rm->conns[i];
    if (c->state != CONN_READY || !c->sent)
      continue;
    uint64_t oldest = UINT64_MAX;
    for (struct nbd_part *p = c->sent; p; p = p->next)
      if (p->sent_at < oldest)
        oldest = p->sent_at;
    if (now - oldest >= rm->timeout_ns)
      conn_lost(rm, c); /* its requests wait for the reconnection */
    else if (oldest + rm->timeout_ns < *wake_at)
      *wake_at = oldest + rm->timeout_ns;
  }
}

static void send_queued(struct nbd_remote *rm)
{
  while (rm->queued) {
    struct nbd_conn *c = pick_conn(rm);
    if (!c)
      return;
    struct nbd_part *p = rm->queued;
    rm->queued = p->next;
    if (!rm->queued)
      rm->queued_tail = &rm->queued;
    bool sent = part_send(c, p);
    /*
     * A send that finds the connection dead has ended everything sent on
     * it (p too, when it was taken): take them back now, before c is
     * picked again or the loop sleeps in poll() on its closed socket.
     */
    if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
      if (!sent)
        queue_part(rm, p);
      conn_lost(rm, c);
    } else if (!sent) {
      part_finish(p, p->err);
    }
  }
}

static void take_incoming(struct nbd_remote *rm, bool *stop)
{
  struct udm__reqq_node *n = udm__reqq_take(&rm->incoming, false, stop);
  if (n)
    rm->fresh = true;
  while (n) {
    struct udm__reqq_node *next = n->next;
    cmd_start(rm, UDM__REQQ_ENTRY(n, struct nbd_part, qn));
    n = next;
  }
}

static void *poll_loop(void *arg)
{
  struct nbd_remote *rm = arg;
  struct pollfd fds[NBD_CONNS_MAX + 1];
  struct nbd_conn *fdconn[NBD_CONNS_MAX + 1];
  bool stop = false;
  for (;;) {
    take_incoming(rm, &stop);
    if (stop && !rm->queued)
      break;
    /*
     * All connections gone for good: requests that came since the last
     * failure try once more (one attempt on one connection); when that
     * fails too, or nothing new came, what waits fails as on a dead disk.
     */
    if (rm->queued && !any_state(rm, CONN_READY) && !any_state(rm, CONN_CONNECTING) &&
        !any_state(rm, CONN_DOWN)) {
      struct nbd_conn *c = &rm->conns[0];
      if (rm->fresh) {
        rm->fresh = false;
        c->attempts_left = 1;
        conn_retry(rm, c);
      }
      if (c->state == CONN_FAILED)
        fail_queued(rm, -EIO);
    }
    send_queued(rm);
    uint64_t now = udm_now_ns(), wake_at = UINT64_MAX;
    if (rm->timeout_ns)
      expire_requests(rm, now, &wake_at);
    nfds_t n = 0;
    fds[n] = (struct pollfd){.fd = udm__reqq_fd(&rm->incoming), .events = POLLIN};
    fdconn[n++] = NULL;
    for (unsigned i = 0; i < rm->nconns; i++) {
      struct nbd_conn *c = &rm->conns[i];
      /* One connection of several gave up while the others work: try it again. */
      if (c->state == CONN_FAILED && any_state(rm, CONN_READY)) {
        if (c->retry_at <= now) {
          c->state = CONN_DOWN;
          c->attempts_left = 1;
        } else if (c->retry_at < wake_at) {
          wake_at = c->retry_at;
        }
      }
      if (c->state == CONN_DOWN) {
        if (c->retry_at <= now) {
          conn_retry(rm, c);
        }
        if (c->state == CONN_DOWN && c->retry_at < wake_at)
          wake_at = c->retry_at;
      }
      if (c->state == CONN_CONNECTING && c->connect_deadline < wake_at)
        wake_at = c->connect_deadline;
      if (c->h && (c->state == CONN_READY || c->state == CONN_CONNECTING)) {
        fds[n] = (struct pollfd){.fd = nbd_aio_get_fd(c->h), .events = conn_events(c)};
        fdconn[n++] = c;
      }
    }
    /*
     * Requests queued again by this pass (a send or the timeout found a
     * connection dead) with no connection left to take them: nothing
     * would wake poll(); go round to the check above now.
     */
    if (rm->queued && !any_state(rm, CONN_READY) && !any_state(rm, CONN_CONNECTING) &&
        !any_state(rm, CONN_DOWN))
      wake_at = now;
    int timeout = -1;
    if (wake_at != UINT64_MAX)
      timeout = wake_at <= now ? 0 : (int)((wake_at - now) / 1000000u) + 1;
    int k = poll(fds, n, timeout);
    if (k < 0)
      continue; /* EINTR */
    for (nfds_t i = 1; i < n; i++) {
      struct nbd_conn *c = fdconn[i];
      short re = fds[i].revents;
      if (!re || !c->h)
        continue;
      if (re & (POLLIN | POLLHUP | POLLERR))
        nbd_aio_notify_read(c->h);
      if ((re & POLLOUT) && c->h)
        nbd_aio_notify_write(c->h);
    }
    for (unsigned i = 0; i < rm->nconns; i++) {
      struct nbd_conn *c = &rm->conns[i];
      if (c->state == CONN_READY)
        conn_reap(rm, c);
      else
        conn_progress(rm, c);
    }
  }
  /* Closing: tell the servers goodbye; nothing is in flight any more. */
  for (unsigned i = 0; i < rm->nconns; i++) {
    struct nbd_conn *c = &rm->conns[i];
    if (c->h && c->state == CONN_READY && nbd_aio_disconnect(c->h, 0) == 0) {
      uint64_t deadline = udm_now_ns() + 1000000000u;
      while (!nbd_aio_is_closed(c->h) && !nbd_aio_is_dead(c->h) &&
             udm_now_ns() < deadline) {
        struct pollfd p = {.fd = nbd_aio_get_fd(c->h), .events = conn_events(c)};
        if (poll(&p, 1, 100) > 0) {
          if (p.revents & (POLLIN | POLLHUP | POLLERR))
            nbd_aio_notify_read(c->h);
          else if (p.revents & POLLOUT)
            nbd_aio_notify_write(c->h);
        }
      }
    }
    conn_close(c);
  }
  return NULL;
}

/* ---- device ops (any thread) ---- */

static void nbd_enqueue(struct udm_dev *d, struct nbd_cmd *cmd)
{
  struct nbd_remote *rm = d->priv;
  struct nbd_part *p = calloc(1, sizeof *p);
  if (!p) {
    cmd->err = -ENOMEM;
    cmd_finish(cmd);
    return;
  }
  p->cmd = cmd;
  p->rm = rm;
  udm__reqq_push(&rm->incoming, &p->qn);
}

static void nbd_submit_async(struct udm_dev *d, struct udm_io *io)
{
  struct nbd_cmd *cmd = calloc(1, sizeof *cmd);
  if (!cmd) {
    udm_io_complete(io, -ENOMEM);
    return;
  }
  cmd->io = io;
  nbd_enqueue(d, cmd);
}

/* Run cmd on the poll thread and wait for it; the caller frees cmd. */
static int nbd_run_and_wait(struct udm_dev *d, struct nbd_cmd *cmd)
{
  struct udm__sync s;
  udm__sync_begin(&s);
  cmd->wait = &s;
  nbd_enqueue(d, cmd);
  return udm__sync_wait(&s);
}

static int nbd_submit(struct udm_dev *d, struct udm_io *io)
{
  struct nbd_cmd *cmd = calloc(1, sizeof *cmd);
  if (!cmd)
    return -ENOMEM;
  cmd->io = io;
  int err = nbd_run_and_wait(d, cmd);
  free(cmd);
  return err;
}

/* Convert the byte extents of one answer to sectors, each sector once. */
struct status_walk {
  udm_extent_fn fn;
  void *opaque;
  udm_sector_t next, end;  /* first sector not reported yet; end of the range */
};

static int report_bytes(struct status_walk *w, uint64_t a, uint64_t b, unsigned flags)
{
  udm_sector_t first = a / UDM_SECTOR_SIZE;
  udm_sector_t last = (b + UDM_SECTOR_SIZE - 1) / UDM_SECTOR_SIZE;
  if (first < w->next)
    first = w->next; /* a sector shared by two extents keeps its first answer */
  if (last > w->end)
    last = w->end;
  if (last <= first)
    return 0;
  w->next = last;
  return w->fn(w->opaque, first, last - first, flags);
}

/*
 * Holes and zeros from the server's base:allocation, asked for piece by
 * piece until the range is covered (a server may answer a prefix).  A
 * server without it, or a failed query, reports the rest as data.
 */
static int nbd_extents(struct udm_dev *d, udm_sector_t sector, uint64_t nr,
                       udm_extent_fn fn, void *opaque)
{
  struct nbd_remote *rm = d->priv;
  struct status_walk w = {fn, opaque, sector, sector + nr};
  uint64_t pos = sector * UDM_SECTOR_SIZE, end = (sector + nr) * UDM_SECTOR_SIZE;
  int r = 0;
  while (rm->can_status && pos < end && r == 0) {
    struct nbd_cmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
      return -ENOMEM;
    cmd->st_off = pos;
    cmd->st_len = end - pos;
    int err = nbd_run_and_wait(d, cmd);
    uint64_t off = pos;
    for (size_t i = 0; err == 0 && i + 1 < cmd->st_n && off < end && r == 0; i += 2) {
      uint64_t b = off + cmd->st_entries[i];
      if (b > end)
        b = end;
      unsigned f = cmd->st_entries[i + 1];
      r = report_bytes(&w, off, b,
                       ((f & LIBNBD_STATE_HOLE) ? UDM_EXTENT_HOLE : 0) |
                           ((f & LIBNBD_STATE_ZERO) ? UDM_EXTENT_ZERO : 0));
      off = b;
    }
    free(cmd->st_entries);
    free(cmd);
    if (err || off <= pos)
      break;
    pos = off;
  }
  if (r == 0 && w.next < w.end)
    r = fn(opaque, w.next, w.end - w.next, 0);
  return r;
}

static void remote_free(struct nbd_remote *rm)
{
  if (!rm)
    return;
  if (rm->thread_started) {
    udm__reqq_stop(&rm->incoming);
    pthread_join(rm->thread, NULL);
  }
  for (unsigned i = 0; i < NBD_CONNS_MAX; i++)
    conn_close(&rm->conns[i]);
  udm__reqq_destroy(&rm->incoming);
  free(rm->zeros);
  free(rm->uri);
  free(rm);
}

static void nbd_dev_close(struct udm_dev *d)
{
  remote_free(d->priv);
  free(d->name);
  free(d);
}

static const struct udm_dev_ops nbd_ops = {
    .submit = nbd_submit,
    .submit_async = nbd_submit_async,
    .extents = nbd_extents,
    .close = nbd_dev_close,
};

int udm__dev_open_nbd(const char *name, const char *uri, unsigned mode,
                      struct udm_dev **out, char **errmsg)
{
  struct nbd_remote *rm = calloc(1, sizeof *rm);
  struct udm_dev *d = calloc(1, sizeof *d);
  char *why = NULL;
  int r = -ENOMEM;
  if (!rm || !d || !(d->name = strdup(name))) {
    free(rm);
    free(d);
    return -ENOMEM;
  }
  int pipe_err = udm__reqq_init(&rm->incoming, true); /* told below, where it was made */
  rm->queued_tail = &rm->queued;
  rm->retries = 5;
  rm->retry_delay_ms = 1000;
  rm->connect_timeout_s = 10;
  rm->nconns = 0;
  bool conns_given = false;
  r = parse_uri(rm, uri, &conns_given, errmsg);
  if (r < 0)
    goto fail;
  r = conn_connect_blocking(rm, &rm->conns[0], &why);
  if (r == 0)
    r = conn_check(rm, &rm->conns[0], true, &why);
  if (r < 0) {
    *errmsg = udm__strf("cannot connect to NBD server %s: %s", uri, why ? why : "");
    goto fail;
  }
  bool multi = nbd_can_multi_conn(rm->conns[0].h) > 0;
  if (!conns_given)
    rm->nconns = multi ? NBD_CONNS_MULTI_DEFAULT : 1;
  else if (rm->nconns > 1 && !multi) {
    *errmsg = udm__strf("%s: connections=%u, but the server does not allow multi-conn "
                        "(its connections would not see each other's writes); use "
                        "connections=1",
                        uri, rm->nconns);
    r = -EINVAL;
    goto fail;
  }
  if (rm->min_block > UDM_LOGICAL_BLOCK_SIZE_MAX || (rm->min_block & (rm->min_block - 1))) {
    *errmsg = udm__strf("%s: the server's minimum block size is %u bytes (a power of two "
                        "up to %u is needed)",
                        uri, rm->min_block, UDM_LOGICAL_BLOCK_SIZE_MAX);
    r = -EINVAL;
    goto fail;
  }
  if ((mode & UDM_DEV_WRITE) && nbd_is_read_only(rm->conns[0].h) > 0)
    mode &= ~UDM_DEV_WRITE; /* a read-only export: the device is read-only */
  for (unsigned i = 1; i < rm->nconns; i++) {
    free(why);
    why = NULL;
    r = conn_connect_blocking(rm, &rm->conns[i], &why);
    if (r == 0)
      r = conn_check(rm, &rm->conns[i], false, &why);
    if (r < 0) {
      *errmsg = udm__strf("cannot open connection %u of %u to NBD server %s: %s", i + 1,
                          rm->nconns, uri, why ? why : "");
      goto fail;
    }
  }
  if (pipe_err < 0) {
    r = pipe_err;
    *errmsg = udm__strf("%s: pipe: %s", uri, strerror(-r));
    goto fail;
  }
  r = udm__engine_thread_create(&rm->thread, poll_loop, rm);
  if (r < 0) {
    *errmsg = udm__strf("%s: cannot start its poll thread: %s", uri, strerror(-r));
    goto fail;
  }
  rm->thread_started = true;
  free(why);
  d->ops = &nbd_ops;
  d->priv = rm;
  d->mode = mode;
  d->size = rm->size / UDM_SECTOR_SIZE;
  d->logical_block_size = rm->min_block;
  *out = d;
  return 0;
fail:
  free(why);
  remote_free(rm);
  free(d->name);
  free(d);
  return r;
}
