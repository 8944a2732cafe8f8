/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata space map: the reference count of every block of the
 * metadata device, written in the kernel's format (format.h): an index
 * block listing the bitmap blocks, bitmaps of 2 bits per block, and a btree
 * of the counts above 2.
 *
 * Where udm differs from the kernel: the counts live in memory (4 bytes a
 * block: 16 MiB for the largest metadata device, 16 GiB), and the on-disk
 * structures are written at commit only.  The kernel updates them through
 * its own transaction manager as it goes, with a bootstrap path for the
 * recursion (allocating a block changes a bitmap, which needs a block...).
 * The allocation order is the kernel's, so that the same operations give
 * the same block numbers and the same counts in era's status: a new map
 * puts its index, ref count tree and bitmaps right after the superblock;
 * the first change of a transaction to a bitmap's range moves that bitmap
 * to a new block at once (the kernel's shadow of it); the index moves at
 * commit; free blocks are searched for from a rolling cursor that wraps
 * at the end of the device and is kept across commits (Linux 5.14 on), so
 * recently freed blocks, the previous transactions' copies, are reused
 * last.  The ref count tree is rebuilt at commit when a
 * count above 2 changed (the kernel edits it in place, so its blocks may
 * land elsewhere).  A block is never written where the last commit's
 * structures live.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "space-map.h"

#define EPB PD_ENTRIES_PER_BITMAP
#define RC_VALUE_SIZE 4u

struct smm {
  struct pd_sm sm;
  struct pd_bm *bm;
  pd_block_t nr_blocks;
  uint32_t *count;
  uint8_t *was_used;       /* bit per block: counted at the last commit */
  pd_block_t allocated;    /* blocks with a count now */
  pd_block_t committed_allocated;
  pd_block_t allocated_this_transaction;
  pd_block_t hint;         /* where the next search for a free block starts */
  unsigned nr_bitmaps;
  pd_block_t *bitmap;      /* each bitmap's block (0: none on disk yet) */
  bool *bitmap_moved;      /* given a new block in this transaction */
  bool index_moved;
  pd_block_t index_block;  /* 0: none yet */
  pd_block_t rc_root;
  pd_block_t *rc_nodes;    /* the blocks of the ref count tree on disk */
  size_t nr_rc_nodes;
  bool rc_dirty;           /* a count above 2 changed */
  bool dirty;
};

static struct smm *to_smm(struct pd_sm *sm)
{
  return (struct smm *)sm;
}

/* ---- validators ---- */

static int index_check(const struct udm_bufio_validator *v, uint64_t block, const void *data,
                       size_t size, char *why, size_t n)
{
  (void)v;
  const struct pd_metadata_index *mi = data;
  return pd_check_header(block, le64_get(mi->blocknr), data, size, PD_INDEX_CSUM_XOR, why, n);
}

static void index_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                          size_t size)
{
  (void)v;
  struct pd_metadata_index *mi = data;
  mi->blocknr = le64_put(block);
  mi->csum = le32_put(pd_checksum((char *)data + 4, size - 4, PD_INDEX_CSUM_XOR));
}

const struct udm_bufio_validator pd_index_validator = {
    .name = "space map index", .check = index_check, .prepare_for_write = index_prepare};

static int bitmap_check(const struct udm_bufio_validator *v, uint64_t block,
                        const void *data, size_t size, char *why, size_t n)
{
  (void)v;
  const struct pd_bitmap_header *h = data;
  return pd_check_header(block, le64_get(h->blocknr), data, size, PD_BITMAP_CSUM_XOR, why, n);
}

static void bitmap_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                           size_t size)
{
  (void)v;
  struct pd_bitmap_header *h = data;
  h->blocknr = le64_put(block);
  h->csum = le32_put(pd_checksum((char *)data + 4, size - 4, PD_BITMAP_CSUM_XOR));
}

const struct udm_bufio_validator pd_bitmap_validator = {
    .name = "space map bitmap", .check = bitmap_check, .prepare_for_write = bitmap_prepare};

