/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cache policies: smq and cleaner, in the spirit of the kernel's
 * dm-cache-policy-smq.c.
 *
 * smq: origin blocks that miss are counted in a table of hotspot counters
 * (origin blocks hashed into a fixed number of counters); a block whose
 * counter reaches the promotion level (2, 4 or 8 misses, by how well the
 * counters have been predicting re-references lately) becomes a candidate.  Cached blocks
 * carry a hit level (0..63) and sit in a recency queue (least recently hit
 * first).  A candidate is promoted into a free cache block; when none is
 * free it must be hotter than the coldest cached block, which is demoted
 * (written back first when dirty).  Counters and levels age: every time as
 * many misses (hits) as there are counters (cache blocks) have been seen,
 * they are halved, so the cache follows a moving hot set.  Dirty blocks are
 * written back when the device is idle.  The hint kept in the metadata is
 * the hit level.
 *
 * cleaner: promotes nothing and writes back every dirty block.
 */
#include <stdlib.h>
#include <string.h>

#include <udm/target.h>

#include "cache.h"

#define NONE UINT32_MAX
#define MAX_LEVEL 63u
#define NR_CANDIDATES 64u
/*
 * The promotion level adapts to how well the hotspot counters predict
 * re-references, as the kernel's smq lowers its promote level when its
 * hotspot queue performs well and raises it when poorly (stats_assess):
 * every ASSESS_WINDOW misses, the share of misses that found their
 * hotspot counted twice already (since the last halving) decides between eager (2 misses promote), fair
 * (4) and poor (8: a cold, scattered load promotes next to nothing and
 * leaves the origin's bandwidth to the reads).
 */
#define ASSESS_WINDOW 1024u
#define LEVEL_WELL 2u
#define LEVEL_FAIR 4u
#define LEVEL_POOR 8u
#define VICTIM_SCAN 16u

struct cache_policy {
  bool cleaner;
  uint32_t nr_cblocks;
  uint8_t *level;
  uint32_t *prev, *next;
  uint32_t head, tail;
  uint8_t *hotspot;
  uint32_t nr_hotspots;
  uint64_t misses, hits;
  uint32_t window_misses, window_rereferenced;
  uint8_t promote_level;
  uint64_t cand[NR_CANDIDATES];
  unsigned nr_cand;
  uint32_t cursor;
};

static const uint32_t smq_version[3] = {2, 0, 0};
static const uint32_t cleaner_version[3] = {2, 0, 0};

struct cache_policy *policy_create(const char *name, uint32_t nr_cblocks, uint64_t nr_oblocks)
{
  bool cleaner = !strcmp(name, "cleaner");
  if (!cleaner && strcmp(name, "smq") && strcmp(name, "default"))
    return NULL;
  struct cache_policy *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->cleaner = cleaner;
  p->promote_level = LEVEL_WELL; /* no evidence yet: eager, as an empty cache wants */
  p->nr_cblocks = nr_cblocks;
  p->nr_hotspots = 1024;
  while (p->nr_hotspots < nr_cblocks * 4u && p->nr_hotspots < (1u << 22) &&
         p->nr_hotspots < nr_oblocks)
    p->nr_hotspots *= 2;
  p->level = calloc(nr_cblocks ? nr_cblocks : 1, 1);
  p->prev = malloc(sizeof(uint32_t) * (nr_cblocks ? nr_cblocks : 1));
  p->next = malloc(sizeof(uint32_t) * (nr_cblocks ? nr_cblocks : 1));
  p->hotspot = calloc(p->nr_hotspots, 1);
  if (!p->level || !p->prev || !p->next || !p->hotspot) {
    policy_destroy(p);
    return NULL;
  }
  for (uint32_t i = 0; i < nr_cblocks; i++)
    p->prev[i] = p->next[i] = NONE;
  p->head = p->tail = NONE;
  return p;
}

void policy_destroy(struct cache_policy *p)
{
  if (!p)
    return;
  free(p->level);
  free(p->prev);
  free(p->next);
  free(p->hotspot);
  free(p);
}

const char *policy_name(const struct cache_policy *p) { return p->cleaner ? "cleaner" : "smq"; }
const uint32_t *policy_version(const struct cache_policy *p)
{
  return p->cleaner ? cleaner_version : smq_version;
}
bool policy_promotes(const struct cache_policy *p) { return !p->cleaner; }

static bool linked(struct cache_policy *p, uint32_t c)
{
  return p->prev[c] != NONE || p->head == c;
}

static void unlink_block(struct cache_policy *p, uint32_t c)
{
  if (!linked(p, c))
    return;
  if (p->prev[c] != NONE)
    p->next[p->prev[c]] = p->next[c];
  else
    p->head = p->next[c];
  if (p->next[c] != NONE)
    p->prev[p->next[c]] = p->prev[c];
  else
    p->tail = p->prev[c];
  p->prev[c] = p->next[c] = NONE;
}

static void push_tail(struct cache_policy *p, uint32_t c)
{
  p->prev[c] = p->tail;
  p->next[c] = NONE;
  if (p->tail != NONE)
    p->next[p->tail] = c;
  else
    p->head = c;
  p->tail = c;
}

