/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices and their control operations: create, load, suspend, resume,
 * remove, table/status/message/info.
 *
 * Locks, taken in this order:
 *   d->ctl_lock     serialises the control operations of one device.  Held
 *                   while its targets' hooks run: ctr and dtr (building and
 *                   destroying tables), pre/postsuspend, pre/resume, message.
 *                   Those may do I/O and wait (metadata, a suspended device
 *                   below), so they never run under ctx->lock.
 *   ctx->lock       the namespace, the target types, holders and open counts, and
 *                   which tables are published as live or inactive.  Held
 *                   briefly; readers (info, table, status) hold it while they
 *                   look at a published table, so a table is destroyed only
 *                   after it was unpublished under it.
 *   d->status_lock  serialises a device's status and table text with its
 *                   messages, which change what they print.
 * The I/O path takes none of them (see io.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static bool valid_name(const char *name)
{
  size_t n = strlen(name);
  if (n == 0 || n > UDM_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return false;
  for (const char *p = name; *p; p++)
    if (*p == '/' || (unsigned char)*p <= ' ' || *p == 0x7f)
      return false;
  return true;
}

struct udm_device *udm_device_create(struct udm_ctx *ctx, const char *name,
                                     const char *uuid, unsigned flags)
{
  /* Errors as the kernel's: EBUSY for a name or uuid in use. */
  if (!name || !valid_name(name))
    return udm__fail_null(EINVAL,
                          "udm_device_create: invalid device name '%s' (1 to %d "
                          "characters, no '/', blanks or control characters)",
                          name ? name : "", UDM_NAME_MAX);
  if (uuid && strlen(uuid) > UDM_UUID_MAX)
    return udm__fail_null(EINVAL, "udm_device_create: uuid longer than %d characters",
                          UDM_UUID_MAX);
  if (flags & ~UDM_DEVICE_READONLY)
    return udm__fail_null(EINVAL, "udm_device_create: unknown flags 0x%x", flags);
  struct udm_device *d = calloc(1, sizeof *d);
  if (!d)
    return udm__fail_null(ENOMEM, "udm_device_create: out of memory");
  snprintf(d->name, sizeof d->name, "%s", name);
  if (uuid)
    snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
  d->ctx = ctx;
  d->flags = flags;
  atomic_init(&d->refs, 2); /* the context's and the caller's */
  pthread_mutex_init(&d->ctl_lock, NULL);
  pthread_mutex_init(&d->status_lock, NULL);
  pthread_mutex_init(&d->gate_lock, NULL);
  pthread_cond_init(&d->gate_cond, NULL);
  pthread_cond_init(&d->event_cond, NULL);
  d->deferred_tail = &d->deferred;

  pthread_mutex_lock(&ctx->lock);
  struct udm_device **tail = &ctx->devices;
  for (struct udm_device *o = ctx->devices; o; o = o->next) {
    if (strcmp(o->name, name) == 0 || (uuid && *uuid && strcmp(o->uuid, uuid) == 0)) {
      bool same_name = strcmp(o->name, name) == 0;
      pthread_mutex_unlock(&ctx->lock);
      pthread_mutex_destroy(&d->ctl_lock);
      pthread_mutex_destroy(&d->status_lock);
      pthread_mutex_destroy(&d->gate_lock);
      pthread_cond_destroy(&d->gate_cond);
      pthread_cond_destroy(&d->event_cond);
      free(d);
      return same_name
                 ? udm__fail_null(EBUSY, "udm_device_create: device '%s' already exists",
                                  name)
                 : udm__fail_null(EBUSY, "udm_device_create: uuid '%s' is already used",
                                  uuid);
    }
    tail = &o->next;
  }
  d->minor = ctx->next_minor++;
  *tail = d;
  pthread_mutex_unlock(&ctx->lock);
  return d;
}

struct udm_device *udm_device_lookup(struct udm_ctx *ctx, const char *name)
{
  pthread_mutex_lock(&ctx->lock);
  struct udm_device *d = udm__ctx_find_device(ctx, name);
  if (d)
    udm_device_ref(d);
  pthread_mutex_unlock(&ctx->lock);
  if (!d)
    return udm__fail_null(ENXIO, "no device named '%s'", name);
  return d;
}

void udm_device_ref(struct udm_device *dev)
{
  atomic_fetch_add(&dev->refs, 1);
}

void udm_device_unref(struct udm_device *dev)
{
  if (!dev || atomic_fetch_sub(&dev->refs, 1) != 1)
    return;
  /* Tables were destroyed by remove; nothing else holds the device. */
  pthread_mutex_destroy(&dev->ctl_lock);
  pthread_mutex_destroy(&dev->status_lock);
  pthread_mutex_destroy(&dev->gate_lock);
  pthread_cond_destroy(&dev->gate_cond);
  pthread_cond_destroy(&dev->event_cond);
  free(dev);
}

void udm_device_open(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctx->lock);
  dev->open_count++;
  pthread_mutex_unlock(&dev->ctx->lock);
}

void udm_device_close(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctx->lock);
  if (dev->open_count)
    dev->open_count--;
  pthread_mutex_unlock(&dev->ctx->lock);
}

