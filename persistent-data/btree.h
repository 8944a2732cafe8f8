/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copy-on-write btrees in the kernel's node format (node.h): 64-bit keys,
 * values of one fixed size, and several levels: a btree of LEVELS levels
 * maps LEVELS keys to a value, level i's leaves holding the roots of
 * level i+1's trees (thin: device, then block).  Every change goes through
 * the transaction manager (shadowing), so a root the caller committed
 * stays valid; each call that changes a tree returns its new root.
 *
 * Values are copied in and out as bytes (their on-disk, little-endian
 * form).  A value type with inc/dec is told when a value gains a reference
 * (a shared leaf was copied) or loses one (overwritten, removed, its tree
 * deleted): that is how values that are blocks (an array's blocks, a
 * bitset's root) keep their counts right.
 *
 * Nodes are split on the way down when full (a full root moves into two
 * new children and stays where it is); removal merges or evens out a child
 * with a sibling on the way down when it is a third full or less, and a
 * root left with one child takes that child's place.
 */
#ifndef UDM_PDATA_BTREE_H
#define UDM_PDATA_BTREE_H

#include "transaction-manager.h"

#define PD_BTREE_MAX_LEVELS 8

struct pd_btree_value_type {
  void *context;
  uint32_t size;   /* bytes of a value (at most PD_BLOCK_SIZE / 4) */
  /* Optional: a reference to what VALUE names was copied / dropped. */
  int (*inc)(void *context, const void *value);
  int (*dec)(void *context, const void *value);
  /* Optional: an overwrite with an equal value drops nothing. */
  bool (*equal)(void *context, const void *a, const void *b);
};

struct pd_btree_info {
  struct pd_tm *tm;
  unsigned levels; /* 1..PD_BTREE_MAX_LEVELS */
  struct pd_btree_value_type value_type;
};

/* A new empty tree (one empty leaf). */
int pd_btree_empty(struct pd_btree_info *info, pd_block_t *root);
/* Drop the reference ROOT is: nodes (and values) nobody else holds are freed. */
int pd_btree_del(struct pd_btree_info *info, pd_block_t root);
/* The value of KEYS (info->levels of them): 0, or -ENODATA when absent. */
int pd_btree_lookup(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    void *value);
/* Insert or overwrite.  *inserted (optional): whether KEYS was absent. */
int pd_btree_insert(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    const void *value, pd_block_t *new_root, bool *inserted);
/*
 * Overwrite the value of KEYS, present, without dropping the old value's
 * reference: for a caller that moved it already (an array block shadowed).
 */
int pd_btree_update(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    const void *value, pd_block_t *new_root);
/* Remove KEYS: 0, or -ENODATA when absent (the tree is then unchanged in content). */
int pd_btree_remove(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    pd_block_t *new_root);
/* The smallest / largest first-level key: -ENODATA when the tree is empty. */
int pd_btree_find_lowest_key(struct pd_btree_info *info, pd_block_t root, uint64_t *key);
int pd_btree_find_highest_key(struct pd_btree_info *info, pd_block_t root, uint64_t *key);
/*
 * Call FN for every entry in key order (keys: info->levels of them); a
 * nonzero return stops the walk and is returned.
 */
typedef int (*pd_btree_walk_fn)(void *context, const uint64_t *keys, const void *value);
int pd_btree_walk(struct pd_btree_info *info, pd_block_t root, pd_btree_walk_fn fn,
                  void *context);

#endif
