/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Contexts: the device namespace and the registries of target types and
 * image drivers.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/driver.h>

#include "engine.h"
#include "internal.h"

#ifndef UDM_DRIVER_DIR
#define UDM_DRIVER_DIR "/usr/local/lib/udm/drivers"
#endif

int udm_target_register(struct udm_ctx *ctx, const struct udm_target_type *type)
{
  const size_t need = offsetof(struct udm_target_type, map) + sizeof type->map;
  if (!type || type->struct_size < need)
    return udm__fail(EINVAL, "udm_target_register: target type struct is too small "
                             "(not made with UDM_TARGET_TYPE_INIT?)");
  /* Version 1 targets load too: the size stamp says which fields they have. */
  if (type->api_version < 1 || type->api_version > UDM_TARGET_API_VERSION)
    return udm__fail(EINVAL,
                     "udm_target_register: target '%s' is built for API version %u, "
                     "this libudm speaks 1 to %u",
                     type->name ? type->name : "?", type->api_version,
                     UDM_TARGET_API_VERSION);
  if (!type->name || !*type->name || !type->ctr || (!type->map && type->api_version < 2))
    return udm__fail(EINVAL, "udm_target_register: a target needs a name, ctr and map");
  /* Copy into a full-size struct: fields the target was not built with are NULL. */
  struct udm_target_type *copy = calloc(1, sizeof *copy);
  if (!copy)
    return udm__fail(ENOMEM, "udm_target_register: out of memory");
  memcpy(copy, type,
         type->struct_size < sizeof *copy ? type->struct_size : sizeof *copy);
  pthread_mutex_lock(&ctx->lock);
  if (udm__ctx_find_type(ctx, type->name)) {
    pthread_mutex_unlock(&ctx->lock);
    free(copy);
    return udm__fail(EEXIST, "udm_target_register: target '%s' is already registered",
                     type->name);
  }
  struct udm_target_reg *n = realloc(ctx->types, (ctx->num_types + 1) * sizeof *n);
  if (!n) {
    pthread_mutex_unlock(&ctx->lock);
    free(copy);
    return udm__fail(ENOMEM, "udm_target_register: out of memory");
  }
  ctx->types = n;
  ctx->types[ctx->num_types++].type = copy;
  pthread_mutex_unlock(&ctx->lock);
  return 0;
}

const struct udm_target_type *udm__ctx_find_type(struct udm_ctx *ctx, const char *name)
{
  for (unsigned i = 0; i < ctx->num_types; i++)
    if (strcmp(ctx->types[i].type->name, name) == 0)
      return ctx->types[i].type;
  return NULL;
}

struct udm_device *udm__ctx_find_device(struct udm_ctx *ctx, const char *name)
{
  for (struct udm_device *d = ctx->devices; d; d = d->next)
    if (strcmp(d->name, name) == 0)
      return d;
  return NULL;
}

struct udm_ctx *udm_ctx_new(void)
{
  struct udm_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return udm__fail_null(ENOMEM, "udm_ctx_new: out of memory");
  pthread_mutex_init(&ctx->lock, NULL);
  pthread_mutex_init(&ctx->registry_lock, NULL);
  pthread_cond_init(&ctx->registry_cond, NULL);
  pthread_mutex_init(&ctx->engine_lock, NULL);
  atomic_init(&ctx->engine, NULL);
  if (udm__ctx_settings_init(ctx) < 0) {
    udm__ctx_settings_free(ctx);
    pthread_mutex_destroy(&ctx->engine_lock);
    pthread_cond_destroy(&ctx->registry_cond);
    pthread_mutex_destroy(&ctx->registry_lock);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
    return NULL;
  }
  for (unsigned i = 0; i < udm__num_builtin_targets; i++) {
    if (udm_target_register(ctx, udm__builtin_targets[i]) < 0) {
      udm_ctx_free(ctx);
      return NULL;
    }
  }
  for (unsigned i = 0; i < udm__num_builtin_drivers; i++) {
    if (udm_image_driver_register(ctx, udm__builtin_drivers[i]) < 0) {
      udm_ctx_free(ctx);
      return NULL;
    }
  }
  return ctx;
}

