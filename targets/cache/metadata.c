/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm-cache metadata in the kernel's format (drivers/md/dm-cache-metadata.c,
 * read by thin-provisioning-tools' cache_check/cache_dump): a superblock at
 * block 0, then persistent-data structures reached from it:
 *
 *   - the mapping array: one le64 per cache block, the origin block << 16
 *     | flags (1 valid, 2 dirty; format 1 keeps dirty there);
 *   - the hint array: one le32 per cache block, the policy's hint, written
 *     at a clean shutdown with the policy's name, version and hint size;
 *   - the discard bitset: one bit per discard block of the origin;
 *   - format 2 (metadata2): the dirty bits in a bitset of their own.
 *
 * The clean-shutdown flag is cleared when the metadata is opened and set
 * by the last commit of a clean suspend; metadata opened without it has
 * every mapped block dirty (the dirty bits may be stale).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/target.h>

#include "cache.h"

#define SUPERBLOCK_LOCATION 0
#define SUPERBLOCK_MAGIC 06142003ull
#define SUPERBLOCK_CSUM_XOR 9031977u
#define FLAG_CLEAN_SHUTDOWN 1u
#define FLAG_NEEDS_CHECK 2u
#define M_VALID 1u
#define M_DIRTY 2u
#define CACHE_BLOCKS 1024

struct superblock_disk {
  udm_le32 csum;
  udm_le32 flags;
  udm_le64 blocknr;
  uint8_t uuid[16];
  udm_le64 magic;
  udm_le32 version;
  uint8_t policy_name[CACHE_POLICY_NAME_SIZE];
  udm_le32 policy_hint_size;
  uint8_t metadata_space_map_root[PD_SM_ROOT_SIZE];
  udm_le64 mapping_root;
  udm_le64 hint_root;
  udm_le64 discard_root;
  udm_le64 discard_block_size;
  udm_le64 discard_nr_blocks;
  udm_le32 data_block_size;
  udm_le32 metadata_block_size;
  udm_le32 cache_blocks;
  udm_le32 compat_flags;
  udm_le32 compat_ro_flags;
  udm_le32 incompat_flags;
  udm_le32 read_hits;
  udm_le32 read_misses;
  udm_le32 write_hits;
  udm_le32 write_misses;
  udm_le32 policy_version[3];
  udm_le64 dirty_root; /* format 2 */
} __attribute__((packed));
_Static_assert(sizeof(struct superblock_disk) == 292, "cache superblock");
_Static_assert(offsetof(struct superblock_disk, blocknr) == 8 &&
                   offsetof(struct superblock_disk, magic) == 32,
               "the header pd_check_superblock reads");

static int sb_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                    size_t size, char *why, size_t n)
{
  (void)v;
  const struct superblock_disk *sb = data;
  int r = pd_check_superblock(block, data, size, SUPERBLOCK_MAGIC, SUPERBLOCK_CSUM_XOR,
                              "a cache superblock", why, n);
  if (r < 0)
    return r;
  uint32_t version = le32_get(sb->version);
  if (version < 1 || version > 2) {
    snprintf(why, n, "metadata version %u (only 1 and 2 are supported)", version);
    return -EINVAL;
  }
  return 0;
}

static void sb_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                       size_t size)
{
  (void)v;
  pd_prepare_superblock(block, data, size, SUPERBLOCK_CSUM_XOR);
}

static const struct udm_bufio_validator sb_validator = {
    .name = "cache superblock", .check = sb_check, .prepare_for_write = sb_prepare};

static void setup_infos(struct cache_md *md)
{
  struct pd_btree_value_type vt = {.size = 8};
  pd_array_info_init(&md->mapping_info, md->tm, &vt);
  vt.size = 4;
  pd_array_info_init(&md->hint_info, md->tm, &vt);
  pd_bitset_init(&md->dirty_info, md->tm);
  pd_bitset_init(&md->discard_info, md->tm);
}

static bool separate_dirty(const struct cache_md *md) { return md->version >= 2; }

