/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE export (see udm_fuse.h): libfuse3's low-level API, one flat
 * directory, one regular file per device.  Reads and writes go straight to
 * the device without a lock of ours; only metadata operations touch the
 * inode table or ask the context about its devices.
 *
 * Read, write, flush, fsync and fallocate are asynchronous: the libfuse
 * worker submits the request with udm_device_aio_* and returns to read the
 * next one; the completion (on any thread) replies (fuse_reply_* may be
 * called from any thread) and frees the request's context.  No thread waits
 * on a request, so the requests in flight are bounded by the kernel
 * (max_background), not by the workers.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../platform/platform.h"
#include "inodes.h"
#include "udm_fuse.h"

#define DEFAULT_MAX_THREADS 32
/*
 * Asynchronous direct I/O (what the loop driver issues) travels as FUSE
 * "background" requests, which the kernel caps at max_background (12 by
 * default): too few for a queue depth of 32.
 */
#define MAX_BACKGROUND 128
#define IO_ALIGN 4096
/* Idle UDM_FUSE_MAX_IO buffers kept for the next request. */
#define POOL_MAX 32
/*
 * fallocate modes as the FUSE protocol carries them (Linux's values, which
 * macFUSE forwards as well); not every system's headers name them.
 */
#define FUSE_FALLOC_KEEP_SIZE 0x01
#define FUSE_FALLOC_PUNCH_HOLE 0x02
#define FUSE_FALLOC_ZERO_RANGE 0x10
/* Looked up to wake a worker when stopping; no device can have this name. */
#define STOP_NAME ".udm-fuse-stop\n"

struct udm_fuse {
  struct udm_ctx *ctx;
  char *dir;
  struct fuse_session *se;
  uid_t uid;
  gid_t gid;
  struct timespec mount_time;
  unsigned max_threads;
  struct udm_fuse_inodes inodes;
  bool mounted;
  bool registered; /* udm_ctx_add_export_dir */
  atomic_uint in_flight;   /* asynchronous requests not yet answered */

  pthread_mutex_t pool_lock;
  void *pool[POOL_MAX];    /* idle UDM_FUSE_MAX_IO buffers, IO_ALIGN-aligned */
  unsigned npool;

  pthread_t thread;
  bool have_thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;  /* loop_done, an open file released, in_flight zero */
  bool loop_done;       /* under lock */
  int loop_result;
  struct open_file *files; /* under lock: what release has yet to close */
  /*
   * udm_fuse_rename: the one rename the export accepts now (under lock;
   * rename_lock serialises callers), and how it went.
   */
  pthread_mutex_t rename_lock;
  const char *rename_from, *rename_to;
  bool rename_done;
  int rename_err;
  char rename_msg[512];
};

/* An open file: a referenced, open device. */
struct open_file {
  struct udm_device *dev;
  unsigned write_flags; /* UDM_IO_FUA for O_SYNC / O_DSYNC */
  bool writable;
  struct open_file *prev, *next;
};

struct dir_entry {
  uint64_t ino;
  char name[UDM_NAME_MAX + 1];
};

struct dir_list {
  size_t n, cap;
  struct dir_entry *v;
  struct udm_ctx *ctx;
};

static struct udm_fuse *fuse_of(fuse_req_t req)
{
  return fuse_req_userdata(req);
}

static struct open_file *file_of(struct fuse_file_info *fi)
{
  return (struct open_file *)(uintptr_t)fi->fh;
}

static uint64_t ino_of(const struct udm_info *info)
{
  return (uint64_t)info->minor + UDM_FUSE_FIRST_INO;
}

/* errno of a failed udm call, never 0 (the kernel would take it as success). */
static int udm_err(void)
{
  return errno ? errno : EIO;
}

static void root_attr(struct udm_fuse *f, struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_ino = FUSE_ROOT_ID;
  st->st_mode = S_IFDIR | 0755;
  st->st_nlink = 2;
  st->st_uid = f->uid;
  st->st_gid = f->gid;
  udm_platform_stat_set_times(st, f->mount_time);
}

static void device_attr(struct udm_fuse *f, struct udm_device *dev,
                        const struct udm_info *info, struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)ino_of(info);
  st->st_mode = S_IFREG | ((udm_device_caps(dev) & UDM_CAP_READONLY) ? 0400 : 0600);
  st->st_nlink = 1;
  st->st_uid = f->uid;
  st->st_gid = f->gid;
  st->st_size = (off_t)info->size;
  unsigned bs = udm_device_block_size(dev);
  st->st_blksize = bs > IO_ALIGN ? bs : IO_ALIGN;
  st->st_blocks = (blkcnt_t)(info->size / 512);
  udm_platform_stat_set_times(st, f->mount_time);
}

