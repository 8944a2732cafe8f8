/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Arrays on btrees, see array.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

#define HDR sizeof(struct pd_array_header)

static int array_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                       size_t size, char *why, size_t n)
{
  (void)v;
  const struct pd_array_header *h = data;
  int r = pd_check_header(block, le64_get(h->blocknr), data, size, PD_ARRAY_CSUM_XOR, why, n);
  if (r < 0)
    return r;
  uint64_t vs = le32_get(h->value_size), max = le32_get(h->max_entries);
  if (vs == 0 || HDR + vs * max > size || le32_get(h->nr_entries) > max) {
    snprintf(why, n, "%u of %u entries of %llu bytes do not fit", le32_get(h->nr_entries),
             (unsigned)max, (unsigned long long)vs);
    return -EILSEQ;
  }
  return 0;
}

static void array_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                          size_t size)
{
  (void)v;
  struct pd_array_header *h = data;
  h->blocknr = le64_put(block);
  h->csum = le32_put(pd_checksum((char *)data + 4, size - 4, PD_ARRAY_CSUM_XOR));
}

const struct udm_bufio_validator pd_array_validator = {
    .name = "array block", .check = array_check, .prepare_for_write = array_prepare};

static void *element(void *ab, uint32_t vs, uint32_t i)
{
  return (char *)ab + HDR + (size_t)vs * i;
}

static uint32_t nr_of(void *ab) { return le32_get(((struct pd_array_header *)ab)->nr_entries); }

static void set_nr(void *ab, uint32_t nr)
{
  ((struct pd_array_header *)ab)->nr_entries = le32_put(nr);
}

uint32_t pd_array_block_capacity(const struct pd_array_info *info)
{
  return (uint32_t)((PD_BLOCK_SIZE - HDR) / info->value_type.size);
}

static int inc_values(struct pd_array_info *info, void *ab, uint32_t from, uint32_t to)
{
  const struct pd_btree_value_type *vt = &info->value_type;
  int r = 0;
  for (uint32_t i = from; vt->inc && i < to && r == 0; i++)
    r = vt->inc(vt->context, element(ab, vt->size, i));
  return r;
}

static int dec_values(struct pd_array_info *info, void *ab, uint32_t from, uint32_t to)
{
  const struct pd_btree_value_type *vt = &info->value_type;
  int r = 0;
  for (uint32_t i = from; vt->dec && i < to && r == 0; i++)
    r = vt->dec(vt->context, element(ab, vt->size, i));
  return r;
}

/* The btree's values are array blocks: counting them, and their values on the last drop. */
static int block_inc(void *context, const void *value)
{
  struct pd_array_info *info = context;
  udm_le64 b;
  memcpy(&b, value, sizeof b);
  return pd_tm_inc(info->btree.tm, le64_get(b));
}

static int block_dec(void *context, const void *value)
{
  struct pd_array_info *info = context;
  udm_le64 le;
  memcpy(&le, value, sizeof le);
  pd_block_t b = le64_get(le);
  uint32_t count;
  int r = pd_tm_ref(info->btree.tm, b, &count);
  if (r == 0 && count == 1 && info->value_type.dec) {
    struct pd_block *blk;
    r = pd_tm_read_lock(info->btree.tm, b, &pd_array_validator, &blk);
    if (r < 0)
      return r;
    void *ab = pd_block_data(blk);
    r = dec_values(info, ab, 0, nr_of(ab));
    pd_tm_unlock(info->btree.tm, blk);
  }
  return r ? r : pd_tm_dec(info->btree.tm, b);
}

static bool block_equal(void *context, const void *a, const void *b)
{
  (void)context;
  return memcmp(a, b, 8) == 0;
}

void pd_array_info_init(struct pd_array_info *info, struct pd_tm *tm,
                        const struct pd_btree_value_type *vt)
{
  info->value_type = *vt;
  info->btree.tm = tm;
  info->btree.levels = 1;
  info->btree.value_type = (struct pd_btree_value_type){
      .context = info, .size = 8, .inc = block_inc, .dec = block_dec, .equal = block_equal};
}

int pd_array_empty(struct pd_array_info *info, pd_block_t *root)
{
  return pd_btree_empty(&info->btree, root);
}

int pd_array_del(struct pd_array_info *info, pd_block_t root)
{
  return pd_btree_del(&info->btree, root);
}