static bool in_ctx(struct udm_device *dev)
{
  for (struct udm_device *d = dev->ctx->devices; d; d = d->next)
    if (d == dev)
      return true;
  return false;
}

static int ctl_device_remove(struct udm_device *dev, unsigned flags)
{
  struct udm_ctx *ctx = dev->ctx;
  pthread_mutex_lock(&ctx->lock);
  if (!in_ctx(dev)) {
    pthread_mutex_unlock(&ctx->lock);
    return udm__fail(ENXIO, "remove %s: the device was already removed", dev->name);
  }
  /* The counts are read under the lock; the messages are made after it. */
  unsigned holders = dev->holders, open_count = dev->open_count;
  if (holders) {
    pthread_mutex_unlock(&ctx->lock);
    return udm__fail(EBUSY,
                     "remove %s: the device is used by the table of another device "
                     "(%u reference%s); remove that device first",
                     dev->name, holders, holders == 1 ? "" : "s");
  }
  if (open_count && !(flags & UDM_REMOVE_FORCE)) {
    pthread_mutex_unlock(&ctx->lock);
    return udm__fail(EBUSY,
                     "remove %s: the device is open (open count %u); close it or "
                     "force the removal",
                     dev->name, open_count);
  }
  /*
   * From now on the name is free, no table can open the device, and every
   * request fails; drain what is in flight and drop the tables.
   */
  atomic_store(&dev->dead, true);
  /* Waiters for events learn it now (udm_device_wait_event: ENXIO). */
  pthread_mutex_lock(&dev->gate_lock);
  pthread_cond_broadcast(&dev->event_cond);
  pthread_mutex_unlock(&dev->gate_lock);
  for (struct udm_device **p = &ctx->devices; *p; p = &(*p)->next)
    if (*p == dev) {
      *p = dev->next;
      break;
    }
  pthread_mutex_unlock(&ctx->lock);
  bool was_suspended = atomic_load(&dev->suspended);
  udm_table *live = atomic_load(&dev->live);
  if (live && !was_suspended)
    udm__table_presuspend(live);
  udm__gate_close(dev);
  if (live && !was_suspended)
    udm__table_postsuspend(live);
  pthread_mutex_lock(&ctx->lock);
  atomic_store(&dev->live, NULL);
  atomic_store(&dev->block_size, 0);
  atomic_store(&dev->size, 0);
  udm_table *inactive = dev->inactive;
  dev->inactive = NULL;
  pthread_mutex_unlock(&ctx->lock);
  /* What waited for a resume that will not come fails now. */
  struct udm_io_backlog backlog;
  udm__gate_open(dev, &backlog);
  udm__io_restart(&backlog, -EIO);
  udm__table_destroy(live);
  udm__table_destroy(inactive);
  udm_device_unref(dev); /* the context's reference */
  return 0;
}