/* The device behind ino (referenced), or -ENOENT if it is gone or replaced. */
static int resolve(struct udm_fuse *f, fuse_ino_t ino, struct udm_device **out,
                   struct udm_info *info)
{
  char name[UDM_NAME_MAX + 1];
  int r = udm_fuse_inodes_name(&f->inodes, ino, name);
  if (r < 0)
    return r;
  struct udm_device *dev = udm_device_lookup(f->ctx, name);
  if (!dev)
    return -ENOENT;
  udm_device_info(dev, info);
  if (ino_of(info) != ino) {
    udm_device_unref(dev);
    return -ENOENT;
  }
  *out = dev;
  return 0;
}

/* ---- session ---------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
  (void)userdata;
  conn->max_write = UDM_FUSE_MAX_IO;
  conn->max_read = UDM_FUSE_MAX_IO; /* libfuse wants it equal to the mount option */
  conn->max_background = MAX_BACKGROUND;
  conn->congestion_threshold = MAX_BACKGROUND * 3 / 4;
  /* The loop driver's requests are asynchronous direct I/O: keep them in parallel. */
  if (conn->capable & FUSE_CAP_ASYNC_DIO)
    conn->want |= FUSE_CAP_ASYNC_DIO;
  /* O_TRUNC comes with open, where it is ignored as a block device ignores it. */
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
    conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  /* Direct I/O only: a page cache in front of the device would hold a second copy. */
  conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
                            FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

/* ---- names -------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct udm_fuse *f = fuse_of(req);
  if (parent != FUSE_ROOT_ID || strlen(name) > UDM_NAME_MAX) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct udm_device *dev = udm_device_lookup(f->ctx, name);
  if (!dev) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct udm_info info;
  udm_device_info(dev, &info);
  struct fuse_entry_param e = {.ino = ino_of(&info)};
  device_attr(f, dev, &info, &e.attr);
  udm_device_unref(dev);
  int r = udm_fuse_inodes_remember(&f->inodes, e.ino, name);
  if (r < 0) {
    fuse_reply_err(req, -r);
    return;
  }
  /* An interrupted lookup never reached the kernel: it holds no reference. */
  if (fuse_reply_entry(req, &e) < 0)
    udm_fuse_inodes_forget(&f->inodes, e.ino, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
  udm_fuse_inodes_forget(&fuse_of(req)->inodes, ino, nlookup);
  fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *v)
{
  for (size_t i = 0; i < count; i++)
    udm_fuse_inodes_forget(&fuse_of(req)->inodes, v[i].ino, v[i].nlookup);
  fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)fi;
  struct udm_fuse *f = fuse_of(req);
  struct stat st;
  if (ino == FUSE_ROOT_ID) {
    root_attr(f, &st);
  } else {
    struct udm_device *dev;
    struct udm_info info;
    int r = resolve(f, ino, &dev, &info);
    if (r < 0) {
      fuse_reply_err(req, -r);
      return;
    }
    device_attr(f, dev, &info, &st);
    udm_device_unref(dev);
  }
  fuse_reply_attr(req, &st, 0.0);
}

/*
 * A device file has the size of its device: truncation to any other size
 * fails as on a block device.  Timestamps are accepted and forgotten (touch
 * works); owner and mode belong to the export.
 */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
  (void)fi;
  struct udm_fuse *f = fuse_of(req);
  if (ino == FUSE_ROOT_ID) {
    fuse_reply_err(req, EPERM);
    return;
  }
  struct udm_device *dev;
  struct udm_info info;
  int r = resolve(f, ino, &dev, &info);
  if (r < 0) {
    fuse_reply_err(req, -r);
    return;
  }
  int err = 0;
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
    err = EPERM;
  else if ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t)attr->st_size != info.size)
    err = EINVAL;
  if (err) {
    fuse_reply_err(req, err);
  } else {
    struct stat st;
    device_attr(f, dev, &info, &st);
    fuse_reply_attr(req, &st, 0.0);
  }
  udm_device_unref(dev);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
  (void)ino;
  struct statvfs sv = {
      .f_bsize = IO_ALIGN,
      .f_frsize = IO_ALIGN,
      .f_namemax = UDM_NAME_MAX,
  };
  fuse_reply_statfs(req, &sv);
}