/* Entry I of a bitmap's data (after the header): bit 2i of its word is the high bit. */
static unsigned bitmap_get(const uint8_t *bits, uint32_t i)
{
  uint32_t bit = (i % 32) * 2, word = i / 32;
  const uint8_t *w = bits + word * 8;
  unsigned hi = (w[bit / 8] >> (bit % 8)) & 1, lo = (w[(bit + 1) / 8] >> ((bit + 1) % 8)) & 1;
  return hi << 1 | lo;
}

static void bitmap_set(uint8_t *bits, uint32_t i, unsigned v)
{
  uint32_t bit = (i % 32) * 2, word = i / 32;
  uint8_t *w = bits + word * 8;
  w[bit / 8] = (uint8_t)((w[bit / 8] & ~(1u << (bit % 8))) | ((v >> 1) & 1) << (bit % 8));
  bit++;
  w[bit / 8] = (uint8_t)((w[bit / 8] & ~(1u << (bit % 8))) | (v & 1) << (bit % 8));
}

/* ---- counts ---- */

static bool was_used(const struct smm *m, pd_block_t b)
{
  return m->was_used[b / 8] >> (b % 8) & 1;
}

/* A block free now and at the last commit, from the rolling start. */
static int find_free(struct smm *m, pd_block_t *out)
{
  for (pd_block_t i = 0; i < m->nr_blocks; i++) {
    pd_block_t b = (m->hint + i) % m->nr_blocks;
    if (m->count[b] == 0 && !was_used(m, b)) {
      m->hint = b + 1;
      *out = b;
      return 0;
    }
  }
  return pd_fail(ENOSPC, "%s: the metadata device is full (%llu blocks)", pd_bm_name(m->bm),
                 (unsigned long long)m->nr_blocks);
}

static int set_count(struct smm *m, pd_block_t b, uint32_t c);

/* The first change of a transaction to bitmap I moves it to a new block. */
static int move_bitmap(struct smm *m, unsigned i)
{
  m->bitmap_moved[i] = true;
  pd_block_t nb = 0, old = m->bitmap[i];
  int r = find_free(m, &nb);
  if (r < 0)
    return r;
  m->allocated_this_transaction++;
  m->bitmap[i] = nb;
  r = set_count(m, nb, 1);
  if (r == 0 && old)
    r = set_count(m, old, m->count[old] - 1);
  return r;
}

static int set_count(struct smm *m, pd_block_t b, uint32_t c)
{
  uint32_t old = m->count[b];
  unsigned i = (unsigned)(b / EPB);
  if (old == c)
    return 0;
  m->dirty = true;
  if (!m->bitmap_moved[i]) {
    int r = move_bitmap(m, i);
    if (r < 0)
      return r;
  }
  m->count[b] = c;
  if (old > 2 || c > 2)
    m->rc_dirty = true;
  if (!old)
    m->allocated++;
  else if (!c)
    m->allocated--;
  return 0;
}

static int check_block(struct smm *m, pd_block_t b, const char *what)
{
  if (b >= m->nr_blocks)
    return pd_fail(EINVAL, "%s: metadata space map: cannot %s block %llu: the map has %llu blocks",
                   pd_bm_name(m->bm), what, (unsigned long long)b,
                   (unsigned long long)m->nr_blocks);
  return 0;
}

static void smm_destroy(struct pd_sm *sm)
{
  struct smm *m = to_smm(sm);
  free(m->count);
  free(m->was_used);
  free(m->bitmap);
  free(m->bitmap_moved);
  free(m->rc_nodes);
  free(m);
}

static pd_block_t smm_nr_blocks(struct pd_sm *sm)
{
  return to_smm(sm)->nr_blocks;
}

static pd_block_t smm_nr_free(struct pd_sm *sm)
{
  struct smm *m = to_smm(sm);
  return m->nr_blocks - m->committed_allocated - m->allocated_this_transaction;
}

static int smm_get_count(struct pd_sm *sm, pd_block_t b, uint32_t *c)
{
  struct smm *m = to_smm(sm);
  int r = check_block(m, b, "look up");
  if (r == 0)
    *c = m->count[b];
  return r;
}