/* Is this device still usable for a control operation?  ctl_lock held. */
static int check_alive(struct udm_device *dev, const char *op)
{
  if (atomic_load(&dev->dead))
    return udm__fail(ENXIO, "%s %s: the device was removed", op, dev->name);
  return 0;
}

/* Does table t use dev, directly or through the devices it uses?  ctx->lock held. */
static bool table_reaches(udm_table *t, struct udm_device *dev)
{
  for (struct udm_dev *d = t->devs; d; d = d->next) {
    struct udm_device *u = udm__dev_udm_device(d);
    if (u && (u == dev || udm__device_depends_on(u, dev)))
      return true;
  }
  return false;
}

static int ctl_table_load(struct udm_device *dev, const char *text)
{
  struct udm_ctx *ctx = dev->ctx;
  char *msg = NULL;
  udm_table *t;
  if (check_alive(dev, "load") < 0)
    return -1;
  /* Built with no context-wide lock: constructors may read metadata. */
  int r = udm__table_create(ctx, dev, text, dev->flags & UDM_DEVICE_READONLY, &t, &msg);
  if (r < 0) {
    udm__fail(-r, "load %s: %s", dev->name, msg ? msg : "invalid table");
    free(msg);
    return -1;
  }
  /*
   * Each udm device the table opened was checked for a cycle then; another
   * table loaded meanwhile may have closed one.  Check again as it is
   * published.
   */
  pthread_mutex_lock(&ctx->lock);
  if (table_reaches(t, dev)) {
    pthread_mutex_unlock(&ctx->lock);
    udm__table_destroy(t);
    return udm__fail(ELOOP, "load %s: the table would make a cycle of devices", dev->name);
  }
  udm_table *old = dev->inactive;
  dev->inactive = t;
  pthread_mutex_unlock(&ctx->lock);
  udm__table_destroy(old);
  return 0;
}

static int ctl_table_clear(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *old = dev->inactive;
  dev->inactive = NULL;
  pthread_mutex_unlock(&dev->ctx->lock);
  udm__table_destroy(old);
  return 0;
}

/* ctl_lock held: the live table cannot change under us. */
static void suspend_device(struct udm_device *dev)
{
  if (atomic_load(&dev->suspended))
    return;
  udm_table *live = atomic_load(&dev->live);
  if (live)
    udm__table_presuspend(live);
  udm__gate_close(dev);
  if (live)
    udm__table_postsuspend(live);
}

static int ctl_device_suspend(struct udm_device *dev, unsigned flags)
{
  if (flags)
    return udm__fail(EINVAL, "suspend %s: unknown flags 0x%x", dev->name, flags);
  int r = check_alive(dev, "suspend");
  if (r == 0)
    suspend_device(dev);
  return r;
}

/*
 * A table stacked on dev was checked against dev's logical block size when
 * it was built, and sends requests of that size: dev's next table must not
 * need larger ones.  ctx->lock held.
 */
static int check_stacked_block_size(struct udm_device *dev, const udm_table *next)
{
  unsigned bs = next->limits.logical_block_size;
  for (struct udm_device *o = dev->ctx->devices; o && dev->holders; o = o->next) {
    udm_table *tables[2] = {atomic_load(&o->live), o->inactive};
    for (unsigned k = 0; k < 2; k++) {
      for (struct udm_dev *d = tables[k] ? tables[k]->devs : NULL; d; d = d->next) {
        if (udm__dev_udm_device(d) != dev || d->logical_block_size >= bs)
          continue;
        return udm__fail(EBUSY,
                         "resume %s: the new table's logical block size is %u bytes, but "
                         "the %s table of device '%s' uses %s with %u-byte blocks; "
                         "reload or remove '%s' first",
                         dev->name, bs, k ? "inactive" : "live", o->name, dev->name,
                         d->logical_block_size, o->name);
      }
    }
  }
  return 0;
}

