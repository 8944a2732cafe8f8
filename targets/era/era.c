/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * era: an origin device whose writes are recorded by "era" (dm-era), so a
 * backup or a cache can ask which blocks changed since a point in time.
 * Metadata lives on its own device in the kernel's format (persistent-data:
 * a superblock, an era array of one 32-bit era per origin block, and a
 * btree of archived writesets, each a bitset of the blocks written in its
 * era); era_dump and era_check (thin-provisioning-tools) read what udm
 * writes, and udm opens what the kernel writes.
 *
 * As in the kernel:
 *   - a write (or discard) to a block not yet marked in the current era is
 *     held; the worker marks it in the on-disk writeset and commits the
 *     metadata before the write goes on, so the metadata never misses a
 *     write that reached the origin (this is also why a flush or FUA needs
 *     no commit of its own: every write issued has its mark committed);
 *     reads, flushes and writes to marked blocks are remapped at once;
 *   - messages (checkpoint, take_metadata_snap, drop_metadata_snap) and
 *     INFO status run on the worker and are followed by a commit;
 *   - a suspend archives the current writeset and commits; a resume starts
 *     a new era (and first resizes the metadata when the origin's number of
 *     blocks changed); archived writesets are digested into the era array
 *     in steps of 100 blocks on the worker, between other work.
 * Where udm differs: TABLE status prints the devices as the table named
 * them (the kernel prints major:minor); a message sent while the device is
 * suspended runs (the kernel's waits for the resume).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <udm/target.h>

#include "../../persistent-data/bitset.h"

#define SUPERBLOCK_LOCATION 0
#define SUPERBLOCK_MAGIC 2126579579ull
#define SUPERBLOCK_CSUM_XOR 146538381u
#define ERA_VERSION 1
#define INVALID_WRITESET_ROOT SUPERBLOCK_LOCATION
#define MIN_BLOCK_SIZE 8
#define INSERTS_PER_STEP 100
#define CACHE_BLOCKS 1024

/* ---- on disk ---- */

struct writeset_disk {
  udm_le32 nr_bits;
  udm_le64 root;
};
_Static_assert(sizeof(struct writeset_disk) == 12, "writeset_disk");

struct superblock_disk {
  udm_le32 csum;
  udm_le32 flags;
  udm_le64 blocknr;
  uint8_t uuid[16];
  udm_le64 magic;
  udm_le32 version;
  uint8_t metadata_space_map_root[PD_SM_ROOT_SIZE];
  udm_le32 data_block_size;     /* sectors */
  udm_le32 metadata_block_size; /* sectors */
  udm_le32 nr_blocks;
  udm_le32 current_era;
  struct writeset_disk current_writeset;
  udm_le64 writeset_tree_root;  /* these two are all a metadata snapshot holds */
  udm_le64 era_array_root;
  udm_le64 metadata_snap;
};
_Static_assert(sizeof(struct superblock_disk) == 224, "era superblock");
_Static_assert(offsetof(struct superblock_disk, blocknr) == 8 &&
                   offsetof(struct superblock_disk, magic) == 32,
               "the header pd_check_superblock reads");

static int sb_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                    size_t size, char *why, size_t n)
{
  (void)v;
  const struct superblock_disk *sb = data;
  int r = pd_check_superblock(block, data, size, SUPERBLOCK_MAGIC, SUPERBLOCK_CSUM_XOR,
                              "an era superblock", why, n);
  if (r < 0)
    return r;
  if (le32_get(sb->version) != ERA_VERSION) {
    snprintf(why, n, "metadata version %u (only %u is supported)", le32_get(sb->version),
             ERA_VERSION);
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
    .name = "era superblock", .check = sb_check, .prepare_for_write = sb_prepare};

/* ---- metadata (used by the worker only, or while it is idle) ---- */

struct writeset {
  uint32_t nr_bits;
  pd_block_t root;
  _Atomic uint64_t *bits; /* in-core copy, read by map() */
};

struct digest {
  int (*step)(struct digest *d, void *md);
  uint32_t era, nr_bits, current_bit;
  struct writeset ws;
  udm_le32 value;
  struct pd_bitset info;
};

struct era_md {
  struct pd_bm *bm;
  struct pd_sm *sm;
  struct pd_tm *tm;
  uint32_t block_size;
  uint32_t nr_blocks;
  uint32_t current_era;
  struct writeset writesets[2];
  _Atomic(struct writeset *) current;
  pd_block_t writeset_tree_root, era_array_root, metadata_snap;
  struct pd_bitset bitset_info;
  struct pd_btree_info writeset_tree;
  struct pd_array_info era_array;
  bool archived_writesets;
  uint8_t sm_root[PD_SM_ROOT_SIZE];
};

static int ws_inc(void *context, const void *value)
{
  struct era_md *md = context;
  struct writeset_disk w;
  memcpy(&w, value, sizeof w);
  return pd_tm_inc(md->tm, le64_get(w.root));
}

static int ws_dec(void *context, const void *value)
{
  struct era_md *md = context;
  struct writeset_disk w;
  memcpy(&w, value, sizeof w);
  struct pd_bitset bs;
  pd_bitset_init(&bs, md->tm);
  return pd_bitset_del(&bs, le64_get(w.root));
}

static bool ws_equal(void *context, const void *a, const void *b)
{
  (void)context;
  return memcmp(a, b, sizeof(struct writeset_disk)) == 0;
}

static void setup_infos(struct era_md *md)
{
  pd_bitset_init(&md->bitset_info, md->tm);
  md->writeset_tree = (struct pd_btree_info){
      md->tm, 1,
      {.context = md, .size = sizeof(struct writeset_disk), .inc = ws_inc, .dec = ws_dec,
       .equal = ws_equal}};
  struct pd_btree_value_type vt = {.size = 4};
  pd_array_info_init(&md->era_array, md->tm, &vt);
}

static size_t bits_bytes(uint32_t nr_bits)
{
  return ((size_t)nr_bits + 63) / 64 * sizeof(uint64_t);
}

static bool ws_marked(struct writeset *ws, uint32_t block)
{
  return atomic_load_explicit(&ws->bits[block / 64], memory_order_acquire) >> (block % 64) & 1;
}

static void ws_mark(struct writeset *ws, uint32_t block)
{
  atomic_fetch_or_explicit(&ws->bits[block / 64], UINT64_C(1) << (block % 64),
                           memory_order_release);
}

static int save_sm_root(struct era_md *md)
{
  struct pd_sm_root root;
  pd_sm_copy_root(md->sm, &root);
  memset(md->sm_root, 0, sizeof md->sm_root);
  memcpy(md->sm_root, &root, sizeof root);
  return 0;
}

static void prepare_superblock(struct era_md *md, struct superblock_disk *sb)
{
  sb->magic = le64_put(SUPERBLOCK_MAGIC);
  sb->flags = le32_put(0);
  memset(sb->uuid, 0, sizeof sb->uuid);
  sb->version = le32_put(ERA_VERSION);
  memcpy(sb->metadata_space_map_root, md->sm_root, sizeof md->sm_root);
  sb->data_block_size = le32_put(md->block_size);
  sb->metadata_block_size = le32_put(PD_SECTORS_PER_BLOCK);
  sb->nr_blocks = le32_put(md->nr_blocks);
  sb->current_era = le32_put(md->current_era);
  struct writeset *ws = atomic_load(&md->current);
  sb->current_writeset.nr_bits = le32_put(ws->nr_bits);
  sb->current_writeset.root = le64_put(ws->root);
  sb->writeset_tree_root = le64_put(md->writeset_tree_root);
  sb->era_array_root = le64_put(md->era_array_root);
  sb->metadata_snap = le64_put(md->metadata_snap);
}

static int write_superblock(struct era_md *md)
{
  save_sm_root(md);
  struct pd_block *b;
  int r = pd_bm_write_lock_zero(md->bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
  if (r < 0)
    return r;
  prepare_superblock(md, pd_block_data(b));
  return pd_tm_commit(md->tm, b);
}

static int metadata_commit(struct era_md *md)
{
  struct writeset *ws = atomic_load(&md->current);
  int r = 0;
  if (ws->root != INVALID_WRITESET_ROOT)
    r = pd_bitset_flush(&md->bitset_info, ws->root, &ws->root);
  if (r == 0)
    r = pd_tm_pre_commit(md->tm);
  if (r == 0)
    r = write_superblock(md);
  return r;
}

static int format_metadata(struct era_md *md)
{
  int r = pd_sm_metadata_create(md->bm, pd_bm_nr_blocks(md->bm), SUPERBLOCK_LOCATION, &md->sm);
  if (r == 0)
    r = pd_tm_create(md->bm, md->sm, &md->tm);
  if (r < 0)
    return r;
  setup_infos(md);
  r = pd_btree_empty(&md->writeset_tree, &md->writeset_tree_root);
  if (r == 0)
    r = pd_array_empty(&md->era_array, &md->era_array_root);
  if (r == 0)
    r = pd_tm_pre_commit(md->tm);
  if (r == 0)
    r = write_superblock(md);
  return r;
}

static int open_metadata(struct era_md *md)
{
  struct pd_block *b;
  int r = pd_bm_read_lock(md->bm, SUPERBLOCK_LOCATION, &sb_validator, &b);
  if (r < 0)
    return r;
  struct superblock_disk *sb = pd_block_data(b);
  if (le32_get(sb->data_block_size) != md->block_size) {
    r = pd_fail(EINVAL, "changing the data block size (from %u to %u) is not supported",
                le32_get(sb->data_block_size), md->block_size);
    goto out;
  }
  if (le32_get(sb->metadata_block_size) != PD_SECTORS_PER_BLOCK) {
    r = pd_fail(EINVAL, "%s: block 0: metadata block size %u sectors (only %u is supported)",
                pd_bm_name(md->bm), le32_get(sb->metadata_block_size), PD_SECTORS_PER_BLOCK);
    goto out;
  }
  r = pd_sm_metadata_open(md->bm, sb->metadata_space_map_root,
                          sizeof sb->metadata_space_map_root, &md->sm);
  if (r == 0)
    r = pd_tm_create(md->bm, md->sm, &md->tm);
  if (r < 0)
    goto out;
  setup_infos(md);
  md->nr_blocks = le32_get(sb->nr_blocks);
  md->current_era = le32_get(sb->current_era);
  struct writeset *ws = atomic_load(&md->current);
  ws->nr_bits = le32_get(sb->current_writeset.nr_bits);
  ws->root = le64_get(sb->current_writeset.root);
  md->writeset_tree_root = le64_get(sb->writeset_tree_root);
  md->era_array_root = le64_get(sb->era_array_root);
  md->metadata_snap = le64_get(sb->metadata_snap);
  md->archived_writesets = true;
  pd_block_t n = pd_bm_nr_blocks(md->bm);
  if (md->writeset_tree_root >= n || md->era_array_root >= n || md->metadata_snap >= n ||
      ws->root >= n)
    r = pd_fail(EILSEQ, "%s: block 0: the superblock points past the end of the device",
                pd_bm_name(md->bm));
out:
  pd_bm_unlock(b);
  return r;
}

static void metadata_close(struct era_md *md)
{
  pd_tm_destroy(md->tm);
  pd_sm_destroy(md->sm);
  pd_bm_destroy(md->bm);
  free(md->writesets[0].bits);
  free(md->writesets[1].bits);
}

static int metadata_resize(struct era_md *md, uint32_t new_size)
{
  for (int i = 0; i < 2; i++) {
    _Atomic uint64_t *bits = calloc(1, bits_bytes(new_size) + sizeof(uint64_t));
    if (!bits)
      return pd_fail(ENOMEM, "era: out of memory for a writeset of %u blocks", new_size);
    free(md->writesets[i].bits);
    md->writesets[i].bits = bits;
  }
  udm_le32 zero = le32_put(0);
  int r = pd_array_resize(&md->era_array, md->era_array_root, md->nr_blocks, new_size, &zero,
                          &md->era_array_root);
  if (r == 0)
    md->nr_blocks = new_size;
  return r;
}

static int metadata_era_archive(struct era_md *md)
{
  struct writeset *ws = atomic_load(&md->current);
  if (ws->root == INVALID_WRITESET_ROOT)
    return 0;
  int r = pd_bitset_flush(&md->bitset_info, ws->root, &ws->root);
  if (r < 0)
    return r;
  struct writeset_disk value = {le32_put(ws->nr_bits), le64_put(ws->root)};
  uint64_t key = md->current_era;
  r = pd_btree_insert(&md->writeset_tree, md->writeset_tree_root, &key, &value,
                      &md->writeset_tree_root, NULL);
  if (r < 0)
    return r;
  pd_bitset_forget(&md->bitset_info);
  ws->root = INVALID_WRITESET_ROOT;
  md->archived_writesets = true;
  return 0;
}

static int metadata_new_era(struct era_md *md)
{
  struct writeset *cur = atomic_load(&md->current);
  struct writeset *next = cur == &md->writesets[0] ? &md->writesets[1] : &md->writesets[0];
  memset((void *)next->bits, 0, bits_bytes(md->nr_blocks));
  next->nr_bits = md->nr_blocks;
  pd_bitset_forget(&md->bitset_info);
  int r = pd_bitset_empty(&md->bitset_info, &next->root);
  if (r == 0)
    r = pd_bitset_resize(&md->bitset_info, next->root, 0, next->nr_bits, false, &next->root);
  if (r < 0)
    return r;
  atomic_store(&md->current, next);
  md->current_era++;
  return 0;
}

static int metadata_era_rollover(struct era_md *md)
{
  int r = metadata_era_archive(md);
  return r < 0 ? r : metadata_new_era(md);
}

static int metadata_take_snap(struct era_md *md)
{
  if (md->metadata_snap != SUPERBLOCK_LOCATION)
    return pd_fail(EINVAL, "take_metadata_snap: a metadata snapshot exists already (block %llu)",
                   (unsigned long long)md->metadata_snap);
  int r = metadata_era_rollover(md);
  if (r == 0)
    r = metadata_commit(md);
  if (r == 0)
    r = pd_tm_inc(md->tm, SUPERBLOCK_LOCATION);
  if (r < 0)
    return r;
  struct pd_block *clone;
  bool inc;
  r = pd_tm_shadow_block(md->tm, SUPERBLOCK_LOCATION, &sb_validator, &clone, &inc);
  if (r < 0) {
    pd_tm_dec(md->tm, SUPERBLOCK_LOCATION);
    return r;
  }
  r = pd_tm_inc(md->tm, md->writeset_tree_root);
  if (r == 0)
    r = pd_tm_inc(md->tm, md->era_array_root);
  md->metadata_snap = pd_block_location(clone);
  pd_tm_unlock(md->tm, clone);
  return r;
}

static int metadata_drop_snap(struct era_md *md)
{
  if (md->metadata_snap == SUPERBLOCK_LOCATION)
    return pd_fail(EINVAL, "drop_metadata_snap: there is no metadata snapshot to drop");
  struct pd_block *clone;
  int r = pd_tm_read_lock(md->tm, md->metadata_snap, &sb_validator, &clone);
  if (r < 0)
    return r;
  pd_block_t location = md->metadata_snap;
  md->metadata_snap = SUPERBLOCK_LOCATION;
  struct superblock_disk *sb = pd_block_data(clone);
  pd_block_t wt = le64_get(sb->writeset_tree_root), ea = le64_get(sb->era_array_root);
  pd_tm_unlock(md->tm, clone);
  r = pd_btree_del(&md->writeset_tree, wt);
  if (r == 0)
    r = pd_array_del(&md->era_array, ea);
  if (r == 0)
    r = pd_tm_dec(md->tm, location);
  return r;
}

/* ---- digestion of archived writesets into the era array ---- */

static int digest_lookup_writeset(struct digest *d, void *arg);

static int digest_remove_writeset(struct digest *d, void *arg)
{
  struct era_md *md = arg;
  uint64_t key = d->era;
  int r = pd_btree_remove(&md->writeset_tree, md->writeset_tree_root, &key,
                          &md->writeset_tree_root);
  if (r == 0)
    d->step = digest_lookup_writeset;
  return r;
}

static int digest_transcribe_writeset(struct digest *d, void *arg)
{
  struct era_md *md = arg;
  uint32_t b, e = d->current_bit + INSERTS_PER_STEP < d->nr_bits
                      ? d->current_bit + INSERTS_PER_STEP : d->nr_bits;
  for (b = d->current_bit; b < e; b++) {
    bool marked;
    pd_block_t root = d->ws.root;
    int r = pd_bitset_test_bit(&d->info, d->ws.root, b, &root, &marked);
    if (r < 0)
      return r;
    if (!marked)
      continue;
    r = pd_array_set_value(&md->era_array, md->era_array_root, b, &d->value,
                           &md->era_array_root);
    if (r < 0)
      return r;
  }
  if (b == d->nr_bits)
    d->step = digest_remove_writeset;
  else
    d->current_bit = b;
  return 0;
}

static int digest_lookup_writeset(struct digest *d, void *arg)
{
  struct era_md *md = arg;
  uint64_t key;
  int r = pd_btree_find_lowest_key(&md->writeset_tree, md->writeset_tree_root, &key);
  if (r == -ENODATA) {
    d->step = NULL;
    return 0;
  }
  if (r < 0)
    return r;
  struct writeset_disk w;
  r = pd_btree_lookup(&md->writeset_tree, md->writeset_tree_root, &key, &w);
  if (r < 0)
    return r;
  d->era = (uint32_t)key;
  d->ws.nr_bits = le32_get(w.nr_bits);
  d->ws.root = le64_get(w.root);
  d->value = le32_put((uint32_t)key);
  pd_bitset_init(&d->info, md->tm);
  d->nr_bits = d->ws.nr_bits < md->nr_blocks ? d->ws.nr_bits : md->nr_blocks;
  d->current_bit = 0;
  d->step = digest_transcribe_writeset;
  return 0;
}

/* ---- the target ---- */

struct era_io {
  struct udm_io *io;
  struct era_io *next;
};

struct era_rpc {
  int (*fn)(struct era_md *md, void *arg);
  void *arg;
  int result;
  bool done;
  char why[256];
  struct era_rpc *next;
};

struct era {
  struct udm_target *ti;
  struct udm_dev *metadata_dev, *origin_dev;
  uint32_t sectors_per_block;
  uint32_t nr_blocks;    /* as the kernel: 0 until the first resume */
  struct era_md md;
  bool md_open;
  struct udm_worker *worker;
  struct udm_work work;
  pthread_mutex_t lock;  /* the lists and flags below */
  pthread_cond_t rpc_done;
  bool lock_ready;
  struct era_io *deferred, **deferred_tail;
  struct era_rpc *rpcs;
  bool suspended;
  struct digest digest;
};

static void wake_worker(struct era *era)
{
  udm_worker_queue(era->worker, &era->work);
}

static uint32_t block_of(struct era *era, struct udm_io *io)
{
  return (uint32_t)(udm_target_offset(era->ti, io->sector) / era->sectors_per_block);
}

static void process_old_eras(struct era *era)
{
  if (!era->digest.step)
    return;
  int r = era->digest.step(&era->digest, &era->md);
  if (r < 0) {
    era->digest.step = NULL; /* as the kernel: digestion stops (it logs why) */
  } else if (era->digest.step) {
    pthread_mutex_lock(&era->lock);
    bool suspended = era->suspended;
    pthread_mutex_unlock(&era->lock);
    if (!suspended)
      wake_worker(era);
  }
}

static void process_deferred(struct era *era)
{
  pthread_mutex_lock(&era->lock);
  struct era_io *list = era->deferred;
  era->deferred = NULL;
  era->deferred_tail = &era->deferred;
  pthread_mutex_unlock(&era->lock);
  if (!list)
    return;
  struct era_md *md = &era->md;
  struct writeset *ws = atomic_load(&md->current);
  bool commit_needed = false, failed = false;
  for (struct era_io *e = list; e; e = e->next) {
    uint32_t b = block_of(era, e->io);
    if (ws_marked(ws, b))
      continue;
    int r = pd_bitset_set_bit(&md->bitset_info, ws->root, b, &ws->root);
    if (r < 0)
      failed = true;
    else
      commit_needed = true;
  }
  if (commit_needed && metadata_commit(md) < 0)
    failed = true; /* the held writes fail with EIO: nothing reaches the origin unrecorded */
  while (list) {
    struct era_io *e = list;
    list = e->next;
    if (failed) {
      udm_io_complete(e->io, -EIO);
      continue;
    }
    if (commit_needed)
      ws_mark(ws, block_of(era, e->io));
    udm_dev_submit_async(e->io->dev, e->io); /* completes the request */
  }
}

static void process_rpcs(struct era *era)
{
  pthread_mutex_lock(&era->lock);
  struct era_rpc *calls = era->rpcs;
  era->rpcs = NULL;
  pthread_mutex_unlock(&era->lock);
  if (!calls)
    return;
  for (struct era_rpc *c = calls; c; c = c->next) {
    c->result = c->fn(&era->md, c->arg);
    if (c->result < 0)
      snprintf(c->why, sizeof c->why, "%s", udm_errmsg());
  }
  int r = metadata_commit(&era->md);
  for (struct era_rpc *c = calls; c; c = c->next)
    if (r < 0 && c->result == 0) {
      c->result = r;
      snprintf(c->why, sizeof c->why, "metadata commit failed: %s", udm_errmsg());
    }
  pthread_mutex_lock(&era->lock);
  for (struct era_rpc *c = calls; c; c = c->next)
    c->done = true;
  pthread_cond_broadcast(&era->rpc_done);
  pthread_mutex_unlock(&era->lock);
}

static void era_do_work(struct udm_work *w)
{
  struct era *era = (struct era *)((char *)w - offsetof(struct era, work));
  if (era->md.archived_writesets) {
    era->md.archived_writesets = false;
    if (!era->digest.step) {
      memset(&era->digest, 0, sizeof era->digest);
      era->digest.step = digest_lookup_writeset;
    }
  }
  process_old_eras(era);
  process_deferred(era);
  process_rpcs(era);
}

/* Run FN on the worker, then commit; 0 or -errno with the reason in WHY. */
static int in_worker(struct era *era, int (*fn)(struct era_md *, void *), void *arg,
                     char *why, size_t n)
{
  struct era_rpc rpc = {.fn = fn, .arg = arg};
  pthread_mutex_lock(&era->lock);
  rpc.next = era->rpcs;
  era->rpcs = &rpc;
  pthread_mutex_unlock(&era->lock);
  wake_worker(era);
  pthread_mutex_lock(&era->lock);
  while (!rpc.done)
    pthread_cond_wait(&era->rpc_done, &era->lock);
  pthread_mutex_unlock(&era->lock);
  if (rpc.result < 0 && why)
    snprintf(why, n, "%s", rpc.why);
  return rpc.result;
}

static int rpc_archive(struct era_md *md, void *arg) { (void)arg; return metadata_era_archive(md); }
static int rpc_rollover(struct era_md *md, void *arg) { (void)arg; return metadata_era_rollover(md); }
static int rpc_take_snap(struct era_md *md, void *arg) { (void)arg; return metadata_take_snap(md); }
static int rpc_drop_snap(struct era_md *md, void *arg) { (void)arg; return metadata_drop_snap(md); }

struct era_stats {
  pd_block_t used, total, snap;
  uint32_t era;
};

static int rpc_stats(struct era_md *md, void *arg)
{
  struct era_stats *s = arg;
  s->total = pd_sm_nr_blocks(md->sm);
  s->used = s->total - pd_sm_nr_free(md->sm);
  s->snap = md->metadata_snap;
  s->era = md->current_era;
  return 0;
}

static void era_dtr(struct udm_target *ti)
{
  struct era *era = ti->private;
  if (!era)
    return;
  udm_worker_destroy(era->worker);
  if (era->md_open)
    metadata_close(&era->md);
  else
    pd_bm_destroy(era->md.bm);
  if (era->origin_dev)
    udm_put_device(ti, era->origin_dev);
  if (era->metadata_dev)
    udm_put_device(ti, era->metadata_dev);
  if (era->lock_ready) {
    pthread_mutex_destroy(&era->lock);
    pthread_cond_destroy(&era->rpc_done);
  }
  free(era);
}

/*
 * Construct an era mapping:
 *   <metadata dev> <origin dev> <block size>
 * The block size is in sectors, a nonzero multiple of 8.  Metadata of all
 * zeros is formatted; any other must be valid era metadata with the same
 * block size.
 */
static int era_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 3) {
    udm_target_error(ti, "Invalid argument count (want <metadata dev> <origin dev> "
                         "<block size>)");
    return -EINVAL;
  }
  struct era *era = calloc(1, sizeof *era);
  if (!era) {
    udm_target_error(ti, "Error allocating era structure");
    return -ENOMEM;
  }
  ti->private = era;
  era->ti = ti;
  pthread_mutex_init(&era->lock, NULL);
  pthread_cond_init(&era->rpc_done, NULL);
  era->lock_ready = true;
  era->deferred_tail = &era->deferred;
  era->md.current = &era->md.writesets[0];

  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &era->metadata_dev);
  if (r < 0)
    return r;
  r = udm_get_device(ti, argv[1], UDM_DEV_READ | UDM_DEV_WRITE, &era->origin_dev);
  if (r < 0)
    return r;
  if (udm_parse_uint(argv[2], &era->sectors_per_block) < 0) {
    udm_target_error(ti, "Error parsing block size '%s'", argv[2]);
    return -EINVAL;
  }
  if (era->sectors_per_block == 0 || era->sectors_per_block % MIN_BLOCK_SIZE) {
    udm_target_error(ti, "Invalid block size %u (a nonzero multiple of %u sectors)",
                     era->sectors_per_block, MIN_BLOCK_SIZE);
    return -EINVAL;
  }
  if ((ti->len + era->sectors_per_block - 1) / era->sectors_per_block >= (1ull << 31)) {
    udm_target_error(ti, "Invalid number of origin blocks (at most 2^31 - 1)");
    return -EINVAL;
  }
  ti->max_io_len = era->sectors_per_block;
  ti->num_flush_ios = 1;
  ti->num_discard_ios = 1;
  ti->per_io_size = sizeof(struct era_io);

  struct era_md *md = &era->md;
  md->block_size = era->sectors_per_block;
  r = pd_bm_create(era->metadata_dev, CACHE_BLOCKS, &md->bm);
  bool zero = false;
  if (r == 0)
    r = pd_bm_block_is_zero(md->bm, SUPERBLOCK_LOCATION, &zero);
  if (r == 0)
    r = zero ? format_metadata(md) : open_metadata(md);
  if (r < 0) {
    udm_target_error(ti, "Error reading metadata: %s", udm_errmsg());
    if (md->tm || md->sm) {
      pd_tm_destroy(md->tm);
      pd_sm_destroy(md->sm);
      md->tm = NULL;
      md->sm = NULL;
    }
    return r;
  }
  era->md_open = true;
  r = udm_worker_create(ti, &era->worker);
  if (r < 0) {
    udm_target_error(ti, "could not create the era worker");
    return r;
  }
  era->work.fn = era_do_work;
  return 0;
}

