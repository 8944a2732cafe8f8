/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udmd's FUSE export and the block devices attached over its files.
 *
 * The order at start is the one tests/fuse/udm-fuse-serve --cleanup shows:
 * detach what a dead daemon left attached to our files first (a new mount
 * at the same path would make its files and ours look alike), then clear
 * its dead mount, then mount.  At shutdown our attachments are detached
 * before the export goes, so that no loop device is left over a dead file.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach.h"
#include "log.h"
#include "platform.h"
#include "runtime.h"
#ifdef UDM_HAVE_FUSE
#include "udm_fuse.h"
#endif

/* How long a detach waits for the kernel's asynchronous release of the file. */
#define CLOSE_TIMEOUT_MS 10000

struct attachment {
  struct attachment *next;
  char *name;
  char *file;        /* RUNTIME/dev/NAME */
  char *link;        /* RUNTIME/block/NAME */
  char devpath[256]; /* /dev/loopN */
  bool direct_io;
};

struct udmd_attach {
  struct udm_ctx *ctx;
  char *dev_dir;   /* RUNTIME/dev */
  char *block_dir; /* RUNTIME/block */
#ifdef UDM_HAVE_FUSE
  struct udm_fuse *fuse;
#endif
  char unavailable[512]; /* why there is no export, or "" */
  pthread_mutex_t lock;  /* the list, and every attach and detach */
  struct attachment *list;
};

static char *join(const char *dir, const char *leaf)
{
  size_t n = strlen(dir) + strlen(leaf) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, leaf);
  return p;
}

#ifdef UDM_HAVE_FUSE
static int detach_leftover(void *opaque, const char *devpath, const char *backing)
{
  (void)opaque;
  int r = udm_platform_detach(devpath);
  udmd_log(LOG_WARNING, "detached %s, left attached to %s by a dead udmd%s", devpath,
           backing, r == -EBUSY ? " (in use: it goes when its last user closes it)" : "");
  return 0;
}

/* Symlinks of a previous daemon in RUNTIME/block: none of them is ours. */
static void clear_block_dir(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *p = join(dir, e->d_name);
    struct stat st;
    if (p && lstat(p, &st) == 0 && S_ISLNK(st.st_mode))
      unlink(p);
    free(p);
  }
  closedir(d);
}

static void clean_leftovers(struct udmd_attach *a)
{
  char *under = join(a->dev_dir, "");
  if (under) {
    int r = udm_platform_foreach_attached(under, detach_leftover, NULL);
    if (r < 0)
      udmd_log(LOG_WARNING, "cannot list the block devices attached to %s: %s", under,
               strerror(-r));
    free(under);
  }
  struct stat st;
  if (stat(a->dev_dir, &st) < 0 && errno == ENOTCONN) {
    int r = udm_platform_unmount_stale(a->dev_dir);
    if (r < 0)
      udmd_log(LOG_WARNING, "cannot unmount the dead export at %s: %s", a->dev_dir,
               strerror(-r));
    else
      udmd_log(LOG_WARNING, "unmounted the export of a dead udmd at %s", a->dev_dir);
  }
  clear_block_dir(a->block_dir);
}
#endif