static int preresume_failed(struct udm_device *dev, int r, char *msg)
{
  udm__fail(-r, "resume %s: %s (the device stays suspended)", dev->name,
            msg ? msg : "preresume failed");
  free(msg);
  return -1;
}

static int ctl_device_resume(struct udm_device *dev)
{
  struct udm_ctx *ctx = dev->ctx;
  if (check_alive(dev, "resume") < 0)
    return -1;
  pthread_mutex_lock(&ctx->lock);
  udm_table *next = dev->inactive; /* only our own control operations change it */
  if (next && check_stacked_block_size(dev, next) < 0) {
    pthread_mutex_unlock(&ctx->lock);
    return -1;
  }
  pthread_mutex_unlock(&ctx->lock);
  udm_table *old = NULL;
  char *msg = NULL;
  if (next) {
    suspend_device(dev);
    int r = udm__table_preresume(next, &msg);
    if (r < 0)
      return preresume_failed(dev, r, msg);
    pthread_mutex_lock(&ctx->lock);
    old = atomic_load(&dev->live);
    atomic_store(&dev->live, next);
    atomic_store(&dev->block_size, next->limits.logical_block_size);
    atomic_store(&dev->size, next->size * UDM_SECTOR_SIZE);
    dev->inactive = NULL;
    pthread_mutex_unlock(&ctx->lock);
    /* No event: as in the kernel, events count what targets signal, not swaps. */
  } else if (!atomic_load(&dev->live)) {
    return udm__fail(ENXIO, "resume %s: no table is loaded", dev->name);
  } else if (!atomic_load(&dev->suspended)) {
    return 0;
  } else {
    int r = udm__table_preresume(atomic_load(&dev->live), &msg);
    if (r < 0)
      return preresume_failed(dev, r, msg);
  }
  udm__table_resume(atomic_load(&dev->live));
  /* Deferred requests and held pieces start again on the new table. */
  struct udm_io_backlog backlog;
  udm__gate_open(dev, &backlog);
  udm__io_restart(&backlog, 0);
  udm__table_destroy(old); /* drained while suspended: nothing uses it */
  return 0;
}

int udm_device_table(struct udm_device *dev, unsigned flags, char **out)
{
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *t = (flags & UDM_TABLE_INACTIVE) ? dev->inactive : atomic_load(&dev->live);
  pthread_mutex_lock(&dev->status_lock);
  int r = t ? udm__table_text(t, UDM_STATUS_TABLE, flags & UDM_TABLE_SHOWKEYS, out)
            : ((*out = strdup("")) ? 0 : -ENOMEM);
  pthread_mutex_unlock(&dev->status_lock);
  pthread_mutex_unlock(&dev->ctx->lock);
  if (r < 0)
    return udm__fail(-r, "table %s: out of memory", dev->name);
  return 0;
}

int udm_device_status(struct udm_device *dev, unsigned flags, char **out)
{
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *t = (flags & UDM_TABLE_INACTIVE) ? dev->inactive : atomic_load(&dev->live);
  pthread_mutex_lock(&dev->status_lock);
  enum udm_status_type type = (flags & UDM_TABLE_MEASURE) ? UDM_STATUS_IMA : UDM_STATUS_INFO;
  int r = t ? udm__table_text(t, type, 0, out)
            : ((*out = strdup("")) ? 0 : -ENOMEM);
  pthread_mutex_unlock(&dev->status_lock);
  pthread_mutex_unlock(&dev->ctx->lock);
  if (r < 0)
    return udm__fail(-r, "status %s: out of memory", dev->name);
  return 0;
}

