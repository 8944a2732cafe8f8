/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Copy-on-write btrees, see btree.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "node.h"

/* What a level's leaves hold: the tree's values, or the next level's roots. */
struct level {
  struct pd_btree_info *info;
  unsigned l;
};

static bool bottom(const struct level *lv)
{
  return lv->l + 1 == lv->info->levels;
}

static uint32_t leaf_vsize(const struct level *lv)
{
  return bottom(lv) ? lv->info->value_type.size : 8;
}

static struct pd_tm *tm_of(const struct level *lv)
{
  return lv->info->tm;
}

/* One more reference to everything node D points to (it was copied). */
static int inc_children(const struct level *lv, void *d)
{
  const struct pd_btree_value_type *vt = &lv->info->value_type;
  int r = 0;
  for (uint32_t i = 0; i < pd_node_nr(d) && r == 0; i++) {
    if (!pd_node_is_leaf(d) || !bottom(lv))
      r = pd_tm_inc(tm_of(lv), pd_node_value64(d, i));
    else if (vt->inc)
      r = vt->inc(vt->context, pd_node_value(d, i));
  }
  return r;
}

static int shadow_node(const struct level *lv, pd_block_t b, struct pd_block **out)
{
  bool inc;
  int r = pd_tm_shadow_block(tm_of(lv), b, &pd_btree_node_validator, out, &inc);
  if (r == 0 && inc) {
    r = inc_children(lv, pd_block_data(*out));
    if (r < 0)
      pd_tm_unlock(tm_of(lv), *out);
  }
  return r;
}

static int read_node(const struct level *lv, pd_block_t b, struct pd_block **out)
{
  return pd_tm_read_lock(tm_of(lv), b, &pd_btree_node_validator, out);
}

static void set_value64(void *d, uint32_t i, uint64_t v)
{
  udm_le64 le = le64_put(v);
  memcpy(pd_node_value(d, i), &le, sizeof le);
}

static void insert_at(void *d, uint32_t i, uint64_t key, const void *value)
{
  uint32_t nr = pd_node_nr(d), vs = pd_node_vsize(d);
  udm_le64 *keys = pd_node_keys(d);
  memmove(keys + i + 1, keys + i, (nr - i) * sizeof *keys);
  memmove(pd_node_value(d, i + 1), pd_node_value(d, i), (size_t)(nr - i) * vs);
  keys[i] = le64_put(key);
  memcpy(pd_node_value(d, i), value, vs);
  pd_node(d)->nr_entries = le32_put(nr + 1);
}

static void delete_at(void *d, uint32_t i)
{
  uint32_t nr = pd_node_nr(d), vs = pd_node_vsize(d);
  udm_le64 *keys = pd_node_keys(d);
  memmove(keys + i, keys + i + 1, (nr - i - 1) * sizeof *keys);
  memmove(pd_node_value(d, i), pd_node_value(d, i + 1), (size_t)(nr - i - 1) * vs);
  pd_node(d)->nr_entries = le32_put(nr - 1);
}

/* Move N entries of FROM starting at FROM_I to TO at TO_I (TO has room). */
static void move_entries(void *to, uint32_t to_i, void *from, uint32_t from_i, uint32_t n)
{
  uint32_t vs = pd_node_vsize(to), tnr = pd_node_nr(to), fnr = pd_node_nr(from);
  udm_le64 *tk = pd_node_keys(to), *fk = pd_node_keys(from);
  memmove(tk + to_i + n, tk + to_i, (tnr - to_i) * sizeof *tk);
  memmove(pd_node_value(to, to_i + n), pd_node_value(to, to_i), (size_t)(tnr - to_i) * vs);
  memcpy(tk + to_i, fk + from_i, n * sizeof *tk);
  memcpy(pd_node_value(to, to_i), pd_node_value(from, from_i), (size_t)n * vs);
  memmove(fk + from_i, fk + from_i + n, (fnr - from_i - n) * sizeof *fk);
  memmove(pd_node_value(from, from_i), pd_node_value(from, from_i + n),
          (size_t)(fnr - from_i - n) * vs);
  pd_node(to)->nr_entries = le32_put(tnr + n);
  pd_node(from)->nr_entries = le32_put(fnr - n);
}