/* A new array block with N copies of VALUE, write-locked. */
static int new_ablock(struct pd_array_info *info, uint32_t n, const void *value,
                      struct pd_block **out)
{
  int r = pd_tm_new_block(info->btree.tm, &pd_array_validator, out);
  if (r < 0)
    return r;
  void *ab = pd_block_data(*out);
  struct pd_array_header *h = ab;
  uint32_t vs = info->value_type.size;
  h->max_entries = le32_put(pd_array_block_capacity(info));
  h->value_size = le32_put(vs);
  for (uint32_t i = 0; i < n; i++)
    memcpy(element(ab, vs, i), value, vs);
  set_nr(ab, n);
  r = inc_values(info, ab, 0, n);
  if (r < 0)
    pd_tm_unlock(info->btree.tm, *out);
  return r;
}

static int lookup_ablock(struct pd_array_info *info, pd_block_t root, uint64_t index,
                         pd_block_t *b)
{
  udm_le64 le;
  int r = pd_btree_lookup(&info->btree, root, &index, &le);
  if (r == 0)
    *b = le64_get(le);
  return r;
}

/* Shadow array block INDEX; the btree then points to the copy. */
static int shadow_ablock(struct pd_array_info *info, pd_block_t root, uint64_t index,
                         struct pd_block **out, pd_block_t *new_root)
{
  pd_block_t b = 0;
  int r = lookup_ablock(info, root, index, &b);
  if (r < 0)
    return r == -ENODATA ? pd_fail(EILSEQ, "array: block %llu of the array is missing",
                                   (unsigned long long)index) : r;
  bool inc;
  r = pd_tm_shadow_block(info->btree.tm, b, &pd_array_validator, out, &inc);
  if (r < 0)
    return r;
  void *ab = pd_block_data(*out);
  if (le32_get(((struct pd_array_header *)ab)->value_size) != info->value_type.size) {
    pd_tm_unlock(info->btree.tm, *out);
    return pd_fail(EILSEQ, "array: block %llu holds %u-byte values, the array %u-byte ones",
                   (unsigned long long)pd_block_location(*out),
                   le32_get(((struct pd_array_header *)ab)->value_size), info->value_type.size);
  }
  if (inc)
    r = inc_values(info, ab, 0, nr_of(ab));
  *new_root = root;
  if (r == 0 && pd_block_location(*out) != b) {
    udm_le64 le = le64_put(pd_block_location(*out));
    r = pd_btree_update(&info->btree, root, &index, &le, new_root);
  }
  if (r < 0)
    pd_tm_unlock(info->btree.tm, *out);
  return r;
}

static int insert_ablock(struct pd_array_info *info, pd_block_t root, uint64_t index,
                         pd_block_t b, pd_block_t *new_root)
{
  udm_le64 le = le64_put(b);
  return pd_btree_insert(&info->btree, root, &index, &le, new_root, NULL);
}

static int grow(struct pd_array_info *info, pd_block_t root, uint32_t old_size,
                uint32_t new_size, const void *value, pd_block_t *new_root)
{
  uint32_t max = pd_array_block_capacity(info);
  uint64_t old_blocks = ((uint64_t)old_size + max - 1) / max;
  uint64_t full_end = new_size / max; /* blocks that end up full */
  int r = 0;
  *new_root = root;
  if (old_size % max) {
    struct pd_block *blk;
    r = shadow_ablock(info, *new_root, old_blocks - 1, &blk, new_root);
    if (r < 0)
      return r;
    void *ab = pd_block_data(blk);
    uint32_t from = nr_of(ab), to = new_size / max >= old_blocks ? max : new_size % max;
    for (uint32_t i = from; i < to; i++)
      memcpy(element(ab, info->value_type.size, i), value, info->value_type.size);
    set_nr(ab, to);
    r = inc_values(info, ab, from, to);
    pd_tm_unlock(info->btree.tm, blk);
    if (r < 0)
      return r;
  }
  if (full_end > old_blocks) {
    struct pd_block *blk;
    r = new_ablock(info, max, value, &blk);
    if (r < 0)
      return r;
    pd_block_t b = pd_block_location(blk);
    pd_tm_unlock(info->btree.tm, blk);
    for (uint64_t i = old_blocks; i < full_end && r == 0; i++) {
      if (i > old_blocks)
        r = pd_tm_inc(info->btree.tm, b);
      if (r == 0)
        r = insert_ablock(info, *new_root, i, b, new_root);
    }
  }
  if (r == 0 && new_size % max && full_end >= old_blocks) {
    struct pd_block *blk;
    r = new_ablock(info, new_size % max, value, &blk);
    if (r < 0)
      return r;
    pd_block_t b = pd_block_location(blk);
    pd_tm_unlock(info->btree.tm, blk);
    r = insert_ablock(info, *new_root, full_end, b, new_root);
  }
  return r;
}

