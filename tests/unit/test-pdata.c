/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persistent-data layers against models, on a real file:
 *   - 100,000 random inserts, overwrites, removes and lookups in a btree
 *     against a plain map, committed and reopened along the way, and a
 *     two-level btree the same way on a smaller scale;
 *   - space-map reference counts (including counts above 2, which live in
 *     the ref count tree) against a counter, across commits and reopens;
 *   - arrays and bitsets resized up and down across block boundaries
 *     (shared blocks included) and written at random against plain arrays;
 *   - shared trees (a snapshot's inc of a root): changing one copy leaves
 *     the other whole, and deleting it frees exactly its own blocks;
 *   - after every commit, every block's count equals the references found
 *     by walking every structure from the superblock (the sm's own too);
 *   - a block with a bad checksum or at the wrong place is refused with a
 *     message naming the block, and locks conflict as documented.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <udm/target.h>

#include "internal.h"
#include "check.h"
#include "util.h"

#include "../../persistent-data/bitset.h"
#include "../../persistent-data/node.h"
#include "../../persistent-data/space-map-disk.h"

#define NBLOCKS 8192u
#define SB_XOR 0x5eed5eedu
#define SB_MAGIC 0x7064617461746573ull /* "setatadp" */
#define NROOTS 6

static struct udm_ctx *ctx;
static const char *disk;

struct test_sb {
  udm_le32 csum;
  udm_le32 flags;
  udm_le64 blocknr;
  udm_le64 magic;
  uint8_t sm_root[PD_SM_ROOT_SIZE];
  udm_le64 roots[NROOTS];
};
_Static_assert(sizeof(struct test_sb) == 200, "test superblock");

static int sb_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                    size_t size, char *why, size_t n)
{
  (void)v;
  const struct test_sb *sb = data;
  return pd_check_header(block, le64_get(sb->blocknr), data, size, SB_XOR, why, n);
}

static void sb_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                       size_t size)
{
  (void)v;
  struct test_sb *sb = data;
  sb->blocknr = le64_put(block);
  sb->csum = le32_put(pd_checksum((char *)data + 4, size - 4, SB_XOR));
}

static const struct udm_bufio_validator sb_validator = {
    .name = "test superblock", .check = sb_check, .prepare_for_write = sb_prepare};

/* One open metadata device: bm, sm, tm and the roots the superblock keeps. */
struct md {
  struct udm_dev *dev;
  struct pd_bm *bm;
  struct pd_sm *sm;
  struct pd_tm *tm;
  pd_block_t roots[NROOTS];
};

static void must(int r, const char *what)
{
  if (r < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, strerror(-r), udm_errmsg());
    exit(1);
  }
}

static struct udm_dev *open_dev(const char *path)
{
  struct udm_dev *d = NULL;
  char *msg = NULL;
  int r = udm__dev_open(ctx, NULL, path, UDM_DEV_READ | UDM_DEV_WRITE, false, &d, &msg);
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", path, msg ? msg : strerror(-r));
    exit(1);
  }
  return d;
}

static void md_create(struct md *m)
{
  memset(m, 0, sizeof *m);
  m->dev = open_dev(disk);
  must(pd_bm_create(m->dev, 256, &m->bm), "bm");
  must(pd_sm_metadata_create(m->bm, pd_bm_nr_blocks(m->bm), 0, &m->sm), "sm create");
  must(pd_tm_create(m->bm, m->sm, &m->tm), "tm");
}

static void md_commit(struct md *m)
{
  must(pd_tm_pre_commit(m->tm), "pre-commit");
  struct pd_block *b;
  must(pd_bm_write_lock_zero(m->bm, 0, &sb_validator, &b), "superblock");
  struct test_sb *sb = pd_block_data(b);
  sb->magic = le64_put(SB_MAGIC);
  struct pd_sm_root root;
  pd_sm_copy_root(m->sm, &root);
  memcpy(sb->sm_root, &root, sizeof root);
  for (int i = 0; i < NROOTS; i++)
    sb->roots[i] = le64_put(m->roots[i]);
  must(pd_tm_commit(m->tm, b), "commit");
}

static void md_close(struct md *m)
{
  CHECK(pd_bm_locks_held(m->bm) == 0);
  pd_tm_destroy(m->tm);
  pd_sm_destroy(m->sm);
  pd_bm_destroy(m->bm);
  m->dev->ops->close(m->dev);
}