static int era_map(struct udm_target *ti, struct udm_io *io)
{
  struct era *era = ti->private;
  io->dev = era->origin_dev;
  if (io->op != UDM_OP_FLUSH)
    io->sector = udm_target_offset(ti, io->sector);
  if (io->op == UDM_OP_READ || io->op == UDM_OP_FLUSH)
    return UDM_MAPIO_REMAPPED;
  struct writeset *ws = atomic_load(&era->md.current);
  uint32_t block = (uint32_t)(io->sector / era->sectors_per_block);
  if (ws->bits && block < ws->nr_bits && ws_marked(ws, block))
    return UDM_MAPIO_REMAPPED;
  struct era_io *e = io->per_io;
  e->io = io;
  e->next = NULL;
  pthread_mutex_lock(&era->lock);
  *era->deferred_tail = e;
  era->deferred_tail = &e->next;
  pthread_mutex_unlock(&era->lock);
  wake_worker(era);
  return UDM_MAPIO_SUBMITTED;
}

static void era_postsuspend(struct udm_target *ti)
{
  struct era *era = ti->private;
  /* Failures here have no caller to go to (the kernel logs them); the next
   * resume's commit tries again, and its failure fails the resume. */
  in_worker(era, rpc_archive, NULL, NULL, 0);
  pthread_mutex_lock(&era->lock);
  era->suspended = true;
  pthread_mutex_unlock(&era->lock);
  udm_worker_drain(era->worker);
  metadata_commit(&era->md);
}

