/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The disk space map, see space-map-disk.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "space-map-disk.h"

#define EPB PD_ENTRIES_PER_BITMAP

/* The roots of one state of the map: the open transaction's or the last commit's. */
struct ll {
  pd_block_t nr_blocks, nr_allocated, bitmap_root, ref_count_root;
};

struct smd {
  struct pd_sm sm;
  struct pd_tm *tm;
  struct pd_btree_info index_info;  /* bitmap index -> pd_index_entry */
  struct pd_btree_info rc_info;     /* block -> le32 count */
  struct ll ll, old;
  pd_block_t begin;                 /* allocation cursor, kept across commits */
  pd_block_t allocated_this_transaction;
};

static struct smd *to_smd(struct pd_sm *sm) { return (struct smd *)sm; }

static unsigned bitmap_get(const uint8_t *bits, uint32_t i)
{
  uint32_t bit = (i % 32) * 2;
  const uint8_t *w = bits + (i / 32) * 8;
  return ((w[bit / 8] >> (bit % 8)) & 1) << 1 | ((w[(bit + 1) / 8] >> ((bit + 1) % 8)) & 1);
}

static void bitmap_set(uint8_t *bits, uint32_t i, unsigned v)
{
  uint32_t bit = (i % 32) * 2;
  uint8_t *w = bits + (i / 32) * 8;
  w[bit / 8] = (uint8_t)((w[bit / 8] & ~(1u << (bit % 8))) | ((v >> 1) & 1) << (bit % 8));
  bit++;
  w[bit / 8] = (uint8_t)((w[bit / 8] & ~(1u << (bit % 8))) | (v & 1) << (bit % 8));
}

static int load_ie(struct smd *d, const struct ll *ll, uint64_t index,
                   struct pd_index_entry *ie)
{
  int r = pd_btree_lookup(&d->index_info, ll->bitmap_root, &index, ie);
  if (r == -ENODATA)
    return pd_fail(EILSEQ, "disk space map: bitmap %llu is missing from its index",
                   (unsigned long long)index);
  return r;
}

static int lookup(struct smd *d, const struct ll *ll, pd_block_t b, uint32_t *count)
{
  if (b >= ll->nr_blocks)
    return pd_fail(EINVAL, "disk space map: block %llu is past its end (%llu blocks)",
                   (unsigned long long)b, (unsigned long long)ll->nr_blocks);
  struct pd_index_entry ie;
  int r = load_ie(d, ll, b / EPB, &ie);
  if (r < 0)
    return r;
  struct pd_block *blk;
  r = pd_tm_read_lock(d->tm, le64_get(ie.blocknr), &pd_bitmap_validator, &blk);
  if (r < 0)
    return r;
  *count = bitmap_get((uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header),
                      (uint32_t)(b % EPB));
  pd_tm_unlock(d->tm, blk);
  if (*count == 3) {
    udm_le32 le;
    r = pd_btree_lookup(&d->rc_info, ll->ref_count_root, &b, &le);
    if (r == -ENODATA)
      return pd_fail(EILSEQ, "disk space map: block %llu has no entry in the ref count tree",
                     (unsigned long long)b);
    if (r == 0)
      *count = le32_get(le);
  }
  return r;
}

