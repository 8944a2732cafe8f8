/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stacking: a table naming another udm device (udm:NAME, /dev/mapper/NAME)
 * submits straight into that device's I/O path, with no copy.  The used
 * device counts the table as a holder, so it cannot be removed, and cycles
 * are refused when the table is built.
 * Tables are built and destroyed without ctx->lock; opening and closing take
 * it, as it guards the namespace and holders.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int udm_dev_submit_io(struct udm_dev *d, struct udm_io *io)
{
  return udm__device_submit(d->priv, io);
}

/* A stacked request is a request of the device below: no thread, no copy. */
static void udm_dev_submit_async_io(struct udm_dev *d, struct udm_io *io)
{
  udm__device_submit_async(d->priv, io);
}

static int udm_dev_extents_io(struct udm_dev *d, udm_sector_t sector, uint64_t nr,
                              udm_extent_fn fn, void *opaque)
{
  return udm__device_extents(d->priv, sector, nr, fn, opaque);
}

static void udm_dev_close(struct udm_dev *d)
{
  struct udm_device *used = d->priv;
  pthread_mutex_lock(&used->ctx->lock);
  used->holders--;
  pthread_mutex_unlock(&used->ctx->lock);
  udm_device_unref(used);
  free(d->name);
  free(d);
}

static const struct udm_dev_ops udm_ops = {
    .submit = udm_dev_submit_io,
    .submit_async = udm_dev_submit_async_io,
    .extents = udm_dev_extents_io,
    .close = udm_dev_close,
};

struct udm_device *udm__dev_udm_device(struct udm_dev *d)
{
  return d->ops == &udm_ops ? d->priv : NULL;
}

static char *errf(const char *fmt, const char *a)
{
  size_t n = strlen(fmt) + strlen(a) + 1;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, fmt, a);
  return s;
}

static int open_udm_locked(struct udm_ctx *ctx, struct udm_device *owner,
                           const char *name, const char *devname, unsigned mode,
                           struct udm_dev **out, char **errmsg);

int udm__dev_open_udm(struct udm_ctx *ctx, struct udm_device *owner, const char *name,
                      const char *devname, unsigned mode, struct udm_dev **out,
                      char **errmsg)
{
  pthread_mutex_lock(&ctx->lock);
  int r = open_udm_locked(ctx, owner, name, devname, mode, out, errmsg);
  pthread_mutex_unlock(&ctx->lock);
  return r;
}

static int open_udm_locked(struct udm_ctx *ctx, struct udm_device *owner,
                           const char *name, const char *devname, unsigned mode,
                           struct udm_dev **out, char **errmsg)
{
  struct udm_device *used = udm__ctx_find_device(ctx, devname);
  if (!used) {
    *errmsg = errf("no udm device named '%s'", devname);
    return -ENOENT; /* what the kernel answers for a missing device */
  }
  if (used == owner || (owner && udm__device_depends_on(used, owner))) {
    *errmsg = errf("using udm device '%s' here would make a cycle of devices", devname);
    return -ELOOP;
  }
  udm_table *live = atomic_load(&used->live);
  if (!live) {
    *errmsg = errf("udm device '%s' has no live table (resume it first)", devname);
    return -ENXIO;
  }
  if ((mode & UDM_DEV_WRITE) && (used->flags & UDM_DEVICE_READONLY)) {
    *errmsg = errf("udm device '%s' is read-only and cannot be used for writing",
                   devname);
    return -EROFS;
  }
  struct udm_dev *d = calloc(1, sizeof *d);
  if (!d || !(d->name = strdup(name))) {
    free(d);
    return -ENOMEM;
  }
  d->ops = &udm_ops;
  d->mode = mode;
  d->size = live->size;
  /* Recorded: a later table of `used` may not raise it under us (device.c). */
  d->logical_block_size = live->limits.logical_block_size;
  d->priv = used;
  udm_device_ref(used);
  used->holders++;
  *out = d;
  return 0;
}