static int write_superblock(struct cache_md *md)
{
  struct pd_sm_root root;
  pd_sm_copy_root(md->sm, &root);
  memset(md->sm_root, 0, sizeof md->sm_root);
  memcpy(md->sm_root, &root, sizeof root);
  struct pd_block *b;
  int r = pd_bm_write_lock_zero(md->bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
  if (r < 0)
    return r;
  struct superblock_disk *sb = pd_block_data(b);
  sb->flags = le32_put(md->flags);
  sb->magic = le64_put(SUPERBLOCK_MAGIC);
  sb->version = le32_put(md->version);
  memcpy(sb->policy_name, md->policy_name, sizeof sb->policy_name);
  sb->policy_hint_size = le32_put(md->policy_hint_size);
  memcpy(sb->metadata_space_map_root, md->sm_root, sizeof md->sm_root);
  sb->mapping_root = le64_put(md->mapping_root);
  sb->hint_root = le64_put(md->hint_root);
  sb->discard_root = le64_put(md->discard_root);
  sb->discard_block_size = le64_put(md->discard_block_size);
  sb->discard_nr_blocks = le64_put(md->discard_nr_blocks);
  sb->data_block_size = le32_put(md->data_block_size);
  sb->metadata_block_size = le32_put(PD_SECTORS_PER_BLOCK);
  sb->cache_blocks = le32_put(md->cache_blocks);
  sb->read_hits = le32_put(md->read_hits);
  sb->read_misses = le32_put(md->read_misses);
  sb->write_hits = le32_put(md->write_hits);
  sb->write_misses = le32_put(md->write_misses);
  for (int i = 0; i < 3; i++)
    sb->policy_version[i] = le32_put(md->policy_version[i]);
  if (separate_dirty(md))
    sb->dirty_root = le64_put(md->dirty_root);
  return pd_tm_commit(md->tm, b);
}

int cache_md_commit(struct cache_md *md, bool clean)
{
  int r = 0;
  if (separate_dirty(md))
    r = pd_bitset_flush(&md->dirty_info, md->dirty_root, &md->dirty_root);
  if (r == 0)
    r = pd_bitset_flush(&md->discard_info, md->discard_root, &md->discard_root);
  if (r == 0)
    r = pd_tm_pre_commit(md->tm);
  if (r < 0)
    return r;
  md->flags = clean ? md->flags | FLAG_CLEAN_SHUTDOWN : md->flags & ~FLAG_CLEAN_SHUTDOWN;
  return write_superblock(md);
}

static int format_metadata(struct cache_md *md)
{
  int r = pd_sm_metadata_create(md->bm, pd_bm_nr_blocks(md->bm), SUPERBLOCK_LOCATION, &md->sm);
  if (r == 0)
    r = pd_tm_create(md->bm, md->sm, &md->tm);
  if (r < 0)
    return r;
  setup_infos(md);
  r = pd_array_empty(&md->mapping_info, &md->mapping_root);
  if (r == 0 && separate_dirty(md))
    r = pd_bitset_empty(&md->dirty_info, &md->dirty_root);
  if (r == 0)
    r = pd_bitset_empty(&md->discard_info, &md->discard_root);
  if (r < 0)
    return r;
  md->flags = 0;
  md->hint_root = 0;
  md->cache_blocks = 0;
  md->discard_block_size = 0;
  md->discard_nr_blocks = 0;
  r = pd_tm_pre_commit(md->tm);
  if (r == 0)
    r = write_superblock(md);
  md->clean_when_opened = true;
  return r;
}

static int open_metadata(struct cache_md *md)
{
  struct pd_block *b;
  int r = pd_bm_read_lock(md->bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
  if (r < 0)
    return r;
  struct superblock_disk *sb = pd_block_data(b);
  const char *dev = pd_bm_name(md->bm);
  if (le32_get(sb->data_block_size) != md->data_block_size) {
    r = pd_fail(EINVAL, "changing the data block size (from %u to %u) is not supported",
                le32_get(sb->data_block_size), md->data_block_size);
    goto out;
  }
  if (le32_get(sb->metadata_block_size) != PD_SECTORS_PER_BLOCK) {
    r = pd_fail(EINVAL, "%s: block 0: metadata block size %u sectors (only %u is supported)",
                dev, le32_get(sb->metadata_block_size), PD_SECTORS_PER_BLOCK);
    goto out;
  }
  if (le32_get(sb->incompat_flags) || le32_get(sb->compat_ro_flags)) {
    r = pd_fail(EINVAL, "%s: block 0: unsupported optional features (incompat %#x, ro %#x)",
                dev, le32_get(sb->incompat_flags), le32_get(sb->compat_ro_flags));
    goto out;
  }
  r = pd_sm_metadata_open(md->bm, sb->metadata_space_map_root,
                          sizeof sb->metadata_space_map_root, &md->sm);
  if (r == 0)
    r = pd_tm_create(md->bm, md->sm, &md->tm);
  if (r < 0)
    goto out;
  md->version = le32_get(sb->version);
  setup_infos(md);
  md->flags = le32_get(sb->flags);
  md->clean_when_opened = md->flags & FLAG_CLEAN_SHUTDOWN;
  md->mapping_root = le64_get(sb->mapping_root);
  md->hint_root = le64_get(sb->hint_root);
  md->discard_root = le64_get(sb->discard_root);
  md->discard_block_size = le64_get(sb->discard_block_size);
  md->discard_nr_blocks = le64_get(sb->discard_nr_blocks);
  md->cache_blocks = le32_get(sb->cache_blocks);
  memcpy(md->policy_name, sb->policy_name, sizeof md->policy_name);
  for (int i = 0; i < 3; i++)
    md->policy_version[i] = le32_get(sb->policy_version[i]);
  md->policy_hint_size = le32_get(sb->policy_hint_size);
  md->read_hits = le32_get(sb->read_hits);
  md->read_misses = le32_get(sb->read_misses);
  md->write_hits = le32_get(sb->write_hits);
  md->write_misses = le32_get(sb->write_misses);
  md->dirty_root = separate_dirty(md) ? le64_get(sb->dirty_root) : 0;
  pd_block_t n = pd_bm_nr_blocks(md->bm);
  if (md->mapping_root >= n || md->hint_root >= n || md->discard_root >= n ||
      md->dirty_root >= n)
    r = pd_fail(EILSEQ, "%s: block 0: the superblock points past the end of the device", dev);
out:
  pd_bm_unlock(b);
  return r;
}

int cache_md_open(struct cache_md *md, struct udm_dev *dev, uint32_t data_block_size,
                  unsigned version)
{
  md->data_block_size = data_block_size;
  md->version = version;
  int r = pd_bm_create(dev, CACHE_BLOCKS, &md->bm);
  if (r < 0)
    return r;
  bool zero;
  r = pd_bm_block_is_zero(md->bm, SUPERBLOCK_LOCATION, &zero);
  if (r < 0)
    return r;
  r = zero ? format_metadata(md) : open_metadata(md);
  if (r == 0 && (md->flags & FLAG_NEEDS_CHECK))
    r = pd_fail(EINVAL, "needs_check is set: unable to get write access to metadata, "
                        "please check/repair metadata (cache_check, cache_repair)");
  if (r == 0)
    r = cache_md_commit(md, false); /* as the kernel: clear the clean-shutdown flag */
  return r;
}

/*
 * Roll back to the last commit (the kernel's dm_cache_metadata_abort): the
 * objects of the failed transaction are dropped and the superblock read
 * again from DEV; nothing is written.
 */
int cache_md_abort(struct cache_md *md, struct udm_dev *dev)
{
  cache_md_close(md);
  int r = pd_bm_create(dev, CACHE_BLOCKS, &md->bm);
  if (r == 0)
    r = open_metadata(md);
  return r;
}

/*
 * Set needs_check in the superblock of the last commit, in place (as the
 * kernel's dm_cache_metadata_set_needs_check).  Fails only when the
 * superblock cannot be read; its write is tried now, and again when the
 * block manager is destroyed, as the kernel's buffer is written back later.
 */
int cache_md_set_needs_check(struct cache_md *md)
{
  md->flags |= FLAG_NEEDS_CHECK;
  struct pd_block *b;
  int r = pd_bm_write_lock(md->bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
  if (r < 0)
    return r;
  struct superblock_disk *sb = pd_block_data(b);
  sb->flags = le32_put(le32_get(sb->flags) | FLAG_NEEDS_CHECK);
  pd_bm_unlock(b);
  (void)pd_bm_flush(md->bm);
  return 0;
}

int cache_md_probe(struct udm_dev *dev, uint32_t data_block_size)
{
  struct cache_md md = {.data_block_size = data_block_size};
  int r = pd_bm_create(dev, 8, &md.bm);
  if (r < 0)
    return r;
  bool zero;
  r = pd_bm_block_is_zero(md.bm, SUPERBLOCK_LOCATION, &zero);
  if (r == 0 && !zero) {
    struct pd_block *b;
    r = pd_bm_read_lock(md.bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
    if (r == 0) {
      const struct superblock_disk *sb = pd_block_data(b);
      if (le32_get(sb->data_block_size) != data_block_size)
        r = pd_fail(EINVAL, "changing the data block size (from %u to %u) is not supported",
                    le32_get(sb->data_block_size), data_block_size);
      else if (le32_get(sb->flags) & FLAG_NEEDS_CHECK)
        r = pd_fail(EINVAL, "needs_check is set: unable to get write access to metadata, "
                            "please check/repair metadata (cache_check, cache_repair)");
      pd_bm_unlock(b);
    }
  }
  pd_bm_destroy(md.bm);
  return r;
}

void cache_md_close(struct cache_md *md)
{
  pd_tm_destroy(md->tm);
  pd_sm_destroy(md->sm);
  pd_bm_destroy(md->bm);
  md->tm = NULL;
  md->sm = NULL;
  md->bm = NULL;
}

static udm_le64 pack(uint64_t oblock, unsigned flags)
{
  return le64_put(oblock << 16 | (flags & 0xffff));
}

int cache_md_resize(struct cache_md *md, uint32_t nr)
{
  udm_le64 null = pack(0, 0);
  int r = pd_array_resize(&md->mapping_info, md->mapping_root, md->cache_blocks, nr, &null,
                          &md->mapping_root);
  if (r == 0 && separate_dirty(md))
    r = pd_bitset_resize(&md->dirty_info, md->dirty_root, md->cache_blocks, nr, false,
                         &md->dirty_root);
  if (r == 0)
    md->cache_blocks = nr;
  return r;
}

int cache_md_discard_resize(struct cache_md *md, uint64_t dblock_size, uint64_t nr)
{
  int r = pd_bitset_resize(&md->discard_info, md->discard_root, (uint32_t)md->discard_nr_blocks,
                           (uint32_t)nr, false, &md->discard_root);
  if (r == 0) {
    md->discard_block_size = dblock_size;
    md->discard_nr_blocks = nr;
  }
  return r;
}

struct load_walk {
  struct cache_md *md;
  cache_md_load_fn fn;
  void *ctx;
  bool hints_valid;
};

static int load_one(void *context, uint64_t index, const void *value)
{
  struct load_walk *w = context;
  udm_le64 v;
  memcpy(&v, value, sizeof v);
  uint64_t raw = le64_get(v);
  struct cache_mapping m = {.oblock = raw >> 16, .valid = raw & M_VALID};
  if (!m.valid)
    return 0;
  if (!w->md->clean_when_opened) {
    m.dirty = true;
  } else if (separate_dirty(w->md)) {
    int r = pd_bitset_test_bit(&w->md->dirty_info, w->md->dirty_root, (uint32_t)index,
                               &w->md->dirty_root, &m.dirty);
    if (r < 0)
      return r;
  } else {
    m.dirty = raw & M_DIRTY;
  }
  if (w->hints_valid) {
    udm_le32 h;
    int r = pd_array_get_value(&w->md->hint_info, w->md->hint_root, (uint32_t)index, &h);
    if (r == 0)
      m.hint = le32_get(h);
  }
  return w->fn(w->ctx, (uint32_t)index, &m);
}

int cache_md_load(struct cache_md *md, const char *policy, const uint32_t version[3],
                  cache_md_load_fn fn, void *ctx)
{
  struct load_walk w = {md, fn, ctx, false};
  w.hints_valid = md->hint_root != 0 && md->policy_hint_size == 4 &&
                  strncmp(md->policy_name, policy, CACHE_POLICY_NAME_SIZE) == 0 &&
                  md->policy_version[0] == version[0];
  if (md->cache_blocks == 0)
    return 0;
  return pd_array_walk(&md->mapping_info, md->mapping_root, load_one, &w);
}

int cache_md_load_discards(struct cache_md *md, int (*fn)(void *ctx, uint64_t dblock), void *ctx)
{
  if (!md->clean_when_opened)
    return 0;
  for (uint64_t b = 0; b < md->discard_nr_blocks; b++) {
    bool set;
    int r = pd_bitset_test_bit(&md->discard_info, md->discard_root, (uint32_t)b,
                               &md->discard_root, &set);
    if (r < 0)
      return r;
    if (set && (r = fn(ctx, b)) < 0)
      return r;
  }
  return 0;
}

int cache_md_insert(struct cache_md *md, uint32_t cblock, uint64_t oblock, bool dirty)
{
  udm_le64 v = pack(oblock, M_VALID | (dirty && !separate_dirty(md) ? M_DIRTY : 0));
  int r = pd_array_set_value(&md->mapping_info, md->mapping_root, cblock, &v, &md->mapping_root);
  if (r == 0 && separate_dirty(md))
    r = (dirty ? pd_bitset_set_bit : pd_bitset_clear_bit)(&md->dirty_info, md->dirty_root,
                                                          cblock, &md->dirty_root);
  return r;
}

int cache_md_remove(struct cache_md *md, uint32_t cblock)
{
  udm_le64 v = pack(0, 0);
  int r = pd_array_set_value(&md->mapping_info, md->mapping_root, cblock, &v, &md->mapping_root);
  if (r == 0 && separate_dirty(md))
    r = pd_bitset_clear_bit(&md->dirty_info, md->dirty_root, cblock, &md->dirty_root);
  return r;
}

int cache_md_set_dirty(struct cache_md *md, uint32_t cblock, uint64_t oblock, bool dirty)
{
  return cache_md_insert(md, cblock, oblock, dirty);
}

int cache_md_set_discard(struct cache_md *md, uint64_t dblock, bool discard)
{
  return (discard ? pd_bitset_set_bit : pd_bitset_clear_bit)(
      &md->discard_info, md->discard_root, (uint32_t)dblock, &md->discard_root);
}

int cache_md_write_hints(struct cache_md *md, const char *policy, const uint32_t version[3],
                         uint32_t (*hint)(void *ctx, uint32_t cblock), void *ctx)
{
  int r = 0;
  if (md->hint_root != 0) {
    r = pd_array_del(&md->hint_info, md->hint_root);
    md->hint_root = 0;
    if (r < 0)
      return r;
  }
  memset(md->policy_name, 0, sizeof md->policy_name);
  snprintf(md->policy_name, sizeof md->policy_name, "%s", policy);
  memcpy(md->policy_version, version, sizeof md->policy_version);
  md->policy_hint_size = 4;
  udm_le32 zero = le32_put(0);
  pd_block_t root;
  r = pd_array_empty(&md->hint_info, &root);
  if (r == 0)
    r = pd_array_resize(&md->hint_info, root, 0, md->cache_blocks, &zero, &root);
  for (uint32_t b = 0; r == 0 && b < md->cache_blocks; b++) {
    uint32_t h = hint(ctx, b);
    if (h == 0)
      continue;
    udm_le32 v = le32_put(h);
    r = pd_array_set_value(&md->hint_info, root, b, &v, &root);
  }
  if (r == 0)
    md->hint_root = root;
  return r;
}

void cache_md_usage(struct cache_md *md, uint64_t *used, uint64_t *total)
{
  *total = pd_sm_nr_blocks(md->sm);
  *used = *total - pd_sm_nr_free(md->sm);
}

bool cache_md_needs_check(const struct cache_md *md) { return md->flags & FLAG_NEEDS_CHECK; }
