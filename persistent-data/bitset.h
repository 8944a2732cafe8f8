/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bitsets in the kernel's format: an array (array.h) of little-endian
 * 64-bit words, bit i in word i / 64 at bit i % 64.  As the kernel's
 * dm_disk_bitset, one word is cached: bit changes collect in it and reach
 * the array when another word is touched or at pd_bitset_flush (call it
 * before a commit).  The bitset must stay where it was initialised.
 */
#ifndef UDM_PDATA_BITSET_H
#define UDM_PDATA_BITSET_H

#include "array.h"

struct pd_bitset {
  struct pd_array_info array;
  bool cached, dirty;
  uint32_t index;   /* of the cached word */
  uint64_t word;
};

void pd_bitset_init(struct pd_bitset *bs, struct pd_tm *tm);
int pd_bitset_empty(struct pd_bitset *bs, pd_block_t *root);
int pd_bitset_del(struct pd_bitset *bs, pd_block_t root);
/* From OLD_BITS to NEW_BITS bits; new words are all DEFAULT_VALUE. */
int pd_bitset_resize(struct pd_bitset *bs, pd_block_t root, uint32_t old_bits,
                     uint32_t new_bits, bool default_value, pd_block_t *new_root);
int pd_bitset_set_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                      pd_block_t *new_root);
int pd_bitset_clear_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                        pd_block_t *new_root);
int pd_bitset_test_bit(struct pd_bitset *bs, pd_block_t root, uint32_t bit,
                       pd_block_t *new_root, bool *result);
/* Write the cached word back. */
int pd_bitset_flush(struct pd_bitset *bs, pd_block_t root, pd_block_t *new_root);
/* Forget the cached word (after its root was dropped or replaced). */
void pd_bitset_forget(struct pd_bitset *bs);

#endif
