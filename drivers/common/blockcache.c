/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Slots live in one array.  Filled slots are chained from a bucket chosen by
 * a multiplicative hash of the key (keys are often multiples of a cluster
 * size, so their low bits alone would collide); every slot, filled or not,
 * is on one LRU list, newest first, so the victim is always the oldest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockcache.h"

#define NONE (~0u)

static unsigned bucket_of(const struct udm_blockcache *c, uint64_t key)
{
  return (unsigned)((key * 0x9E3779B97F4A7C15ull) >> (64 - c->bucket_bits));
}

int udm_blockcache_init(struct udm_blockcache *c, unsigned nslots, size_t block_size)
{
  memset(c, 0, sizeof *c);
  if (nslots == 0 || nslots > (1u << 30))
    return -EINVAL;
  c->bucket_bits = 1;
  while ((1u << c->bucket_bits) < nslots)
    c->bucket_bits++;
  c->slots = calloc(nslots, sizeof *c->slots);
  c->buckets = malloc(sizeof *c->buckets << c->bucket_bits);
  if (!c->slots || !c->buckets) {
    free(c->slots);
    free(c->buckets);
    c->slots = NULL;
    return -ENOMEM;
  }
  for (unsigned b = 0; b < (1u << c->bucket_bits); b++)
    c->buckets[b] = NONE;
  for (unsigned i = 0; i < nslots; i++) {
    c->slots[i].newer = i ? i - 1 : NONE;
    c->slots[i].older = i + 1 < nslots ? i + 1 : NONE;
  }
  c->newest = 0;
  c->oldest = nslots - 1;
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
  free(c->buckets);
  c->slots = NULL;
  pthread_mutex_destroy(&c->lock);
}

static struct udm_blockcache_slot *find(struct udm_blockcache *c, uint64_t key)
{
  for (unsigned i = c->buckets[bucket_of(c, key)]; i != NONE; i = c->slots[i].next)
    if (c->slots[i].key == key)
      return &c->slots[i];
  return NULL;
}

/* Move slot S to the newest end of the LRU list. */
static void touch(struct udm_blockcache *c, struct udm_blockcache_slot *s)
{
  unsigned i = (unsigned)(s - c->slots);
  if (c->newest == i)
    return;
  /* S has a newer neighbour, so it is not the newest. */
  c->slots[s->newer].older = s->older;
  if (s->older != NONE)
    c->slots[s->older].newer = s->newer;
  else
    c->oldest = s->newer;
  s->newer = NONE;
  s->older = c->newest;
  c->slots[c->newest].newer = i;
  c->newest = i;
}

/* Take the oldest slot out of its bucket (if filled) to hold KEY; not yet chained. */
static struct udm_blockcache_slot *evict_oldest(struct udm_blockcache *c)
{
  struct udm_blockcache_slot *s = &c->slots[c->oldest];
  if (s->key) {
    unsigned i = (unsigned)(s - c->slots);
    unsigned *link = &c->buckets[bucket_of(c, s->key)];
    while (*link != i)
      link = &c->slots[*link].next;
    *link = s->next;
    s->key = 0;
  }
  return s;
}

static void insert(struct udm_blockcache *c, struct udm_blockcache_slot *s, uint64_t key)
{
  unsigned *head = &c->buckets[bucket_of(c, key)];
  s->key = key;
  s->next = *head;
  *head = (unsigned)(s - c->slots);
  touch(c, s);
}

bool udm_blockcache_get(struct udm_blockcache *c, uint64_t key, size_t pos, void *out,
                        size_t len)
{
  pthread_mutex_lock(&c->lock);
  struct udm_blockcache_slot *s = find(c, key);
  if (s) {
    memcpy(out, s->data + pos, len);
    touch(c, s);
  }
  pthread_mutex_unlock(&c->lock);
  return s != NULL;
}

void udm_blockcache_put(struct udm_blockcache *c, uint64_t key, const void *data)
{
  pthread_mutex_lock(&c->lock);
  if (!find(c, key)) { /* else another thread was first */
    struct udm_blockcache_slot *s = evict_oldest(c);
    if (!s->data)
      s->data = malloc(c->block_size);
    if (s->data) {
      memcpy(s->data, data, c->block_size);
      insert(c, s, key);
    }
  }
  pthread_mutex_unlock(&c->lock);
}

void *udm_blockcache_put_owned(struct udm_blockcache *c, uint64_t key, void *data)
{
  void *spare = data;
  pthread_mutex_lock(&c->lock);
  if (!find(c, key)) {
    struct udm_blockcache_slot *s = evict_oldest(c);
    spare = s->data;
    s->data = data;
    insert(c, s, key);
  }
  pthread_mutex_unlock(&c->lock);
  return spare;
}