struct udmd_attach *udmd_attach_new(struct udm_ctx *ctx, const char *runtime_dir)
{
  struct udmd_attach *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->ctx = ctx;
  a->dev_dir = join(runtime_dir, UDM_DEV_DIR);
  a->block_dir = join(runtime_dir, UDM_BLOCK_DIR);
  if (!a->dev_dir || !a->block_dir || pthread_mutex_init(&a->lock, NULL) != 0) {
    free(a->dev_dir);
    free(a->block_dir);
    free(a);
    return NULL;
  }
  /* Before any thread exists, so that every thread inherits the mark. */
  int r = udm_platform_set_io_flusher();
  /* EPERM is the common case (no CAP_SYS_RESOURCE, as in many containers). */
  if (r < 0)
    udmd_log(r == -EPERM ? LOG_INFO : LOG_WARNING,
             "not marked as an I/O flusher (%s): writeback through a block device "
             "attached to udmd could wait on udmd under memory pressure",
             strerror(-r));
#ifdef UDM_HAVE_FUSE
  clean_leftovers(a);
  if (mkdir(a->block_dir, 0755) < 0 && errno != EEXIST)
    udmd_log(LOG_WARNING, "cannot create %s: %s", a->block_dir, strerror(errno));
  r = udm_fuse_new(ctx, a->dev_dir, NULL, &a->fuse);
  if (r < 0) {
    snprintf(a->unavailable, sizeof a->unavailable,
             "the FUSE export at %s could not be mounted (%s)", a->dev_dir, strerror(-r));
    udmd_log(LOG_WARNING, "%s: devices have no file in %s and cannot be attached",
             a->unavailable, a->dev_dir);
  }
#else
  snprintf(a->unavailable, sizeof a->unavailable,
           "this udmd is built without libfuse3 (no FUSE export)");
  udmd_log(LOG_WARNING, "%s: devices have no file in %s and cannot be attached",
           a->unavailable, a->dev_dir);
#endif
  return a;
}

static struct attachment *find(struct udmd_attach *a, const char *name,
                               struct attachment ***prev)
{
  struct attachment **p;
  for (p = &a->list; *p; p = &(*p)->next)
    if (strcmp((*p)->name, name) == 0)
      break;
  if (prev)
    *prev = p;
  return *p;
}

static void forget(struct attachment **prev)
{
  struct attachment *at = *prev;
  *prev = at->next;
  if (unlink(at->link) < 0 && errno != ENOENT)
    udmd_log(LOG_WARNING, "cannot remove %s: %s", at->link, strerror(errno));
  free(at->name);
  free(at->file);
  free(at->link);
  free(at);
}

static int same_device(void *opaque, const char *devpath, const char *backing)
{
  (void)backing;
  return strcmp(opaque, devpath) == 0;
}

/*
 * The attachment of NAME, when its block device is still there: one that
 * was busy at detach goes by itself when its last user closes it.
 */
static struct attachment *live(struct udmd_attach *a, const char *name,
                               struct attachment ***prev)
{
  struct attachment *at = find(a, name, prev);
  if (at && udm_platform_foreach_attached(at->file, same_device, at->devpath) == 0) {
    udmd_log(LOG_INFO, "%s: %s has detached itself", name, at->devpath);
    forget(*prev);
    at = NULL;
  }
  return at;
}

int udmd_attach_device(struct udmd_attach *a, const char *name, char *devpath, size_t n,
                       bool *direct_io, char *msg, size_t msgn)
{
  if (a->unavailable[0]) {
    snprintf(msg, msgn, "attach %s: %s", name, a->unavailable);
    return -ENOTSUP;
  }
  struct udm_device *dev = udm_device_lookup(a->ctx, name);
  if (!dev) {
    snprintf(msg, msgn, "device %s does not exist", name);
    return -ENXIO;
  }
  struct udm_info info;
  bool readonly = (udm_device_caps(dev) & UDM_CAP_READONLY) ||
                  (udm_device_info(dev, &info) == 0 && info.readonly);
  /* As on dm: a filesystem on a 4096-byte crypt device never sends less. */
  unsigned block_size = udm_device_block_size(dev);
  udm_device_unref(dev);

  pthread_mutex_lock(&a->lock);
  struct attachment **prev, *at = live(a, name, &prev);
  int r = -EBUSY;
  if (at) {
    snprintf(msg, msgn, "attach %s: already attached at %s", name, at->devpath);
    at = NULL; /* not ours to free */
    goto out;
  }
  r = -ENOMEM;
  if (!(at = calloc(1, sizeof *at)) || !(at->name = strdup(name)) ||
      !(at->file = join(a->dev_dir, name)) || !(at->link = join(a->block_dir, name))) {
    snprintf(msg, msgn, "udmd: out of memory");
    goto out;
  }
  r = udm_platform_attach(at->file, readonly, block_size, at->devpath,
                          sizeof at->devpath, &at->direct_io);
  if (r < 0) {
    snprintf(msg, msgn, "attach %s: %s: %s", name, at->file, strerror(-r));
    goto out;
  }
  /* Made beside and renamed, so the link is never missing or half-made. */
  char *tmp = join(a->block_dir, ".new");
  if (!tmp || symlink(at->devpath, tmp) < 0 || rename(tmp, at->link) < 0)
    udmd_log(LOG_WARNING, "%s: cannot make the symlink %s -> %s: %s", name, at->link,
             at->devpath, strerror(errno));
  free(tmp);
  snprintf(devpath, n, "%s", at->devpath);
  *direct_io = at->direct_io;
  at->next = a->list;
  a->list = at;
  udmd_log(LOG_INFO, "attached %s at %s (%u-byte blocks, direct I/O %s%s)", name,
           at->devpath, block_size, at->direct_io ? "on" : "off",
           readonly ? ", read-only" : "");
  at = NULL;
  r = 0;
out:
  pthread_mutex_unlock(&a->lock);
  if (at) {
    free(at->name);
    free(at->file);
    free(at->link);
    free(at);
  }
  return r;
}