/*
 * Devices are renamed by udm_fuse_rename only, which renames the file
 * through the kernel so that its names follow (an open file, such as a
 * loop device's backing file, then reports the new path): other renames
 * are refused.
 */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
  struct udm_fuse *f = fuse_of(req);
  if (parent != FUSE_ROOT_ID || newparent != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  pthread_mutex_lock(&f->lock);
  bool expected = f->rename_from && !f->rename_done && flags == 0 &&
                  strcmp(f->rename_from, name) == 0 && strcmp(f->rename_to, newname) == 0;
  pthread_mutex_unlock(&f->lock);
  if (!expected) {
    fuse_reply_err(req, EPERM);
    return;
  }
  int err = 0;
  char msg[512] = "";
  struct udm_device *dev = udm_device_lookup(f->ctx, name);
  if (!dev) {
    err = ENOENT;
    snprintf(msg, sizeof msg, "device %s does not exist", name);
  } else {
    struct udm_info info;
    udm_device_info(dev, &info);
    if (udm_device_rename(dev, newname) < 0) {
      err = udm_err();
      snprintf(msg, sizeof msg, "%s", udm_errmsg());
    } else {
      udm_fuse_inodes_rename(&f->inodes, ino_of(&info), newname);
    }
    udm_device_unref(dev);
  }
  pthread_mutex_lock(&f->lock);
  f->rename_done = true;
  f->rename_err = err;
  snprintf(f->rename_msg, sizeof f->rename_msg, "%s", msg);
  pthread_mutex_unlock(&f->lock);
  fuse_reply_err(req, err);
}

int udm_fuse_rename(struct udm_fuse *f, const char *name, const char *new_name, char *msg,
                    size_t msgn)
{
  size_t n = strlen(f->dir) + UDM_NAME_MAX + 2;
  char *from = malloc(n), *to = malloc(n);
  int r = 0;
  if (!from || !to) {
    free(from);
    free(to);
    snprintf(msg, msgn, "rename %s: out of memory", name);
    return -ENOMEM;
  }
  snprintf(from, n, "%s/%s", f->dir, name);
  snprintf(to, n, "%s/%s", f->dir, new_name);
  pthread_mutex_lock(&f->rename_lock);
  pthread_mutex_lock(&f->lock);
  f->rename_from = name;
  f->rename_to = new_name;
  f->rename_done = false;
  pthread_mutex_unlock(&f->lock);
  int e = rename(from, to) < 0 ? errno : 0;
  pthread_mutex_lock(&f->lock);
  if (f->rename_done && f->rename_err) {
    r = -f->rename_err;
    snprintf(msg, msgn, "%s", f->rename_msg);
  } else if (e) {
    /* The kernel refused before asking us (or after: the device is renamed). */
    r = -e;
    snprintf(msg, msgn, "rename %s: %s -> %s: %s%s", name, from, to, strerror(e),
             f->rename_done ? " (the device was renamed)" : "");
  }
  f->rename_from = f->rename_to = NULL;
  pthread_mutex_unlock(&f->lock);
  pthread_mutex_unlock(&f->rename_lock);
  free(from);
  free(to);
  return r;
}

/* ---- the directory ------------------------------------------------------ */

static int list_device(void *opaque, const char *name)
{
  struct dir_list *l = opaque;
  struct udm_device *dev = udm_device_lookup(l->ctx, name);
  if (!dev)
    return 0; /* removed meanwhile */
  struct udm_info info;
  udm_device_info(dev, &info);
  udm_device_unref(dev);
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    struct dir_entry *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n].ino = ino_of(&info);
  strcpy(l->v[l->n].name, name);
  l->n++;
  return 0;
}

/* The listing is taken at opendir, so that offsets stay meaningful while devices come and go. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct udm_fuse *f = fuse_of(req);
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  struct dir_list *l = calloc(1, sizeof *l);
  if (!l) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  l->ctx = f->ctx;
  int r = udm_ctx_foreach_device(f->ctx, list_device, l);
  if (r != 0) {
    free(l->v);
    free(l);
    fuse_reply_err(req, r < 0 && r != -1 ? -r : ENOMEM);
    return;
  }
  fi->fh = (uintptr_t)l;
  if (fuse_reply_open(req, fi) < 0) {
    free(l->v);
    free(l);
  }
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
  (void)ino;
  struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;
  char *buf = malloc(size);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  size_t pos = 0;
  /* Entry i: 0 is ".", 1 is "..", 2 + k is device k; the next offset is i + 1. */
  for (size_t i = (size_t)off; i < l->n + 2; i++) {
    struct stat st = {0};
    const char *name;
    if (i < 2) {
      name = i == 0 ? "." : "..";
      st.st_ino = FUSE_ROOT_ID;
      st.st_mode = S_IFDIR;
    } else {
      name = l->v[i - 2].name;
      st.st_ino = (ino_t)l->v[i - 2].ino;
      st.st_mode = S_IFREG;
    }
    size_t n = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
    if (n > size - pos)
      break;
    pos += n;
  }
  fuse_reply_buf(req, buf, pos);
  free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;
  free(l->v);
  free(l);
  fuse_reply_err(req, 0);
}

