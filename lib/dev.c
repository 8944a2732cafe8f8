/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backing device names, as written in tables:
 *   /path/to/file, ./file, /dev/sdX   a regular file or block device ("vnode")
 *   raw:PATH[?direct=on|off]            the same, with options
 *   udm:NAME, /dev/mapper/NAME          another udm device (stacking)
 *   a path to a file of an export         the same (export.c)
 *   nbd:URI                             an NBD export (dev_nbd.c, with libnbd)
 *   rbd:POOL/IMAGE[@SNAP][?opts]        a Ceph RBD image (dev_rbd.c, with librbd)
 *   FORMAT:PATH[?key=value&...]         an image read by the driver FORMAT
 *                                       (registered, or FORMAT.so in the plugin
 *                                       directory; see dev_image.c)
 * The format is never guessed from the content: a plain path stays raw.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/driver.h>

#include "engine.h"
#include "internal.h"

/* Length of a leading "format:" word, or 0. */
static size_t format_prefix(const char *name)
{
  size_t i = 0;
  while ((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
         name[i] == '_' || name[i] == '-')
    i++;
  return (i > 0 && name[i] == ':') ? i : 0;
}

static int parse_raw_options(const char *opts, bool *direct, char **errmsg)
{
  char *copy = strdup(opts), *save = NULL;
  if (!copy)
    return -ENOMEM;
  for (char *o = strtok_r(copy, ",&", &save); o; o = strtok_r(NULL, ",&", &save)) {
    if (strcmp(o, "direct=on") == 0 || strcmp(o, "direct") == 0)
      *direct = true;
    else if (strcmp(o, "direct=off") == 0)
      *direct = false;
    else {
      *errmsg = udm__strf("unknown raw option '%s' (known: direct=on|off)", o);
      free(copy);
      return -EINVAL;
    }
  }
  free(copy);
  return 0;
}

/*
 * A file or raw: PATH: the udm device itself when PATH leads to its file in
 * an export directory (export.c), which is never opened.
 */
static int open_path(struct udm_ctx *ctx, struct udm_device *owner, const char *name,
                     const char *path, unsigned mode, bool direct, struct udm_dev **out,
                     char **errmsg)
{
  char *devname = NULL, *why = NULL;
  int r = udm__export_resolve(ctx, path, &devname, errmsg);
  if (r < 0)
    return r;
  if (r == 0) {
    struct udm_engine *engine; /* files do their I/O through the context's engine */
    r = udm__engine_open(ctx, &engine, errmsg);
    return r < 0 ? r : udm__dev_open_file(name, path, mode, direct, engine, out, errmsg);
  }
  r = udm__dev_open_udm(ctx, owner, name, devname, mode, out, &why);
  if (r < 0) {
    *errmsg = udm__strf("%s leads to udm's own export (device '%s'): %s", path, devname,
                        why ? why : strerror(-r));
    free(why);
  }
  free(devname);
  return r;
}

/* An image's PATH may not lead into an export: drivers read files, not devices. */
static int check_image_path(struct udm_ctx *ctx, const char *name, const char *spec,
                            char **errmsg)
{
  const char *q = strchr(spec, '?');
  char *path = q ? strndup(spec, (size_t)(q - spec)) : strdup(spec);
  char *devname = NULL;
  if (!path)
    return -ENOMEM;
  int r = udm__export_resolve(ctx, path, &devname, errmsg);
  if (r > 0) {
    *errmsg = udm__strf("%s: %s is the file of udm device '%s' in udm's export; an "
                        "image driver cannot read a udm device (copy the image to a "
                        "file, or use udm:%s where a raw device will do)",
                        name, path, devname, devname);
    free(devname);
    r = -EINVAL;
  }
  free(path);
  return r;
}

static int open_by_kind(struct udm_ctx *ctx, struct udm_device *owner, const char *name,
                        unsigned mode, bool readonly_device, struct udm_dev **out,
                        char **errmsg)
{
  if (readonly_device)
    mode &= ~UDM_DEV_WRITE;
  if (strncmp(name, "udm:", 4) == 0)
    return udm__dev_open_udm(ctx, owner, name, name + 4, mode, out, errmsg);
  if (strncmp(name, "/dev/mapper/", 12) == 0)
    return udm__dev_open_udm(ctx, owner, name, name + 12, mode, out, errmsg);

  if (strncmp(name, "nbd:", 4) == 0) {
#ifdef HAVE_LIBNBD
    return udm__dev_open_nbd(name, name + 4, mode, out, errmsg);
#else
    *errmsg = udm__strf("'%s': this udm was built without libnbd, so nbd: backing "
                        "devices are not available",
                        name);
    return -EOPNOTSUPP;
#endif
  }
  if (strncmp(name, "rbd:", 4) == 0) {
#ifdef HAVE_LIBRBD
    return udm__dev_open_rbd(name, name + 4, mode, out, errmsg);
#else
    *errmsg = udm__strf("'%s': this udm was built without librbd, so rbd: backing "
                        "devices are not available",
                        name);
    return -EOPNOTSUPP;
#endif
  }

  /* Files and images do their I/O through the context's engine. */
  struct udm_engine *engine;
  size_t fl = format_prefix(name);
  int r;
  if (fl == 0)
    return open_path(ctx, owner, name, name, mode, false, out, errmsg);
  if (fl == 3 && strncmp(name, "raw", 3) == 0) {
    const char *path = name + 4;
    const char *q = strchr(path, '?');
    bool direct = false;
    char *p = q ? strndup(path, (size_t)(q - path)) : strdup(path);
    if (!p)
      return -ENOMEM;
    r = q ? parse_raw_options(q + 1, &direct, errmsg) : 0;
    if (r == 0)
      r = open_path(ctx, owner, name, p, mode, direct, out, errmsg);
    free(p);
    return r;
  }
  char fmt[64];
  snprintf(fmt, sizeof fmt, "%.*s", (int)(fl < 63 ? fl : 63), name);
  if (fmt[0] >= '0' && fmt[0] <= '9') {
    *errmsg = udm__strf("'%s' looks like a major:minor device number; udm names devices "
                        "by path (or udm:NAME)",
                        name);
    return -EINVAL;
  }
  /* Registered drivers stay until the context is freed: use one unlocked. */
  pthread_mutex_lock(&ctx->lock);
  const struct udm_image_driver *drv = udm__ctx_find_driver(ctx, fmt);
  char *known = drv ? NULL : udm__ctx_driver_names(ctx);
  pthread_mutex_unlock(&ctx->lock);
  if (drv) {
    r = check_image_path(ctx, name, name + fl + 1, errmsg);
    if (r == 0)
      r = udm__engine_open(ctx, &engine, errmsg);
    return r < 0 ? r
                 : udm__dev_open_image(ctx, drv, name, name + fl + 1, mode, engine, out,
                                       errmsg);
  }
  size_t n = strlen(fmt) + strlen(name) + (known ? strlen(known) : 0) + 160;
  *errmsg = malloc(n);
  if (*errmsg)
    snprintf(*errmsg, n,
             "unknown image format '%s' in '%s' (known: %s; write ./ before a file "
             "name that contains ':')",
             fmt, name, known ? known : "raw");
  free(known);
  return -EINVAL;
}

int udm__dev_open(struct udm_ctx *ctx, struct udm_device *owner, const char *name,
                  unsigned mode, bool readonly_device, struct udm_dev **out,
                  char **errmsg)
{
  int r = open_by_kind(ctx, owner, name, mode, readonly_device, out, errmsg);
  if (r == 0)
    (*out)->ctx = ctx;
  return r;
}

int udm_image_size(struct udm_ctx *ctx, const char *device, uint64_t *bytes)
{
  struct udm_dev *d;
  char *msg = NULL;
  int r = udm__dev_open(ctx, NULL, device, UDM_DEV_READ, true, &d, &msg);
  if (r == 0) {
    *bytes = d->size * UDM_SECTOR_SIZE;
    d->ops->close(d);
  }
  if (r < 0) {
    udm__fail(-r, "%s: %s", device, msg ? msg : strerror(-r));
    free(msg);
    return -1;
  }
  return 0;
}