int udm_device_message(struct udm_device *dev, uint64_t sector, const char *message,
                       char **reply)
{
  *reply = NULL;
  char *copy = strdup(message ? message : "");
  char *argv[64];
  unsigned argc = 0;
  if (!copy)
    return udm__fail(ENOMEM, "message %s: out of memory", dev->name);
  for (char *save = NULL, *w = strtok_r(copy, " \t\n", &save); w;
       w = strtok_r(NULL, " \t\n", &save)) {
    if (argc == UDM_ARRAY_SIZE(argv)) {
      free(copy);
      return udm__fail(E2BIG, "message %s: too many words", dev->name);
    }
    argv[argc++] = w;
  }
  if (argc == 0) {
    free(copy);
    return udm__fail(EINVAL, "message %s: the message is empty", dev->name);
  }
  /*
   * Under the device's control lock (the live table stays) and its status
   * lock, not the context's: a message may do I/O.
   */
  pthread_mutex_lock(&dev->ctl_lock);
  pthread_mutex_lock(&dev->status_lock);
  udm_table *t = atomic_load(&dev->dead) ? NULL : atomic_load(&dev->live);
  int r;
  if (!t) {
    r = udm__fail(ENXIO, "message %s: the device has no live table", dev->name);
  } else if (sector >= t->size) {
    r = udm__fail(EINVAL, "message %s: sector %llu is beyond the device (%llu sectors)",
                  dev->name, (unsigned long long)sector, (unsigned long long)t->size);
  } else {
    struct udm_target *ti = &t->targets[udm__table_find(t, sector)];
    if (!ti->type->message) {
      r = udm__fail(EINVAL, "message %s: target '%s' does not take messages", dev->name,
                    ti->type->name);
    } else {
      struct udm_buf b;
      udm_buf_init(&b);
      free(ti->error);
      ti->error = NULL;
      int e = ti->type->message(ti, argc, argv, &b);
      if (e < 0) {
        r = udm__fail(-e, "message %s: %s: %s", dev->name, ti->type->name,
                      ti->error ? ti->error : strerror(-e));
        free(ti->error);
        ti->error = NULL;
        udm_buf_free(&b);
      } else if (!(*reply = udm_buf_steal(&b))) {
        r = udm__fail(ENOMEM, "message %s: out of memory", dev->name);
      } else {
        r = 0;
      }
    }
  }
  pthread_mutex_unlock(&dev->status_lock);
  pthread_mutex_unlock(&dev->ctl_lock);
  free(copy);
  return r;
}

static int foreach_dep_in(udm_table *t, int (*fn)(void *, const char *), void *opaque)
{
  if (!t)
    return 0;
  for (struct udm_dev *d = t->devs; d; d = d->next) {
    int r = fn(opaque, d->name);
    if (r)
      return r;
  }
  return 0;
}

int udm_device_foreach_dep(struct udm_device *dev, int (*fn)(void *, const char *),
                           void *opaque)
{
  pthread_mutex_lock(&dev->ctx->lock);
  int r = foreach_dep_in(atomic_load(&dev->live), fn, opaque);
  if (r == 0)
    r = foreach_dep_in(dev->inactive, fn, opaque);
  pthread_mutex_unlock(&dev->ctx->lock);
  return r;
}

static bool table_uses(udm_table *t, struct udm_device *to)
{
  if (!t)
    return false;
  for (struct udm_dev *d = t->devs; d; d = d->next) {
    struct udm_device *u = udm__dev_udm_device(d);
    if (u && (u == to || udm__device_depends_on(u, to)))
      return true;
  }
  return false;
}

bool udm__device_depends_on(struct udm_device *from, struct udm_device *to)
{
  return table_uses(atomic_load(&from->live), to) || table_uses(from->inactive, to);
}