/* ---- files -------------------------------------------------------------- */

/* The CLOCK_REALTIME instant ms milliseconds from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(unsigned ms)
{
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

static void close_file(struct udm_fuse *f, struct open_file *of)
{
  /* Closed before waiters hear of it: they go on to remove the device. */
  udm_device_close(of->dev);
  pthread_mutex_lock(&f->lock);
  if (of->prev)
    of->prev->next = of->next;
  else
    f->files = of->next;
  if (of->next)
    of->next->prev = of->prev;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->lock);
  udm_device_unref(of->dev);
  free(of);
}

static bool name_is_open(struct udm_fuse *f, const char *name)
{
  for (struct open_file *of = f->files; of; of = of->next)
    if (strcmp(udm_device_name(of->dev), name) == 0)
      return true;
  return false;
}

int udm_fuse_wait_closed(struct udm_fuse *f, const char *name, unsigned timeout_ms)
{
  struct timespec deadline = deadline_in(timeout_ms);
  int r = 0;
  pthread_mutex_lock(&f->lock);
  while (name_is_open(f, name) && r == 0)
    r = pthread_cond_timedwait(&f->cond, &f->lock, &deadline);
  bool open = name_is_open(f, name);
  pthread_mutex_unlock(&f->lock);
  return open ? -ETIMEDOUT : 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct udm_fuse *f = fuse_of(req);
  if (ino == FUSE_ROOT_ID) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  struct udm_device *dev;
  struct udm_info info;
  int r = resolve(f, ino, &dev, &info);
  if (r < 0) {
    fuse_reply_err(req, -r);
    return;
  }
  bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
  /* root ignores mode bits, so a read-only device is enforced here. */
  if (writable && (udm_device_caps(dev) & UDM_CAP_READONLY)) {
    udm_device_unref(dev);
    fuse_reply_err(req, EROFS);
    return;
  }
  struct open_file *of = calloc(1, sizeof *of);
  if (!of) {
    udm_device_unref(dev);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  of->dev = dev;
  of->writable = writable;
  if (fi->flags & (O_SYNC | O_DSYNC))
    of->write_flags = UDM_IO_FUA;
  udm_device_open(dev);
  pthread_mutex_lock(&f->lock);
  of->next = f->files;
  if (f->files)
    f->files->prev = of;
  f->files = of;
  pthread_mutex_unlock(&f->lock);
  fi->fh = (uintptr_t)of;
  fi->direct_io = 1;
  fi->keep_cache = 0;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 15)
  fi->parallel_direct_writes = 1;
#endif
  if (fuse_reply_open(req, fi) < 0) /* interrupted: no release will come */
    close_file(f, of);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  close_file(fuse_of(req), file_of(fi));
  fuse_reply_err(req, 0);
}

/* ---- asynchronous requests ---------------------------------------------- */

/* A UDM_FUSE_MAX_IO buffer from the pool, or a new one. */
static void *pool_get(struct udm_fuse *f)
{
  void *buf = NULL;
  pthread_mutex_lock(&f->pool_lock);
  if (f->npool)
    buf = f->pool[--f->npool];
  pthread_mutex_unlock(&f->pool_lock);
  if (!buf && posix_memalign(&buf, IO_ALIGN, UDM_FUSE_MAX_IO))
    return NULL;
  return buf;
}

static void pool_put(struct udm_fuse *f, void *buf)
{
  pthread_mutex_lock(&f->pool_lock);
  if (f->npool < POOL_MAX) {
    f->pool[f->npool++] = buf;
    buf = NULL;
  }
  pthread_mutex_unlock(&f->pool_lock);
  free(buf);
}

