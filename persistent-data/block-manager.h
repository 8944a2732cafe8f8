/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block manager: 4096-byte metadata blocks of one device, read through
 * the core's block cache (udm_bufio), checked by a validator of the block's
 * type when they come from the disk and stamped by it (checksum, block
 * number) when they go back, and locked while in use: any number of read
 * locks, or one write lock.  Locks never wait: a conflicting lock is a bug
 * of the caller (persistent-data is used by one thread at a time, under its
 * owner's lock) and fails with -EBUSY naming the block.
 *
 * Errors are -errno with a message in udm_errmsg() naming the device, the
 * block and the cause ("meta.img: block 7 is not a valid btree node: its
 * checksum is 0x1234abcd, the block's is 0x0badf00d").
 */
#ifndef UDM_PDATA_BLOCK_MANAGER_H
#define UDM_PDATA_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/target.h>

#include "format.h"

typedef uint64_t pd_block_t;

struct pd_bm;
struct pd_block;

/* Record a failure (udm_errmsg) and return -err. */
int pd_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The kernel's dm_bm_checksum: crc32c(~0) of data, not inverted, xor XOR. */
uint32_t pd_checksum(const void *data, size_t len, uint32_t xor);

/*
 * Check a block's number and checksum (first 4 bytes: the checksum of the
 * rest), the common part of every validator: 0, or -EILSEQ with the reason
 * in why.  BLOCKNR is the block's own record of where it lives.
 */
int pd_check_header(pd_block_t where, uint64_t blocknr, const void *data, size_t size,
                    uint32_t xor, char *why, size_t n);

/*
 * The checks every persistent-data superblock shares: its layout begins
 * csum, flags, blocknr (le64 at 8), uuid[16], magic (le64 at 32), as the
 * kernel's era, cache and thin superblocks do.  The block's number, then
 * MAGIC (WHAT names the superblock in the reason: "an era superblock"),
 * then the checksum; 0 or -EILSEQ with the reason in why.
 */
int pd_check_superblock(pd_block_t where, const void *data, size_t size, uint64_t magic,
                        uint32_t xor, const char *what, char *why, size_t n);
/* Before such a superblock is written at WHERE: its blocknr, then its checksum. */
void pd_prepare_superblock(pd_block_t where, void *data, size_t size, uint32_t xor);

/* A manager over DEV (opened read-write) caching at most CACHE_BLOCKS blocks. */
int pd_bm_create(struct udm_dev *dev, unsigned cache_blocks, struct pd_bm **out);
/* Writes nothing back: commit first.  Every lock must be released. */
void pd_bm_destroy(struct pd_bm *bm);
pd_block_t pd_bm_nr_blocks(const struct pd_bm *bm);
const char *pd_bm_name(const struct pd_bm *bm);

/* V may be NULL (no check: a superblock that may be all zeros). */
int pd_bm_read_lock(struct pd_bm *bm, pd_block_t b, const struct udm_bufio_validator *v,
                    struct pd_block **out);
/* Is block B all zeros (metadata never formatted)?  Read without a validator. */
int pd_bm_block_is_zero(struct pd_bm *bm, pd_block_t b, bool *zero);
/* Read and lock for writing; the block is written back at the next flush. */
int pd_bm_write_lock(struct pd_bm *bm, pd_block_t b, const struct udm_bufio_validator *v,
                     struct pd_block **out);
/* Lock for writing without reading: the block's bytes are zeros. */
int pd_bm_write_lock_zero(struct pd_bm *bm, pd_block_t b,
                          const struct udm_bufio_validator *v, struct pd_block **out);
void pd_bm_unlock(struct pd_block *blk);
void *pd_block_data(struct pd_block *blk);
pd_block_t pd_block_location(const struct pd_block *blk);

/* Write every changed block back, then flush the device. */
int pd_bm_flush(struct pd_bm *bm);
/* Locks held now (for tests and for asserting a clean state). */
unsigned pd_bm_locks_held(struct pd_bm *bm);

#endif
