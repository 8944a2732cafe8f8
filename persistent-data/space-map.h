/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Space maps: a reference count per block of a device.  Two kinds share
 * this interface (struct pd_sm, a vtable as the kernel's dm_space_map):
 *
 *   - the metadata space map (space-map-metadata.c) counts the blocks of
 *     the metadata device itself, the transaction manager's allocator;
 *   - the disk space map (space-map-disk.c) counts the blocks of a data
 *     device (thin's data), kept in btrees through a transaction manager.
 *
 * A block freed in a transaction (its count back to 0) is not handed out
 * again before the transaction commits: the last committed transaction may
 * still use it, and a crash must find it intact.
 */
#ifndef UDM_PDATA_SPACE_MAP_H
#define UDM_PDATA_SPACE_MAP_H

#include "block-manager.h"

struct pd_sm;

struct pd_sm_ops {
  void (*destroy)(struct pd_sm *sm);
  pd_block_t (*nr_blocks)(struct pd_sm *sm);
  /* Blocks free as of the last commit, less those allocated since (the kernel's count). */
  pd_block_t (*nr_free)(struct pd_sm *sm);
  int (*get_count)(struct pd_sm *sm, pd_block_t b, uint32_t *count);
  int (*inc)(struct pd_sm *sm, pd_block_t b);
  int (*dec)(struct pd_sm *sm, pd_block_t b);
  /* A block free now and at the last commit, its count set to 1. */
  int (*new_block)(struct pd_sm *sm, pd_block_t *b);
  /* Write the space map's own blocks (before the block manager's flush). */
  int (*commit)(struct pd_sm *sm);
  /* The root for the superblock (struct pd_sm_root), valid after commit. */
  void (*copy_root)(struct pd_sm *sm, struct pd_sm_root *root);
  /* Grow by EXTRA blocks. */
  int (*extend)(struct pd_sm *sm, pd_block_t extra);
};

struct pd_sm {
  const struct pd_sm_ops *ops;
};

static inline int pd_sm_get_count(struct pd_sm *sm, pd_block_t b, uint32_t *c)
{
  return sm->ops->get_count(sm, b, c);
}
static inline int pd_sm_inc(struct pd_sm *sm, pd_block_t b) { return sm->ops->inc(sm, b); }
static inline int pd_sm_dec(struct pd_sm *sm, pd_block_t b) { return sm->ops->dec(sm, b); }
static inline int pd_sm_new_block(struct pd_sm *sm, pd_block_t *b)
{
  return sm->ops->new_block(sm, b);
}
static inline int pd_sm_commit(struct pd_sm *sm) { return sm->ops->commit(sm); }
static inline pd_block_t pd_sm_nr_blocks(struct pd_sm *sm) { return sm->ops->nr_blocks(sm); }
static inline pd_block_t pd_sm_nr_free(struct pd_sm *sm) { return sm->ops->nr_free(sm); }
static inline void pd_sm_copy_root(struct pd_sm *sm, struct pd_sm_root *root)
{
  sm->ops->copy_root(sm, root);
}
static inline void pd_sm_destroy(struct pd_sm *sm)
{
  if (sm)
    sm->ops->destroy(sm);
}

/* The metadata space map's blocks' validators (checkers use them too). */
extern const struct udm_bufio_validator pd_index_validator;
extern const struct udm_bufio_validator pd_bitmap_validator;

/*
 * A new metadata space map over NR_BLOCKS blocks of BM (at most
 * PD_MAX_METADATA_BITMAPS bitmaps' worth; more is not used), with blocks
 * 0..SUPERBLOCK counted once (the superblock is written in place).
 */
int pd_sm_metadata_create(struct pd_bm *bm, pd_block_t nr_blocks, pd_block_t superblock,
                          struct pd_sm **out);
/* Open the metadata space map whose root a superblock holds. */
int pd_sm_metadata_open(struct pd_bm *bm, const void *root, size_t len, struct pd_sm **out);
/* The most blocks a metadata space map counts. */
#define PD_SM_METADATA_MAX_BLOCKS ((pd_block_t)PD_MAX_METADATA_BITMAPS * PD_ENTRIES_PER_BITMAP)

#endif
