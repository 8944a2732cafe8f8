/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdevmapper's dependency tree, as far as dmsetup's "ls --tree" uses it:
 * nodes for devices and what their live tables use, built with the
 * library's own tasks (INFO and DEPS), walked top-down or bottom-up.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libdm.h"

#define EXPORT __attribute__((visibility("default")))

/* The ABI's structures and task types this file needs (libdevmapper.c has them all). */
struct dm_info {
  int exists, suspended, live_table, inactive_table;
  int32_t open_count;
  uint32_t event_nr, major, minor;
  int read_only;
  int32_t target_count;
  int deferred_remove, internal_suspend;
};
struct dm_deps {
  uint32_t count, filler;
  uint64_t device[];
};
struct dm_task;
struct dm_task *dm_task_create(int type);
void dm_task_destroy(struct dm_task *t);
int dm_task_set_major(struct dm_task *t, int major);
int dm_task_set_minor(struct dm_task *t, int minor);
int dm_task_run(struct dm_task *t);
int dm_task_get_info_v97(struct dm_task *t, struct dm_info *i);
const char *dm_task_get_name(const struct dm_task *t);
const char *dm_task_get_uuid(const struct dm_task *t);
struct dm_deps *dm_task_get_deps(struct dm_task *t);
enum { TASK_INFO = 6, TASK_DEPS = 7 };

struct dm_tree_node {
  struct dm_tree *tree;
  struct dm_info info;
  char *name, *uuid;
  struct dm_tree_node **uses, **used_by;
  unsigned nuses, nused_by;
};

struct dm_tree {
  struct dm_tree_node root;
  struct dm_tree_node **nodes; /* in the order they were added */
  unsigned count;
};

/* The number a dm_deps entry holds (the kernel's encoding). */
static uint32_t dev_major(uint64_t d)
{
  return (uint32_t)(((d >> 8) & 0xfff) | ((d >> 32) & ~0xfffu));
}
static uint32_t dev_minor(uint64_t d)
{
  return (uint32_t)((d & 0xff) | ((d >> 12) & ~0xffu));
}

EXPORT struct dm_tree *dm_tree_create(void)
{
  struct dm_tree *t = calloc(1, sizeof *t);
  if (!t) {
    libdm_log(3, ENOMEM, "dm_tree_create: out of memory");
    return NULL;
  }
  t->root.tree = t;
  t->root.name = t->root.uuid = (char *)"";
  return t;
}

static void free_node(struct dm_tree_node *n)
{
  free(n->name);
  free(n->uuid);
  free(n->uses);
  free(n->used_by);
  free(n);
}

EXPORT void dm_tree_free(struct dm_tree *t)
{
  if (!t)
    return;
  for (unsigned i = 0; i < t->count; i++)
    free_node(t->nodes[i]);
  free(t->nodes);
  free(t);
}

EXPORT struct dm_tree_node *dm_tree_find_node(struct dm_tree *t, uint32_t major, uint32_t minor)
{
  if (!major && !minor)
    return &t->root;
  for (unsigned i = 0; i < t->count; i++)
    if (t->nodes[i]->info.major == major && t->nodes[i]->info.minor == minor)
      return t->nodes[i];
  return NULL;
}

static int push(struct dm_tree_node ***v, unsigned *n, struct dm_tree_node *x)
{
  for (unsigned i = 0; i < *n; i++)
    if ((*v)[i] == x)
      return 0;
  struct dm_tree_node **g = realloc(*v, (*n + 1) * sizeof **v);
  if (!g)
    return -ENOMEM;
  g[(*n)++] = x;
  *v = g;
  return 0;
}