static void md_open(struct md *m)
{
  memset(m, 0, sizeof *m);
  m->dev = open_dev(disk);
  must(pd_bm_create(m->dev, 256, &m->bm), "bm");
  struct pd_block *b;
  must(pd_bm_read_lock(m->bm, 0, &sb_validator, &b), "read superblock");
  struct test_sb *sb = pd_block_data(b);
  CHECK(le64_get(sb->magic) == SB_MAGIC);
  for (int i = 0; i < NROOTS; i++)
    m->roots[i] = le64_get(sb->roots[i]);
  int r = pd_sm_metadata_open(m->bm, sb->sm_root, sizeof sb->sm_root, &m->sm);
  pd_bm_unlock(b);
  must(r, "sm open");
  must(pd_tm_create(m->bm, m->sm, &m->tm), "tm");
}

/* ---- references found by walking everything ---- */

enum leaf_kind { LEAF_PLAIN, LEAF_BLOCKS /* values are block numbers (arrays) */ };

struct refs {
  struct pd_bm *bm;
  uint32_t *want;
  uint8_t *seen;
};

static void walk_tree(struct refs *rf, pd_block_t b, unsigned levels, enum leaf_kind kind)
{
  rf->want[b]++;
  if (rf->seen[b])
    return;
  rf->seen[b] = 1;
  struct pd_block *blk;
  must(pd_bm_read_lock(rf->bm, b, &pd_btree_node_validator, &blk), "walk");
  void *d = pd_block_data(blk);
  uint32_t nr = pd_node_nr(d);
  bool leaf = pd_node_is_leaf(d);
  pd_block_t *next = malloc((nr + 1) * sizeof *next);
  for (uint32_t i = 0; i < nr; i++)
    next[i] = pd_node_value64(d, i);
  pd_bm_unlock(blk);
  for (uint32_t i = 0; i < nr; i++) {
    if (!leaf)
      walk_tree(rf, next[i], levels, kind);
    else if (levels > 1)
      walk_tree(rf, next[i], levels - 1, kind);
    else if (kind == LEAF_BLOCKS)
      rf->want[next[i]]++;
  }
  free(next);
}

/* Every block's count must be the number of references to it. */
static void check_counts(struct md *m, const unsigned *levels, const enum leaf_kind *kinds)
{
  struct refs rf = {m->bm, calloc(NBLOCKS, 4), calloc(NBLOCKS, 1)};
  rf.want[0] = 1;
  struct pd_sm_root root;
  pd_sm_copy_root(m->sm, &root);
  pd_block_t index = le64_get(root.bitmap_root);
  rf.want[index]++;
  struct pd_block *blk;
  must(pd_bm_read_lock(m->bm, index, &pd_index_validator, &blk), "index");
  struct pd_metadata_index *mi = pd_block_data(blk);
  rf.want[le64_get(mi->index[0].blocknr)]++;
  pd_bm_unlock(blk);
  walk_tree(&rf, le64_get(root.ref_count_root), 1, LEAF_PLAIN);
  for (int i = 0; i < NROOTS; i++)
    if (levels[i])
      walk_tree(&rf, m->roots[i], levels[i], kinds[i]);
  unsigned bad = 0;
  pd_block_t used = 0;
  for (pd_block_t b = 0; b < NBLOCKS; b++) {
    uint32_t c;
    must(pd_sm_get_count(m->sm, b, &c), "count");
    used += c != 0;
    if (c != rf.want[b] && bad++ < 5)
      fprintf(stderr, "block %llu: count %u, %u references\n", (unsigned long long)b, c,
              rf.want[b]);
  }
  CHECK(bad == 0);
  CHECK(pd_sm_nr_free(m->sm) == NBLOCKS - used);
  free(rf.want);
  free(rf.seen);
}