static int new_node(const struct level *lv, bool leaf, struct pd_block **out)
{
  int r = pd_tm_new_block(tm_of(lv), &pd_btree_node_validator, out);
  if (r == 0)
    pd_node_init(pd_block_data(*out), leaf, leaf ? leaf_vsize(lv) : 8);
  return r;
}

int pd_btree_empty(struct pd_btree_info *info, pd_block_t *root)
{
  struct level lv = {info, 0};
  struct pd_block *b;
  int r = new_node(&lv, true, &b);
  if (r < 0)
    return r;
  *root = pd_block_location(b);
  pd_tm_unlock(info->tm, b);
  return 0;
}

/* ---- lookup and walks ---- */

static int lookup_level(const struct level *lv, pd_block_t root, uint64_t key, void *value)
{
  struct pd_block *b;
  int r = read_node(lv, root, &b);
  for (unsigned depth = 0; r == 0; depth++) {
    void *d = pd_block_data(b);
    int i = pd_node_lower_bound(d, key);
    if (i < 0 || depth > 64) {
      r = -ENODATA;
      break;
    }
    if (pd_node_is_leaf(d)) {
      if (pd_node_key(d, (uint32_t)i) != key)
        r = -ENODATA;
      else
        memcpy(value, pd_node_value(d, (uint32_t)i), pd_node_vsize(d));
      break;
    }
    pd_block_t child = pd_node_value64(d, (uint32_t)i);
    pd_tm_unlock(lv->info->tm, b);
    r = read_node(lv, child, &b);
    if (r < 0)
      return r;
  }
  pd_tm_unlock(lv->info->tm, b);
  return r;
}

int pd_btree_lookup(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    void *value)
{
  for (unsigned l = 0; l < info->levels; l++) {
    struct level lv = {info, l};
    if (bottom(&lv))
      return lookup_level(&lv, root, keys[l], value);
    udm_le64 sub;
    int r = lookup_level(&lv, root, keys[l], &sub);
    if (r < 0)
      return r;
    root = le64_get(sub);
  }
  return -EINVAL;
}

static int find_edge(struct pd_btree_info *info, pd_block_t root, bool highest, uint64_t *key)
{
  struct level lv = {info, 0};
  struct pd_block *b;
  int r = read_node(&lv, root, &b);
  for (unsigned depth = 0; r == 0; depth++) {
    void *d = pd_block_data(b);
    uint32_t nr = pd_node_nr(d);
    if (nr == 0 || depth > 64) {
      r = -ENODATA;
      break;
    }
    uint32_t i = highest ? nr - 1 : 0;
    if (pd_node_is_leaf(d)) {
      *key = pd_node_key(d, i);
      break;
    }
    pd_block_t child = pd_node_value64(d, i);
    pd_tm_unlock(info->tm, b);
    r = read_node(&lv, child, &b);
    if (r < 0)
      return r;
  }
  pd_tm_unlock(info->tm, b);
  return r;
}

int pd_btree_find_lowest_key(struct pd_btree_info *info, pd_block_t root, uint64_t *key)
{
  return find_edge(info, root, false, key);
}

int pd_btree_find_highest_key(struct pd_btree_info *info, pd_block_t root, uint64_t *key)
{
  return find_edge(info, root, true, key);
}

struct walk {
  pd_btree_walk_fn fn;
  void *context;
  uint64_t keys[PD_BTREE_MAX_LEVELS];
};