static struct dm_tree_node *add(struct dm_tree *t, uint32_t major, uint32_t minor, unsigned depth)
{
  struct dm_tree_node *n = dm_tree_find_node(t, major, minor);
  if (n)
    return n;
  if (depth > 64) {
    libdm_log(3, ELOOP, "dm_tree_add_dev: devices nested deeper than 64 at %u:%u", major, minor);
    return NULL;
  }
  struct dm_task *task = dm_task_create(TASK_INFO);
  struct dm_info info = {0};
  if (!task || !dm_task_set_major(task, (int)major) || !dm_task_set_minor(task, (int)minor) ||
      !dm_task_run(task) || !dm_task_get_info_v97(task, &info)) {
    dm_task_destroy(task);
    return NULL;
  }
  n = calloc(1, sizeof *n);
  struct dm_tree_node **g = realloc(t->nodes, (t->count + 1) * sizeof *g);
  if (!n || !g) {
    free(n);
    if (g)
      t->nodes = g;
    dm_task_destroy(task);
    libdm_log(3, ENOMEM, "dm_tree_add_dev: out of memory");
    return NULL;
  }
  t->nodes = g;
  n->tree = t;
  n->info = info;
  /* Not a udm device: a block device (or file) a table uses, by number only. */
  n->info.major = major;
  n->info.minor = minor;
  n->name = strdup(info.exists ? dm_task_get_name(task) : "");
  n->uuid = strdup(info.exists ? dm_task_get_uuid(task) : "");
  dm_task_destroy(task);
  t->nodes[t->count++] = n;
  if (!n->name || !n->uuid) {
    libdm_log(3, ENOMEM, "dm_tree_add_dev: out of memory");
    return NULL;
  }
  if (!info.exists)
    return n;
  task = dm_task_create(TASK_DEPS);
  if (!task || !dm_task_set_major(task, (int)major) || !dm_task_set_minor(task, (int)minor) ||
      !dm_task_run(task)) {
    dm_task_destroy(task);
    return NULL;
  }
  struct dm_deps *d = dm_task_get_deps(task);
  for (uint32_t i = 0; d && i < d->count; i++) {
    if (!d->device[i])
      continue; /* a regular file: no device number, no node */
    struct dm_tree_node *c = add(t, dev_major(d->device[i]), dev_minor(d->device[i]), depth + 1);
    if (!c || push(&n->uses, &n->nuses, c) < 0 || push(&c->used_by, &c->nused_by, n) < 0) {
      dm_task_destroy(task);
      return NULL;
    }
  }
  dm_task_destroy(task);
  return n;
}

EXPORT int dm_tree_add_dev(struct dm_tree *t, uint32_t major, uint32_t minor)
{
  return add(t, major, minor, 0) != NULL;
}

/*
 * The children of a node: what it uses, or (inverted) what uses it.  The
 * root's are the devices nothing uses (inverted: that use nothing), in the
 * order they were added.
 */
static struct dm_tree_node *child(const struct dm_tree_node *p, uint32_t inverted, unsigned i,
                                  unsigned *count)
{
  const struct dm_tree *t = p->tree;
  if (p != &t->root) {
    *count = inverted ? p->nused_by : p->nuses;
    return i < *count ? (inverted ? p->used_by : p->uses)[i] : NULL;
  }
  struct dm_tree_node *found = NULL;
  unsigned k = 0;
  for (unsigned j = 0; j < t->count; j++) {
    const struct dm_tree_node *n = t->nodes[j];
    if ((inverted ? n->nuses : n->nused_by) == 0) {
      if (k == i)
        found = t->nodes[j];
      k++;
    }
  }
  *count = k;
  return found;
}

EXPORT struct dm_tree_node *dm_tree_next_child(void **handle, const struct dm_tree_node *parent,
                                               uint32_t inverted)
{
  /* The handle counts the children given so far (1-based, as a pointer-sized number). */
  uintptr_t i = (uintptr_t)*handle;
  unsigned count;
  struct dm_tree_node *c = child(parent, inverted, (unsigned)i, &count);
  *handle = c ? (void *)(i + 1) : NULL;
  return c;
}

EXPORT int dm_tree_node_num_children(const struct dm_tree_node *n, uint32_t inverted)
{
  unsigned count;
  child(n, inverted, 0, &count);
  return (int)count;
}

EXPORT const struct dm_info *dm_tree_node_get_info(const struct dm_tree_node *n)
{
  return &n->info;
}

EXPORT const char *dm_tree_node_get_name(const struct dm_tree_node *n)
{
  return n->name;
}

EXPORT const char *dm_tree_node_get_uuid(const struct dm_tree_node *n)
{
  return n->uuid;
}
