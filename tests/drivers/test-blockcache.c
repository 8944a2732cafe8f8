/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The drivers' block cache against a plain LRU model: random gets, puts and
 * owned puts over more keys than slots, for several cache sizes; every hit
 * must return the key's bytes, every miss must be one the model expects,
 * and an owned put must hand back exactly the evicted block.  Then four
 * threads hammer one small cache, checking the bytes of every hit.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../drivers/common/blockcache.h"
#include "../unit/check.h"

#define BLOCK 48

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next(uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static void fill(uint8_t *b, uint64_t key)
{
  for (size_t i = 0; i < BLOCK; i++)
    b[i] = (uint8_t)(key * 131 + i * 7);
}

static bool holds(const uint8_t *b, uint64_t key, size_t pos, size_t len)
{
  uint8_t want[BLOCK];
  fill(want, key);
  return memcmp(b, want + pos, len) == 0;
}

/* The model: keys in recency order, newest last. */
struct model {
  uint64_t *keys;
  unsigned n, cap;
};

static int model_find(const struct model *m, uint64_t key)
{
  for (unsigned i = 0; i < m->n; i++)
    if (m->keys[i] == key)
      return (int)i;
  return -1;
}

static void model_touch(struct model *m, int i)
{
  uint64_t k = m->keys[i];
  memmove(m->keys + i, m->keys + i + 1, (m->n - (unsigned)i - 1) * sizeof *m->keys);
  m->keys[m->n - 1] = k;
}

/* Insert KEY (absent); returns the evicted key or 0. */
static uint64_t model_insert(struct model *m, uint64_t key)
{
  uint64_t evicted = 0;
  if (m->n == m->cap) {
    evicted = m->keys[0];
    memmove(m->keys, m->keys + 1, (m->n - 1) * sizeof *m->keys);
    m->n--;
  }
  m->keys[m->n++] = key;
  return evicted;
}

static void against_the_model(unsigned nslots)
{
  struct udm_blockcache c;
  CHECK(udm_blockcache_init(&c, nslots, BLOCK) == 0);
  struct model m = {calloc(nslots, sizeof(uint64_t)), 0, nslots};
  uint64_t nkeys = 3ull * nslots + 2;
  for (unsigned op = 0; op < 20000; op++) {
    /* Keys that are multiples of 65536, as qcow2's offsets are, half the time. */
    uint64_t key = 1 + next(&rng) % nkeys;
    if (op % 2)
      key <<= 16;
    int where = model_find(&m, key);
    switch (next(&rng) % 3) {
    case 0: {
      uint8_t out[BLOCK];
      size_t pos = (size_t)(next(&rng) % BLOCK), len = 1 + (size_t)(next(&rng) % (BLOCK - pos));
      bool hit = udm_blockcache_get(&c, key, pos, out, len);
      CHECK(hit == (where >= 0));
      if (hit) {
        CHECK(holds(out, key, pos, len));
        model_touch(&m, where);
      }
      break;
    }
    case 1: {
      uint8_t b[BLOCK];
      fill(b, key);
      udm_blockcache_put(&c, key, b);
      if (where < 0)
        model_insert(&m, key);
      break;
    }
    default: {
      uint8_t *b = malloc(BLOCK);
      fill(b, key);
      bool full = m.n == m.cap;
      uint8_t *back = udm_blockcache_put_owned(&c, key, b);
      if (where >= 0) {
        CHECK(back == b);
      } else {
        uint64_t evicted = model_insert(&m, key);
        if (full)
          CHECK(back && back != b && holds(back, evicted, 0, BLOCK));
        else
          CHECK(back == NULL);
      }
      free(back);
    }
    }
  }
  /* Everything the model holds is there, and nothing else is. */
  for (uint64_t k = 1; k <= nkeys; k++)
    for (int shift = 0; shift <= 16; shift += 16) {
      uint8_t out[BLOCK];
      uint64_t key = k << shift;
      bool hit = udm_blockcache_get(&c, key, 0, out, BLOCK);
      CHECK(hit == (model_find(&m, key) >= 0));
      CHECK(!hit || holds(out, key, 0, BLOCK));
    }
  free(m.keys);
  udm_blockcache_free(&c);
}

static struct udm_blockcache shared;

static void *hammer(void *arg)
{
  uint64_t state = 0x9E3779B97F4A7C15ull * (1 + (uintptr_t)arg);
  uint8_t *spare = NULL;
  for (unsigned op = 0; op < 200000; op++) {
    uint64_t key = 1 + next(&state) % 40;
    uint8_t out[BLOCK];
    if (udm_blockcache_get(&shared, key, 0, out, BLOCK)) {
      CHECK(holds(out, key, 0, BLOCK));
    } else if (op % 2) {
      if (!spare)
        spare = malloc(BLOCK);
      fill(spare, key);
      spare = udm_blockcache_put_owned(&shared, key, spare);
    } else {
      fill(out, key);
      udm_blockcache_put(&shared, key, out);
    }
  }
  free(spare);
  return NULL;
}

int main(void)
{
  static const unsigned sizes[] = {1, 2, 3, 8, 64, 1000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    against_the_model(sizes[i]);
  struct udm_blockcache c;
  CHECK(udm_blockcache_init(&c, 0, BLOCK) < 0);
  udm_blockcache_free(&c);

  CHECK(udm_blockcache_init(&shared, 16, BLOCK) == 0);
  pthread_t t[4];
  for (uintptr_t i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, hammer, (void *)i);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  udm_blockcache_free(&shared);
  if (check_failures)
    fprintf(stderr, "%d checks failed\n", check_failures);
  return check_failures ? 1 : 0;
}