void udm_ctx_free(struct udm_ctx *ctx)
{
  if (!ctx)
    return;
  /* Remove users before the devices they use. */
  for (;;) {
    pthread_mutex_lock(&ctx->lock);
    struct udm_device *victim = NULL;
    for (struct udm_device *d = ctx->devices; d; d = d->next)
      if (d->holders == 0) {
        victim = d;
        break;
      }
    if (victim)
      udm_device_ref(victim);
    pthread_mutex_unlock(&ctx->lock);
    if (!victim)
      break;
    udm_device_remove(victim, UDM_REMOVE_FORCE);
    udm_device_unref(victim);
  }
  /* Tables are gone; what is still registered was leaked by a target. */
  udm__registry_free(ctx);
  for (unsigned i = 0; i < ctx->num_types; i++)
    free((void *)ctx->types[i].type);
  free(ctx->types);
  /* Devices are gone, so no code of a plugin can run any more. */
  for (unsigned i = 0; i < ctx->num_drivers; i++)
    free(ctx->drivers[i]);
  free(ctx->drivers);
  for (unsigned i = 0; i < ctx->num_plugins; i++)
    dlclose(ctx->plugins[i]);
  free(ctx->plugins);
  pthread_mutex_destroy(&ctx->registry_lock);
  pthread_cond_destroy(&ctx->registry_cond);
  udm__export_free_all(ctx);
  /* No device is left to have I/O in flight. */
  udm__engine_free(atomic_load(&ctx->engine));
  pthread_mutex_destroy(&ctx->engine_lock);
  udm__ctx_settings_free(ctx);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
}

int udm_ctx_foreach_device(struct udm_ctx *ctx, int (*fn)(void *, const char *),
                           void *opaque)
{
  /* Copy the names so fn may call back into the library. */
  pthread_mutex_lock(&ctx->lock);
  size_t n = 0;
  for (struct udm_device *d = ctx->devices; d; d = d->next)
    n++;
  char(*names)[UDM_NAME_MAX + 1] = malloc((n ? n : 1) * sizeof *names);
  if (!names) {
    pthread_mutex_unlock(&ctx->lock);
    return udm__fail(ENOMEM, "udm_ctx_foreach_device: out of memory");
  }
  size_t i = 0;
  for (struct udm_device *d = ctx->devices; d; d = d->next)
    memcpy(names[i++], d->name, sizeof names[0]);
  pthread_mutex_unlock(&ctx->lock);
  int r = 0;
  for (i = 0; i < n && r == 0; i++)
    r = fn(opaque, names[i]);
  free(names);
  return r;
}

int udm_ctx_foreach_target(struct udm_ctx *ctx,
                           int (*fn)(void *, const char *, const unsigned[3]),
                           void *opaque)
{
  int r = 0;
  for (unsigned i = 0; i < ctx->num_types && r == 0; i++)
    r = fn(opaque, ctx->types[i].type->name, ctx->types[i].type->version);
  return r;
}

/* ---- image drivers ---- */

static bool valid_format_name(const char *name)
{
  if (!name || !*name || strlen(name) > 32)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
          *p == '-'))
      return false;
  /* Taken by the core: raw files, stacked devices, and device numbers. */
  return strcmp(name, "raw") != 0 && strcmp(name, "udm") != 0 &&
         !(name[0] >= '0' && name[0] <= '9');
}

static struct udm_image_driver *find_driver(struct udm_ctx *ctx, const char *name)
{
  for (unsigned i = 0; i < ctx->num_drivers; i++)
    if (strcmp(ctx->drivers[i]->name, name) == 0)
      return ctx->drivers[i];
  return NULL;
}