/* Detach the block device of *prev; on success (or when gone) forget it. */
static int detach_locked(struct udmd_attach *a, struct attachment **prev, bool forget_busy,
                         char *msg, size_t msgn)
{
  struct attachment *at = *prev;
  int r = udm_platform_detach(at->devpath);
  if (r == -ENXIO)
    r = 0; /* gone already */
  if (r == -EBUSY) {
    snprintf(msg, msgn, "detach %s: %s is in use (mounted or open); it will detach "
             "when its last user closes it", at->name, at->devpath);
    if (forget_busy)
      forget(prev);
    return r;
  }
  if (r < 0) {
    snprintf(msg, msgn, "detach %s: %s: %s", at->name, at->devpath, strerror(-r));
    return r;
  }
#ifndef UDM_HAVE_FUSE
  (void)a;
#else
  /* The loop driver lets go of the file a moment after LOOP_CLR_FD returns. */
  r = udm_fuse_wait_closed(a->fuse, at->name, CLOSE_TIMEOUT_MS);
  if (r < 0)
    snprintf(msg, msgn, "detach %s: %s is detached but %s stayed open for %d s",
             at->name, at->devpath, at->file, CLOSE_TIMEOUT_MS / 1000);
#endif
  udmd_log(LOG_INFO, "detached %s from %s", at->name, at->devpath);
  forget(prev);
  return r;
}

int udmd_attach_detach(struct udmd_attach *a, const char *name, char *msg, size_t msgn)
{
  pthread_mutex_lock(&a->lock);
  struct attachment **prev;
  int r = -ENOENT;
  if (live(a, name, &prev))
    r = detach_locked(a, prev, false, msg, msgn);
  pthread_mutex_unlock(&a->lock);
  if (r == -ENOENT) {
    struct udm_device *dev = udm_device_lookup(a->ctx, name);
    if (dev) {
      snprintf(msg, msgn, "detach %s: the device is not attached", name);
      udm_device_unref(dev);
    } else {
      snprintf(msg, msgn, "device %s does not exist", name);
      r = -ENXIO;
    }
  }
  return r;
}