static int smm_inc(struct pd_sm *sm, pd_block_t b)
{
  struct smm *m = to_smm(sm);
  int r = check_block(m, b, "count a reference to");
  if (r < 0)
    return r;
  if (m->count[b] == UINT32_MAX)
    return pd_fail(EOVERFLOW, "%s: block %llu has too many references",
                   pd_bm_name(m->bm), (unsigned long long)b);
  return set_count(m, b, m->count[b] + 1);
}

static int smm_dec(struct pd_sm *sm, pd_block_t b)
{
  struct smm *m = to_smm(sm);
  int r = check_block(m, b, "drop a reference to");
  if (r < 0)
    return r;
  if (m->count[b] == 0)
    return pd_fail(EINVAL, "%s: block %llu is free: its reference count cannot go below 0",
                   pd_bm_name(m->bm), (unsigned long long)b);
  return set_count(m, b, m->count[b] - 1);
}

static int smm_new_block(struct pd_sm *sm, pd_block_t *out)
{
  struct smm *m = to_smm(sm);
  int r = find_free(m, out);
  if (r < 0)
    return r;
  m->allocated_this_transaction++;
  return set_count(m, *out, 1);
}

/* ---- commit ---- */

/* Write the counts above 2 as a fresh btree on new blocks; free the old one. */
static int write_rc_tree(struct smm *m)
{
  size_t n = 0;
  for (pd_block_t b = 0; b < m->nr_blocks; b++)
    n += m->count[b] > 2;
  uint64_t *keys = malloc((n ? n : 1) * sizeof *keys);
  if (!keys)
    return pd_fail(ENOMEM, "metadata space map: out of memory");
  n = 0;
  for (pd_block_t b = 0; b < m->nr_blocks; b++)
    if (m->count[b] > 2)
      keys[n++] = b;

  /* Levels bottom up: each level's nodes evenly filled. */
  size_t level_nodes[16], levels = 0, total = 0;
  size_t entries = n;
  uint32_t cap = pd_node_capacity(RC_VALUE_SIZE);
  for (;;) {
    size_t nodes = entries ? (entries + cap - 1) / cap : 1;
    level_nodes[levels++] = nodes;
    total += nodes;
    if (nodes == 1)
      break;
    entries = nodes;
    cap = pd_node_capacity(8);
  }
  pd_block_t *blocks = malloc(total * sizeof *blocks);
  uint64_t *low = malloc(total * sizeof *low); /* each node's lowest key */
  if (!blocks || !low) {
    free(keys), free(blocks), free(low);
    return pd_fail(ENOMEM, "metadata space map: out of memory");
  }
  int r = 0;
  for (size_t i = 0; i < total && r == 0; i++)
    r = smm_new_block(&m->sm, &blocks[i]);
  for (size_t i = 0; i < m->nr_rc_nodes && r == 0; i++)
    r = smm_dec(&m->sm, m->rc_nodes[i]);
  /* Counts of the tree's own blocks are 1 or 0: the tree's content stands. */
  size_t first = 0; /* index in blocks[] of the level being written */
  size_t below = 0; /* index of the level below's first node */
  for (size_t l = 0; l < levels && r == 0; l++) {
    size_t nodes = level_nodes[l];
    size_t count = l == 0 ? n : level_nodes[l - 1];
    for (size_t j = 0; j < nodes && r == 0; j++) {
      size_t from = count * j / nodes, to = count * (j + 1) / nodes;
      struct pd_block *blk;
      r = pd_bm_write_lock_zero(m->bm, blocks[first + j], &pd_btree_node_validator, &blk);
      if (r < 0)
        break;
      void *d = pd_block_data(blk);
      pd_node_init(d, l == 0, l == 0 ? RC_VALUE_SIZE : 8);
      for (size_t k = from; k < to; k++) {
        uint32_t i = (uint32_t)(k - from);
        if (l == 0) {
          pd_node_keys(d)[i] = le64_put(keys[k]);
          udm_le32 v = le32_put(m->count[keys[k]]);
          memcpy(pd_node_value(d, i), &v, sizeof v);
        } else {
          pd_node_keys(d)[i] = le64_put(low[below + k]);
          udm_le64 v = le64_put(blocks[below + k]);
          memcpy(pd_node_value(d, i), &v, sizeof v);
        }
      }
      pd_node(d)->nr_entries = le32_put((uint32_t)(to - from));
      low[first + j] = to > from ? le64_get(pd_node_keys(d)[0]) : 0;
      pd_bm_unlock(blk);
    }
    below = first;
    first += nodes;
  }
  if (r == 0) {
    free(m->rc_nodes);
    m->rc_nodes = blocks;
    m->nr_rc_nodes = total;
    m->rc_root = blocks[total - 1];
    m->rc_dirty = false;
  } else {
    free(blocks);
  }
  free(keys);
  free(low);
  return r;
}

