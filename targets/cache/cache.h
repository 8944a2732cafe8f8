/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cache target's parts: its metadata in the kernel's dm-cache format
 * (metadata.c) and its policies (policy.c), used by the target (cache.c).
 */
#ifndef UDM_TARGET_CACHE_H
#define UDM_TARGET_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../persistent-data/bitset.h"

#define CACHE_POLICY_NAME_SIZE 16

/* ---- metadata (dm-cache-metadata.c's layout) ---- */

/* What the metadata holds for one cache block, in core. */
struct cache_mapping {
  uint64_t oblock;
  bool valid, dirty;
  uint32_t hint;
};

struct cache_md {
  struct pd_bm *bm;
  struct pd_sm *sm;
  struct pd_tm *tm;
  unsigned version;          /* 1 or 2 (metadata2: a separate dirty bitset) */
  uint32_t data_block_size;  /* sectors */
  uint32_t cache_blocks;
  uint32_t flags;            /* superblock flags */
  bool clean_when_opened;
  pd_block_t mapping_root, hint_root, discard_root, dirty_root;
  uint64_t discard_block_size, discard_nr_blocks;
  char policy_name[CACHE_POLICY_NAME_SIZE];
  uint32_t policy_version[3];
  uint32_t policy_hint_size;
  uint32_t read_hits, read_misses, write_hits, write_misses;
  struct pd_array_info mapping_info, hint_info;
  struct pd_bitset dirty_info, discard_info;
  uint8_t sm_root[PD_SM_ROOT_SIZE];
};

/*
 * Open the metadata on DEV (format it when its superblock is all zeros),
 * clearing the clean-shutdown flag on disk as the kernel does.  Errors name
 * the block and the cause (udm_errmsg()).
 */
int cache_md_open(struct cache_md *md, struct udm_dev *dev, uint32_t data_block_size,
                  unsigned version);
/* Check the superblock (when not all zeros) without writing anything. */
int cache_md_probe(struct udm_dev *dev, uint32_t data_block_size);
void cache_md_close(struct cache_md *md);
/* Drop the transaction under way: back to the last commit on DEV, nothing written. */
int cache_md_abort(struct cache_md *md, struct udm_dev *dev);
/* Set needs_check in the committed superblock (an error only if it cannot be read). */
int cache_md_set_needs_check(struct cache_md *md);
/* Resize the mapping array (and dirty bitset) to NR cache blocks. */
int cache_md_resize(struct cache_md *md, uint32_t nr);
int cache_md_discard_resize(struct cache_md *md, uint64_t dblock_size, uint64_t nr);
/* FN for each cache block's mapping, dirty and hint (hints valid when *hints_valid). */
typedef int (*cache_md_load_fn)(void *ctx, uint32_t cblock, const struct cache_mapping *m);
int cache_md_load(struct cache_md *md, const char *policy, const uint32_t version[3],
                  cache_md_load_fn fn, void *ctx);
int cache_md_load_discards(struct cache_md *md, int (*fn)(void *ctx, uint64_t dblock), void *ctx);
int cache_md_insert(struct cache_md *md, uint32_t cblock, uint64_t oblock, bool dirty);
int cache_md_remove(struct cache_md *md, uint32_t cblock);
int cache_md_set_dirty(struct cache_md *md, uint32_t cblock, uint64_t oblock, bool dirty);
int cache_md_set_discard(struct cache_md *md, uint64_t dblock, bool discard);
/* Replace the hint array: HINT(ctx, cblock) for each of the cache blocks. */
int cache_md_write_hints(struct cache_md *md, const char *policy, const uint32_t version[3],
                         uint32_t (*hint)(void *ctx, uint32_t cblock), void *ctx);
/* Commit; CLEAN sets the clean-shutdown flag, else it is cleared. */
int cache_md_commit(struct cache_md *md, bool clean);
void cache_md_usage(struct cache_md *md, uint64_t *used, uint64_t *total);
bool cache_md_needs_check(const struct cache_md *md);

/* ---- policies ---- */

enum cache_work { WORK_NONE, WORK_PROMOTE, WORK_DEMOTE, WORK_WRITEBACK };

struct cache_policy;

/*
 * Everything below is called under the target's lock.  The policy sees
 * hits and misses, and is asked for background work; it never touches
 * metadata or devices.
 */
struct cache_policy *policy_create(const char *name, uint32_t nr_cblocks, uint64_t nr_oblocks);
void policy_destroy(struct cache_policy *p);
const char *policy_name(const struct cache_policy *p);
const uint32_t *policy_version(const struct cache_policy *p);
bool policy_promotes(const struct cache_policy *p);
/* A mapped block CBLOCK (from the metadata) with its hint. */
void policy_load(struct cache_policy *p, uint32_t cblock, uint32_t hint);
uint32_t policy_hint(struct cache_policy *p, uint32_t cblock);
void policy_hit(struct cache_policy *p, uint32_t cblock);
/* A miss: true when OBLOCK has become a promotion candidate. */
bool policy_miss(struct cache_policy *p, uint64_t oblock);
/*
 * Background work: the kind, and the blocks.  IS_DIRTY(ctx, cblock) and
 * IS_BUSY(ctx, cblock) tell the policy a block's state; HAS_FREE says a
 * free cache block exists; IDLE that no I/O came lately.
 */
struct policy_query {
  bool (*is_dirty)(void *ctx, uint32_t cblock);
  bool (*is_busy)(void *ctx, uint32_t cblock);
  bool (*is_cached)(void *ctx, uint64_t oblock);
  void *ctx;
  bool has_free, idle;
  bool writeback_only; /* the metadata is read-only: no promotion, no demotion */
};
enum cache_work policy_next_work(struct cache_policy *p, const struct policy_query *q,
                                 uint64_t *oblock, uint32_t *cblock);
/* The cache block was freed (demoted or invalidated) / filled (promoted). */
void policy_removed(struct cache_policy *p, uint32_t cblock);
void policy_inserted(struct cache_policy *p, uint32_t cblock);

#endif
