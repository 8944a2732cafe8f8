/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The btree node validator and search: see node.h. */
#include <errno.h>
#include <stdio.h>

#include "node.h"

static int node_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                      size_t size, char *why, size_t n)
{
  (void)v;
  const struct pd_node_header *h = data;
  int r = pd_check_header(block, le64_get(h->blocknr), data, size, PD_BTREE_CSUM_XOR, why, n);
  if (r < 0)
    return r;
  uint32_t max = le32_get(h->max_entries), nr = le32_get(h->nr_entries);
  uint64_t vs = le32_get(h->value_size);
  if (sizeof *h + (8 + vs) * max > size) {
    snprintf(why, n, "%u entries of %llu-byte values do not fit", max, (unsigned long long)vs);
    return -EILSEQ;
  }
  if (nr > max) {
    snprintf(why, n, "it has %u entries, more than its maximum %u", nr, max);
    return -EILSEQ;
  }
  uint32_t flags = le32_get(h->flags);
  if (!(flags & PD_INTERNAL_NODE) == !(flags & PD_LEAF_NODE)) {
    snprintf(why, n, "flags 0x%x make it neither an internal node nor a leaf", flags);
    return -EILSEQ;
  }
  if ((flags & PD_INTERNAL_NODE) && vs != 8) {
    snprintf(why, n, "an internal node with %llu-byte values", (unsigned long long)vs);
    return -EILSEQ;
  }
  return 0;
}

static void node_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                         size_t size)
{
  (void)v;
  struct pd_node_header *h = data;
  h->blocknr = le64_put(block);
  h->csum = le32_put(pd_checksum((char *)data + 4, size - 4, PD_BTREE_CSUM_XOR));
}

const struct udm_bufio_validator pd_btree_node_validator = {
    .name = "btree node", .check = node_check, .prepare_for_write = node_prepare};

int pd_node_lower_bound(void *data, uint64_t key)
{
  int lo = -1, hi = (int)pd_node_nr(data);
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (pd_node_key(data, (uint32_t)mid) <= key)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}