static int write_bitmap(struct smm *m, unsigned i)
{
  struct pd_block *blk;
  int r = pd_bm_write_lock_zero(m->bm, m->bitmap[i], &pd_bitmap_validator, &blk);
  if (r < 0)
    return r;
  uint8_t *bits = (uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header);
  pd_block_t base = (pd_block_t)i * EPB;
  for (uint32_t j = 0; j < EPB && base + j < m->nr_blocks; j++) {
    uint32_t c = m->count[base + j];
    if (c)
      bitmap_set(bits, j, c > 3 ? 3 : c);
  }
  pd_bm_unlock(blk);
  return 0;
}

static int write_index(struct smm *m)
{
  struct pd_block *blk;
  int r = pd_bm_write_lock_zero(m->bm, m->index_block, &pd_index_validator, &blk);
  if (r < 0)
    return r;
  struct pd_metadata_index *mi = pd_block_data(blk);
  for (unsigned i = 0; i < m->nr_bitmaps; i++) {
    pd_block_t base = (pd_block_t)i * EPB;
    uint32_t used = 0, first_free = EPB;
    for (uint32_t j = 0; j < EPB; j++) {
      if (base + j < m->nr_blocks && m->count[base + j])
        used++;
      else if (first_free == EPB)
        first_free = j;
    }
    mi->index[i].blocknr = le64_put(m->bitmap[i]);
    mi->index[i].nr_free = le32_put(EPB - used);
    mi->index[i].none_free_before = le32_put(first_free);
  }
  pd_bm_unlock(blk);
  return 0;
}

static int smm_commit(struct pd_sm *sm)
{
  struct smm *m = to_smm(sm);
  if (!m->dirty)
    return 0;
  int r = 0;
  if (m->rc_dirty)
    r = write_rc_tree(m);
  if (r == 0 && !m->index_moved) {
    pd_block_t old = m->index_block, nb;
    r = smm_new_block(sm, &nb);
    if (r == 0 && old)
      r = smm_dec(sm, old);
    m->index_block = nb;
    m->index_moved = true;
  }
  for (unsigned i = 0; i < m->nr_bitmaps && r == 0; i++)
    if (m->bitmap_moved[i])
      r = write_bitmap(m, i);
  if (r == 0)
    r = write_index(m);
  if (r < 0)
    return r;
  for (pd_block_t b = 0; b < m->nr_blocks; b++) {
    if (m->count[b])
      m->was_used[b / 8] |= (uint8_t)(1u << (b % 8));
    else
      m->was_used[b / 8] &= (uint8_t)~(1u << (b % 8));
  }
  memset(m->bitmap_moved, 0, m->nr_bitmaps * sizeof *m->bitmap_moved);
  m->index_moved = false;
  m->committed_allocated = m->allocated;
  m->allocated_this_transaction = 0;
  m->dirty = false;
  return 0;
}

static void smm_copy_root(struct pd_sm *sm, struct pd_sm_root *root)
{
  struct smm *m = to_smm(sm);
  memset(root, 0, sizeof *root);
  root->nr_blocks = le64_put(m->nr_blocks);
  root->nr_allocated = le64_put(m->allocated);
  root->bitmap_root = le64_put(m->index_block);
  root->ref_count_root = le64_put(m->rc_root);
}