static int walk_node(const struct level *lv, pd_block_t b, struct walk *w, unsigned depth)
{
  if (depth > 64)
    return pd_fail(EILSEQ, "btree: block %llu: the tree is deeper than 64 levels",
                   (unsigned long long)b);
  struct pd_block *blk;
  int r = read_node(lv, b, &blk);
  if (r < 0)
    return r;
  void *d = pd_block_data(blk);
  uint32_t nr = pd_node_nr(d), vs = pd_node_vsize(d);
  bool leaf = pd_node_is_leaf(d);
  if (leaf && vs != leaf_vsize(lv)) {
    pd_tm_unlock(lv->info->tm, blk);
    return pd_fail(EILSEQ, "btree: block %llu: a leaf with %u-byte values in a tree of %u-byte "
                   "values", (unsigned long long)b, vs, leaf_vsize(lv));
  }
  /* Copy the node out: the walk may lock the same blocks again below. */
  uint64_t *keys = malloc(nr * sizeof *keys + (size_t)nr * vs + 1);
  if (!keys) {
    pd_tm_unlock(lv->info->tm, blk);
    return pd_fail(ENOMEM, "btree walk: out of memory");
  }
  unsigned char *values = (unsigned char *)(keys + nr);
  for (uint32_t i = 0; i < nr; i++)
    keys[i] = pd_node_key(d, i);
  memcpy(values, pd_node_value(d, 0), (size_t)nr * vs);
  pd_tm_unlock(lv->info->tm, blk);
  for (uint32_t i = 0; i < nr && r == 0; i++) {
    udm_le64 child;
    if (!leaf) {
      memcpy(&child, values + (size_t)i * 8, 8);
      r = walk_node(lv, le64_get(child), w, depth + 1);
      continue;
    }
    w->keys[lv->l] = keys[i];
    if (bottom(lv)) {
      r = w->fn(w->context, w->keys, values + (size_t)i * vs);
    } else {
      struct level next = {lv->info, lv->l + 1};
      memcpy(&child, values + (size_t)i * 8, 8);
      r = walk_node(&next, le64_get(child), w, 0);
    }
  }
  free(keys);
  return r;
}

int pd_btree_walk(struct pd_btree_info *info, pd_block_t root, pd_btree_walk_fn fn,
                  void *context)
{
  struct walk w = {.fn = fn, .context = context};
  struct level lv = {info, 0};
  return walk_node(&lv, root, &w, 0);
}

/* ---- insert ---- */

/* Split full child C (at I in parent P) in two: the upper half moves to a new sibling. */
static int split_child(const struct level *lv, void *p, uint32_t i, struct pd_block *c,
                       struct pd_block **sibling)
{
  void *cd = pd_block_data(c);
  int r = new_node(lv, pd_node_is_leaf(cd), sibling);
  if (r < 0)
    return r;
  void *sd = pd_block_data(*sibling);
  if (pd_node_is_leaf(cd))
    pd_node_init(sd, true, pd_node_vsize(cd));
  uint32_t nr = pd_node_nr(cd);
  move_entries(sd, 0, cd, nr / 2, nr - nr / 2);
  udm_le64 loc = le64_put(pd_block_location(*sibling));
  insert_at(p, i + 1, pd_node_key(sd, 0), &loc);
  return 0;
}

/* Split a full root: its entries move into two new children; it stays put. */
static int split_beneath(const struct level *lv, struct pd_block *root)
{
  void *d = pd_block_data(root);
  bool leaf = pd_node_is_leaf(d);
  uint32_t vs = pd_node_vsize(d), nr = pd_node_nr(d);
  struct pd_block *left, *right;
  int r = new_node(lv, leaf, &left);
  if (r < 0)
    return r;
  r = new_node(lv, leaf, &right);
  if (r < 0) {
    pd_tm_unlock(tm_of(lv), left);
    return r;
  }
  void *ld = pd_block_data(left), *rd = pd_block_data(right);
  pd_node_init(ld, leaf, vs);
  pd_node_init(rd, leaf, vs);
  move_entries(ld, 0, d, 0, nr / 2);
  move_entries(rd, 0, d, 0, nr - nr / 2);
  pd_node_init(d, false, 8);
  udm_le64 l = le64_put(pd_block_location(left)), rr = le64_put(pd_block_location(right));
  insert_at(d, 0, pd_node_key(ld, 0), &l);
  insert_at(d, 1, pd_node_key(rd, 0), &rr);
  pd_tm_unlock(tm_of(lv), left);
  pd_tm_unlock(tm_of(lv), right);
  return 0;
}

/*
 * Shadow the path to the leaf where KEY is or goes, splitting full nodes on
 * the way.  Returns the write-locked leaf, the index of KEY in it or of the
 * place it goes (*found says which), and the level's new root.
 */
