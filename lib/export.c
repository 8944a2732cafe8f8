/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Export directories: where a frontend serves every device as a file
 * DIR/NAME (udmd's FUSE export).  A table that named such a file would send
 * its I/O out through the kernel and back into this context, and opening
 * it at all asks the frontend, which may wait on the lock the table is
 * built under: udmd would wait on itself for good.  So table paths are
 * walked here component by component, symlinks and '..' resolved by hand,
 * and the walk stops *before* it would look inside an export directory:
 * the name that follows is the device's name.  A directory is an export
 * directory when its resolved path is one (compared as strings) or when it
 * lies on the export's file system (its st_dev: a bind mount elsewhere).
 * Every look at a component goes through udm_platform_lstat_cached, which
 * does not ask a FUSE server for attributes of the mount point.
 */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../platform/platform.h"
#include "internal.h"

/* As the kernel: at most 40 symlinks in one lookup. */
#define MAX_SYMLINKS 40
/* Loop devices over loop devices followed before giving up (opened then). */
#define MAX_LOOP_DEPTH 8

struct udm_export_dir {
  char *dir;     /* absolute, its parent resolved */
  dev_t dev;     /* of the mounted export */
  bool have_dev; /* it is a mount point: st_dev tells its files apart */
};

/* DIR absolute with its parent resolved (DIR itself is never looked inside). */
static int canonical_dir(const char *dir, char *out, size_t n)
{
  char copy[PATH_MAX], parent[PATH_MAX];
  if (!*dir || snprintf(copy, sizeof copy, "%s", dir) >= (int)sizeof copy)
    return -ENAMETOOLONG;
  size_t len = strlen(copy);
  while (len > 1 && copy[len - 1] == '/')
    copy[--len] = '\0';
  char *slash = strrchr(copy, '/');
  const char *base = slash ? slash + 1 : copy;
  if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
    return -EINVAL;
  const char *up = !slash ? "." : slash == copy ? "/" : copy;
  if (slash && slash != copy)
    *slash = '\0';
  if (!realpath(up, parent))
    return -errno;
  if (snprintf(out, n, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", base) >= (int)n)
    return -ENAMETOOLONG;
  return 0;
}

int udm_ctx_add_export_dir(struct udm_ctx *ctx, const char *dir)
{
  char canon[PATH_MAX], parent[PATH_MAX];
  int r = dir ? canonical_dir(dir, canon, sizeof canon) : -EINVAL;
  if (r < 0)
    return udm__fail(-r, "udm_ctx_add_export_dir: %s: %s", dir ? dir : "(null)",
                     strerror(-r));
  struct stat st, pst;
  snprintf(parent, sizeof parent, "%s", canon);
  *(strrchr(parent, '/') == parent ? parent + 1 : strrchr(parent, '/')) = '\0';
  r = udm_platform_lstat_cached(canon, &st);
  if (r == 0)
    r = udm_platform_lstat_cached(parent, &pst);
  if (r < 0)
    return udm__fail(-r, "udm_ctx_add_export_dir: %s: %s", canon, strerror(-r));
  if (!S_ISDIR(st.st_mode))
    return udm__fail(ENOTDIR, "udm_ctx_add_export_dir: %s is not a directory", canon);
  char *copy = strdup(canon);
  if (!copy)
    return udm__fail(ENOMEM, "udm_ctx_add_export_dir: out of memory");
  pthread_mutex_lock(&ctx->lock);
  struct udm_export_dir *n = realloc(ctx->exports, (ctx->num_exports + 1) * sizeof *n);
  if (!n) {
    pthread_mutex_unlock(&ctx->lock);
    free(copy);
    return udm__fail(ENOMEM, "udm_ctx_add_export_dir: out of memory");
  }
  ctx->exports = n;
  n[ctx->num_exports++] = (struct udm_export_dir){
      .dir = copy, .dev = st.st_dev, .have_dev = st.st_dev != pst.st_dev};
  pthread_mutex_unlock(&ctx->lock);
  return 0;
}

int udm_ctx_remove_export_dir(struct udm_ctx *ctx, const char *dir)
{
  char canon[PATH_MAX];
  int r = dir ? canonical_dir(dir, canon, sizeof canon) : -EINVAL;
  if (r < 0)
    return udm__fail(-r, "udm_ctx_remove_export_dir: %s: %s", dir ? dir : "(null)",
                     strerror(-r));
  pthread_mutex_lock(&ctx->lock);
  for (unsigned i = 0; i < ctx->num_exports; i++) {
    if (strcmp(ctx->exports[i].dir, canon) == 0) {
      free(ctx->exports[i].dir);
      ctx->exports[i] = ctx->exports[--ctx->num_exports];
      pthread_mutex_unlock(&ctx->lock);
      return 0;
    }
  }
  pthread_mutex_unlock(&ctx->lock);
  return udm__fail(ENOENT, "udm_ctx_remove_export_dir: %s is not an export directory",
                   canon);
}

void udm__export_free_all(struct udm_ctx *ctx)
{
  for (unsigned i = 0; i < ctx->num_exports; i++)
    free(ctx->exports[i].dir);
  free(ctx->exports);
  ctx->exports = NULL;
  ctx->num_exports = 0;
}

/*
 * The export directories as they were when a walk began: a copy, so that a
 * walk (which stats paths and may take long) holds no lock, and the walks
 * made while ctx->lock is held (plugin directories) can make one too.
 */
struct export_set {
  unsigned n;
  struct udm_export_dir *e;
};

static int export_set_copy(struct udm_ctx *ctx, struct export_set *xs)
{
  xs->n = 0;
  xs->e = calloc(ctx->num_exports ? ctx->num_exports : 1, sizeof *xs->e);
  if (!xs->e)
    return -ENOMEM;
  for (unsigned i = 0; i < ctx->num_exports; i++) {
    xs->e[i] = ctx->exports[i];
    if (!(xs->e[i].dir = strdup(ctx->exports[i].dir)))
      return -ENOMEM;
    xs->n = i + 1;
  }
  return 0;
}

static void export_set_free(struct export_set *xs)
{
  for (unsigned i = 0; i < xs->n; i++)
    free(xs->e[i].dir);
  free(xs->e);
}

/* The export directory that the resolved directory CUR (on device dev) is. */
static const struct udm_export_dir *export_at(const struct export_set *xs, const char *cur,
                                              dev_t dev)
{
  for (unsigned i = 0; i < xs->n; i++) {
    const struct udm_export_dir *e = &xs->e[i];
    if (strcmp(cur, e->dir) == 0 || (e->have_dev && dev == e->dev))
      return e;
  }
  return NULL;
}

/* A walk: the resolved directory reached so far and what is left to walk. */
struct walk {
  char cur[PATH_MAX];
  dev_t dev;
  char *rest; /* malloc'd; pos points into it */
  const char *pos;
  unsigned links;
};

/* Go to CUR's parent (CUR is resolved, so '..' is lexical). */
static void walk_up(struct walk *w)
{
  char *slash = strrchr(w->cur, '/');
  if (slash == w->cur)
    w->cur[1] = '\0';
  else if (slash)
    *slash = '\0';
}

/* Prepend TARGET (a symlink's text) to what is left; absolute restarts at '/'. */
static int walk_prepend(struct walk *w, const char *target)
{
  size_t tl = strlen(target), rl = strlen(w->pos);
  char *n = malloc(tl + rl + 1);
  if (!n)
    return -ENOMEM;
  /* What is left is empty or starts with '/': "link/" stays "target/". */
  memcpy(n, target, tl);
  memcpy(n + tl, w->pos, rl + 1);
  free(w->rest);
  w->rest = n;
  w->pos = n;
  if (target[0] == '/')
    snprintf(w->cur, sizeof w->cur, "/");
  return 0;
}

static int resolve(const struct export_set *xs, const char *path, unsigned depth,
                   char **devname, char **errmsg);

/*
 * The walk reached a file that is not a directory: a loop device over an
 * export file is that device; anything else leads elsewhere.
 */
static int resolve_file(const struct export_set *xs, const struct stat *st,
                        unsigned depth, char **devname, char **errmsg)
{
  char backing[PATH_MAX];
  if (!S_ISBLK(st->st_mode) || depth >= MAX_LOOP_DEPTH ||
      udm_platform_loop_backing_file(st->st_rdev, backing, sizeof backing) < 0)
    return 0;
  return resolve(xs, backing, depth + 1, devname, errmsg);
}

static int resolve(const struct export_set *xs, const char *path, unsigned depth,
                   char **devname, char **errmsg)
{
  struct walk w = {.links = 0};
  struct stat st;
  int r = 0;
  if (path[0] == '/')
    snprintf(w.cur, sizeof w.cur, "/");
  else if (!getcwd(w.cur, sizeof w.cur))
    return 0; /* relative to nowhere: opening it fails and says so */
  if (udm_platform_lstat_cached(w.cur, &st) < 0)
    return 0;
  w.dev = st.st_dev;
  if (!(w.rest = strdup(path)))
    return -ENOMEM;
  w.pos = w.rest;
  for (;;) {
    while (*w.pos == '/')
      w.pos++;
    if (!*w.pos)
      break;
    size_t n = strcspn(w.pos, "/");
    char comp[NAME_MAX + 1];
    if (n > NAME_MAX)
      goto out; /* ENAMETOOLONG when opened */
    memcpy(comp, w.pos, n);
    comp[n] = '\0';
    w.pos += n;
    if (!strcmp(comp, "."))
      continue;
    bool dotdot = !strcmp(comp, "..");
    const struct udm_export_dir *e = dotdot ? NULL : export_at(xs, w.cur, w.dev);
    if (e) {
      if (*w.pos) { /* even "NAME/" or "NAME/.": the kernel says ENOTDIR */
        *errmsg = udm__strf("%s leads below %s/%s, the file of udm device '%s' in "
                            "udm's export (not a directory)",
                            path, e->dir, comp, comp);
        r = -ENOTDIR;
        goto out;
      }
      r = (*devname = strdup(comp)) ? 1 : -ENOMEM;
      goto out;
    }
    if (dotdot)
      walk_up(&w);
    else {
      size_t cl = strlen(w.cur);
      char next[PATH_MAX];
      if (snprintf(next, sizeof next, "%s%s%s", w.cur, cl > 1 ? "/" : "", comp) >=
          (int)sizeof next)
        goto out;
      if (udm_platform_lstat_cached(next, &st) < 0)
        goto out; /* missing, or not ours to see: opening it says why */
      if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t tl = readlink(next, target, sizeof target - 1);
        if (tl <= 0 || ++w.links > MAX_SYMLINKS)
          goto out; /* ELOOP or the like when opened */
        target[tl] = '\0';
        if ((r = walk_prepend(&w, target)) < 0)
          goto out;
        if (target[0] != '/')
          continue; /* relative to the symlink's directory, CUR */
      } else {
        memcpy(w.cur, next, strlen(next) + 1);
        if (!S_ISDIR(st.st_mode)) {
          if (!*w.pos)
            r = resolve_file(xs, &st, depth, devname, errmsg);
          goto out; /* else ENOTDIR when opened */
        }
      }
    }
    if (udm_platform_lstat_cached(w.cur, &st) < 0)
      goto out;
    w.dev = st.st_dev;
  }
  const struct udm_export_dir *e = export_at(xs, w.cur, w.dev);
  if (e) {
    *errmsg = udm__strf("%s is udm's export directory %s, not a device in it (name "
                        "a file in it, or udm:NAME)",
                        path, e->dir);
    r = -EISDIR;
  }
out:
  free(w.rest);
  return r;
}

static int resolve_with(struct udm_ctx *ctx, bool locked, const char *path,
                        char **devname, char **errmsg)
{
  struct export_set xs;
  if (!locked)
    pthread_mutex_lock(&ctx->lock);
  int r = ctx->num_exports && *path ? export_set_copy(ctx, &xs) : 1;
  if (!locked)
    pthread_mutex_unlock(&ctx->lock);
  if (r == 1)
    return 0; /* no export directories: nothing to resolve */
  if (r == 0)
    r = resolve(&xs, path, 0, devname, errmsg);
  export_set_free(&xs);
  return r;
}

int udm__export_resolve(struct udm_ctx *ctx, const char *path, char **devname,
                        char **errmsg)
{
  return resolve_with(ctx, false, path, devname, errmsg);
}

int udm__export_resolve_locked(struct udm_ctx *ctx, const char *path, char **devname,
                               char **errmsg)
{
  return resolve_with(ctx, true, path, devname, errmsg);
}