/* One request in flight: what its completion needs to reply. */
struct fuse_io {
  struct udm_fuse *f;
  fuse_req_t req;
  struct udm_device *dev; /* the open file's; the file outlives the request */
  unsigned write_flags;
  void *buf;              /* read into, or a copy of the written data */
  bool pooled;            /* buf came from the pool */
  bool retried;           /* already cut to the device's end */
  size_t size;
  uint64_t off;
  atomic_uint parts;      /* fallocate: pieces outstanding, plus the submitter's */
  atomic_int err;         /* fallocate: the first piece's error */
};

static struct fuse_io *io_new(fuse_req_t req, struct open_file *of, size_t size,
                              off_t off)
{
  struct fuse_io *io = calloc(1, sizeof *io);
  if (!io)
    return NULL;
  io->f = fuse_of(req);
  io->req = req;
  io->dev = of->dev;
  io->write_flags = of->write_flags;
  io->size = size;
  io->off = (uint64_t)off;
  atomic_fetch_add(&io->f->in_flight, 1);
  return io;
}

/* After the reply: nothing of the request is touched again. */
static void io_free(struct fuse_io *io)
{
  struct udm_fuse *f = io->f;
  if (io->buf && io->pooled)
    pool_put(f, io->buf);
  else
    free(io->buf);
  free(io);
  if (atomic_fetch_sub(&f->in_flight, 1) == 1) {
    pthread_mutex_lock(&f->lock);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
  }
}

/* A buffer of io->size bytes: pooled up to UDM_FUSE_MAX_IO. */
static int io_buffer(struct fuse_io *io)
{
  io->pooled = io->size <= UDM_FUSE_MAX_IO;
  io->buf = io->pooled ? pool_get(io->f) : malloc(io->size ? io->size : 1);
  return io->buf ? 0 : -ENOMEM;
}

/* Wait until every asynchronous request has been answered. */
static void wait_in_flight(struct udm_fuse *f)
{
  pthread_mutex_lock(&f->lock);
  while (atomic_load(&f->in_flight))
    pthread_cond_wait(&f->cond, &f->lock);
  pthread_mutex_unlock(&f->lock);
}

/*
 * The device answers EIO past its end; only then is the size asked for, to
 * turn the request into a short read or write.  0 is "nothing left".
 * udm_device_size takes no lock: this runs in completions, which may come
 * under a target's locks (a message's udm_target_kick).
 */
static int clamp_to_device(struct udm_device *dev, size_t *size, uint64_t off)
{
  uint64_t dsize = udm_device_size(dev);
  if (off >= dsize)
    return 0;
  if (off + *size <= dsize)
    return -EIO; /* a genuine I/O error inside the device */
  *size = (size_t)(dsize - off);
  return 1;
}