static int resize_arrays(struct smm *m, pd_block_t nr_blocks)
{
  unsigned nr_bitmaps = (unsigned)((nr_blocks + EPB - 1) / EPB);
  uint32_t *count = realloc(m->count, (nr_blocks ? nr_blocks : 1) * sizeof *count);
  if (count)
    m->count = count;
  uint8_t *used = realloc(m->was_used, nr_blocks / 8 + 1);
  if (used)
    m->was_used = used;
  pd_block_t *bitmap = realloc(m->bitmap, (nr_bitmaps + 1) * sizeof *bitmap);
  if (bitmap)
    m->bitmap = bitmap;
  bool *moved = realloc(m->bitmap_moved, (nr_bitmaps + 1) * sizeof *moved);
  if (moved)
    m->bitmap_moved = moved;
  if (!count || !used || !bitmap || !moved)
    return pd_fail(ENOMEM, "metadata space map: out of memory for %llu blocks",
                   (unsigned long long)nr_blocks);
  memset(m->count + m->nr_blocks, 0, (nr_blocks - m->nr_blocks) * sizeof *count);
  size_t old_bytes = m->nr_blocks ? m->nr_blocks / 8 + 1 : 0;
  memset(m->was_used + old_bytes, 0, nr_blocks / 8 + 1 - old_bytes);
  for (pd_block_t b = m->nr_blocks; b < nr_blocks && b < old_bytes * 8; b++)
    m->was_used[b / 8] &= (uint8_t)~(1u << (b % 8));
  for (unsigned i = m->nr_bitmaps; i < nr_bitmaps; i++) {
    m->bitmap[i] = 0;
    m->bitmap_moved[i] = false;
  }
  m->nr_blocks = nr_blocks;
  m->nr_bitmaps = nr_bitmaps;
  m->dirty = true;
  return 0;
}

static int smm_extend(struct pd_sm *sm, pd_block_t extra)
{
  struct smm *m = to_smm(sm);
  if (m->nr_blocks + extra > PD_SM_METADATA_MAX_BLOCKS)
    return pd_fail(EINVAL, "%s: a metadata space map counts at most %llu blocks",
                   pd_bm_name(m->bm), (unsigned long long)PD_SM_METADATA_MAX_BLOCKS);
  pd_block_t old = m->nr_blocks;
  unsigned old_bitmaps = m->nr_bitmaps;
  int r = resize_arrays(m, m->nr_blocks + extra);
  /* New bitmaps go in the new area, as the kernel's extend puts them. */
  m->hint = old;
  for (unsigned i = old_bitmaps; i < m->nr_bitmaps && r == 0; i++)
    if (!m->bitmap_moved[i])
      r = move_bitmap(m, i);
  return r;
}

static const struct pd_sm_ops smm_ops = {
    .destroy = smm_destroy,
    .nr_blocks = smm_nr_blocks,
    .nr_free = smm_nr_free,
    .get_count = smm_get_count,
    .inc = smm_inc,
    .dec = smm_dec,
    .new_block = smm_new_block,
    .commit = smm_commit,
    .copy_root = smm_copy_root,
    .extend = smm_extend,
};

static int smm_alloc(struct pd_bm *bm, pd_block_t nr_blocks, struct smm **out)
{
  if (nr_blocks > PD_SM_METADATA_MAX_BLOCKS)
    nr_blocks = PD_SM_METADATA_MAX_BLOCKS;
  struct smm *m = calloc(1, sizeof *m);
  if (!m)
    return pd_fail(ENOMEM, "metadata space map: out of memory");
  m->sm.ops = &smm_ops;
  m->bm = bm;
  int r = resize_arrays(m, nr_blocks);
  if (r < 0) {
    smm_destroy(&m->sm);
    return r;
  }
  *out = m;
  return 0;
}