static int shadow_path(const struct level *lv, pd_block_t root, uint64_t key,
                       pd_block_t *new_root, struct pd_block **leaf, uint32_t *index,
                       bool *found)
{
  struct pd_block *n;
  int r = shadow_node(lv, root, &n);
  if (r < 0)
    return r;
  *new_root = pd_block_location(n);
  void *d = pd_block_data(n);
  if (pd_node_nr(d) == pd_node_max(d) && (r = split_beneath(lv, n)) < 0)
    goto fail;
  for (unsigned depth = 0;; depth++) {
    d = pd_block_data(n);
    int i = pd_node_lower_bound(d, key);
    if (pd_node_is_leaf(d)) {
      *found = i >= 0 && pd_node_key(d, (uint32_t)i) == key;
      *index = *found ? (uint32_t)i : (uint32_t)(i + 1);
      *leaf = n;
      return 0;
    }
    if (depth > 64 || pd_node_nr(d) == 0) {
      r = pd_fail(EILSEQ, "btree: block %llu: an internal node with no entries, or a loop",
                  (unsigned long long)pd_block_location(n));
      goto fail;
    }
    if (i < 0) {
      i = 0;
      pd_node_keys(d)[0] = le64_put(key);
    }
    struct pd_block *c, *s;
    r = shadow_node(lv, pd_node_value64(d, (uint32_t)i), &c);
    if (r < 0)
      goto fail;
    set_value64(d, (uint32_t)i, pd_block_location(c));
    void *cd = pd_block_data(c);
    if (pd_node_nr(cd) == pd_node_max(cd)) {
      r = split_child(lv, d, (uint32_t)i, c, &s);
      if (r < 0) {
        pd_tm_unlock(tm_of(lv), c);
        goto fail;
      }
      if (key >= pd_node_key(pd_block_data(s), 0)) {
        pd_tm_unlock(tm_of(lv), c);
        c = s;
      } else {
        pd_tm_unlock(tm_of(lv), s);
      }
    }
    pd_tm_unlock(tm_of(lv), n);
    n = c;
  }
fail:
  pd_tm_unlock(tm_of(lv), n);
  return r;
}

/*
 * A level of a multi-level tree was shadowed to LEVEL_ROOT: the level above
 * (PARENT, value PARENT_I, then released) points to it, or for the top
 * level it is the new root.
 */
static void link_level(struct pd_btree_info *info, struct pd_block **parent, uint32_t parent_i,
                       pd_block_t level_root, pd_block_t *new_root)
{
  if (*parent) {
    set_value64(pd_block_data(*parent), parent_i, level_root);
    pd_tm_unlock(info->tm, *parent);
    *parent = NULL;
  } else {
    *new_root = level_root;
  }
}

enum put_mode { PUT_INSERT, PUT_UPDATE };

static int put(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
               const void *value, pd_block_t *new_root, bool *inserted, enum put_mode mode)
{
  const struct pd_btree_value_type *vt = &info->value_type;
  struct pd_block *parent = NULL;
  uint32_t parent_i = 0;
  int r = 0;
  for (unsigned l = 0; l < info->levels; l++) {
    struct level lv = {info, l};
    struct pd_block *leaf;
    uint32_t i;
    bool found;
    pd_block_t level_root;
    r = shadow_path(&lv, root, keys[l], &level_root, &leaf, &i, &found);
    if (r < 0)
      break;
    link_level(info, &parent, parent_i, level_root, new_root);
    void *d = pd_block_data(leaf);
    if (!bottom(&lv)) {
      if (!found) {
        if (mode == PUT_UPDATE) {
          pd_tm_unlock(info->tm, leaf);
          return pd_fail(ENODATA, "btree: no entry to update");
        }
        pd_block_t sub;
        r = pd_btree_empty(&(struct pd_btree_info){info->tm, info->levels - l - 1,
                                                   info->value_type}, &sub);
        if (r < 0) {
          pd_tm_unlock(info->tm, leaf);
          break;
        }
        udm_le64 le = le64_put(sub);
        insert_at(d, i, keys[l], &le);
      }
      root = pd_node_value64(d, i);
      parent = leaf;
      parent_i = i;
      continue;
    }
    if (found) {
      if (mode == PUT_INSERT && vt->dec &&
          !(vt->equal && vt->equal(vt->context, pd_node_value(d, i), value)))
        r = vt->dec(vt->context, pd_node_value(d, i));
      memcpy(pd_node_value(d, i), value, vt->size);
    } else if (mode == PUT_UPDATE) {
      r = pd_fail(ENODATA, "btree: no entry to update");
    } else {
      insert_at(d, i, keys[l], value);
    }
    if (inserted)
      *inserted = !found;
    pd_tm_unlock(info->tm, leaf);
  }
  if (parent)
    pd_tm_unlock(info->tm, parent);
  return r;
}

int pd_btree_insert(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    const void *value, pd_block_t *new_root, bool *inserted)
{
  return put(info, root, keys, value, new_root, inserted, PUT_INSERT);
}