static void read_done(void *opaque, int err)
{
  struct fuse_io *io = opaque;
  if (err == -EIO && !io->retried) {
    int c = clamp_to_device(io->dev, &io->size, io->off);
    if (c == 0) {
      io->size = 0;
      err = 0;
    } else if (c > 0) {
      io->retried = true;
      if (udm_device_aio_pread(io->dev, io->buf, io->size, io->off, read_done, io) == 0)
        return; /* read_done again, maybe already */
      err = -udm_err();
    }
  }
  if (err)
    fuse_reply_err(io->req, -err);
  else
    fuse_reply_buf(io->req, io->buf, io->size);
  io_free(io);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
  (void)ino;
  struct fuse_io *io = io_new(req, file_of(fi), size, off);
  if (!io || io_buffer(io) < 0) {
    if (io)
      io_free(io);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  if (udm_device_aio_pread(io->dev, io->buf, size, io->off, read_done, io) < 0)
    read_done(io, -udm_err());
}

static void write_done(void *opaque, int err)
{
  struct fuse_io *io = opaque;
  if (err == -EIO && !io->retried) {
    int c = clamp_to_device(io->dev, &io->size, io->off);
    if (c == 0) {
      err = -ENOSPC; /* as a block device answers at its end */
    } else if (c > 0) {
      io->retried = true;
      if (udm_device_aio_pwrite(io->dev, io->buf, io->size, io->off, io->write_flags,
                                write_done, io) == 0)
        return;
      err = -udm_err();
    }
  }
  if (err)
    fuse_reply_err(io->req, -err);
  else
    fuse_reply_write(io->req, io->size);
  io_free(io);
}

/*
 * libfuse reuses buf for its next request as soon as we return, so the
 * data is copied into a pooled buffer that lives until the completion.
 */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
  (void)ino;
  struct fuse_io *io = io_new(req, file_of(fi), size, off);
  if (!io || io_buffer(io) < 0) {
    if (io)
      io_free(io);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  memcpy(io->buf, buf, size);
  if (udm_device_aio_pwrite(io->dev, io->buf, size, io->off, io->write_flags, write_done,
                            io) < 0)
    write_done(io, -udm_err());
}

/* flush, fsync, and the pieces of fallocate: an errno reply when the last is done. */
static void err_done(void *opaque, int err)
{
  struct fuse_io *io = opaque;
  int none = 0;
  if (err)
    atomic_compare_exchange_strong(&io->err, &none, err);
  if (atomic_fetch_sub(&io->parts, 1) != 1)
    return;
  fuse_reply_err(io->req, -atomic_load(&io->err));
  io_free(io);
}

static void flush_device(fuse_req_t req, struct open_file *of)
{
  struct fuse_io *io = io_new(req, of, 0, 0);
  if (!io) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  atomic_init(&io->parts, 1);
  if (udm_device_aio_flush(io->dev, err_done, io) < 0)
    err_done(io, -udm_err());
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  struct open_file *of = file_of(fi);
  /* flush comes with every close(); only a writer has anything to make stable. */
  if (of->writable)
    flush_device(req, of);
  else
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
  (void)ino, (void)datasync;
  flush_device(req, file_of(fi));
}

/* One piece of a fallocate: write-zeroes of [off, off+len). */
static void zero_piece(struct fuse_io *io, uint64_t off, uint64_t len, unsigned flags)
{
  atomic_fetch_add(&io->parts, 1);
  if (udm_device_aio_write_zeroes(io->dev, len, off, flags, err_done, io) < 0)
    err_done(io, -udm_err());
}

/*
 * Deallocate [off, off+len) so that it reads as zeros.  The logical blocks
 * inside are zeroed with unmapping allowed and no slow fallback (a trim must
 * not turn into writing the whole range); partial blocks at the edges are
 * written, as a filesystem zeroes the partial blocks of a punched range.
 * The pieces are disjoint and run in parallel.
 */
static void punch_hole(struct fuse_io *io, uint64_t off, uint64_t len)
{
  const uint64_t bs = udm_device_block_size(io->dev);
  uint64_t a0 = (off + bs - 1) / bs * bs, a1 = (off + len) / bs * bs;
  if (a1 <= a0) {
    zero_piece(io, off, len, 0);
    return;
  }
  zero_piece(io, a0, a1 - a0, UDM_IO_MAY_UNMAP | UDM_IO_NO_FALLBACK);
  if (a0 > off)
    zero_piece(io, off, a0 - off, 0);
  if (off + len > a1)
    zero_piece(io, a1, off + len - a1, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                         off_t length, struct fuse_file_info *fi)
{
  (void)ino;
  struct open_file *of = file_of(fi);
  const int known = FUSE_FALLOC_KEEP_SIZE | FUSE_FALLOC_PUNCH_HOLE | FUSE_FALLOC_ZERO_RANGE;
  if ((mode & ~known) || ((mode & FUSE_FALLOC_PUNCH_HOLE) && (mode & FUSE_FALLOC_ZERO_RANGE)) ||
      offset < 0 || length <= 0) {
    fuse_reply_err(req, (mode & ~known) ? EOPNOTSUPP : EINVAL);
    return;
  }
  if (!of->writable) {
    fuse_reply_err(req, EBADF);
    return;
  }
  uint64_t off = (uint64_t)offset, len = (uint64_t)length;
  uint64_t size = udm_device_size(of->dev);
  /* The device cannot grow: past its end only KEEP_SIZE (a no-op there) is possible. */
  if (off + len > size && !(mode & FUSE_FALLOC_KEEP_SIZE)) {
    fuse_reply_err(req, EFBIG);
    return;
  }
  len = off >= size ? 0 : (off + len > size ? size - off : len);
  /* Plain allocation: a device's storage exists, there is nothing to reserve. */
  if (!len || !(mode & (FUSE_FALLOC_PUNCH_HOLE | FUSE_FALLOC_ZERO_RANGE))) {
    fuse_reply_err(req, 0);
    return;
  }
  struct fuse_io *io = io_new(req, of, 0, 0);
  if (!io) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  atomic_init(&io->parts, 1); /* the submitter's, dropped below */
  if (mode & FUSE_FALLOC_PUNCH_HOLE)
    punch_hole(io, off, len);
  else
    zero_piece(io, off, len, 0);
  err_done(io, 0);
}

static const struct fuse_lowlevel_ops export_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .statfs = op_statfs,
    .rename = op_rename,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
};

/* ---- lifecycle ---------------------------------------------------------- */

static void *session_thread(void *opaque)
{
  struct udm_fuse *f = opaque;
  /* Inherited by every worker libfuse starts from here. */
  (void)udm_platform_set_io_flusher();
  int r = ENOMEM;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  if (cfg) {
    fuse_loop_cfg_set_max_threads(cfg, f->max_threads);
    /* A cloned /dev/fuse descriptor per worker: replies do not contend on one. */
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    r = fuse_session_loop_mt(f->se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  pthread_mutex_lock(&f->lock);
  f->loop_result = r;
  f->loop_done = true;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

/*
 * libfuse's workers only look at the exit flag between requests, so each
 * wait ends with a request that a worker answers.  A lookup of a name that
 * cannot exist is cheap and never cached.  If the connection is already
 * gone the loop has ended by itself.
 */
/* A wake-up request into our own mount: see stop_session. */
static void *wake_loop(void *arg)
{
  struct stat st;
  (void)lstat(arg, &st);
  free(arg);
  return NULL;
}

/*
 * End the session loop.  fuse_session_exit only sets a flag: the workers
 * notice it when a request arrives, so we send one (an lstat of a name that
 * does not exist).  It is sent from a detached thread that owns its path:
 * if the loop ends just before that request is read, nobody answers it, and
 * it waits until fuse_session_unmount closes the connection (which fails
 * it).  Sent from this thread, it would hang the daemon's shutdown.
 */
static void stop_session(struct udm_fuse *f)
{
  size_t len = strlen(f->dir) + sizeof "/" STOP_NAME;
  unsigned wakers = 0;
  fuse_session_exit(f->se);
  pthread_mutex_lock(&f->lock);
  while (!f->loop_done) {
    pthread_mutex_unlock(&f->lock);
    char *path = wakers < 50 ? malloc(len) : NULL;
    pthread_t t;
    if (path) {
      snprintf(path, len, "%s/%s", f->dir, STOP_NAME);
      if (pthread_create(&t, NULL, wake_loop, path) == 0) {
        pthread_detach(t);
        wakers++;
      } else {
        free(path);
      }
    }
    pthread_mutex_lock(&f->lock);
    struct timespec deadline = deadline_in(100);
    if (!f->loop_done)
      pthread_cond_timedwait(&f->cond, &f->lock, &deadline);
  }
  pthread_mutex_unlock(&f->lock);
  pthread_join(f->thread, NULL);
  f->have_thread = false;
}

static int detach_leftover(void *opaque, const char *devpath, const char *backing_file)
{
  (void)backing_file;
  unsigned *detached = opaque;
  (void)udm_platform_detach(devpath); /* busy: it goes when its last user closes it */
  ++*detached;
  return 0;
}

/* Wait (bounded) for the kernel's asynchronous releases of the files. */
static void wait_all_closed(struct udm_fuse *f, unsigned timeout_ms)
{
  struct timespec deadline = deadline_in(timeout_ms);
  pthread_mutex_lock(&f->lock);
  while (f->files && pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == 0)
    ;
  pthread_mutex_unlock(&f->lock);
}

void udm_fuse_abort(struct udm_fuse *f, unsigned timeout_ms)
{
  (void)udm_platform_abort_mount(f->dir);
  if (!f->have_thread)
    return;
  struct timespec deadline = deadline_in(timeout_ms);
  pthread_mutex_lock(&f->lock);
  while (!f->loop_done && pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == 0)
    ;
  bool done = f->loop_done;
  pthread_mutex_unlock(&f->lock);
  if (done) {
    pthread_join(f->thread, NULL);
    f->have_thread = false;
  }
}

void udm_fuse_free(struct udm_fuse *f)
{
  if (!f)
    return;
  /* From now on a table naming our files opens them again (and fails). */
  if (f->registered)
    udm_ctx_remove_export_dir(f->ctx, f->dir);
  if (f->have_thread) {
    /*
     * A block device still attached to one of our files would be left over
     * a dead file, and once the mount is lazily detached nobody could find
     * it by its path again: detach it while the export still answers.
     */
    size_t len = strlen(f->dir) + 2;
    char *under = malloc(len);
    if (under) {
      snprintf(under, len, "%s/", f->dir);
      unsigned detached = 0;
      if (udm_platform_foreach_attached(under, detach_leftover, &detached) == 0 && detached)
        wait_all_closed(f, 2000);
      free(under);
    }
    stop_session(f);
    /* Completions reply through the session: it must outlive them. */
    wait_in_flight(f);
  }
  /*
   * libfuse closes the /dev/fuse descriptor first (which ends the connection
   * when no worker holds a clone), then unmounts lazily: a loop device still
   * attached keeps a busy mount that a plain unmount would refuse.
   */
  if (f->mounted)
    fuse_session_unmount(f->se);
  /* Files whose release never came: the kernel has dropped them with the connection. */
  while (f->files)
    close_file(f, f->files);
  if (f->se)
    fuse_session_destroy(f->se);
  while (f->npool)
    free(f->pool[--f->npool]);
  pthread_mutex_destroy(&f->pool_lock);
  pthread_mutex_destroy(&f->rename_lock);
  udm_fuse_inodes_destroy(&f->inodes);
  pthread_cond_destroy(&f->cond);
  pthread_mutex_destroy(&f->lock);
  free(f->dir);
  free(f);
}

const char *udm_fuse_dir(const struct udm_fuse *f)
{
  return f->dir;
}

/* DIR must be a directory we can mount on; a dead exporter's mount is cleared. */
static int prepare_mountpoint(const char *dir)
{
  struct stat st;
  if (stat(dir, &st) < 0) {
    if (errno == ENOTCONN) {
      int r = udm_platform_unmount_stale(dir);
      if (r < 0)
        return r;
    } else if (errno == ENOENT) {
      if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    } else {
      return -errno;
    }
    if (stat(dir, &st) < 0)
      return -errno;
  }
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int start(struct udm_fuse *f, const struct udm_fuse_opts *opts)
{
  int r = prepare_mountpoint(f->dir);
  if (r < 0)
    return r;

  char mount_opts[256];
  snprintf(mount_opts, sizeof mount_opts,
           "fsname=udm,subtype=udm,default_permissions,max_read=%u%s", UDM_FUSE_MAX_IO,
           /* Without it not even root could open the files (the loop driver does). */
           geteuid() == 0 ? ",allow_other" : "");
  char *argv[] = {"udm", "-o", mount_opts, opts && opts->debug ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(opts && opts->debug ? 4 : 3, argv);
  f->se = fuse_session_new(&args, &export_ops, sizeof export_ops, f);
  fuse_opt_free_args(&args);
  if (!f->se)
    return -EINVAL;
  if (fuse_session_mount(f->se, f->dir) != 0)
    return -EIO; /* libfuse has said why */
  f->mounted = true;

  /* Workers inherit the mask: signals are the caller's business. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  r = pthread_create(&f->thread, NULL, session_thread, f);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r)
    return -r;
  f->have_thread = true;
  return 0;
}

int udm_fuse_new(struct udm_ctx *ctx, const char *dir, const struct udm_fuse_opts *opts,
                 struct udm_fuse **out)
{
  struct udm_fuse *f = calloc(1, sizeof *f);
  if (!f)
    return -ENOMEM;
  f->ctx = ctx;
  f->uid = geteuid();
  f->gid = getegid();
  f->max_threads = opts && opts->max_threads ? opts->max_threads : DEFAULT_MAX_THREADS;
  clock_gettime(CLOCK_REALTIME, &f->mount_time);
  int r = -ENOMEM;
  f->dir = strdup(dir);
  if (!f->dir || pthread_mutex_init(&f->lock, NULL)) {
    free(f->dir);
    free(f);
    return -ENOMEM;
  }
  if (pthread_cond_init(&f->cond, NULL)) {
    pthread_mutex_destroy(&f->lock);
    free(f->dir);
    free(f);
    return -ENOMEM;
  }
  if (pthread_mutex_init(&f->pool_lock, NULL)) {
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->dir);
    free(f);
    return -ENOMEM;
  }
  if (pthread_mutex_init(&f->rename_lock, NULL)) {
    pthread_mutex_destroy(&f->pool_lock);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->dir);
    free(f);
    return -ENOMEM;
  }
  r = udm_fuse_inodes_init(&f->inodes);
  if (r == 0)
    r = start(f, opts);
  /*
   * Tables in ctx that name our files must not open them: the open would
   * wait on ctx, which may be waiting on the open.  They get the device.
   */
  if (r == 0 && udm_ctx_add_export_dir(ctx, f->dir) < 0)
    r = udm_errno() ? -udm_errno() : -EIO;
  f->registered = r == 0;
  if (r < 0) {
    udm_fuse_free(f);
    return r;
  }
  *out = f;
  return 0;
}
