/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockcache.h"

int udm_blockcache_init(struct udm_blockcache *c, unsigned nslots, size_t block_size)
{
  memset(c, 0, sizeof *c);
  c->slots = calloc(nslots, sizeof *c->slots);
  if (!c->slots)
    return -ENOMEM;
  pthread_mutex_init(&c->lock, NULL);
  c->nslots = nslots;
  c->block_size = block_size;
  return 0;
}

void udm_blockcache_free(struct udm_blockcache *c)
{
  if (!c->slots)
    return;
  for (unsigned i = 0; i < c->nslots; i++)
    free(c->slots[i].data);
  free(c->slots);
  c->slots = NULL;
  pthread_mutex_destroy(&c->lock);
}

bool udm_blockcache_get(struct udm_blockcache *c, uint64_t key, size_t pos, void *out,
                        size_t len)
{
  bool hit = false;
  pthread_mutex_lock(&c->lock);
  for (unsigned i = 0; i < c->nslots; i++) {
    struct udm_blockcache_slot *s = &c->slots[i];
    if (s->key == key && s->data) {
      memcpy(out, s->data + pos, len);
      s->used = ++c->clock;
      hit = true;
      break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return hit;
}

/* Under the lock: the least recently used slot, or NULL when KEY is cached already. */
static struct udm_blockcache_slot *victim_for(struct udm_blockcache *c, uint64_t key)
{
  struct udm_blockcache_slot *victim = &c->slots[0];
  for (unsigned i = 0; i < c->nslots; i++) {
    struct udm_blockcache_slot *s = &c->slots[i];
    if (s->key == key && s->data) /* another thread was first */
      return NULL;
    if (s->used < victim->used)
      victim = s;
  }
  return victim;
}

void udm_blockcache_put(struct udm_blockcache *c, uint64_t key, const void *data)
{
  pthread_mutex_lock(&c->lock);
  struct udm_blockcache_slot *victim = victim_for(c, key);
  if (victim && !victim->data)
    victim->data = malloc(c->block_size);
  if (victim && victim->data) {
    memcpy(victim->data, data, c->block_size);
    victim->key = key;
    victim->used = ++c->clock;
  }
  pthread_mutex_unlock(&c->lock);
}

void *udm_blockcache_put_owned(struct udm_blockcache *c, uint64_t key, void *data)
{
  pthread_mutex_lock(&c->lock);
  struct udm_blockcache_slot *victim = victim_for(c, key);
  void *spare = data;
  if (victim) {
    spare = victim->data;
    victim->data = data;
    victim->key = key;
    victim->used = ++c->clock;
  }
  pthread_mutex_unlock(&c->lock);
  return spare;
}
