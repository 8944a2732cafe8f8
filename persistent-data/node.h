/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The btree node format (format.h) and its validator: shared by the btree
 * and by the metadata space map, which writes its reference count tree
 * itself (it sits below the transaction manager and the btree).
 *
 * A node is the header, max_entries keys, then max_entries values.  An
 * internal node's value i is the block of the child holding keys from
 * keys[i] up to keys[i+1]; a leaf's values are the tree's values.
 */
#ifndef UDM_PDATA_NODE_H
#define UDM_PDATA_NODE_H

#include <string.h>

#include "block-manager.h"

extern const struct udm_bufio_validator pd_btree_node_validator;

static inline struct pd_node_header *pd_node(void *data)
{
  return data;
}
static inline udm_le64 *pd_node_keys(void *data)
{
  return (udm_le64 *)((char *)data + sizeof(struct pd_node_header));
}
static inline uint32_t pd_node_nr(void *data) { return le32_get(pd_node(data)->nr_entries); }
static inline uint32_t pd_node_max(void *data) { return le32_get(pd_node(data)->max_entries); }
static inline uint32_t pd_node_vsize(void *data) { return le32_get(pd_node(data)->value_size); }
static inline bool pd_node_is_leaf(void *data)
{
  return le32_get(pd_node(data)->flags) & PD_LEAF_NODE;
}
static inline uint64_t pd_node_key(void *data, uint32_t i)
{
  return le64_get(pd_node_keys(data)[i]);
}
static inline void *pd_node_value(void *data, uint32_t i)
{
  return (char *)(pd_node_keys(data) + pd_node_max(data)) + (size_t)pd_node_vsize(data) * i;
}
static inline uint64_t pd_node_value64(void *data, uint32_t i)
{
  udm_le64 v;
  memcpy(&v, pd_node_value(data, i), sizeof v);
  return le64_get(v);
}

/* Entries of a node with values of VALUE_SIZE bytes: as many as fit, a multiple of 3. */
static inline uint32_t pd_node_capacity(uint32_t value_size)
{
  uint32_t n = (PD_BLOCK_SIZE - (uint32_t)sizeof(struct pd_node_header)) / (8 + value_size);
  return n / 3 * 3;
}

/* An empty node in DATA (zeroed first). */
static inline void pd_node_init(void *data, bool leaf, uint32_t value_size)
{
  memset(data, 0, PD_BLOCK_SIZE);
  struct pd_node_header *h = pd_node(data);
  h->flags = le32_put(leaf ? PD_LEAF_NODE : PD_INTERNAL_NODE);
  h->max_entries = le32_put(pd_node_capacity(value_size));
  h->value_size = le32_put(value_size);
}

/* Index of the last key <= KEY, or -1 when every key is larger. */
int pd_node_lower_bound(void *data, uint64_t key);

#endif
