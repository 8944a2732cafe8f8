/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bitsets on arrays, see bitset.h. */
#include <errno.h>

#include "bitset.h"

void pd_bitset_init(struct pd_bitset *bs, struct pd_tm *tm)
{
  struct pd_btree_value_type vt = {.size = 8};
  pd_array_info_init(&bs->array, tm, &vt);
  pd_bitset_forget(bs);
}

void pd_bitset_forget(struct pd_bitset *bs)
{
  bs->cached = bs->dirty = false;
  bs->index = 0;
  bs->word = 0;
}

int pd_bitset_empty(struct pd_bitset *bs, pd_block_t *root)
{
  pd_bitset_forget(bs);
  return pd_array_empty(&bs->array, root);
}

int pd_bitset_del(struct pd_bitset *bs, pd_block_t root)
{
  pd_bitset_forget(bs);
  return pd_array_del(&bs->array, root);
}

int pd_bitset_flush(struct pd_bitset *bs, pd_block_t root, pd_block_t *new_root)
{
  *new_root = root;
  if (!bs->cached || !bs->dirty)
    return 0;
  udm_le64 le = le64_put(bs->word);
  int r = pd_array_set_value(&bs->array, root, bs->index, &le, new_root);
  if (r == 0)
    bs->dirty = false;
  return r;
}

int pd_bitset_resize(struct pd_bitset *bs, pd_block_t root, uint32_t old_bits,
                     uint32_t new_bits, bool default_value, pd_block_t *new_root)
{
  int r = pd_bitset_flush(bs, root, &root);
  if (r < 0)
    return r;
  pd_bitset_forget(bs);
  udm_le64 fill = le64_put(default_value ? UINT64_MAX : 0);
  return pd_array_resize(&bs->array, root, (old_bits + 63) / 64, (new_bits + 63) / 64, &fill,
                         new_root);
}

/* Make word BIT / 64 the cached one. */
static int load_word(struct pd_bitset *bs, pd_block_t root, uint32_t bit, pd_block_t *new_root)
{
  uint32_t index = bit / 64;
  *new_root = root;
  if (bs->cached && bs->index == index)
    return 0;
  int r = pd_bitset_flush(bs, root, new_root);
  if (r < 0)
    return r;
  udm_le64 le;
  r = pd_array_get_value(&bs->array, *new_root, index, &le);
  if (r == -ENODATA)
    return pd_fail(EINVAL, "bitset: bit %u is past the end of the bitset", bit);
  if (r < 0)
    return r;
  bs->cached = true;
  bs->dirty = false;
  bs->index = index;
  bs->word = le64_get(le);
  return 0;
}

int pd_bitset_set_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                      pd_block_t *new_root)
{
  int r = load_word(bs, root, bit, new_root);
  if (r == 0 && !(bs->word >> (bit % 64) & 1)) {
    bs->word |= UINT64_C(1) << (bit % 64);
    bs->dirty = true;
  }
  return r;
}

int pd_bitset_clear_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                        pd_block_t *new_root)
{
  int r = load_word(bs, root, bit, new_root);
  if (r == 0 && (bs->word >> (bit % 64) & 1)) {
    bs->word &= ~(UINT64_C(1) << (bit % 64));
    bs->dirty = true;
  }
  return r;
}

int pd_bitset_test_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                       pd_block_t *new_root, bool *result)
{
  int r = load_word(bs, root, bit, new_root);
  if (r == 0)
    *result = bs->word >> (bit % 64) & 1;
  return r;
}