int udmd_attach_remove(struct udmd_attach *a, struct udm_device *dev, bool force, char *msg,
                       size_t msgn)
{
  const char *name = udm_device_name(dev);
  pthread_mutex_lock(&a->lock);
  struct attachment **prev, *at = live(a, name, &prev);
  int r = 0;
  if (at && !force) {
    snprintf(msg, msgn, "remove %s: the device is attached at %s (udm detach %s first, "
             "or remove -f)", name, at->devpath, name);
    r = -EBUSY;
  } else if (at) {
    char why[512];
    r = detach_locked(a, prev, true, why, sizeof why);
    if (r < 0)
      udmd_log(LOG_WARNING, "remove -f %s: %s", name, why);
    r = 0;
  }
  /*
   * A client that has just gone (an NBD client that exited, a file closed a
   * moment ago) may still hold the device open while its connection is torn
   * down: wait for it, bounded (1 s), before refusing an open device.
   */
  for (unsigned tries = 0; r == 0; tries++) {
    if (udm_device_remove(dev, force ? UDM_REMOVE_FORCE : 0) == 0)
      break;
    int e = udm_errno() ? udm_errno() : EIO;
    snprintf(msg, msgn, "%s", udm_errmsg());
    struct udm_info info;
    if (e != EBUSY || force || tries >= 20 || udm_device_info(dev, &info) < 0 ||
        info.holders > 0 || info.open_count == 0) {
      r = -e;
      break;
    }
    pthread_mutex_unlock(&a->lock);
    struct timespec pause = {0, 50 * 1000000L};
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&a->lock);
    if ((at = live(a, name, &prev))) { /* attached meanwhile */
      snprintf(msg, msgn, "remove %s: the device is attached at %s (udm detach %s "
               "first, or remove -f)", name, at->devpath, name);
      r = -EBUSY;
    }
  }
  pthread_mutex_unlock(&a->lock);
  return r;
}

bool udmd_attach_lookup(struct udmd_attach *a, const char *name, char *devpath, size_t n,
                        bool *direct_io)
{
  pthread_mutex_lock(&a->lock);
  struct attachment **prev, *at = live(a, name, &prev);
  if (at) {
    snprintf(devpath, n, "%s", at->devpath);
    *direct_io = at->direct_io;
  }
  pthread_mutex_unlock(&a->lock);
  return at != NULL;
}

int udmd_attach_follow(struct udmd_attach *a, const char *name, bool resized,
                       unsigned block_size, char *msg, size_t msgn)
{
  pthread_mutex_lock(&a->lock);
  struct attachment *at = find(a, name, NULL);
  int r = 0;
  /* The block size first: the new size is a whole number of the new blocks. */
  if (at && block_size) {
    r = udm_platform_attach_update_block_size(at->devpath, block_size);
    if (r == -EOPNOTSUPP) { /* macOS: the file read-modify-writes smaller requests */
      udmd_log(LOG_WARNING, "%s: %s keeps its block size; the device's is now %u", name,
               at->devpath, block_size);
      r = 0;
    } else if (r < 0) {
      snprintf(msg, msgn, "resume %s: the new logical block size %u did not reach %s: %s",
               name, block_size, at->devpath, strerror(-r));
    }
  }
  if (at && resized && r == 0) {
    r = udm_platform_attach_update_size(at->devpath, at->file);
    if (r < 0)
      snprintf(msg, msgn, "resume %s: the new size did not reach %s: %s", name,
               at->devpath, strerror(-r));
  }
  pthread_mutex_unlock(&a->lock);
  return r;
}

void udmd_attach_abort(struct udmd_attach *a, unsigned timeout_ms)
{
#ifdef UDM_HAVE_FUSE
  if (a->fuse) {
    udm_fuse_abort(a->fuse, timeout_ms);
    return;
  }
#endif
  (void)timeout_ms;
  (void)udm_platform_abort_mount(a->dev_dir);
}

void udmd_attach_free(struct udmd_attach *a)
{
  if (!a)
    return;
  pthread_mutex_lock(&a->lock);
  while (a->list) {
    char why[512];
    if (detach_locked(a, &a->list, true, why, sizeof why) < 0)
      udmd_log(LOG_WARNING, "at shutdown: %s", why);
  }
  pthread_mutex_unlock(&a->lock);
#ifdef UDM_HAVE_FUSE
  udm_fuse_free(a->fuse);
#endif
  rmdir(a->block_dir);
  pthread_mutex_destroy(&a->lock);
  free(a->dev_dir);
  free(a->block_dir);
  free(a);
}

/* Point LINK at TARGET, made beside and renamed so it is never half-made. */
static int make_link(struct udmd_attach *a, const char *target, const char *link)
{
  char *tmp = join(a->block_dir, ".new");
  int r = tmp && symlink(target, tmp) == 0 && rename(tmp, link) == 0 ? 0 : -errno;
  if (!tmp)
    r = -ENOMEM;
  else if (r < 0)
    unlink(tmp);
  free(tmp);
  return r;
}