int udm_device_info(struct udm_device *dev, struct udm_info *info)
{
  memset(info, 0, sizeof *info);
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *live = atomic_load(&dev->live);
  snprintf(info->name, sizeof info->name, "%s", dev->name);
  snprintf(info->uuid, sizeof info->uuid, "%s", dev->uuid);
  info->suspended = atomic_load(&dev->suspended);
  info->live_table = live != NULL;
  info->inactive_table = dev->inactive != NULL;
  info->readonly = (dev->flags & UDM_DEVICE_READONLY) != 0;
  info->open_count = dev->open_count;
  info->holders = dev->holders;
  info->event_nr = atomic_load(&dev->event_nr);
  info->target_count = live ? live->num_targets : 0;
  info->size = live ? live->size * UDM_SECTOR_SIZE : 0;
  info->minor = dev->minor;
  info->bad_block_hits = live ? udm__table_bad_block_hits(live) : 0;
  pthread_mutex_unlock(&dev->ctx->lock);
  return 0;
}

int udm_device_wait_event(struct udm_device *dev, uint32_t event_nr, int timeout_ms)
{
  if (timeout_ms < -1)
    return udm__fail(EINVAL, "wait %s: invalid timeout %d ms (-1: no limit)", dev->name,
                     timeout_ms);
  /* The realtime clock, which every pthread_cond_timedwait takes (macOS too). */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  int r = 0;
  pthread_mutex_lock(&dev->gate_lock);
  while (!atomic_load(&dev->dead) && atomic_load(&dev->event_nr) == event_nr) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&dev->event_cond, &dev->gate_lock);
    } else if (timeout_ms == 0 ||
               pthread_cond_timedwait(&dev->event_cond, &dev->gate_lock, &deadline) ==
                   ETIMEDOUT) {
      r = ETIMEDOUT;
      break;
    }
  }
  /* An event that came before the removal still counts. */
  bool changed = atomic_load(&dev->event_nr) != event_nr;
  bool dead = atomic_load(&dev->dead);
  pthread_mutex_unlock(&dev->gate_lock);
  if (changed)
    return 0;
  if (dead)
    return udm__fail(ENXIO, "wait %s: the device was removed", dev->name);
  if (r)
    return udm__fail(ETIMEDOUT, "wait %s: no event after event %lu within %d ms",
                     dev->name, (unsigned long)event_nr, timeout_ms);
  return 0;
}

const char *udm_device_name(const struct udm_device *dev)
{
  return dev->name;
}

uint64_t udm_device_size(struct udm_device *dev)
{
  return atomic_load(&dev->size); /* no lock: see struct udm_device */
}

unsigned udm_device_block_size(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *live = atomic_load(&dev->live);
  unsigned bs = live ? live->limits.logical_block_size : UDM_SECTOR_SIZE;
  pthread_mutex_unlock(&dev->ctx->lock);
  return bs;
}

unsigned udm_device_caps(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *live = atomic_load(&dev->live);
  unsigned caps = live ? live->caps : 0;
  if (dev->flags & UDM_DEVICE_READONLY)
    caps = (caps & ~(UDM_CAP_DISCARD | UDM_CAP_WRITE_ZEROES)) | UDM_CAP_READONLY;
  pthread_mutex_unlock(&dev->ctx->lock);
  return caps;
}