/* ---- btree against a map ---- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define KEYS 30000u

struct model_walk {
  const uint64_t *value;
  const bool *present;
  uint64_t next, count;
  bool ok;
};

static int model_cmp(void *context, const uint64_t *keys, const void *value)
{
  struct model_walk *w = context;
  udm_le64 v;
  memcpy(&v, value, 8);
  if (keys[0] < w->next || keys[0] >= KEYS || !w->present[keys[0]] ||
      w->value[keys[0]] != le64_get(v))
    w->ok = false;
  w->next = keys[0] + 1;
  w->count++;
  return 0;
}

static void check_tree_is_model(struct md *m, struct pd_btree_info *info, pd_block_t root,
                                const uint64_t *value, const bool *present)
{
  struct model_walk w = {value, present, 0, 0, true};
  CHECK(pd_btree_walk(info, root, model_cmp, &w) == 0);
  uint64_t n = 0;
  for (unsigned k = 0; k < KEYS; k++)
    n += present[k];
  CHECK(w.ok && w.count == n);
  (void)m;
}

static void btree_against_a_map(void)
{
  struct md m;
  md_create(&m);
  struct pd_btree_info info = {m.tm, 1, {.size = 8}};
  must(pd_btree_empty(&info, &m.roots[0]), "empty");
  unsigned levels[NROOTS] = {1};
  enum leaf_kind kinds[NROOTS] = {LEAF_PLAIN};
  md_commit(&m);
  check_counts(&m, levels, kinds);

  uint64_t *value = calloc(KEYS, 8);
  bool *present = calloc(KEYS, 1);
  unsigned ops = 100000, inserts = 0, removes = 0, misses = 0;
  for (unsigned op = 1; op <= ops; op++) {
    /* Phases: grow, then mostly remove, then mixed, so nodes split and merge. */
    unsigned phase = op * 4 / ops, dice = (unsigned)(rnd() % 100);
    unsigned p_insert = phase == 0 ? 70 : phase == 1 ? 20 : 45;
    uint64_t k = rnd() % KEYS;
    if (dice < p_insert) {
      uint64_t v = rnd();
      udm_le64 le = le64_put(v);
      bool inserted;
      must(pd_btree_insert(&info, m.roots[0], &k, &le, &m.roots[0], &inserted), "insert");
      CHECK(inserted == !present[k]);
      present[k] = true;
      value[k] = v;
      inserts++;
    } else if (dice < p_insert + 30) {
      int r = pd_btree_remove(&info, m.roots[0], &k, &m.roots[0]);
      CHECK(r == (present[k] ? 0 : -ENODATA));
      present[k] = false;
      removes++;
    } else {
      udm_le64 le;
      int r = pd_btree_lookup(&info, m.roots[0], &k, &le);
      CHECK(r == (present[k] ? 0 : -ENODATA));
      if (r == 0)
        CHECK(le64_get(le) == value[k]);
      misses += r != 0;
    }
    if (op % 10000 == 0) {
      md_commit(&m);
      check_counts(&m, levels, kinds);
      check_tree_is_model(&m, &info, m.roots[0], value, present);
      if (op % 20000 == 0) { /* what was committed is what reopens */
        md_close(&m);
        md_open(&m);
        info.tm = m.tm;
        check_tree_is_model(&m, &info, m.roots[0], value, present);
        check_counts(&m, levels, kinds);
      }
    }
  }
  uint64_t lo, hi, want_lo = KEYS, want_hi = 0;
  for (unsigned k = 0; k < KEYS; k++)
    if (present[k]) {
      want_lo = want_lo < k ? want_lo : k;
      want_hi = k;
    }
  CHECK(pd_btree_find_lowest_key(&info, m.roots[0], &lo) == 0 && lo == want_lo);
  CHECK(pd_btree_find_highest_key(&info, m.roots[0], &hi) == 0 && hi == want_hi);
  /* Empty it: every node but the root goes back to the space map. */
  for (uint64_t k = 0; k < KEYS; k++)
    if (present[k])
      must(pd_btree_remove(&info, m.roots[0], &k, &m.roots[0]), "remove all");
  memset(present, 0, KEYS);
  uint64_t k0 = 5;
  CHECK(pd_btree_find_lowest_key(&info, m.roots[0], &lo) == -ENODATA);
  CHECK(pd_btree_remove(&info, m.roots[0], &k0, &m.roots[0]) == -ENODATA);
  md_commit(&m);
  check_counts(&m, levels, kinds);
  printf("btree: %u operations (%u inserts, %u removes, %u lookups missed)\n", ops, inserts,
         removes, misses);
  md_close(&m);
  free(value);
  free(present);
}

/* Two levels (thin's device -> block mapping): keys (k % 7, k). */
static int two_level_cmp(void *context, const uint64_t *keys, const void *value)
{
  struct model_walk *w = context;
  udm_le64 v;
  memcpy(&v, value, 8);
  uint64_t k = keys[1];
  if (keys[0] != k % 7 || k >= KEYS || !w->present[k] || w->value[k] != le64_get(v))
    w->ok = false;
  w->count++;
  return 0;
}