static int era_preresume(struct udm_target *ti)
{
  struct era *era = ti->private;
  uint64_t new_size = (ti->len + era->sectors_per_block - 1) / era->sectors_per_block;
  if (era->nr_blocks != new_size) {
    int r = metadata_resize(&era->md, (uint32_t)new_size);
    if (r == 0)
      r = metadata_commit(&era->md);
    if (r < 0) {
      udm_target_error(ti, "era: resizing the metadata failed: %s", udm_errmsg());
      return r;
    }
    era->nr_blocks = (uint32_t)new_size;
  }
  pthread_mutex_lock(&era->lock);
  era->suspended = false;
  pthread_mutex_unlock(&era->lock);
  char why[256];
  int r = in_worker(era, rpc_rollover, NULL, why, sizeof why);
  if (r < 0)
    udm_target_error(ti, "era: starting a new era failed: %s", why);
  return r;
}

/*
 * INFO: <metadata block size> <#used metadata blocks>/<#total metadata
 * blocks> <current era> <held metadata root | ->
 * TABLE: <metadata dev> <origin dev> <block size>
 */
static void era_status(struct udm_target *ti, enum udm_status_type type, unsigned flags,
                       struct udm_buf *out)
{
  struct era *era = ti->private;
  (void)flags;
  if (type == UDM_STATUS_IMA)
    return; /* the kernel's era measures nothing (empty IMA text) */
  if (type == UDM_STATUS_TABLE) {
    udm_buf_printf(out, "%s %s %u", udm_dev_name(era->metadata_dev),
                   udm_dev_name(era->origin_dev), era->sectors_per_block);
    return;
  }
  struct era_stats s;
  if (in_worker(era, rpc_stats, &s, NULL, 0) < 0) {
    udm_buf_puts(out, "Error");
    return;
  }
  udm_buf_printf(out, "%u %llu/%llu %u", PD_SECTORS_PER_BLOCK, (unsigned long long)s.used,
                 (unsigned long long)s.total, s.era);
  if (s.snap != SUPERBLOCK_LOCATION)
    udm_buf_printf(out, " %llu", (unsigned long long)s.snap);
  else
    udm_buf_puts(out, " -");
}