int pd_sm_metadata_create(struct pd_bm *bm, pd_block_t nr_blocks, pd_block_t superblock,
                          struct pd_sm **out)
{
  struct smm *m = NULL;
  if (nr_blocks <= superblock + 8)
    return pd_fail(ENOSPC, "%s: a metadata device of %llu blocks is too small",
                   pd_bm_name(bm), (unsigned long long)nr_blocks);
  int r = smm_alloc(bm, nr_blocks, &m);
  if (r < 0)
    return r;
  /* The kernel's bootstrap: the index, the ref count tree's root, then the
   * bitmaps, right after the superblock; all counted once. */
  pd_block_t next = superblock + 1;
  m->index_block = next++;
  m->index_moved = true;
  m->rc_root = next++;
  for (unsigned i = 0; i < m->nr_bitmaps; i++) {
    m->bitmap[i] = next++;
    m->bitmap_moved[i] = true;
  }
  for (pd_block_t b = 0; b < next; b++)
    m->count[b] = 1;
  m->allocated = m->committed_allocated = next;
  m->rc_nodes = malloc(sizeof *m->rc_nodes);
  struct pd_block *blk = NULL;
  r = m->rc_nodes ? pd_bm_write_lock_zero(bm, m->rc_root, &pd_btree_node_validator, &blk)
                  : pd_fail(ENOMEM, "metadata space map: out of memory");
  if (r < 0) {
    smm_destroy(&m->sm);
    return r;
  }
  pd_node_init(pd_block_data(blk), true, RC_VALUE_SIZE);
  pd_bm_unlock(blk);
  m->rc_nodes[0] = m->rc_root;
  m->nr_rc_nodes = 1;
  m->hint = next;
  m->dirty = true;
  *out = &m->sm;
  return 0;
}

/* ---- open ---- */

struct rc_walk {
  size_t cap;      /* of m->rc_nodes */
  size_t found;    /* leaf entries */
  uint64_t next;   /* the smallest key the next entry may have */
};

static int load_rc_tree(struct smm *m, pd_block_t b, unsigned depth, struct rc_walk *w)
{
  if (b >= m->nr_blocks || depth > 16)
    return pd_fail(EILSEQ, "%s: the ref count tree of the metadata space map points to block %llu, "
                   "outside the map", pd_bm_name(m->bm), (unsigned long long)b);
  if (m->nr_rc_nodes == w->cap) {
    size_t n = w->cap ? w->cap * 2 : 16;
    pd_block_t *p = realloc(m->rc_nodes, n * sizeof *p);
    if (!p)
      return pd_fail(ENOMEM, "metadata space map: out of memory");
    m->rc_nodes = p;
    w->cap = n;
  }
  m->rc_nodes[m->nr_rc_nodes++] = b;
  struct pd_block *blk;
  int r = pd_bm_read_lock(m->bm, b, &pd_btree_node_validator, &blk);
  if (r < 0)
    return r;
  void *d = pd_block_data(blk);
  uint32_t nr = pd_node_nr(d);
  if (pd_node_is_leaf(d) && pd_node_vsize(d) != RC_VALUE_SIZE)
    r = pd_fail(EILSEQ, "%s: block %llu: a ref count tree leaf with %u-byte values",
                pd_bm_name(m->bm), (unsigned long long)b, pd_node_vsize(d));
  for (uint32_t i = 0; i < nr && r == 0; i++) {
    if (!pd_node_is_leaf(d)) {
      pd_block_t child = pd_node_value64(d, i);
      pd_bm_unlock(blk);
      r = load_rc_tree(m, child, depth + 1, w);
      if (r == 0)
        r = pd_bm_read_lock(m->bm, b, &pd_btree_node_validator, &blk);
      if (r < 0)
        return r;
      d = pd_block_data(blk);
      continue;
    }
    pd_block_t key = pd_node_key(d, i);
    udm_le32 v;
    memcpy(&v, pd_node_value(d, i), sizeof v);
    uint32_t c = le32_get(v);
    if (key < w->next || key >= m->nr_blocks || m->count[key] != 3 || c < 3)
      r = pd_fail(EILSEQ, "%s: block %llu: the ref count tree gives block %llu a count of %u, "
                  "which its bitmap does not have, or out of order", pd_bm_name(m->bm),
                  (unsigned long long)b, (unsigned long long)key, c);
    else
      w->found++, w->next = key + 1, m->count[key] = c;
  }
  pd_bm_unlock(blk);
  return r;
}

