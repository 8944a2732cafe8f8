/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * delay: hold reads, writes and flushes for a fixed time each before passing
 * them on, optionally to different devices (dm-delay).
 *
 * The model of an *owning* target on udm's asynchronous core: map() puts a
 * request on its class's list with a deadline and returns
 * UDM_MAPIO_SUBMITTED, so a held request costs memory, not a thread; the
 * target's timer (on its worker thread) submits what is due onward with
 * udm_dev_submit_async(), whose completion completes the request.  As in
 * the kernel:
 *   - order: requests of one class are submitted in the order they arrived
 *     (one delay per class, so the lists are in deadline order; one
 *     releaser at a time);
 *   - suspend: presuspend releases every held request at once and lets new
 *     ones through undelayed until resume (those arriving while the held
 *     ones are being released queue behind them); the core then waits for
 *     them like any request in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <udm/target.h>

enum delay_class_id { DELAY_READ, DELAY_WRITE, DELAY_FLUSH, DELAY_CLASSES };

static const char *const class_names[DELAY_CLASSES] = {"read", "write", "flush"};

/* Per request (io->per_io). */
struct delay_io {
  struct udm_io *io;
  uint64_t expires;      /* udm_now_ns(); 0: as soon as possible */
  struct delay_io *next;
};

struct delay_class {
  struct udm_dev *dev;
  udm_sector_t start;
  unsigned delay_ms;
  unsigned held;         /* requests on the list: INFO's count */
  struct delay_io *head, **tail;
};

struct delay {
  pthread_mutex_t lock;  /* guards everything below but the worker */
  bool lock_ready;       /* lock was initialised (dtr of a half-built target) */
  bool may_delay;        /* false from presuspend to resume */
  bool releasing;        /* one releaser at a time keeps the order */
  uint64_t armed_for;    /* the timer's deadline, 0 when not armed */
  struct udm_worker *worker;
  struct udm_timer timer;
  unsigned argc;         /* 3, 6 or 9: what TABLE prints back */
  struct delay_class cls[DELAY_CLASSES];
};

static void delay_timer(struct udm_timer *t);

/* Parse "<dev> <offset> <delay>" for one class. */
static int delay_class_ctr(struct udm_target *ti, struct delay_class *c,
                           const char *name, char **argv)
{
  if (udm_parse_u64(argv[1], &c->start) < 0) {
    udm_target_error(ti, "invalid %s device sector '%s'", name, argv[1]);
    return -EINVAL;
  }
  if (udm_parse_uint(argv[2], &c->delay_ms) < 0) {
    udm_target_error(ti, "invalid %s delay '%s' (milliseconds, 0..%u)", name, argv[2],
                     UINT32_MAX);
    return -EINVAL;
  }
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &c->dev);
}

/*
 * Construct a delay mapping:
 *   <dev> <offset> <delay>
 *   <rdev> <roffset> <rdelay> <wdev> <woffset> <wdelay>
 *   <rdev> <roffset> <rdelay> <wdev> <woffset> <wdelay> <fdev> <foffset> <fdelay>
 * Delays are in milliseconds.  With three arguments reads, writes and
 * flushes share the device and delay; with six, flushes follow the write
 * group; with nine they have their own.  Discards count as writes.
 */
static int delay_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 3 && argc != 6 && argc != 9) {
    udm_target_error(ti, "expected 3, 6 or 9 arguments ('<dev> <offset> <delay>' for "
                         "reads, then writes, then flushes), got %u",
                     argc);
    return -EINVAL;
  }
  struct delay *dc = calloc(1, sizeof *dc);
  if (!dc)
    return -ENOMEM;
  ti->private = dc;
  if (pthread_mutex_init(&dc->lock, NULL) != 0)
    return -ENOMEM;
  dc->lock_ready = true;
  dc->may_delay = true;
  for (unsigned i = 0; i < DELAY_CLASSES; i++)
    dc->cls[i].tail = &dc->cls[i].head;
  dc->argc = argc;
  for (unsigned i = 0; i < DELAY_CLASSES; i++) {
    /* Later classes reuse the last group given, as dm does. */
    unsigned group = i < argc / 3 ? i : argc / 3 - 1;
    int r = delay_class_ctr(ti, &dc->cls[i], class_names[group], argv + 3 * group);
    if (r < 0)
      return r;
  }
  /*
   * dm-delay leaves write-zeroes unsupported: the caller falls back to
   * writing zeros, which are then delayed as writes.
   */
  ti->num_write_zeroes_ios = 0;
  ti->per_io_size = sizeof(struct delay_io);
  int r = udm_worker_create(ti, &dc->worker);
  if (r < 0) {
    udm_target_error(ti, "cannot start the delay worker thread");
    return r;
  }
  udm_timer_init(&dc->timer, dc->worker, delay_timer);
  return 0;
}

static void delay_dtr(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  if (!dc)
    return;
  udm_worker_destroy(dc->worker); /* nothing is held: the table was drained */
  for (unsigned i = 0; i < DELAY_CLASSES; i++)
    if (dc->cls[i].dev)
      udm_put_device(ti, dc->cls[i].dev);
  if (dc->lock_ready)
    pthread_mutex_destroy(&dc->lock);
  free(dc);
}

static enum delay_class_id delay_class_of(enum udm_op op)
{
  switch (op) {
  case UDM_OP_READ:
    return DELAY_READ;
  case UDM_OP_FLUSH:
    return DELAY_FLUSH;
  default:
    return DELAY_WRITE; /* write, discard and write-zeroes are writes to dm */
  }
}