int udmd_attach_rename(struct udmd_attach *a, const char *name, const char *new_name,
                       char *msg, size_t msgn)
{
  pthread_mutex_lock(&a->lock);
  int r;
#ifdef UDM_HAVE_FUSE
  /* A name no file can have is refused by the library, with its message. */
  bool path_safe = *new_name && !strchr(new_name, '/') && strcmp(new_name, ".") &&
                   strcmp(new_name, "..") && strlen(new_name) <= UDM_NAME_MAX;
  if (a->fuse && path_safe) {
    r = udm_fuse_rename(a->fuse, name, new_name, msg, msgn);
  } else
#endif
  {
    struct udm_device *dev = udm_device_lookup(a->ctx, name);
    if (!dev) {
      snprintf(msg, msgn, "device %s does not exist", name);
      r = -ENXIO;
    } else {
      r = udm_device_rename(dev, new_name) < 0 ? -(udm_errno() ? udm_errno() : EIO) : 0;
      if (r < 0)
        snprintf(msg, msgn, "%s", udm_errmsg());
      udm_device_unref(dev);
    }
  }
  struct attachment *at = r == 0 ? find(a, name, NULL) : NULL;
  if (at) {
    char *n = strdup(new_name), *file = join(a->dev_dir, new_name);
    char *link = join(a->block_dir, new_name);
    if (!n || !file || !link) {
      free(n);
      free(file);
      free(link);
      snprintf(msg, msgn, "rename %s: the device is renamed, but udmd ran out of memory "
               "for its attachment at %s", name, at->devpath);
      r = -ENOMEM;
    } else {
      int e = make_link(a, at->devpath, link);
      if (e < 0)
        udmd_log(LOG_WARNING, "%s: cannot make the symlink %s -> %s: %s", new_name, link,
                 at->devpath, strerror(-e));
      if (unlink(at->link) < 0 && errno != ENOENT)
        udmd_log(LOG_WARNING, "cannot remove %s: %s", at->link, strerror(errno));
      free(at->name);
      free(at->file);
      free(at->link);
      at->name = n;
      at->file = file;
      at->link = link;
    }
  }
  pthread_mutex_unlock(&a->lock);
  if (r == 0)
    udmd_log(LOG_INFO, "renamed device %s to %s", name, new_name);
  return r;
}

int udmd_attach_mknodes(struct udmd_attach *a, const char *name, unsigned *made,
                        unsigned *removed)
{
  *made = *removed = 0;
  pthread_mutex_lock(&a->lock);
  /* Links of attached devices: there, and pointing at their block device. */
  struct attachment **prev = &a->list;
  while (*prev) {
    struct attachment *at = *prev, **here = prev;
    if (name && strcmp(at->name, name) != 0) {
      prev = &at->next;
      continue;
    }
    if (!live(a, at->name, &here)) /* it detached itself: forgotten, link gone */
      continue;
    char target[256];
    ssize_t n = readlink(at->link, target, sizeof target - 1);
    if (n < 0 || (size_t)n != strlen(at->devpath) || memcmp(target, at->devpath, (size_t)n)) {
      int e = make_link(a, at->devpath, at->link);
      if (e < 0)
        udmd_log(LOG_WARNING, "mknodes: cannot make %s: %s", at->link, strerror(-e));
      else
        ++*made;
    }
    prev = &at->next;
  }
  /* Links of devices that are not attached (or not there): removed. */
  DIR *d = opendir(a->block_dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || (name && strcmp(e->d_name, name) != 0) ||
        find(a, e->d_name, NULL))
      continue;
    char *p = join(a->block_dir, e->d_name);
    struct stat st;
    if (p && lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && unlink(p) == 0)
      ++*removed;
    free(p);
  }
  if (d)
    closedir(d);
  pthread_mutex_unlock(&a->lock);
  return 0;
}