static int set_count(struct smd *d, pd_block_t b, uint32_t c)
{
  uint32_t old;
  int r = lookup(d, &d->ll, b, &old);
  if (r < 0 || old == c)
    return r;
  uint64_t index = b / EPB;
  struct pd_index_entry ie;
  r = load_ie(d, &d->ll, index, &ie);
  if (r < 0)
    return r;
  struct pd_block *blk;
  bool inc;
  r = pd_tm_shadow_block(d->tm, le64_get(ie.blocknr), &pd_bitmap_validator, &blk, &inc);
  if (r < 0)
    return r;
  ie.blocknr = le64_put(pd_block_location(blk));
  uint32_t bit = (uint32_t)(b % EPB);
  bitmap_set((uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header), bit,
             c > 2 ? 3 : c);
  pd_tm_unlock(d->tm, blk);
  if (c > 2) {
    udm_le32 le = le32_put(c);
    r = pd_btree_insert(&d->rc_info, d->ll.ref_count_root, &b, &le, &d->ll.ref_count_root,
                        NULL);
  } else if (old > 2) {
    r = pd_btree_remove(&d->rc_info, d->ll.ref_count_root, &b, &d->ll.ref_count_root);
  }
  if (r < 0)
    return r;
  if (c && !old) {
    d->ll.nr_allocated++;
    ie.nr_free = le32_put(le32_get(ie.nr_free) - 1);
    if (le32_get(ie.none_free_before) == bit)
      ie.none_free_before = le32_put(bit + 1);
  } else if (old && !c) {
    d->ll.nr_allocated--;
    ie.nr_free = le32_put(le32_get(ie.nr_free) + 1);
    if (bit < le32_get(ie.none_free_before))
      ie.none_free_before = le32_put(bit);
  }
  return pd_btree_insert(&d->index_info, d->ll.bitmap_root, &index, &ie, &d->ll.bitmap_root,
                         NULL);
}

static void smd_destroy(struct pd_sm *sm) { free(sm); }
static pd_block_t smd_nr_blocks(struct pd_sm *sm) { return to_smd(sm)->ll.nr_blocks; }

static pd_block_t smd_nr_free(struct pd_sm *sm)
{
  struct smd *d = to_smd(sm);
  return d->old.nr_blocks - d->old.nr_allocated - d->allocated_this_transaction;
}

static int smd_get_count(struct pd_sm *sm, pd_block_t b, uint32_t *c)
{
  struct smd *d = to_smd(sm);
  return lookup(d, &d->ll, b, c);
}

static int smd_inc(struct pd_sm *sm, pd_block_t b)
{
  struct smd *d = to_smd(sm);
  uint32_t c = 0;
  int r = lookup(d, &d->ll, b, &c);
  return r < 0 ? r : set_count(d, b, c + 1);
}

static int smd_dec(struct pd_sm *sm, pd_block_t b)
{
  struct smd *d = to_smd(sm);
  uint32_t c = 0;
  int r = lookup(d, &d->ll, b, &c);
  if (r == 0 && c == 0)
    return pd_fail(EINVAL, "disk space map: block %llu is free: its reference count cannot "
                   "go below 0", (unsigned long long)b);
  return r < 0 ? r : set_count(d, b, c - 1);
}

/* The first block from BEGIN to END free now and at the last commit. */
static int find_free(struct smd *d, pd_block_t begin, pd_block_t end, pd_block_t *out)
{
  for (uint64_t i = begin / EPB; i * EPB < end; i++) {
    struct pd_index_entry ie;
    int r = load_ie(d, &d->ll, i, &ie);
    if (r < 0)
      return r;
    if (le32_get(ie.nr_free) == 0)
      continue;
    uint32_t from = i == begin / EPB ? (uint32_t)(begin % EPB) : 0;
    if (from < le32_get(ie.none_free_before))
      from = le32_get(ie.none_free_before);
    struct pd_block *blk;
    r = pd_tm_read_lock(d->tm, le64_get(ie.blocknr), &pd_bitmap_validator, &blk);
    if (r < 0)
      return r;
    const uint8_t *bits = (uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header);
    for (uint32_t j = from; j < EPB && i * EPB + j < end; j++) {
      if (bitmap_get(bits, j))
        continue;
      pd_block_t b = i * EPB + j;
      uint32_t was = 0;
      if (b < d->old.nr_blocks) {
        pd_tm_unlock(d->tm, blk);
        r = lookup(d, &d->old, b, &was);
        if (r < 0)
          return r;
        r = pd_tm_read_lock(d->tm, le64_get(ie.blocknr), &pd_bitmap_validator, &blk);
        if (r < 0)
          return r;
        bits = (uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header);
      }
      if (!was) {
        pd_tm_unlock(d->tm, blk);
        *out = b;
        return 0;
      }
    }
    pd_tm_unlock(d->tm, blk);
  }
  return -ENOSPC;
}

