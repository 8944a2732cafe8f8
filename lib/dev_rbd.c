/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Ceph RBD images as backing devices, written in tables as
 *
 *   rbd:POOL/IMAGE[@SNAP][?key=value&...]
 *
 * with the options
 *   conf=PATH        ceph.conf to read (default: Ceph's own search path)
 *   id=USER          the cephx user without "client." (default: admin)
 *   keyring=PATH     its keyring (default: what the configuration says)
 *   mon_host=LIST    monitors, instead of or over the configuration's
 *   cluster=NAME     the cluster name (default: ceph)
 *   namespace=NS     the RADOS namespace of the image
 *   connect-timeout=S  for reaching the monitors (1..600, default 10)
 *
 * A snapshot (@SNAP) is opened read-only and makes the device read-only.
 *
 * Requests go through librbd's asynchronous calls (rbd_aio_read, _write,
 * _flush, _discard, _write_zeroes).  Their completion callbacks run on
 * librbd's threads and only move the request to a list; the device's one
 * completion thread finishes it (udm_io_complete and whatever the targets
 * above do then), so nothing of udm ever runs on, or waits in, librbd's
 * threads.  A FUA write is the write and then a flush of the image (with
 * the RBD cache on, a write is acknowledged from the cache).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "engine.h"
#include "internal.h"
#include "reqq.h"

struct rbd_remote;

struct rbd_req {
  struct rbd_remote *rm;
  struct udm_io *io;
  int err;
  bool flush_after;        /* FUA: the write is done, the flush comes next */
  struct udm__sync *wait;  /* a blocking submit's, instead of completing io */
  struct udm__reqq_node qn;
};

struct rbd_remote {
  rados_t cluster;
  rados_ioctx_t ioctx;
  rbd_image_t image;
  pthread_t thread;
  bool thread_started;
  struct udm__reqq done;   /* librbd's callbacks to the completion thread */
};

/* ---- parsing ---- */

struct rbd_spec {
  char *pool, *image, *snap;
  const char *conf, *id, *keyring, *mon_host, *cluster, *nspace;
  unsigned connect_timeout_s;
  char *buf; /* owns the strings above */
};

static int parse_spec(const char *spec, struct rbd_spec *s, char **errmsg)
{
  memset(s, 0, sizeof *s);
  s->connect_timeout_s = 10;
  s->buf = strdup(spec);
  if (!s->buf)
    return -ENOMEM;
  char *opts = strchr(s->buf, '?');
  if (opts)
    *opts++ = '\0';
  char *slash = strchr(s->buf, '/');
  if (!slash || slash == s->buf || !slash[1] || slash[1] == '@') {
    *errmsg = udm__strf("bad RBD name 'rbd:%s': expected rbd:POOL/IMAGE[@SNAP][?options] "
                        "(%s)",
                        spec, !slash ? "no '/' between pool and image"
                              : slash == s->buf ? "the pool is missing"
                                                : "the image is missing");
    return -EINVAL;
  }
  *slash = '\0';
  s->pool = s->buf;
  s->image = slash + 1;
  if (strchr(s->image, '/')) {
    *errmsg = udm__strf("bad RBD name 'rbd:%s': one '/' between pool and image (a RADOS "
                        "namespace is given as ?namespace=NS)",
                        spec);
    return -EINVAL;
  }
  char *at = strchr(s->image, '@');
  if (at) {
    *at = '\0';
    s->snap = at + 1;
    if (!*s->snap) {
      *errmsg = udm__strf("bad RBD name 'rbd:%s': no snapshot name after '@'", spec);
      return -EINVAL;
    }
  }
  char *save = NULL;
  for (char *o = opts ? strtok_r(opts, "&", &save) : NULL; o; o = strtok_r(NULL, "&", &save)) {
    char *v = strchr(o, '=');
    if (!v || !v[1]) {
      *errmsg = udm__strf("RBD option '%s' in 'rbd:%s' has no value (key=value)", o, spec);
      return -EINVAL;
    }
    *v++ = '\0';
    if (strcmp(o, "conf") == 0)
      s->conf = v;
    else if (strcmp(o, "id") == 0)
      s->id = v;
    else if (strcmp(o, "keyring") == 0)
      s->keyring = v;
    else if (strcmp(o, "mon_host") == 0)
      s->mon_host = v;
    else if (strcmp(o, "cluster") == 0)
      s->cluster = v;
    else if (strcmp(o, "namespace") == 0)
      s->nspace = v;
    else if (strcmp(o, "connect-timeout") == 0) {
      char *end;
      unsigned long x = (*v >= '0' && *v <= '9') ? strtoul(v, &end, 10) : 0;
      if (!(*v >= '0' && *v <= '9') || *end || x < 1 || x > 600) {
        *errmsg = udm__strf("invalid connect-timeout=%s in 'rbd:%s' (seconds, 1 to 600)",
                            v, spec);
        return -EINVAL;
      }
      s->connect_timeout_s = (unsigned)x;
    } else {
      *errmsg = udm__strf("unknown RBD option '%s' in 'rbd:%s' (known: conf, id, keyring, "
                          "mon_host, cluster, namespace, connect-timeout)",
                          o, spec);
      return -EINVAL;
    }
  }
  return 0;
}

