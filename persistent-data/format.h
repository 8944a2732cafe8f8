/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * On-disk structures of persistent-data, as Linux's drivers/md/persistent-data
 * and thin-provisioning-tools lay them out.  Every integer is a little-endian
 * wrapper type (drivers/common/endian.h), so a missed conversion does not
 * compile; every struct has its size asserted.  Metadata blocks are 4096
 * bytes.  Every block begins with a checksum of the rest of the block:
 * crc32c seeded with ~0, not inverted at the end (the kernel's crc32c()),
 * xor a constant of the block's type, so a block of one type never passes
 * as another.
 */
#ifndef UDM_PDATA_FORMAT_H
#define UDM_PDATA_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../drivers/common/endian.h"

#define PD_BLOCK_SIZE 4096u
#define PD_SECTORS_PER_BLOCK (PD_BLOCK_SIZE / 512u)

/* The per-type xor of each block's checksum. */
#define PD_BTREE_CSUM_XOR 121107u
#define PD_INDEX_CSUM_XOR 160478u
#define PD_BITMAP_CSUM_XOR 240779u
#define PD_ARRAY_CSUM_XOR 595846735u

/* ---- btree nodes ---- */
enum { PD_INTERNAL_NODE = 1, PD_LEAF_NODE = 2 };

struct pd_node_header {
  udm_le32 csum;        /* of everything after this field */
  udm_le32 flags;       /* PD_INTERNAL_NODE or PD_LEAF_NODE */
  udm_le64 blocknr;     /* where this node lives */
  udm_le32 nr_entries;
  udm_le32 max_entries; /* a multiple of 3 */
  udm_le32 value_size;  /* 8 (a child's block number) in internal nodes */
  udm_le32 padding;
};
_Static_assert(sizeof(struct pd_node_header) == 32, "btree node header");
/* After the header: udm_le64 keys[max_entries], then max_entries values. */

/* ---- space maps ---- */
/* One bitmap block's place in the index: where it is and how full. */
struct pd_index_entry {
  udm_le64 blocknr;
  udm_le32 nr_free;          /* entries of the bitmap with count 0 */
  udm_le32 none_free_before; /* a hint: no free entry before this one */
};
_Static_assert(sizeof(struct pd_index_entry) == 16, "index entry");

#define PD_MAX_METADATA_BITMAPS 255u
/* The metadata space map's index: one block. */
struct pd_metadata_index {
  udm_le32 csum;
  udm_le32 padding;
  udm_le64 blocknr;
  struct pd_index_entry index[PD_MAX_METADATA_BITMAPS];
};
_Static_assert(sizeof(struct pd_metadata_index) == PD_BLOCK_SIZE, "metadata index");

/* The root a superblock keeps for a space map (in a 128-byte field). */
struct pd_sm_root {
  udm_le64 nr_blocks;
  udm_le64 nr_allocated;
  udm_le64 bitmap_root;    /* metadata: the index block; disk: an index btree */
  udm_le64 ref_count_root; /* btree of block -> le32 count, for counts > 2 */
};
_Static_assert(sizeof(struct pd_sm_root) == 32, "space map root");
#define PD_SM_ROOT_SIZE 128u

/* A bitmap block: the header, then 2 bits per block (0, 1, 2, 3 = "see the
 * ref count tree"); entry i of a 64-bit word is bits 2i (high) and 2i+1 (low). */
struct pd_bitmap_header {
  udm_le32 csum;
  udm_le32 not_used;
  udm_le64 blocknr;
};
_Static_assert(sizeof(struct pd_bitmap_header) == 16, "bitmap header");
#define PD_ENTRIES_PER_BITMAP ((PD_BLOCK_SIZE - sizeof(struct pd_bitmap_header)) * 4u)

/* ---- arrays ---- */
struct pd_array_header {
  udm_le32 csum;
  udm_le32 max_entries;
  udm_le32 nr_entries;
  udm_le32 value_size;
  udm_le64 blocknr;
};
_Static_assert(sizeof(struct pd_array_header) == 24, "array block header");

#endif