void policy_load(struct cache_policy *p, uint32_t c, uint32_t hint)
{
  p->level[c] = (uint8_t)(hint > MAX_LEVEL ? MAX_LEVEL : hint);
  unlink_block(p, c);
  push_tail(p, c);
}

uint32_t policy_hint(struct cache_policy *p, uint32_t c) { return p->level[c]; }

void policy_hit(struct cache_policy *p, uint32_t c)
{
  if (p->level[c] < MAX_LEVEL)
    p->level[c]++;
  unlink_block(p, c);
  push_tail(p, c);
  if (++p->hits >= p->nr_cblocks * 4ull) {
    p->hits = 0;
    for (uint32_t i = 0; i < p->nr_cblocks; i++)
      p->level[i] /= 2;
  }
}

static uint32_t hotspot_of(const struct cache_policy *p, uint64_t oblock)
{
  uint64_t h = oblock * 0x9e3779b97f4a7c15ull;
  return (uint32_t)(h >> 32) & (p->nr_hotspots - 1);
}

bool policy_miss(struct cache_policy *p, uint64_t oblock)
{
  if (p->cleaner)
    return false;
  uint32_t h = hotspot_of(p, oblock);
  p->window_rereferenced += p->hotspot[h] >= 2;
  if (++p->window_misses == ASSESS_WINDOW) {
    /* well: at least 3/4 of misses re-reference; fair: at least half */
    uint32_t r = p->window_rereferenced;
    p->promote_level = r * 4 >= ASSESS_WINDOW * 3 ? LEVEL_WELL
                       : r * 2 >= ASSESS_WINDOW   ? LEVEL_FAIR
                                                  : LEVEL_POOR;
    p->window_misses = p->window_rereferenced = 0;
  }
  if (p->hotspot[h] < 255)
    p->hotspot[h]++;
  if (++p->misses >= p->nr_hotspots) {
    p->misses = 0;
    for (uint32_t i = 0; i < p->nr_hotspots; i++)
      p->hotspot[i] /= 2;
  }
  if (p->hotspot[h] < p->promote_level)
    return false;
  for (unsigned i = 0; i < p->nr_cand; i++)
    if (p->cand[i] == oblock)
      return false;
  if (p->nr_cand == NR_CANDIDATES) /* forget the oldest */
    memmove(p->cand, p->cand + 1, sizeof p->cand[0] * --p->nr_cand);
  p->cand[p->nr_cand++] = oblock;
  return true;
}

static enum cache_work writeback_any(struct cache_policy *p, const struct policy_query *q,
                                     uint32_t *cblock, uint32_t scan)
{
  /* From the least recently used: the blocks least likely to be written again soon. */
  uint32_t n = 0;
  for (uint32_t c = p->head; c != NONE && n < scan; c = p->next[c], n++)
    if (q->is_dirty(q->ctx, c) && !q->is_busy(q->ctx, c)) {
      *cblock = c;
      return WORK_WRITEBACK;
    }
  return WORK_NONE;
}

enum cache_work policy_next_work(struct cache_policy *p, const struct policy_query *q,
                                 uint64_t *oblock, uint32_t *cblock)
{
  if (p->cleaner)
    return writeback_any(p, q, cblock, UINT32_MAX);
  if (q->writeback_only)
    return q->idle ? writeback_any(p, q, cblock, UINT32_MAX) : WORK_NONE;
  while (p->nr_cand) {
    uint64_t ob = p->cand[0];
    if (q->is_cached(q->ctx, ob)) {
      memmove(p->cand, p->cand + 1, sizeof p->cand[0] * --p->nr_cand);
      continue;
    }
    if (q->has_free) {
      memmove(p->cand, p->cand + 1, sizeof p->cand[0] * --p->nr_cand);
      *oblock = ob;
      return WORK_PROMOTE;
    }
    /* Full: the candidate must be hotter than the coldest cached block. */
    uint32_t victim = NONE, n = 0;
    for (uint32_t c = p->head; c != NONE && n < VICTIM_SCAN; c = p->next[c], n++)
      if (!q->is_busy(q->ctx, c)) {
        victim = c;
        break;
      }
    if (victim == NONE || p->hotspot[hotspot_of(p, ob)] <= p->level[victim]) {
      memmove(p->cand, p->cand + 1, sizeof p->cand[0] * --p->nr_cand);
      continue;
    }
    *cblock = victim;
    /* The candidate stays first: once the victim is clean and gone, it is promoted. */
    return q->is_dirty(q->ctx, victim) ? WORK_WRITEBACK : WORK_DEMOTE;
  }
  if (q->idle)
    return writeback_any(p, q, cblock, UINT32_MAX);
  return WORK_NONE;
}

void policy_removed(struct cache_policy *p, uint32_t c)
{
  unlink_block(p, c);
  p->level[c] = 0;
}

void policy_inserted(struct cache_policy *p, uint32_t c)
{
  p->level[c] = 1;
  unlink_block(p, c);
  push_tail(p, c);
}