/* ---- requests ---- */

static void req_finish(struct rbd_req *rq)
{
  if (rq->wait) {
    udm__sync_done(rq->wait, rq->err);
    free(rq);
    return;
  }
  struct udm_io *io = rq->io;
  int err = rq->err;
  free(rq);
  udm_io_complete(io, err);
}

/* librbd's thread: hand the request to ours. */
static void rbd_done_cb(rbd_completion_t c, void *arg)
{
  struct rbd_req *rq = arg;
  ssize_t r = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  rq->err = r < 0 ? (int)r : 0;
  udm__reqq_push(&rq->rm->done, &rq->qn);
}

static int req_start(struct rbd_req *rq, bool flush)
{
  struct rbd_remote *rm = rq->rm;
  struct udm_io *io = rq->io;
  uint64_t off = io->sector * UDM_SECTOR_SIZE;
  size_t len = (size_t)(io->nr_sectors * UDM_SECTOR_SIZE);
  rbd_completion_t c;
  int r = rbd_aio_create_completion(rq, rbd_done_cb, &c);
  if (r < 0)
    return r;
  if (flush) {
    r = rbd_aio_flush(rm->image, c);
  } else {
    switch (io->op) {
    case UDM_OP_READ:
      r = (int)rbd_aio_read(rm->image, off, len, io->buf, c);
      break;
    case UDM_OP_WRITE:
      r = (int)rbd_aio_write(rm->image, off, len, io->buf, c);
      break;
    case UDM_OP_FLUSH:
      r = rbd_aio_flush(rm->image, c);
      break;
    case UDM_OP_DISCARD:
      r = rbd_aio_discard(rm->image, off, len, c);
      break;
    case UDM_OP_WRITE_ZEROES:
      /* Without MAY_UNMAP the zeros stay allocated, as NBD's NO_HOLE asks. */
      r = rbd_aio_write_zeroes(rm->image, off, len, c,
                               (io->flags & UDM_IO_MAY_UNMAP)
                                   ? 0
                                   : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION,
                               0);
      break;
    default:
      r = -EINVAL;
    }
  }
  if (r < 0)
    rbd_aio_release(c);
  return r < 0 ? r : 0;
}

static void *completion_loop(void *arg)
{
  struct rbd_remote *rm = arg;
  bool stop;
  for (;;) {
    struct udm__reqq_node *n = udm__reqq_take(&rm->done, true, &stop);
    if (!n)
      break; /* stop, and nothing left: the core drained the device first */
    while (n) {
      struct udm__reqq_node *next = n->next;
      struct rbd_req *rq = UDM__REQQ_ENTRY(n, struct rbd_req, qn);
      if (rq->err == 0 && rq->flush_after) {
        rq->flush_after = false;
        int r = req_start(rq, true);
        if (r < 0) {
          rq->err = r;
          req_finish(rq);
        }
      } else {
        req_finish(rq);
      }
      n = next;
    }
  }
  return NULL;
}