static int smd_new_block(struct pd_sm *sm, pd_block_t *out)
{
  struct smd *d = to_smd(sm);
  int r = find_free(d, d->begin, d->ll.nr_blocks, out);
  if (r == -ENOSPC)
    r = find_free(d, 0, d->begin, out);
  if (r == -ENOSPC)
    return pd_fail(ENOSPC, "disk space map: no free block (%llu blocks)",
                   (unsigned long long)d->ll.nr_blocks);
  if (r < 0)
    return r;
  d->begin = *out + 1;
  r = set_count(d, *out, 1);
  if (r == 0)
    d->allocated_this_transaction++;
  return r;
}

static int smd_commit(struct pd_sm *sm)
{
  struct smd *d = to_smd(sm);
  d->old = d->ll;
  d->allocated_this_transaction = 0;
  return 0;
}

static void smd_copy_root(struct pd_sm *sm, struct pd_sm_root *root)
{
  struct smd *d = to_smd(sm);
  root->nr_blocks = le64_put(d->ll.nr_blocks);
  root->nr_allocated = le64_put(d->ll.nr_allocated);
  root->bitmap_root = le64_put(d->ll.bitmap_root);
  root->ref_count_root = le64_put(d->ll.ref_count_root);
}

static int smd_extend(struct pd_sm *sm, pd_block_t extra)
{
  struct smd *d = to_smd(sm);
  uint64_t old_bitmaps = (d->ll.nr_blocks + EPB - 1) / EPB;
  uint64_t new_bitmaps = (d->ll.nr_blocks + extra + EPB - 1) / EPB;
  d->ll.nr_blocks += extra;
  for (uint64_t i = old_bitmaps; i < new_bitmaps; i++) {
    struct pd_block *blk;
    int r = pd_tm_new_block(d->tm, &pd_bitmap_validator, &blk);
    if (r < 0)
      return r;
    struct pd_index_entry ie = {le64_put(pd_block_location(blk)), le32_put(EPB), le32_put(0)};
    pd_tm_unlock(d->tm, blk);
    r = pd_btree_insert(&d->index_info, d->ll.bitmap_root, &i, &ie, &d->ll.bitmap_root, NULL);
    if (r < 0)
      return r;
  }
  return 0;
}

static const struct pd_sm_ops smd_ops = {
    .destroy = smd_destroy,
    .nr_blocks = smd_nr_blocks,
    .nr_free = smd_nr_free,
    .get_count = smd_get_count,
    .inc = smd_inc,
    .dec = smd_dec,
    .new_block = smd_new_block,
    .commit = smd_commit,
    .copy_root = smd_copy_root,
    .extend = smd_extend,
};

static struct smd *smd_alloc(struct pd_tm *tm)
{
  struct smd *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->sm.ops = &smd_ops;
  d->tm = tm;
  d->index_info = (struct pd_btree_info){tm, 1, {.size = sizeof(struct pd_index_entry)}};
  d->rc_info = (struct pd_btree_info){tm, 1, {.size = 4}};
  return d;
}

int pd_sm_disk_create(struct pd_tm *tm, pd_block_t nr_blocks, struct pd_sm **out)
{
  struct smd *d = smd_alloc(tm);
  if (!d)
    return pd_fail(ENOMEM, "disk space map: out of memory");
  int r = pd_btree_empty(&d->index_info, &d->ll.bitmap_root);
  if (r == 0)
    r = pd_btree_empty(&d->rc_info, &d->ll.ref_count_root);
  if (r == 0)
    r = smd_extend(&d->sm, nr_blocks);
  if (r < 0) {
    free(d);
    return r;
  }
  d->old = d->ll;
  *out = &d->sm;
  return 0;
}

int pd_sm_disk_open(struct pd_tm *tm, const void *root_le, size_t len, struct pd_sm **out)
{
  struct pd_sm_root root;
  if (len < sizeof root)
    return pd_fail(EINVAL, "disk space map root too small");
  memcpy(&root, root_le, sizeof root);
  struct smd *d = smd_alloc(tm);
  if (!d)
    return pd_fail(ENOMEM, "disk space map: out of memory");
  d->ll = (struct ll){le64_get(root.nr_blocks), le64_get(root.nr_allocated),
                      le64_get(root.bitmap_root), le64_get(root.ref_count_root)};
  d->old = d->ll;
  *out = &d->sm;
  return 0;
}