/* Check and register DRV; ctx->lock held.  0, or -1 with udm_errmsg set. */
static int register_driver_locked(struct udm_ctx *ctx, const struct udm_image_driver *drv,
                                  const char *what)
{
  const size_t need = offsetof(struct udm_image_driver, pread) + sizeof drv->pread;
  if (!drv || drv->struct_size < need)
    return udm__fail(EINVAL, "%s: image driver struct is too small (%zu bytes; not "
                             "made with UDM_IMAGE_DRIVER_INIT?)",
                     what, drv ? drv->struct_size : (size_t)0);
  /* Older versions keep loading: the size stamp says which fields they have. */
  if (drv->api_version < 1 || drv->api_version > UDM_IMAGE_DRIVER_API_VERSION)
    return udm__fail(EINVAL,
                     "%s: image driver '%s' is built for driver API version %u, this "
                     "libudm speaks 1 to %u",
                     what, drv->name ? drv->name : "?", drv->api_version,
                     UDM_IMAGE_DRIVER_API_VERSION);
  if (!valid_format_name(drv->name))
    return udm__fail(EINVAL,
                     "%s: invalid image driver name '%s' ([a-z0-9_-], at most 32, not "
                     "starting with a digit, not 'raw' or 'udm')",
                     what, drv->name ? drv->name : "");
  if (!drv->open || !drv->close || !drv->size || !drv->pread)
    return udm__fail(EINVAL, "%s: image driver '%s' lacks one of open, close, size, "
                             "pread",
                     what, drv->name);
  if (find_driver(ctx, drv->name))
    return udm__fail(EEXIST, "%s: image driver '%s' is already registered", what,
                     drv->name);
  /* Copy into a full-size struct: fields the driver was not built with are NULL. */
  struct udm_image_driver *copy = calloc(1, sizeof *copy);
  struct udm_image_driver **n =
      realloc(ctx->drivers, (ctx->num_drivers + 1) * sizeof *n);
  if (n)
    ctx->drivers = n;
  if (!copy || !n) {
    free(copy);
    return udm__fail(ENOMEM, "%s: out of memory", what);
  }
  memcpy(copy, drv, drv->struct_size < sizeof *copy ? drv->struct_size : sizeof *copy);
  copy->struct_size = sizeof *copy;
  if (drv->api_version < 2)
    copy->aio = NULL; /* not a field of version 1, whatever the struct held */
  ctx->drivers[ctx->num_drivers++] = copy;
  return 0;
}

int udm_image_driver_register(struct udm_ctx *ctx, const struct udm_image_driver *drv)
{
  pthread_mutex_lock(&ctx->lock);
  int r = register_driver_locked(ctx, drv, "udm_image_driver_register");
  pthread_mutex_unlock(&ctx->lock);
  return r;
}

/* dlopen SO_PATH and register its driver; ctx->lock held. */
static int load_locked(struct udm_ctx *ctx, const char *so_path)
{
  void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return udm__fail(ENOENT, "udm_image_driver_load: cannot load %s: %s", so_path,
                     why ? why : "unknown dlopen error");
  }
  typedef const struct udm_image_driver *(*entry_fn)(void);
  entry_fn entry;
  /* POSIX guarantees that a dlsym result converts to a function pointer. */
  *(void **)&entry = dlsym(h, "udm_image_driver_entry");
  if (!entry) {
    dlclose(h);
    return udm__fail(EINVAL, "udm_image_driver_load: %s does not export "
                             "udm_image_driver_entry (not a udm image driver)",
                     so_path);
  }
  void **n = realloc(ctx->plugins, (ctx->num_plugins + 1) * sizeof *n);
  if (!n) {
    dlclose(h);
    return udm__fail(ENOMEM, "udm_image_driver_load: out of memory");
  }
  ctx->plugins = n;
  char what[512];
  snprintf(what, sizeof what, "udm_image_driver_load %s", so_path);
  if (register_driver_locked(ctx, entry(), what) < 0) {
    dlclose(h);
    return -1;
  }
  ctx->plugins[ctx->num_plugins++] = h;
  return 0;
}