static int shrink(struct pd_array_info *info, pd_block_t root, uint32_t old_size,
                  uint32_t new_size, pd_block_t *new_root)
{
  uint32_t max = pd_array_block_capacity(info);
  uint64_t old_blocks = ((uint64_t)old_size + max - 1) / max;
  uint64_t new_blocks = ((uint64_t)new_size + max - 1) / max;
  int r = 0;
  *new_root = root;
  for (uint64_t i = old_blocks; i-- > new_blocks && r == 0;)
    r = pd_btree_remove(&info->btree, *new_root, &i, new_root);
  if (r == 0 && new_size % max) {
    struct pd_block *blk;
    r = shadow_ablock(info, *new_root, new_blocks - 1, &blk, new_root);
    if (r < 0)
      return r;
    void *ab = pd_block_data(blk);
    r = dec_values(info, ab, new_size % max, nr_of(ab));
    uint32_t vs = info->value_type.size;
    memset(element(ab, vs, new_size % max), 0, (size_t)(nr_of(ab) - new_size % max) * vs);
    set_nr(ab, new_size % max);
    pd_tm_unlock(info->btree.tm, blk);
  }
  return r;
}

int pd_array_resize(struct pd_array_info *info, pd_block_t root, uint32_t old_size,
                    uint32_t new_size, const void *value, pd_block_t *new_root)
{
  if (new_size == old_size) {
    *new_root = root;
    return 0;
  }
  return new_size > old_size ? grow(info, root, old_size, new_size, value, new_root)
                             : shrink(info, root, old_size, new_size, new_root);
}

int pd_array_get_value(struct pd_array_info *info, pd_block_t root, uint32_t index,
                       void *value)
{
  uint32_t max = pd_array_block_capacity(info);
  pd_block_t b = 0;
  int r = lookup_ablock(info, root, index / max, &b);
  if (r < 0)
    return r;
  struct pd_block *blk;
  r = pd_tm_read_lock(info->btree.tm, b, &pd_array_validator, &blk);
  if (r < 0)
    return r;
  void *ab = pd_block_data(blk);
  if (index % max >= nr_of(ab))
    r = -ENODATA;
  else
    memcpy(value, element(ab, info->value_type.size, index % max), info->value_type.size);
  pd_tm_unlock(info->btree.tm, blk);
  return r;
}

int pd_array_set_value(struct pd_array_info *info, pd_block_t root, uint32_t index,
                       const void *value, pd_block_t *new_root)
{
  uint32_t max = pd_array_block_capacity(info);
  pd_block_t b = 0;
  int r = lookup_ablock(info, root, index / max, &b); /* absent: -ENODATA, nothing shadowed */
  if (r < 0)
    return r;
  struct pd_block *blk;
  r = shadow_ablock(info, root, index / max, &blk, new_root);
  if (r < 0)
    return r;
  void *ab = pd_block_data(blk);
  const struct pd_btree_value_type *vt = &info->value_type;
  if (index % max >= nr_of(ab)) {
    r = -ENODATA;
  } else {
    void *old = element(ab, vt->size, index % max);
    if (vt->dec && !(vt->equal && vt->equal(vt->context, old, value)))
      r = vt->dec(vt->context, old);
    memcpy(old, value, vt->size);
  }
  pd_tm_unlock(info->btree.tm, blk);
  return r;
}

struct array_walk {
  struct pd_array_info *info;
  pd_array_walk_fn fn;
  void *context;
};

static int walk_ablock(void *context, const uint64_t *keys, const void *value)
{
  struct array_walk *w = context;
  struct pd_array_info *info = w->info;
  udm_le64 le;
  memcpy(&le, value, sizeof le);
  struct pd_block *blk;
  int r = pd_tm_read_lock(info->btree.tm, le64_get(le), &pd_array_validator, &blk);
  if (r < 0)
    return r;
  void *ab = pd_block_data(blk);
  uint32_t vs = info->value_type.size, max = pd_array_block_capacity(info), nr = nr_of(ab);
  if (le32_get(((struct pd_array_header *)ab)->value_size) != vs) {
    pd_tm_unlock(info->btree.tm, blk);
    return pd_fail(EILSEQ, "array: block %llu holds values of another size",
                   (unsigned long long)le64_get(le));
  }
  unsigned char *copy = malloc((size_t)nr * vs + 1);
  if (copy)
    memcpy(copy, element(ab, vs, 0), (size_t)nr * vs);
  pd_tm_unlock(info->btree.tm, blk);
  if (!copy)
    return pd_fail(ENOMEM, "array walk: out of memory");
  for (uint32_t i = 0; i < nr && r == 0; i++)
    r = w->fn(w->context, keys[0] * max + i, copy + (size_t)i * vs);
  free(copy);
  return r;
}

int pd_array_walk(struct pd_array_info *info, pd_block_t root, pd_array_walk_fn fn,
                  void *context)
{
  struct array_walk w = {info, fn, context};
  return pd_btree_walk(&info->btree, root, walk_ablock, &w);
}
