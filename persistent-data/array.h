/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Arrays of fixed-size values in the kernel's format: a one-level btree
 * maps the index of each array block to the block, and each array block
 * (struct pd_array_header, then the values) holds as many values as fit;
 * all but the last are full.  Growing an array fills whole blocks with one
 * block shared by all of them (counted once per use, as the kernel does),
 * so an array of a million zeros costs a handful of blocks; writing to a
 * shared block copies it (shadowing).
 *
 * The value type's inc/dec (optional) count the references values hold, as
 * for btrees; an array takes over the reference of each value given to it.
 * The info must stay where it was initialised (its btree points back to it).
 */
#ifndef UDM_PDATA_ARRAY_H
#define UDM_PDATA_ARRAY_H

#include "btree.h"

struct pd_array_info {
  struct pd_btree_info btree;              /* index -> array block */
  struct pd_btree_value_type value_type;   /* the array's values */
};

extern const struct udm_bufio_validator pd_array_validator;

void pd_array_info_init(struct pd_array_info *info, struct pd_tm *tm,
                        const struct pd_btree_value_type *vt);
/* Values an array block of this info holds. */
uint32_t pd_array_block_capacity(const struct pd_array_info *info);
int pd_array_empty(struct pd_array_info *info, pd_block_t *root);
/* Drop the array ROOT (blocks nobody else holds are freed, their values dropped). */
int pd_array_del(struct pd_array_info *info, pd_block_t root);
/* From OLD_SIZE to NEW_SIZE values; new ones are copies of VALUE. */
int pd_array_resize(struct pd_array_info *info, pd_block_t root, uint32_t old_size,
                    uint32_t new_size, const void *value, pd_block_t *new_root);
/* 0, or -ENODATA past the end. */
int pd_array_get_value(struct pd_array_info *info, pd_block_t root, uint32_t index,
                       void *value);
int pd_array_set_value(struct pd_array_info *info, pd_block_t root, uint32_t index,
                       const void *value, pd_block_t *new_root);
/* FN for every value in index order; a nonzero return stops the walk. */
typedef int (*pd_array_walk_fn)(void *context, uint64_t index, const void *value);
int pd_array_walk(struct pd_array_info *info, pd_block_t root, pd_array_walk_fn fn,
                  void *context);

#endif