static void two_level_btree_against_a_map(void)
{
  struct md m;
  md_create(&m);
  struct pd_btree_info info = {m.tm, 2, {.size = 8}};
  must(pd_btree_empty(&info, &m.roots[0]), "empty");
  unsigned levels[NROOTS] = {2};
  enum leaf_kind kinds[NROOTS] = {LEAF_PLAIN};
  uint64_t *value = calloc(KEYS, 8);
  bool *present = calloc(KEYS, 1);
  for (unsigned op = 1; op <= 20000; op++) {
    uint64_t k = rnd() % 5000, keys[2] = {k % 7, k};
    if (rnd() % 100 < 65) {
      uint64_t v = rnd();
      udm_le64 le = le64_put(v);
      must(pd_btree_insert(&info, m.roots[0], keys, &le, &m.roots[0], NULL), "insert");
      present[k] = true;
      value[k] = v;
    } else {
      int r = pd_btree_remove(&info, m.roots[0], keys, &m.roots[0]);
      CHECK(r == (present[k] ? 0 : -ENODATA));
      present[k] = false;
    }
    if (op % 5000 == 0) {
      md_commit(&m);
      check_counts(&m, levels, kinds);
    }
  }
  struct model_walk w = {value, present, 0, 0, true};
  CHECK(pd_btree_walk(&info, m.roots[0], two_level_cmp, &w) == 0);
  uint64_t n = 0;
  for (unsigned k = 0; k < KEYS; k++)
    n += present[k];
  CHECK(w.ok && w.count == n);
  for (uint64_t k = 0; k < 5000; k++) {
    uint64_t keys[2] = {k % 7, k};
    udm_le64 le;
    int r = pd_btree_lookup(&info, m.roots[0], keys, &le);
    CHECK(r == (present[k] ? 0 : -ENODATA));
    if (r == 0)
      CHECK(le64_get(le) == value[k]);
  }
  md_close(&m);
  free(value);
  free(present);
}

/* ---- shared trees ---- */

static void a_shared_tree_survives_changes_to_its_copy(void)
{
  struct md m;
  md_create(&m);
  struct pd_btree_info info = {m.tm, 1, {.size = 8}};
  must(pd_btree_empty(&info, &m.roots[0]), "empty");
  for (uint64_t k = 0; k < 3000; k++) {
    udm_le64 le = le64_put(k * 10);
    must(pd_btree_insert(&info, m.roots[0], &k, &le, &m.roots[0], NULL), "insert");
  }
  md_commit(&m);
  /* A snapshot: a second reference to the same root. */
  must(pd_tm_inc(m.tm, m.roots[0]), "inc");
  m.roots[1] = m.roots[0];
  for (uint64_t k = 0; k < 3000; k += 3) {
    udm_le64 le = le64_put(k * 10 + 1);
    must(pd_btree_insert(&info, m.roots[1], &k, &le, &m.roots[1], NULL), "overwrite");
  }
  for (uint64_t k = 1; k < 3000; k += 3)
    must(pd_btree_remove(&info, m.roots[1], &k, &m.roots[1]), "remove");
  unsigned levels[NROOTS] = {1, 1};
  enum leaf_kind kinds[NROOTS] = {LEAF_PLAIN, LEAF_PLAIN};
  md_commit(&m);
  check_counts(&m, levels, kinds);
  for (uint64_t k = 0; k < 3000; k++) {
    udm_le64 a, b;
    CHECK(pd_btree_lookup(&info, m.roots[0], &k, &a) == 0 && le64_get(a) == k * 10);
    int r = pd_btree_lookup(&info, m.roots[1], &k, &b);
    if (k % 3 == 0)
      CHECK(r == 0 && le64_get(b) == k * 10 + 1);
    else if (k % 3 == 1)
      CHECK(r == -ENODATA);
    else
      CHECK(r == 0 && le64_get(b) == k * 10);
  }
  /* Dropping the original frees what only it held. */
  must(pd_btree_del(&info, m.roots[0]), "del");
  m.roots[0] = 0;
  levels[0] = 0;
  md_commit(&m);
  check_counts(&m, levels, kinds);
  md_close(&m);
}

/* ---- space map against a counter ---- */