int pd_sm_metadata_open(struct pd_bm *bm, const void *root_le, size_t len, struct pd_sm **out)
{
  struct pd_sm_root root;
  if (len < sizeof root)
    return pd_fail(EINVAL, "metadata space map root too small");
  memcpy(&root, root_le, sizeof root);
  pd_block_t nr_blocks = le64_get(root.nr_blocks);
  if (nr_blocks > pd_bm_nr_blocks(bm) || nr_blocks > PD_SM_METADATA_MAX_BLOCKS ||
      nr_blocks == 0)
    return pd_fail(EILSEQ, "%s: the metadata space map counts %llu blocks, the device has %llu",
                   pd_bm_name(bm), (unsigned long long)nr_blocks,
                   (unsigned long long)pd_bm_nr_blocks(bm));
  struct smm *m = NULL;
  int r = smm_alloc(bm, nr_blocks, &m);
  if (r < 0)
    return r;
  m->index_block = le64_get(root.bitmap_root);
  m->rc_root = le64_get(root.ref_count_root);
  struct pd_block *blk;
  r = m->index_block < nr_blocks ? pd_bm_read_lock(bm, m->index_block, &pd_index_validator, &blk)
      : pd_fail(EILSEQ, "%s: the metadata space map's index is at block %llu, past its end",
                pd_bm_name(bm), (unsigned long long)m->index_block);
  if (r < 0)
    goto fail;
  struct pd_metadata_index *mi = pd_block_data(blk);
  for (unsigned i = 0; i < m->nr_bitmaps; i++)
    m->bitmap[i] = le64_get(mi->index[i].blocknr);
  pd_bm_unlock(blk);
  for (unsigned i = 0; i < m->nr_bitmaps && r == 0; i++) {
    if (m->bitmap[i] >= nr_blocks || m->bitmap[i] == 0) {
      r = pd_fail(EILSEQ, "%s: block %llu: bitmap %u of the metadata space map is at block %llu",
                  pd_bm_name(bm), (unsigned long long)m->index_block, i,
                  (unsigned long long)m->bitmap[i]);
      break;
    }
    r = pd_bm_read_lock(bm, m->bitmap[i], &pd_bitmap_validator, &blk);
    if (r < 0)
      break;
    const uint8_t *bits = (uint8_t *)pd_block_data(blk) + sizeof(struct pd_bitmap_header);
    pd_block_t base = (pd_block_t)i * EPB;
    for (uint32_t j = 0; j < EPB && base + j < nr_blocks; j++)
      m->count[base + j] = bitmap_get(bits, j);
    pd_bm_unlock(blk);
  }
  struct rc_walk w = {0, 0, 0};
  size_t many = 0;
  for (pd_block_t b = 0; b < nr_blocks; b++)
    many += m->count[b] == 3;
  if (r == 0)
    r = load_rc_tree(m, m->rc_root, 0, &w);
  if (r == 0 && w.found != many)
    r = pd_fail(EILSEQ, "%s: %zu blocks have a count above 2 in their bitmaps, the ref count "
                "tree at block %llu lists %zu", pd_bm_name(bm), many,
                (unsigned long long)m->rc_root, w.found);
  m->allocated = 0;
  for (pd_block_t b = 0; b < nr_blocks && r == 0; b++) {
    if (m->count[b]) {
      m->allocated++;
      m->was_used[b / 8] |= (uint8_t)(1u << (b % 8));
    }
  }
  if (r == 0 && m->allocated != le64_get(root.nr_allocated))
    r = pd_fail(EILSEQ, "%s: the metadata space map says %llu blocks are in use, its bitmaps "
                "count %llu", pd_bm_name(bm), (unsigned long long)le64_get(root.nr_allocated),
                (unsigned long long)m->allocated);
  if (r < 0)
    goto fail;
  memset(m->bitmap_moved, 0, m->nr_bitmaps * sizeof *m->bitmap_moved);
  m->committed_allocated = m->allocated;
  m->dirty = false;
  m->rc_dirty = false;
  *out = &m->sm;
  return 0;
fail:
  smm_destroy(&m->sm);
  return r;
}
