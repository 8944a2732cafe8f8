/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context's registry of objects shared by targets across tables (see
 * <udm/target.h>).  Entries are few (one per pool or origin), so a list.
 *
 * An entry is made in the MAKING state and its init runs without the lock
 * (init may do I/O or use the registry); the last put moves it to
 * RELEASING and runs release without the lock.  A get that meets either
 * state waits on registry_cond and looks again, so it never returns a
 * half-made object, and never makes a second object for a key whose old
 * one is still being released.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum entry_state { MAKING, READY, RELEASING };

struct udm_registry_entry {
  struct udm_registry_entry *next;
  char *key;
  size_t size;
  unsigned refs;
  enum entry_state state;
  void (*release)(void *obj);
  max_align_t obj[]; /* size bytes */
};

static struct udm_ctx *ctx_of(struct udm_target *ti)
{
  return ti->table->ctx;
}

static struct udm_registry_entry *find_key(struct udm_ctx *ctx, const char *key)
{
  for (struct udm_registry_entry *e = ctx->registry; e; e = e->next)
    if (strcmp(e->key, key) == 0)
      return e;
  return NULL;
}

static void unlink_entry(struct udm_ctx *ctx, struct udm_registry_entry *e)
{
  for (struct udm_registry_entry **p = &ctx->registry; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      return;
    }
}

static void entry_free(struct udm_registry_entry *e)
{
  free(e->key);
  free(e);
}

int udm_target_registry_get(struct udm_target *ti, const char *key, size_t size,
                            int (*init)(void *obj, void *arg),
                            void (*release)(void *obj), void *arg, void **out)
{
  struct udm_ctx *ctx = ctx_of(ti);
  *out = NULL;
  if (!key || !*key || size == 0)
    return -EINVAL;
  pthread_mutex_lock(&ctx->registry_lock);
  struct udm_registry_entry *e;
  while ((e = find_key(ctx, key)) && e->state != READY)
    pthread_cond_wait(&ctx->registry_cond, &ctx->registry_lock);
  if (e) {
    int r = 0;
    if (e->size != size) {
      r = -EINVAL;
    } else {
      e->refs++;
      *out = e->obj;
    }
    pthread_mutex_unlock(&ctx->registry_lock);
    return r;
  }
  e = calloc(1, sizeof *e + size);
  if (!e || !(e->key = strdup(key))) {
    pthread_mutex_unlock(&ctx->registry_lock);
    free(e);
    return -ENOMEM;
  }
  e->size = size;
  e->refs = 1;
  e->state = MAKING;
  e->release = release;
  e->next = ctx->registry;
  ctx->registry = e;
  pthread_mutex_unlock(&ctx->registry_lock);

  int r = init ? init(e->obj, arg) : 0;

  pthread_mutex_lock(&ctx->registry_lock);
  if (r < 0)
    unlink_entry(ctx, e);
  else
    e->state = READY;
  pthread_cond_broadcast(&ctx->registry_cond);
  pthread_mutex_unlock(&ctx->registry_lock);
  if (r < 0) {
    entry_free(e);
    return r;
  }
  *out = e->obj;
  return 1;
}

int udm_target_registry_put(struct udm_target *ti, void *obj)
{
  struct udm_ctx *ctx = ctx_of(ti);
  if (!obj)
    return -EINVAL;
  pthread_mutex_lock(&ctx->registry_lock);
  struct udm_registry_entry *e = ctx->registry;
  while (e && (void *)e->obj != obj)
    e = e->next;
  if (!e || e->state != READY) {
    pthread_mutex_unlock(&ctx->registry_lock);
    return -EINVAL;
  }
  if (--e->refs > 0) {
    pthread_mutex_unlock(&ctx->registry_lock);
    return 0;
  }
  e->state = RELEASING;
  pthread_mutex_unlock(&ctx->registry_lock);

  if (e->release)
    e->release(e->obj);

  pthread_mutex_lock(&ctx->registry_lock);
  unlink_entry(ctx, e);
  pthread_cond_broadcast(&ctx->registry_cond);
  pthread_mutex_unlock(&ctx->registry_lock);
  entry_free(e);
  return 0;
}

void udm__registry_free(struct udm_ctx *ctx)
{
  /* No table is left, so nothing else runs here: no lock needed. */
  while (ctx->registry) {
    struct udm_registry_entry *e = ctx->registry;
    ctx->registry = e->next;
    if (e->release && e->state == READY)
      e->release(e->obj);
    entry_free(e);
  }
}