static void space_map_counts_against_a_counter(void)
{
  struct md m;
  md_create(&m);
  uint32_t *model = calloc(NBLOCKS, 4);
  pd_block_t *mine = malloc(NBLOCKS * sizeof *mine);
  size_t n = 0;
  unsigned levels[NROOTS] = {0};
  enum leaf_kind kinds[NROOTS] = {0};
  for (unsigned op = 1; op <= 60000; op++) {
    unsigned dice = (unsigned)(rnd() % 100);
    if (dice < 20 || n == 0) {
      pd_block_t b;
      must(pd_sm_new_block(m.sm, &b), "new block");
      CHECK(model[b] == 0);
      model[b] = 1;
      mine[n++] = b;
    } else if (dice < 65) {
      pd_block_t b = mine[rnd() % n];
      must(pd_sm_inc(m.sm, b), "inc");
      model[b]++;
    } else {
      size_t i = rnd() % n;
      pd_block_t b = mine[i];
      must(pd_sm_dec(m.sm, b), "dec");
      if (--model[b] == 0)
        mine[i] = mine[--n];
    }
    if (op % 7500 == 0) {
      md_commit(&m);
      md_close(&m);
      md_open(&m);
      unsigned bad = 0, big = 0;
      for (size_t i = 0; i < n; i++) {
        uint32_t c;
        must(pd_sm_get_count(m.sm, mine[i], &c), "count");
        bad += c != model[mine[i]];
        big += c > 2;
      }
      CHECK(bad == 0);
      CHECK(big > 0); /* the ref count tree is in use */
    }
  }
  /* A free block cannot go below 0; a block past the end is refused. */
  pd_block_t b;
  must(pd_sm_new_block(m.sm, &b), "new");
  must(pd_sm_dec(m.sm, b), "dec");
  CHECK(pd_sm_dec(m.sm, b) == -EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "below 0");
  CHECK(pd_sm_inc(m.sm, NBLOCKS) == -EINVAL);
  /* Blocks freed in a transaction are not handed out before it commits. */
  must(pd_sm_dec(m.sm, mine[0]), "dec");
  model[mine[0]]--;
  for (unsigned i = 0; i < 50; i++) {
    pd_block_t x;
    must(pd_sm_new_block(m.sm, &x), "new");
    CHECK(x != mine[0] || model[mine[0]] != 0);
    model[x]++;
    mine[n++] = x;
  }
  (void)levels;
  (void)kinds;
  md_close(&m);
  free(model);
  free(mine);
}

/* ---- the disk space map (thin's data blocks) against a counter ---- */

static void disk_commit(struct md *m, struct pd_sm *dsm)
{
  must(pd_sm_commit(dsm), "disk sm commit");
  struct pd_sm_root root;
  pd_sm_copy_root(dsm, &root);
  m->roots[2] = le64_get(root.bitmap_root);
  m->roots[3] = le64_get(root.ref_count_root);
  m->roots[4] = le64_get(root.nr_blocks);
  m->roots[5] = le64_get(root.nr_allocated);
  md_commit(m);
}

static struct pd_sm *disk_open(struct md *m)
{
  struct pd_sm_root root = {le64_put(m->roots[4]), le64_put(m->roots[5]),
                            le64_put(m->roots[2]), le64_put(m->roots[3])};
  struct pd_sm *dsm;
  must(pd_sm_disk_open(m->tm, &root, sizeof root, &dsm), "disk sm open");
  return dsm;
}

