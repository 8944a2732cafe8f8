/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The disk space map: reference counts of the blocks of a data device (a
 * thin pool's data), in the kernel's format, kept in metadata through a
 * transaction manager: a btree of bitmap index -> struct pd_index_entry, the
 * bitmap blocks (2 bits a block, as the metadata space map's), and a btree
 * of block -> le32 count for counts above 2.  It sits above the btree (as
 * the kernel's does); its own blocks come from the metadata space map.
 * Blocks freed since the last commit are not handed out before the next
 * one: the last commit's bitmaps stay readable (shadowing never writes
 * them), and a block must be free in both.
 */
#ifndef UDM_PDATA_SPACE_MAP_DISK_H
#define UDM_PDATA_SPACE_MAP_DISK_H

#include "btree.h"

/* A new map of NR_BLOCKS data blocks, all free. */
int pd_sm_disk_create(struct pd_tm *tm, pd_block_t nr_blocks, struct pd_sm **out);
/* The map whose root (struct pd_sm_root, LEN bytes) a superblock holds. */
int pd_sm_disk_open(struct pd_tm *tm, const void *root, size_t len, struct pd_sm **out);

#endif