int pd_btree_update(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    const void *value, pd_block_t *new_root)
{
  return put(info, root, keys, value, new_root, NULL, PUT_UPDATE);
}

/* ---- remove ---- */

/*
 * Before descending into child I of N: when it is a third full or less,
 * merge it with a sibling, or share their entries out evenly.
 */
static int rebalance(const struct level *lv, void *n, uint32_t i)
{
  uint32_t nr = pd_node_nr(n);
  if (nr < 2)
    return 0;
  struct pd_block *cb;
  int r = read_node(lv, pd_node_value64(n, i), &cb);
  if (r < 0)
    return r;
  void *cd = pd_block_data(cb);
  bool enough = pd_node_nr(cd) > pd_node_max(cd) / 3;
  pd_tm_unlock(tm_of(lv), cb);
  if (enough)
    return 0;
  uint32_t li = i + 1 < nr ? i : i - 1, ri = li + 1;
  struct pd_block *lb, *rb;
  r = shadow_node(lv, pd_node_value64(n, li), &lb);
  if (r < 0)
    return r;
  r = shadow_node(lv, pd_node_value64(n, ri), &rb);
  if (r < 0) {
    pd_tm_unlock(tm_of(lv), lb);
    return r;
  }
  set_value64(n, li, pd_block_location(lb));
  set_value64(n, ri, pd_block_location(rb));
  void *ld = pd_block_data(lb), *rd = pd_block_data(rb);
  uint32_t nl = pd_node_nr(ld), nrr = pd_node_nr(rd), max = pd_node_max(ld);
  if (nl + nrr <= max) {
    move_entries(ld, nl, rd, 0, nrr);
    pd_block_t gone = pd_block_location(rb);
    pd_tm_unlock(tm_of(lv), rb);
    delete_at(n, ri);
    r = pd_tm_dec(tm_of(lv), gone);
  } else {
    uint32_t target = (nl + nrr) / 2;
    if (nl > target)
      move_entries(rd, 0, ld, target, nl - target);
    else if (nl < target)
      move_entries(ld, nl, rd, 0, target - nl);
    pd_node_keys(n)[ri] = pd_node_keys(rd)[0];
    pd_tm_unlock(tm_of(lv), rb);
  }
  pd_tm_unlock(tm_of(lv), lb);
  return r;
}

/* A root with one child takes the child's place (and its references). */
static int collapse_root(const struct level *lv, void *d)
{
  pd_block_t child = pd_node_value64(d, 0);
  struct pd_block *cb;
  int r = read_node(lv, child, &cb);
  if (r < 0)
    return r;
  uint32_t count;
  r = pd_tm_ref(tm_of(lv), child, &count);
  if (r == 0) {
    memcpy((char *)d + sizeof(struct pd_node_header),
           (char *)pd_block_data(cb) + sizeof(struct pd_node_header),
           PD_BLOCK_SIZE - sizeof(struct pd_node_header));
    struct pd_node_header *h = pd_node(d), *ch = pd_node(pd_block_data(cb));
    h->flags = ch->flags;
    h->nr_entries = ch->nr_entries;
    h->max_entries = ch->max_entries;
    h->value_size = ch->value_size;
  }
  pd_tm_unlock(tm_of(lv), cb);
  if (r == 0 && count > 1)
    r = inc_children(lv, d);
  if (r == 0)
    r = pd_tm_dec(tm_of(lv), child);
  return r;
}