static int rbd_check_op(const struct udm_io *io)
{
  /* librbd has no "fail rather than write zeros slowly". */
  if (io->op == UDM_OP_WRITE_ZEROES && (io->flags & UDM_IO_NO_FALLBACK))
    return -EOPNOTSUPP;
  return 0;
}

/* A request for io, or NULL with *err: an op librbd cannot do, or no memory. */
static struct rbd_req *req_new(struct udm_dev *d, struct udm_io *io, int *err)
{
  *err = rbd_check_op(io);
  struct rbd_req *rq = *err < 0 ? NULL : calloc(1, sizeof *rq);
  if (!rq) {
    *err = *err < 0 ? *err : -ENOMEM;
    return NULL;
  }
  rq->rm = d->priv;
  rq->io = io;
  rq->flush_after = (io->flags & UDM_IO_FUA) && io->op != UDM_OP_READ &&
                    io->op != UDM_OP_FLUSH;
  return rq;
}

static void rbd_submit_async(struct udm_dev *d, struct udm_io *io)
{
  int r;
  struct rbd_req *rq = req_new(d, io, &r);
  if (!rq) {
    udm_io_complete(io, r);
    return;
  }
  r = req_start(rq, false);
  if (r < 0) {
    rq->err = r;
    req_finish(rq);
  }
}

static int rbd_submit(struct udm_dev *d, struct udm_io *io)
{
  int r;
  struct rbd_req *rq = req_new(d, io, &r);
  if (!rq)
    return r;
  struct udm__sync s;
  udm__sync_begin(&s);
  rq->wait = &s;
  r = req_start(rq, false);
  if (r < 0) {
    free(rq);
    udm__sync_done(&s, r); /* never started: its error is the answer */
  }
  return udm__sync_wait(&s);
}

static void remote_free(struct rbd_remote *rm)
{
  if (!rm)
    return;
  if (rm->thread_started) {
    udm__reqq_stop(&rm->done);
    pthread_join(rm->thread, NULL);
  }
  if (rm->image)
    rbd_close(rm->image);
  if (rm->ioctx)
    rados_ioctx_destroy(rm->ioctx);
  if (rm->cluster)
    rados_shutdown(rm->cluster);
  udm__reqq_destroy(&rm->done);
  free(rm);
}

static void rbd_dev_close(struct udm_dev *d)
{
  remote_free(d->priv);
  free(d->name);
  free(d);
}

static const struct udm_dev_ops rbd_ops = {
    .submit = rbd_submit,
    .submit_async = rbd_submit_async,
    .close = rbd_dev_close,
};

/* ---- opening ---- */

static int connect_cluster(struct rbd_remote *rm, const struct rbd_spec *s,
                           const char *spec, char **errmsg)
{
  char user[256];
  snprintf(user, sizeof user, "client.%s", s->id ? s->id : "admin");
  int r = rados_create2(&rm->cluster, s->cluster ? s->cluster : "ceph", user, 0);
  if (r < 0) {
    rm->cluster = NULL;
    *errmsg = udm__strf("rbd:%s: cannot make a RADOS handle for %s: %s", spec, user,
                        strerror(-r));
    return r;
  }
  r = rados_conf_read_file(rm->cluster, s->conf);
  if (r < 0 && (s->conf || !s->mon_host)) {
    *errmsg = udm__strf("rbd:%s: cannot read the Ceph configuration %s: %s", spec,
                        s->conf ? s->conf : "(Ceph's default search path)", strerror(-r));
    return r;
  }
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%u", s->connect_timeout_s);
  struct {
    const char *key, *value;
  } set[] = {{"keyring", s->keyring}, {"mon_host", s->mon_host},
             {"client_mount_timeout", timeout}};
  for (unsigned i = 0; i < UDM_ARRAY_SIZE(set); i++) {
    if (!set[i].value)
      continue;
    r = rados_conf_set(rm->cluster, set[i].key, set[i].value);
    if (r < 0) {
      *errmsg = udm__strf("rbd:%s: invalid %s '%s': %s", spec, set[i].key, set[i].value,
                          strerror(-r));
      return r;
    }
  }
  r = rados_connect(rm->cluster);
  if (r < 0) {
    *errmsg = udm__strf("rbd:%s: cannot connect to the Ceph cluster as %s: %s%s", spec,
                        user, strerror(-r),
                        r == -ETIMEDOUT ? " (no monitor answered within connect-timeout)"
                                        : "");
    return r;
  }
  return 0;
}

