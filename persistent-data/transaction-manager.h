/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transaction manager: copy-on-write of metadata blocks (shadowing) over
 * a block manager and a space map, and the commit order that keeps the last
 * committed transaction whole on disk whatever happens meanwhile.
 *
 * A block reachable from the committed superblock is never written in
 * place: pd_tm_shadow_block() gives a copy on a new block the first time a
 * transaction changes it (later changes in the same transaction go to that
 * copy), and drops one reference to the original.  When the original was
 * shared (count above 1), *inc_children tells the caller to count the
 * references its copy holds (a btree node's children) once more.
 *
 * Commit, as the kernel's: pd_tm_pre_commit() writes the space map and
 * every changed block and flushes; the caller then fills its superblock
 * (pd_bm_write_lock_zero of the superblock's location) and hands it to
 * pd_tm_commit(), which writes it and flushes again.  A crash before that
 * write leaves the previous superblock and everything it reaches intact,
 * since nothing it reaches was written (new blocks only) or handed out
 * again (the space map keeps blocks freed since the last commit).
 */
#ifndef UDM_PDATA_TRANSACTION_MANAGER_H
#define UDM_PDATA_TRANSACTION_MANAGER_H

#include "space-map.h"

struct pd_tm;

/* A manager over BM and SM (both stay the caller's). */
int pd_tm_create(struct pd_bm *bm, struct pd_sm *sm, struct pd_tm **out);
void pd_tm_destroy(struct pd_tm *tm);
struct pd_bm *pd_tm_bm(struct pd_tm *tm);
struct pd_sm *pd_tm_sm(struct pd_tm *tm);

/* A new block, counted once, write-locked and zeroed. */
int pd_tm_new_block(struct pd_tm *tm, const struct udm_bufio_validator *v,
                    struct pd_block **out);
/* A write-locked copy of ORIG this transaction may change (see above). */
int pd_tm_shadow_block(struct pd_tm *tm, pd_block_t orig, const struct udm_bufio_validator *v,
                       struct pd_block **out, bool *inc_children);
int pd_tm_read_lock(struct pd_tm *tm, pd_block_t b, const struct udm_bufio_validator *v,
                    struct pd_block **out);
void pd_tm_unlock(struct pd_tm *tm, struct pd_block *blk);

int pd_tm_inc(struct pd_tm *tm, pd_block_t b);
int pd_tm_dec(struct pd_tm *tm, pd_block_t b);
int pd_tm_ref(struct pd_tm *tm, pd_block_t b, uint32_t *count);

int pd_tm_pre_commit(struct pd_tm *tm);
/* Write the superblock SB (write-locked by the caller; unlocked here), flush. */
int pd_tm_commit(struct pd_tm *tm, struct pd_block *sb);

#endif
