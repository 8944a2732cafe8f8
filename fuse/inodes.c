/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inode table of the export.  A plain array: it holds one entry per
 * device the kernel currently knows, and only metadata operations (lookup,
 * getattr, open) consult it, never reads and writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inodes.h"

struct udm_fuse_inode {
  uint64_t ino;
  uint64_t nlookup;
  char name[UDM_NAME_MAX + 1];
};

int udm_fuse_inodes_init(struct udm_fuse_inodes *t)
{
  memset(t, 0, sizeof *t);
  int r = pthread_mutex_init(&t->lock, NULL);
  return -r;
}

void udm_fuse_inodes_destroy(struct udm_fuse_inodes *t)
{
  free(t->v);
  pthread_mutex_destroy(&t->lock);
}

static struct udm_fuse_inode *find(struct udm_fuse_inodes *t, uint64_t ino)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].ino == ino)
      return &t->v[i];
  return NULL;
}

int udm_fuse_inodes_remember(struct udm_fuse_inodes *t, uint64_t ino, const char *name)
{
  if (strlen(name) > UDM_NAME_MAX)
    return -ENAMETOOLONG;
  int r = 0;
  pthread_mutex_lock(&t->lock);
  struct udm_fuse_inode *e = find(t, ino);
  if (!e) {
    if (t->n == t->cap) {
      size_t cap = t->cap ? 2 * t->cap : 16;
      struct udm_fuse_inode *v = realloc(t->v, cap * sizeof *v);
      if (!v) {
        r = -ENOMEM;
        goto out;
      }
      t->v = v;
      t->cap = cap;
    }
    e = &t->v[t->n++];
    e->ino = ino;
    e->nlookup = 0;
    strcpy(e->name, name);
  }
  e->nlookup++;
out:
  pthread_mutex_unlock(&t->lock);
  return r;
}

void udm_fuse_inodes_forget(struct udm_fuse_inodes *t, uint64_t ino, uint64_t nlookup)
{
  pthread_mutex_lock(&t->lock);
  struct udm_fuse_inode *e = find(t, ino);
  if (e) {
    e->nlookup = nlookup < e->nlookup ? e->nlookup - nlookup : 0;
    if (e->nlookup == 0)
      *e = t->v[--t->n];
  }
  pthread_mutex_unlock(&t->lock);
}

int udm_fuse_inodes_name(struct udm_fuse_inodes *t, uint64_t ino,
                         char name[UDM_NAME_MAX + 1])
{
  pthread_mutex_lock(&t->lock);
  struct udm_fuse_inode *e = find(t, ino);
  if (e)
    strcpy(name, e->name);
  pthread_mutex_unlock(&t->lock);
  return e ? 0 : -ENOENT;
}

void udm_fuse_inodes_rename(struct udm_fuse_inodes *t, uint64_t ino, const char *name)
{
  if (strlen(name) > UDM_NAME_MAX)
    return;
  pthread_mutex_lock(&t->lock);
  struct udm_fuse_inode *e = find(t, ino);
  if (e)
    strcpy(e->name, name);
  pthread_mutex_unlock(&t->lock);
}