int udm_device_remove(struct udm_device *dev, unsigned flags)
{
  pthread_mutex_lock(&dev->ctl_lock);
  int r = ctl_device_remove(dev, flags);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_table_load(struct udm_device *dev, const char *text)
{
  pthread_mutex_lock(&dev->ctl_lock);
  int r = ctl_table_load(dev, text);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_table_clear(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctl_lock);
  int r = ctl_table_clear(dev);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_device_suspend(struct udm_device *dev, unsigned flags)
{
  pthread_mutex_lock(&dev->ctl_lock);
  int r = ctl_device_suspend(dev, flags);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_device_resume(struct udm_device *dev)
{
  pthread_mutex_lock(&dev->ctl_lock);
  int r = ctl_device_resume(dev);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

/*
 * What a table that named dev through D prints once dev is called NAME:
 * /dev/mapper/NAME when it was written that way, else udm:NAME (a path into
 * the export, or to its block device link, would no longer lead there).
 */
static char *renamed_display(const struct udm_dev *d, const char *name)
{
  bool mapper = strncmp(d->name, "/dev/mapper/", 12) == 0;
  char *word = udm_table_escape(name);
  char *s = word ? udm__strf("%s%s", mapper ? "/dev/mapper/" : "udm:", word) : NULL;
  free(word);
  return s;
}

/* Calls fn for each udm_dev of any table that stands for dev.  ctx->lock held. */
static void foreach_reference(struct udm_device *dev, void (*fn)(struct udm_dev *, void *),
                              void *opaque)
{
  for (struct udm_device *o = dev->ctx->devices; o; o = o->next) {
    udm_table *tables[2] = {atomic_load(&o->live), o->inactive};
    for (unsigned k = 0; k < 2; k++)
      for (struct udm_dev *d = tables[k] ? tables[k]->devs : NULL; d; d = d->next)
        if (udm__dev_udm_device(d) == dev)
          fn(d, opaque);
  }
}

struct renaming {
  const char *name;
  size_t n, i;
  char **texts;
  struct udm_retired_name **slots;
  bool failed;
};

static void count_reference(struct udm_dev *d, void *opaque)
{
  (void)d;
  ((struct renaming *)opaque)->n++;
}

static void prepare_reference(struct udm_dev *d, void *opaque)
{
  struct renaming *rn = opaque;
  size_t i = rn->i++;
  if (!(rn->texts[i] = renamed_display(d, rn->name)) ||
      !(rn->slots[i] = calloc(1, sizeof *rn->slots[i])))
    rn->failed = true;
}

/* The old text retires (readers without ctx->lock may hold it) until close. */
static void apply_reference(struct udm_dev *d, void *opaque)
{
  struct renaming *rn = opaque;
  size_t i = rn->i++;
  struct udm_retired_name *slot = rn->slots[i];
  slot->text = atomic_exchange(&d->display, rn->texts[i]);
  rn->texts[i] = NULL;
  rn->slots[i] = NULL;
  if (!slot->text) {
    free(slot);
    return;
  }
  slot->next = d->retired;
  d->retired = slot;
}

/*
 * Point every table's reference to dev at its new name, all or nothing.
 * ctx->lock held.
 */
static int rename_references(struct udm_device *dev, const char *name)
{
  struct renaming rn = {.name = name};
  foreach_reference(dev, count_reference, &rn);
  if (rn.n == 0)
    return 0;
  rn.texts = calloc(rn.n, sizeof *rn.texts);
  rn.slots = calloc(rn.n, sizeof *rn.slots);
  if (rn.texts && rn.slots) {
    foreach_reference(dev, prepare_reference, &rn);
    if (!rn.failed) {
      rn.i = 0;
      foreach_reference(dev, apply_reference, &rn);
    }
  }
  int r = rn.texts && rn.slots && !rn.failed ? 0 : -ENOMEM;
  for (size_t i = 0; rn.texts && rn.slots && i < rn.n; i++) {
    free(rn.texts[i]);
    free(rn.slots[i]);
  }
  free(rn.texts);
  free(rn.slots);
  return r;
}

/*
 * As the kernel's rename and set-uuid (dm_hash_rename): a device with a
 * live table signals an event, so its event number moves and waiters wake.
 */
static void rename_event(struct udm_device *dev)
{
  if (!atomic_load(&dev->live))
    return;
  pthread_mutex_lock(&dev->gate_lock);
  atomic_fetch_add(&dev->event_nr, 1);
  pthread_cond_broadcast(&dev->event_cond);
  pthread_mutex_unlock(&dev->gate_lock);
}

int udm_device_rename(struct udm_device *dev, const char *new_name)
{
  struct udm_ctx *ctx = dev->ctx;
  if (!new_name || !valid_name(new_name))
    return udm__fail(EINVAL,
                     "rename %s: invalid device name '%s' (1 to %d characters, no '/', "
                     "blanks or control characters)",
                     dev->name, new_name ? new_name : "", UDM_NAME_MAX);
  pthread_mutex_lock(&dev->ctl_lock);
  pthread_mutex_lock(&ctx->lock);
  int r = 0;
  bool renamed = false;
  if (atomic_load(&dev->dead) || !in_ctx(dev)) {
    r = udm__fail(ENXIO, "rename %s: the device was removed", dev->name);
  } else if (strcmp(dev->name, new_name) == 0) {
    r = 0; /* as the kernel: renaming to the same name is no change */
  } else if (udm__ctx_find_device(ctx, new_name)) {
    r = udm__fail(EBUSY, "rename %s: a device named '%s' already exists", dev->name,
                  new_name);
  } else if (rename_references(dev, new_name) < 0) {
    r = udm__fail(ENOMEM, "rename %s: out of memory", dev->name);
  } else {
    /* Readers copy the name under ctx->lock (udm_device_info) or hold the device. */
    snprintf(dev->name, sizeof dev->name, "%s", new_name);
    renamed = true;
  }
  pthread_mutex_unlock(&ctx->lock);
  if (renamed)
    rename_event(dev);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_device_set_uuid(struct udm_device *dev, const char *uuid)
{
  struct udm_ctx *ctx = dev->ctx;
  if (!uuid || !*uuid || strlen(uuid) > UDM_UUID_MAX)
    return udm__fail(EINVAL, "set uuid of %s: the uuid must have 1 to %d characters",
                     dev->name, UDM_UUID_MAX);
  pthread_mutex_lock(&dev->ctl_lock);
  pthread_mutex_lock(&ctx->lock);
  int r = 0;
  bool set = false;
  if (atomic_load(&dev->dead) || !in_ctx(dev)) {
    r = udm__fail(ENXIO, "set uuid of %s: the device was removed", dev->name);
  } else if (dev->uuid[0] && strcmp(dev->uuid, uuid) != 0) {
    /* As the kernel: a uuid, once set, stays. */
    r = udm__fail(EINVAL, "set uuid of %s: the device already has uuid '%s'", dev->name,
                  dev->uuid);
  } else if (!dev->uuid[0]) {
    for (struct udm_device *o = ctx->devices; o; o = o->next)
      if (strcmp(o->uuid, uuid) == 0) {
        r = udm__fail(EBUSY, "set uuid of %s: uuid '%s' is already used by device '%s'",
                      dev->name, uuid, o->name);
        break;
      }
    if (r == 0) {
      snprintf(dev->uuid, sizeof dev->uuid, "%s", uuid);
      set = true;
    }
  }
  pthread_mutex_unlock(&ctx->lock);
  if (set)
    rename_event(dev);
  pthread_mutex_unlock(&dev->ctl_lock);
  return r;
}

int udm_device_foreach_used(struct udm_device *dev, unsigned flags,
                            int (*fn)(void *opaque, const struct udm_dep *dep),
                            void *opaque)
{
  if (flags & ~UDM_TABLE_INACTIVE)
    return udm__fail(EINVAL, "deps %s: unknown flags 0x%x", dev->name, flags);
  pthread_mutex_lock(&dev->ctx->lock);
  udm_table *t = (flags & UDM_TABLE_INACTIVE) ? dev->inactive : atomic_load(&dev->live);
  int r = 0;
  for (struct udm_dev *d = t ? t->devs : NULL; d && r == 0; d = d->next) {
    /* A device opened twice (for reading, and for writing) is one dependency. */
    bool seen = false;
    struct udm_device *u = udm__dev_udm_device(d);
    for (struct udm_dev *e = t->devs; e != d && !seen; e = e->next)
      seen = u ? udm__dev_udm_device(e) == u : strcmp(e->name, d->name) == 0;
    if (seen)
      continue;
    struct udm_dep dep = {.path = d->name, .device = u ? u->name : NULL,
                          .minor = u ? u->minor : 0};
    r = fn(opaque, &dep);
  }
  pthread_mutex_unlock(&dev->ctx->lock);
  return r;
}
