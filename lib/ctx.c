/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Contexts: the device namespace and the registry of target types. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int udm_target_register(struct udm_ctx *ctx, const struct udm_target_type *type)
{
  const size_t need = offsetof(struct udm_target_type, map) + sizeof type->map;
  if (!type || type->struct_size < need)
    return udm__fail(EINVAL, "udm_target_register: target type struct is too small "
                             "(not made with UDM_TARGET_TYPE_INIT?)");
  if (type->api_version != UDM_TARGET_API_VERSION)
    return udm__fail(EINVAL,
                     "udm_target_register: target '%s' is built for API version %u, "
                     "this libudm speaks %u",
                     type->name ? type->name : "?", type->api_version,
                     UDM_TARGET_API_VERSION);
  if (!type->name || !*type->name || !type->ctr || !type->map)
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
  for (unsigned i = 0; i < udm__num_builtin_targets; i++) {
    if (udm_target_register(ctx, udm__builtin_targets[i]) < 0) {
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
  for (unsigned i = 0; i < ctx->num_types; i++)
    free((void *)ctx->types[i].type);
  free(ctx->types);
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