int udm_image_driver_load(struct udm_ctx *ctx, const char *so_path)
{
  if (!so_path || !*so_path)
    return udm__fail(EINVAL, "udm_image_driver_load: no path given");
  pthread_mutex_lock(&ctx->lock);
  int r = load_locked(ctx, so_path);
  pthread_mutex_unlock(&ctx->lock);
  return r;
}

/*
 * The plugin directories: the context's driver-path setting (colon-separated;
 * $UDM_DRIVER_PATH by default) if set, else the installed <libdir>/udm/drivers.  A plugin for FORMAT is FORMAT.so
 * (or FORMAT.dylib).  Calls fn(dir) for each; ctx->lock held.
 */
static void foreach_plugin_dir(void (*fn)(struct udm_ctx *, const char *, const char *),
                               struct udm_ctx *ctx, const char *format)
{
  char *dirs = NULL, *save = NULL;
  if (udm__ctx_driver_path(ctx, &dirs) < 0 || (!dirs && !(dirs = strdup(UDM_DRIVER_DIR))))
    return;
  for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    /* Never list a directory of our own export: it would wait on ctx->lock. */
    char *devname = NULL, *why = NULL;
    int r = udm__export_resolve_locked(ctx, d, &devname, &why);
    free(devname);
    free(why);
    if (r == 0)
      fn(ctx, d, format);
  }
  free(dirs);
}

static bool has_plugin_suffix(const char *f)
{
  size_t n = strlen(f);
  return (n > 3 && strcmp(f + n - 3, ".so") == 0) ||
         (n > 6 && strcmp(f + n - 6, ".dylib") == 0);
}

static void load_from_dir(struct udm_ctx *ctx, const char *dir, const char *format)
{
  DIR *dp = opendir(dir);
  if (!dp)
    return;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!has_plugin_suffix(e->d_name))
      continue;
    size_t stem = strcspn(e->d_name, ".");
    if (format && (strlen(format) != stem || strncmp(e->d_name, format, stem) != 0))
      continue;
    char stemname[64];
    snprintf(stemname, sizeof stemname, "%.*s", (int)(stem < 63 ? stem : 63),
             e->d_name);
    if (find_driver(ctx, stemname))
      continue; /* already loaded (or a built-in of the same name) */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    /* A broken plugin must not hide the others: its error stays in udm_errmsg. */
    load_locked(ctx, path);
  }
  closedir(dp);
}

const struct udm_image_driver *udm__ctx_find_driver(struct udm_ctx *ctx,
                                                    const char *format)
{
  const struct udm_image_driver *d = find_driver(ctx, format);
  if (!d && valid_format_name(format)) {
    foreach_plugin_dir(load_from_dir, ctx, format);
    d = find_driver(ctx, format);
  }
  return d;
}

char *udm__ctx_driver_names(struct udm_ctx *ctx)
{
  struct udm_buf b;
  udm_buf_init(&b);
  udm_buf_puts(&b, "raw");
  for (unsigned i = 0; i < ctx->num_drivers; i++)
    udm_buf_printf(&b, ", %s", ctx->drivers[i]->name);
  return udm_buf_steal(&b);
}

int udm_ctx_foreach_image_driver(struct udm_ctx *ctx,
                                 int (*fn)(void *, const struct udm_image_driver *),
                                 void *opaque)
{
  /* Listing shows what a table could use, so plugins are loaded first. */
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->plugin_dir_scanned) {
    ctx->plugin_dir_scanned = true;
    foreach_plugin_dir(load_from_dir, ctx, NULL);
  }
  unsigned n = ctx->num_drivers;
  const struct udm_image_driver **list = malloc((n ? n : 1) * sizeof *list);
  if (list)
    memcpy(list, ctx->drivers, n * sizeof *list);
  pthread_mutex_unlock(&ctx->lock);
  if (!list)
    return udm__fail(ENOMEM, "udm_ctx_foreach_image_driver: out of memory");
  int r = 0;
  for (unsigned i = 0; i < n && r == 0; i++)
    r = fn(opaque, list[i]);
  free(list);
  return r;
}