/* Messages: checkpoint, take_metadata_snap, drop_metadata_snap. */
static int era_message(struct udm_target *ti, unsigned argc, char **argv,
                       struct udm_buf *out)
{
  struct era *era = ti->private;
  (void)out;
  if (argc != 1) {
    udm_target_error(ti, "incorrect number of message arguments (era takes one word)");
    return -EINVAL;
  }
  int (*fn)(struct era_md *, void *) = NULL;
  if (!strcasecmp(argv[0], "checkpoint"))
    fn = rpc_rollover;
  else if (!strcasecmp(argv[0], "take_metadata_snap"))
    fn = rpc_take_snap;
  else if (!strcasecmp(argv[0], "drop_metadata_snap"))
    fn = rpc_drop_snap;
  if (!fn) {
    udm_target_error(ti, "unsupported message '%s'", argv[0]);
    return -EINVAL;
  }
  char why[256];
  int r = in_worker(era, fn, NULL, why, sizeof why);
  if (r < 0)
    udm_target_error(ti, "%s", why);
  return r;
}

static int era_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn, void *data)
{
  struct era *era = ti->private;
  return fn(ti, era->origin_dev, 0, udm_dev_size(era->origin_dev), data);
}

const struct udm_target_type udm_target_type_era = {
    UDM_TARGET_TYPE_INIT,
    .name = "era",
    .version = {1, 0, 0},
    .ctr = era_ctr,
    .dtr = era_dtr,
    .map = era_map,
    .status = era_status,
    .message = era_message,
    .iterate_devices = era_iterate_devices,
    .postsuspend = era_postsuspend,
    .preresume = era_preresume,
};