/* Arm the timer for the earliest held deadline, if that is sooner.  Locked. */
static void delay_arm(struct delay *dc)
{
  uint64_t next = 0;
  for (unsigned i = 0; i < DELAY_CLASSES; i++) {
    struct delay_io *h = dc->cls[i].head;
    if (h && (!next || h->expires < next))
      next = h->expires;
  }
  if (next && (!dc->armed_for || next < dc->armed_for)) {
    dc->armed_for = next;
    udm_timer_arm(&dc->timer, next);
  }
}

/*
 * Submit everything due (everything, once presuspend has run), class by
 * class in arrival order, until nothing due is left.
 */
static void delay_release(struct delay *dc)
{
  pthread_mutex_lock(&dc->lock);
  if (dc->releasing) { /* the running releaser loops until nothing is due */
    pthread_mutex_unlock(&dc->lock);
    return;
  }
  dc->releasing = true;
  for (;;) {
    uint64_t now = udm_now_ns();
    struct delay_io *batch = NULL, **bt = &batch;
    for (unsigned i = 0; i < DELAY_CLASSES; i++) {
      struct delay_class *c = &dc->cls[i];
      while (c->head && (!dc->may_delay || c->head->expires <= now)) {
        struct delay_io *di = c->head;
        c->head = di->next;
        if (!c->head)
          c->tail = &c->head;
        c->held--;
        di->next = NULL;
        *bt = di;
        bt = &di->next;
      }
    }
    if (!batch)
      break;
    pthread_mutex_unlock(&dc->lock);
    while (batch) {
      struct delay_io *di = batch;
      batch = di->next;
      udm_dev_submit_async(di->io->dev, di->io); /* completes the request */
    }
    pthread_mutex_lock(&dc->lock);
  }
  dc->releasing = false;
  if (dc->may_delay)
    delay_arm(dc);
  pthread_mutex_unlock(&dc->lock);
}

static void delay_timer(struct udm_timer *t)
{
  struct delay *dc = (struct delay *)((char *)t - offsetof(struct delay, timer));
  pthread_mutex_lock(&dc->lock);
  dc->armed_for = 0;
  pthread_mutex_unlock(&dc->lock);
  delay_release(dc);
}

static int delay_map(struct udm_target *ti, struct udm_io *io)
{
  struct delay *dc = ti->private;
  struct delay_class *c = &dc->cls[delay_class_of(io->op)];
  io->dev = c->dev;
  if (io->op != UDM_OP_FLUSH)
    io->sector = c->start + udm_target_offset(ti, io->sector);
  if (c->delay_ms == 0)
    return UDM_MAPIO_REMAPPED;
  pthread_mutex_lock(&dc->lock);
  if (!dc->may_delay && !dc->releasing && !c->head) {
    pthread_mutex_unlock(&dc->lock);
    return UDM_MAPIO_REMAPPED; /* suspending: not held */
  }
  struct delay_io *di = io->per_io;
  di->io = io;
  /* While suspending, behind the ones being released, and due at once. */
  di->expires = dc->may_delay ? udm_now_ns() + (uint64_t)c->delay_ms * 1000000u : 0;
  di->next = NULL;
  *c->tail = di;
  c->tail = &di->next;
  c->held++;
  if (dc->may_delay)
    delay_arm(dc);
  pthread_mutex_unlock(&dc->lock);
  return UDM_MAPIO_SUBMITTED;
}

/* Release every held request now, and hold no new ones until resume. */
static void delay_presuspend(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  pthread_mutex_lock(&dc->lock);
  dc->may_delay = false;
  dc->armed_for = 0;
  pthread_mutex_unlock(&dc->lock);
  udm_timer_cancel(&dc->timer);
  delay_release(dc);
}

/* The timer may have been running when presuspend cancelled it. */
static void delay_postsuspend(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  udm_worker_drain(dc->worker);
}

static void delay_resume(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  pthread_mutex_lock(&dc->lock);
  dc->may_delay = true;
  pthread_mutex_unlock(&dc->lock);
}

/*
 * INFO:  <held reads> <held writes> <held flushes>
 * TABLE: the groups given to the constructor (3, 6 or 9 words)
 */
static void delay_status(struct udm_target *ti, enum udm_status_type type,
                         unsigned flags, struct udm_buf *out)
{
  struct delay *dc = ti->private;
  (void)flags;
  if (type == UDM_STATUS_IMA)
    return; /* the kernel's delay measures nothing (empty IMA text) */
  if (type == UDM_STATUS_INFO) {
    pthread_mutex_lock(&dc->lock);
    udm_buf_printf(out, "%u %u %u", dc->cls[DELAY_READ].held, dc->cls[DELAY_WRITE].held,
                   dc->cls[DELAY_FLUSH].held);
    pthread_mutex_unlock(&dc->lock);
    return;
  }
  for (unsigned i = 0; i < dc->argc / 3; i++)
    udm_buf_printf(out, "%s%s %llu %u", i ? " " : "", udm_dev_name(dc->cls[i].dev),
                   (unsigned long long)dc->cls[i].start, dc->cls[i].delay_ms);
}

static int delay_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                 void *data)
{
  struct delay *dc = ti->private;
  int r = 0;
  for (unsigned i = 0; i < DELAY_CLASSES && r == 0; i++)
    r = fn(ti, dc->cls[i].dev, dc->cls[i].start, ti->len, data);
  return r;
}

const struct udm_target_type udm_target_type_delay = {
    UDM_TARGET_TYPE_INIT,
    .name = "delay",
    .version = {1, 5, 0},
    .ctr = delay_ctr,
    .dtr = delay_dtr,
    .map = delay_map,
    .status = delay_status,
    .iterate_devices = delay_iterate_devices,
    .presuspend = delay_presuspend,
    .postsuspend = delay_postsuspend,
    .resume = delay_resume,
};
