/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transaction manager, see transaction-manager.h.  The blocks made or
 * shadowed in the open transaction are a hash set: changing them again
 * needs no copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transaction-manager.h"

#define EMPTY UINT64_MAX

struct pd_tm {
  struct pd_bm *bm;
  struct pd_sm *sm;
  uint64_t *shadows; /* open addressing; EMPTY marks a free slot */
  size_t cap, used;
};

int pd_tm_create(struct pd_bm *bm, struct pd_sm *sm, struct pd_tm **out)
{
  struct pd_tm *tm = calloc(1, sizeof *tm);
  if (!tm)
    return pd_fail(ENOMEM, "transaction manager: out of memory");
  tm->bm = bm;
  tm->sm = sm;
  *out = tm;
  return 0;
}

void pd_tm_destroy(struct pd_tm *tm)
{
  if (tm)
    free(tm->shadows);
  free(tm);
}

struct pd_bm *pd_tm_bm(struct pd_tm *tm) { return tm->bm; }
struct pd_sm *pd_tm_sm(struct pd_tm *tm) { return tm->sm; }

static size_t slot(const struct pd_tm *tm, uint64_t b)
{
  return (size_t)((b * 0x9E3779B97F4A7C15ull) >> 20) & (tm->cap - 1);
}

static bool is_shadow(const struct pd_tm *tm, pd_block_t b)
{
  if (!tm->cap)
    return false;
  for (size_t i = slot(tm, b);; i = (i + 1) & (tm->cap - 1)) {
    if (tm->shadows[i] == b)
      return true;
    if (tm->shadows[i] == EMPTY)
      return false;
  }
}

static int add_shadow(struct pd_tm *tm, pd_block_t b)
{
  if ((tm->used + 1) * 2 > tm->cap) {
    size_t cap = tm->cap ? tm->cap * 2 : 256;
    uint64_t *old = tm->shadows;
    size_t old_cap = tm->cap;
    tm->shadows = malloc(cap * sizeof *tm->shadows);
    if (!tm->shadows) {
      tm->shadows = old;
      return pd_fail(ENOMEM, "transaction manager: out of memory");
    }
    memset(tm->shadows, 0xff, cap * sizeof *tm->shadows);
    tm->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i] != EMPTY)
        for (size_t j = slot(tm, old[i]);; j = (j + 1) & (cap - 1))
          if (tm->shadows[j] == EMPTY) {
            tm->shadows[j] = old[i];
            break;
          }
    free(old);
  }
  for (size_t i = slot(tm, b);; i = (i + 1) & (tm->cap - 1)) {
    if (tm->shadows[i] == b)
      return 0;
    if (tm->shadows[i] == EMPTY) {
      tm->shadows[i] = b;
      tm->used++;
      return 0;
    }
  }
}

int pd_tm_new_block(struct pd_tm *tm, const struct udm_bufio_validator *v,
                    struct pd_block **out)
{
  pd_block_t b;
  int r = pd_sm_new_block(tm->sm, &b);
  if (r < 0)
    return r;
  r = pd_bm_write_lock_zero(tm->bm, b, v, out);
  if (r == 0)
    r = add_shadow(tm, b);
  if (r < 0) {
    pd_sm_dec(tm->sm, b);
    return r;
  }
  return 0;
}

int pd_tm_shadow_block(struct pd_tm *tm, pd_block_t orig, const struct udm_bufio_validator *v,
                       struct pd_block **out, bool *inc_children)
{
  uint32_t count;
  int r = pd_sm_get_count(tm->sm, orig, &count);
  if (r < 0)
    return r;
  if (count == 0)
    return pd_fail(EILSEQ, "%s: block %llu is in use but its reference count is 0",
                   pd_bm_name(tm->bm), (unsigned long long)orig);
  *inc_children = count > 1;
  if (count == 1 && is_shadow(tm, orig))
    return pd_bm_write_lock(tm->bm, orig, v, out);

  struct pd_block *from;
  r = pd_bm_read_lock(tm->bm, orig, v, &from);
  if (r < 0)
    return r;
  r = pd_tm_new_block(tm, v, out);
  if (r == 0) {
    memcpy(pd_block_data(*out), pd_block_data(from), PD_BLOCK_SIZE);
    r = pd_sm_dec(tm->sm, orig);
    if (r < 0)
      pd_bm_unlock(*out);
  }
  pd_bm_unlock(from);
  return r;
}

int pd_tm_read_lock(struct pd_tm *tm, pd_block_t b, const struct udm_bufio_validator *v,
                    struct pd_block **out)
{
  return pd_bm_read_lock(tm->bm, b, v, out);
}

void pd_tm_unlock(struct pd_tm *tm, struct pd_block *blk)
{
  (void)tm;
  pd_bm_unlock(blk);
}

int pd_tm_inc(struct pd_tm *tm, pd_block_t b) { return pd_sm_inc(tm->sm, b); }
int pd_tm_dec(struct pd_tm *tm, pd_block_t b) { return pd_sm_dec(tm->sm, b); }
int pd_tm_ref(struct pd_tm *tm, pd_block_t b, uint32_t *count)
{
  return pd_sm_get_count(tm->sm, b, count);
}

int pd_tm_pre_commit(struct pd_tm *tm)
{
  int r = pd_sm_commit(tm->sm);
  if (r < 0)
    return r;
  return pd_bm_flush(tm->bm);
}

int pd_tm_commit(struct pd_tm *tm, struct pd_block *sb)
{
  pd_bm_unlock(sb);
  int r = pd_bm_flush(tm->bm);
  if (r < 0)
    return r;
  if (tm->cap)
    memset(tm->shadows, 0xff, tm->cap * sizeof *tm->shadows);
  tm->used = 0;
  return 0;
}