int udm__dev_open_rbd(const char *name, const char *spec, unsigned mode,
                      struct udm_dev **out, char **errmsg)
{
  struct rbd_spec s;
  struct rbd_remote *rm = calloc(1, sizeof *rm);
  struct udm_dev *d = calloc(1, sizeof *d);
  int r = -ENOMEM;
  if (!rm || !d || !(d->name = strdup(name))) {
    free(rm);
    free(d);
    return -ENOMEM;
  }
  udm__reqq_init(&rm->done, false); /* without a pipe it cannot fail */
  r = parse_spec(spec, &s, errmsg);
  if (r == 0)
    r = connect_cluster(rm, &s, spec, errmsg);
  if (r < 0)
    goto fail;
  r = rados_ioctx_create(rm->cluster, s.pool, &rm->ioctx);
  if (r < 0) {
    rm->ioctx = NULL;
    *errmsg = r == -ENOENT ? udm__strf("rbd:%s: no pool '%s' in the Ceph cluster", spec,
                                       s.pool)
                           : udm__strf("rbd:%s: cannot open pool '%s': %s", spec, s.pool,
                                       strerror(-r));
    goto fail;
  }
  if (s.nspace)
    rados_ioctx_set_namespace(rm->ioctx, s.nspace);
  if (s.snap)
    mode &= ~UDM_DEV_WRITE; /* a snapshot is read-only: so is the device */
  r = (mode & UDM_DEV_WRITE) ? rbd_open(rm->ioctx, s.image, &rm->image, NULL)
                             : rbd_open_read_only(rm->ioctx, s.image, &rm->image, s.snap);
  if (r < 0) {
    rm->image = NULL;
    if (r == -ENOENT && s.snap)
      *errmsg = udm__strf("rbd:%s: no image '%s' with a snapshot '%s' in pool '%s'%s%s",
                          spec, s.image, s.snap, s.pool, s.nspace ? " namespace " : "",
                          s.nspace ? s.nspace : "");
    else if (r == -ENOENT)
      *errmsg = udm__strf("rbd:%s: no image '%s' in pool '%s'%s%s", spec, s.image, s.pool,
                          s.nspace ? " namespace " : "", s.nspace ? s.nspace : "");
    else
      *errmsg = udm__strf("rbd:%s: cannot open image '%s': %s", spec, s.image,
                          strerror(-r));
    goto fail;
  }
  uint64_t bytes;
  r = rbd_get_size(rm->image, &bytes);
  if (r < 0) {
    *errmsg = udm__strf("rbd:%s: cannot get the image's size: %s", spec, strerror(-r));
    goto fail;
  }
  r = udm__engine_thread_create(&rm->thread, completion_loop, rm);
  if (r < 0) {
    *errmsg = udm__strf("rbd:%s: cannot start its completion thread: %s", spec,
                        strerror(-r));
    goto fail;
  }
  rm->thread_started = true;
  free(s.buf);
  d->ops = &rbd_ops;
  d->priv = rm;
  d->mode = mode;
  d->size = bytes / UDM_SECTOR_SIZE;
  d->logical_block_size = UDM_SECTOR_SIZE;
  *out = d;
  return 0;
fail:
  free(s.buf);
  remote_free(rm);
  free(d->name);
  free(d);
  return r;
}