static void disk_space_map_counts_against_a_counter(void)
{
  enum { DATA = 40000 }; /* three bitmaps */
  struct md m;
  md_create(&m);
  struct pd_sm *dsm;
  must(pd_sm_disk_create(m.tm, DATA, &dsm), "disk sm create");
  unsigned levels[NROOTS] = {0, 0, 1, 1};
  enum leaf_kind kinds[NROOTS] = {0, 0, LEAF_BLOCKS, LEAF_PLAIN};
  uint32_t *model = calloc(DATA, 4);
  pd_block_t *mine = malloc(DATA * sizeof *mine);
  size_t n = 0;
  pd_block_t freed_now = DATA;
  for (unsigned op = 1; op <= 20000; op++) {
    unsigned dice = (unsigned)(rnd() % 100);
    if (dice < 25 || n == 0) {
      pd_block_t b;
      must(pd_sm_new_block(dsm, &b), "new block");
      CHECK(model[b] == 0 && b != freed_now);
      model[b] = 1;
      mine[n++] = b;
    } else if (dice < 65) {
      pd_block_t b = mine[rnd() % n];
      must(pd_sm_inc(dsm, b), "inc");
      model[b]++;
    } else {
      size_t i = rnd() % n;
      pd_block_t b = mine[i];
      must(pd_sm_dec(dsm, b), "dec");
      if (--model[b] == 0) {
        mine[i] = mine[--n];
        freed_now = b; /* not handed out again before the commit */
      }
    }
    if (op % 4000 == 0) {
      disk_commit(&m, dsm);
      freed_now = DATA;
      check_counts(&m, levels, kinds);
      pd_sm_destroy(dsm);
      md_close(&m);
      md_open(&m);
      dsm = disk_open(&m);
      unsigned bad = 0, big = 0;
      pd_block_t used = 0;
      for (pd_block_t b = 0; b < DATA; b += 1 + (pd_block_t)(rnd() % 3)) {
        uint32_t c;
        must(pd_sm_get_count(dsm, b, &c), "count");
        bad += c != model[b];
        big += c > 2;
      }
      for (pd_block_t b = 0; b < DATA; b++)
        used += model[b] != 0;
      CHECK(bad == 0);
      CHECK(big > 0);
      CHECK(pd_sm_nr_free(dsm) == DATA - used);
    }
  }
  CHECK(pd_sm_dec(dsm, DATA) == -EINVAL);
  pd_sm_destroy(dsm);
  md_close(&m);
  free(model);
  free(mine);
}

/* ---- arrays and bitsets ---- */

static void arrays_and_bitsets_resize_against_plain_arrays(void)
{
  struct md m;
  md_create(&m);
  struct pd_array_info ai;
  struct pd_btree_value_type vt = {.size = 4};
  pd_array_info_init(&ai, m.tm, &vt);
  struct pd_bitset bs;
  pd_bitset_init(&bs, m.tm);
  must(pd_array_empty(&ai, &m.roots[0]), "array");
  must(pd_bitset_empty(&bs, &m.roots[1]), "bitset");
  unsigned levels[NROOTS] = {1, 1};
  enum leaf_kind kinds[NROOTS] = {LEAF_BLOCKS, LEAF_BLOCKS};
  enum { MAXN = 40000 };
  uint32_t *arr = calloc(MAXN, 4);
  bool *bits = calloc(MAXN, 1);
  uint32_t size = 0, nbits = 0;
  uint32_t cap = pd_array_block_capacity(&ai);
  CHECK(cap == 1018);
  for (unsigned round = 0; round < 60; round++) {
    uint32_t ns = (uint32_t)(rnd() % MAXN);
    if (round % 5 == 0)
      ns = (uint32_t)(rnd() % 4) * cap; /* exact block multiples */
    uint32_t fill = (uint32_t)rnd();
    udm_le32 le = le32_put(fill);
    must(pd_array_resize(&ai, m.roots[0], size, ns, &le, &m.roots[0]), "array resize");
    for (uint32_t i = size; i < ns; i++)
      arr[i] = fill;
    size = ns;
    uint32_t nb = (uint32_t)(rnd() % MAXN);
    bool dflt = rnd() & 1;
    must(pd_bitset_resize(&bs, m.roots[1], nbits, nb, dflt, &m.roots[1]), "bitset resize");
    /* New words are all DEFAULT; bits past the old end in its last word keep theirs. */
    for (uint32_t i = (nbits + 63) / 64 * 64; i < nb; i++)
      bits[i] = dflt;
    for (uint32_t i = nb; i < (nb + 63) / 64 * 64 && i < MAXN; i++)
      if (i >= (nbits + 63) / 64 * 64)
        bits[i] = dflt;
    nbits = nb;
    for (unsigned k = 0; k < 200 && size; k++) {
      uint32_t i = (uint32_t)(rnd() % size), v = (uint32_t)rnd();
      udm_le32 lv = le32_put(v);
      must(pd_array_set_value(&ai, m.roots[0], i, &lv, &m.roots[0]), "set");
      arr[i] = v;
    }
    for (unsigned k = 0; k < 200 && nbits; k++) {
      uint32_t i = (uint32_t)(rnd() % nbits);
      if (rnd() & 1) {
        must(pd_bitset_set_bit(&bs, m.roots[1], i, &m.roots[1]), "set bit");
        bits[i] = true;
      } else {
        must(pd_bitset_clear_bit(&bs, m.roots[1], i, &m.roots[1]), "clear bit");
        bits[i] = false;
      }
    }
    must(pd_bitset_flush(&bs, m.roots[1], &m.roots[1]), "flush");
    md_commit(&m);
    check_counts(&m, levels, kinds);
    unsigned bad = 0;
    for (uint32_t i = 0; i < size; i += 1 + (uint32_t)(rnd() % 7)) {
      udm_le32 got;
      must(pd_array_get_value(&ai, m.roots[0], i, &got), "get");
      bad += le32_get(got) != arr[i];
    }
    udm_le32 past;
    CHECK(pd_array_get_value(&ai, m.roots[0], size, &past) == -ENODATA);
    for (uint32_t i = 0; i < nbits; i += 1 + (uint32_t)(rnd() % 5)) {
      bool got;
      must(pd_bitset_test_bit(&bs, m.roots[1], i, &m.roots[1], &got), "test");
      bad += got != bits[i];
    }
    CHECK(bad == 0);
  }
  md_close(&m);
  free(arr);
  free(bits);
}