static int remove_level(const struct level *lv, pd_block_t root, uint64_t key,
                        pd_block_t *new_root)
{
  struct pd_block *n;
  int r = shadow_node(lv, root, &n);
  if (r < 0)
    return r;
  *new_root = pd_block_location(n);
  const struct pd_btree_value_type *vt = &lv->info->value_type;
  for (unsigned depth = 0;; depth++) {
    void *d = pd_block_data(n);
    while (depth == 0 && !pd_node_is_leaf(d) && pd_node_nr(d) == 1) {
      r = collapse_root(lv, d);
      if (r < 0)
        goto out;
    }
    int i = pd_node_lower_bound(d, key);
    if (pd_node_is_leaf(d)) {
      if (i < 0 || pd_node_key(d, (uint32_t)i) != key) {
        r = -ENODATA;
        goto out;
      }
      if (!bottom(lv))
        r = -EINVAL; /* upper levels are removed from by remove_upper */
      else if (vt->dec)
        r = vt->dec(vt->context, pd_node_value(d, (uint32_t)i));
      if (r == 0)
        delete_at(d, (uint32_t)i);
      goto out;
    }
    if (i < 0 || depth > 64) {
      r = -ENODATA;
      goto out;
    }
    r = rebalance(lv, d, (uint32_t)i);
    if (r < 0)
      goto out;
    if (depth == 0 && pd_node_nr(d) == 1) {
      r = collapse_root(lv, d);
      if (r < 0)
        goto out;
      depth = (unsigned)-1; /* look at the root again */
      continue;
    }
    i = pd_node_lower_bound(d, key);
    if (i < 0) {
      r = -ENODATA;
      goto out;
    }
    struct pd_block *c;
    r = shadow_node(lv, pd_node_value64(d, (uint32_t)i), &c);
    if (r < 0)
      goto out;
    set_value64(d, (uint32_t)i, pd_block_location(c));
    pd_tm_unlock(tm_of(lv), n);
    n = c;
  }
out:
  pd_tm_unlock(tm_of(lv), n);
  return r;
}

int pd_btree_remove(struct pd_btree_info *info, pd_block_t root, const uint64_t *keys,
                    pd_block_t *new_root)
{
  struct pd_block *parent = NULL;
  uint32_t parent_i = 0;
  int r = 0;
  for (unsigned l = 0; l < info->levels; l++) {
    struct level lv = {info, l};
    pd_block_t level_root;
    struct pd_block *leaf = NULL;
    if (bottom(&lv)) {
      r = remove_level(&lv, root, keys[l], &level_root);
    } else {
      uint32_t i;
      bool found;
      r = shadow_path(&lv, root, keys[l], &level_root, &leaf, &i, &found);
      if (r == 0 && !found) {
        pd_tm_unlock(info->tm, leaf);
        leaf = NULL;
        r = -ENODATA;
      }
      if (r == 0) {
        root = pd_node_value64(pd_block_data(leaf), i);
        parent_i = i;
      }
    }
    if (r < 0 && r != -ENODATA)
      break;
    /* Even when KEYS is absent the path was shadowed: link the new roots. */
    link_level(info, &parent, parent_i, level_root, new_root);
    if (r < 0)
      break;
    parent = leaf;
  }
  if (parent)
    pd_tm_unlock(info->tm, parent);
  return r;
}

/* ---- delete ---- */

static int del_node(const struct level *lv, pd_block_t b, unsigned depth)
{
  uint32_t count;
  int r = pd_tm_ref(tm_of(lv), b, &count);
  if (r < 0)
    return r;
  if (count > 1 || depth > 64)
    return pd_tm_dec(tm_of(lv), b);
  struct pd_block *blk;
  r = read_node(lv, b, &blk);
  if (r < 0)
    return r;
  void *d = pd_block_data(blk);
  uint32_t nr = pd_node_nr(d), vs = pd_node_vsize(d);
  bool leaf = pd_node_is_leaf(d);
  unsigned char *values = malloc((size_t)nr * vs + 1);
  if (!values) {
    pd_tm_unlock(tm_of(lv), blk);
    return pd_fail(ENOMEM, "btree: out of memory");
  }
  memcpy(values, pd_node_value(d, 0), (size_t)nr * vs);
  pd_tm_unlock(tm_of(lv), blk);
  const struct pd_btree_value_type *vt = &lv->info->value_type;
  for (uint32_t i = 0; i < nr && r == 0; i++) {
    udm_le64 child;
    if (!leaf) {
      memcpy(&child, values + (size_t)i * 8, 8);
      r = del_node(lv, le64_get(child), depth + 1);
    } else if (!bottom(lv)) {
      struct level next = {lv->info, lv->l + 1};
      memcpy(&child, values + (size_t)i * 8, 8);
      r = del_node(&next, le64_get(child), 0);
    } else if (vt->dec) {
      r = vt->dec(vt->context, values + (size_t)i * vs);
    }
  }
  free(values);
  return r ? r : pd_tm_dec(tm_of(lv), b);
}

int pd_btree_del(struct pd_btree_info *info, pd_block_t root)
{
  struct level lv = {info, 0};
  return del_node(&lv, root, 0);
}