/* ---- validation and locks ---- */

static void corrupt_blocks_are_refused_naming_the_block(void)
{
  struct md m;
  md_create(&m);
  struct pd_btree_info info = {m.tm, 1, {.size = 8}};
  must(pd_btree_empty(&info, &m.roots[0]), "empty");
  md_commit(&m);
  pd_block_t root = m.roots[0];
  md_close(&m);
  unsigned char blk[PD_BLOCK_SIZE];
  int fd = open(disk, O_RDWR);
  CHECK(pread(fd, blk, sizeof blk, (off_t)(root * PD_BLOCK_SIZE)) == (ssize_t)sizeof blk);
  /* The same bytes one block further: the wrong place. */
  CHECK(pwrite(fd, blk, sizeof blk, (off_t)((root + 100) * PD_BLOCK_SIZE)) == (ssize_t)sizeof blk);
  blk[100] ^= 1;
  CHECK(pwrite(fd, blk, sizeof blk, (off_t)(root * PD_BLOCK_SIZE)) == (ssize_t)sizeof blk);
  close(fd);
  md_open(&m);
  struct pd_block *b;
  char want[64];
  CHECK(pd_bm_read_lock(m.bm, root, &pd_btree_node_validator, &b) == -EILSEQ);
  snprintf(want, sizeof want, "block %llu is not a valid btree node: bad checksum",
           (unsigned long long)root);
  CHECK_CONTAINS(udm_errmsg(), want);
  CHECK(pd_bm_read_lock(m.bm, root + 100, &pd_btree_node_validator, &b) == -EILSEQ);
  snprintf(want, sizeof want, "it says it is block %llu", (unsigned long long)root);
  CHECK_CONTAINS(udm_errmsg(), want);
  /* A node read as another type fails that type's checksum. */
  CHECK(pd_bm_read_lock(m.bm, 0, &pd_btree_node_validator, &b) == -EILSEQ);
  /* Locks: readers share; a writer is alone. */
  struct pd_block *r1, *r2, *w;
  must(pd_bm_read_lock(m.bm, 0, &sb_validator, &r1), "read");
  must(pd_bm_read_lock(m.bm, 0, &sb_validator, &r2), "read again");
  CHECK(pd_bm_write_lock(m.bm, 0, &sb_validator, &w) == -EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "block 0 is locked already");
  pd_bm_unlock(r1);
  pd_bm_unlock(r2);
  must(pd_bm_write_lock(m.bm, 0, &sb_validator, &w), "write");
  CHECK(pd_bm_read_lock(m.bm, 0, &sb_validator, &r1) == -EBUSY);
  pd_bm_unlock(w);
  CHECK(pd_bm_read_lock(m.bm, NBLOCKS, NULL, &b) == -EINVAL);
  md_close(&m);
}

int main(void)
{
  scratch_init();
  disk = scratch_file("meta.img", (uint64_t)NBLOCKS * PD_BLOCK_SIZE, 0);
  ctx = udm_ctx_new();
  btree_against_a_map();
  two_level_btree_against_a_map();
  a_shared_tree_survives_changes_to_its_copy();
  space_map_counts_against_a_counter();
  disk_space_map_counts_against_a_counter();
  arrays_and_bitsets_resize_against_plain_arrays();
  corrupt_blocks_are_refused_naming_the_block();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-pdata");
}
