/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * delay: hold reads, writes and flushes for a fixed time each before passing
 * them on, optionally to different devices (dm-delay).
 *
 * The kernel queues a delayed bio on a list and a timer submits it later.
 * udm's map() runs synchronously on a worker thread, so a delayed request
 * simply waits in map() until its deadline and then submits itself.  Two
 * things the kernel's list gives for free are kept explicitly:
 *   - order: requests of one class leave in the order they arrived (a
 *     ticket per request; a request submits only when its ticket is being
 *     served, and keeps the turn until its submission has completed, so
 *     overlapping writes land in arrival order);
 *   - suspend: presuspend releases every held request at once, as the
 *     kernel flushes its list, and lets new ones through undelayed until
 *     resume.
 * No lock is held while a request sleeps (the condition wait releases it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <udm/target.h>

enum delay_class_id { DELAY_READ, DELAY_WRITE, DELAY_FLUSH, DELAY_CLASSES };

static const char *const class_names[DELAY_CLASSES] = {"read", "write", "flush"};

struct delay_class {
  struct udm_dev *dev;
  udm_sector_t start;
  unsigned delay_ms;
  unsigned held;        /* requests waiting for their deadline: INFO's count */
  uint64_t next_ticket; /* handed to each arriving request */
  uint64_t serving;     /* the ticket allowed to submit now */
};

struct delay {
  pthread_mutex_t lock; /* guards everything below */
  pthread_cond_t wake;  /* a deadline passed, a turn ended, or a suspend began */
  bool sync_ready;      /* lock and wake were initialised (dtr of a half-built target) */
  bool may_delay;       /* false from presuspend to resume */
  uint64_t releases;    /* bumped by presuspend: held requests compare it */
  unsigned argc;        /* 3, 6 or 9: what TABLE prints back */
  struct delay_class cls[DELAY_CLASSES];
};

static uint64_t monotonic_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Wait on dc->wake until DEADLINE (monotonic ns) at the latest.  Condition
 * variables time out against CLOCK_REALTIME portably (macOS has no
 * pthread_condattr_setclock), so the remaining monotonic time is converted
 * on each call and capped, and the caller re-checks the monotonic clock:
 * a jump of the wall clock costs at most one early wake-up or a bounded
 * late one.
 */
static void delay_wait_until(struct delay *dc, uint64_t deadline)
{
  uint64_t now = monotonic_ns();
  if (now >= deadline)
    return;
  uint64_t left = deadline - now;
  if (left > 1000000000u)
    left = 1000000000u;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t nsec = (uint64_t)ts.tv_nsec + left;
  ts.tv_sec += (time_t)(nsec / 1000000000u);
  ts.tv_nsec = (long)(nsec % 1000000000u);
  pthread_cond_timedwait(&dc->wake, &dc->lock, &ts);
}

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
  if (pthread_cond_init(&dc->wake, NULL) != 0) {
    pthread_mutex_destroy(&dc->lock);
    return -ENOMEM;
  }
  dc->sync_ready = true;
  dc->may_delay = true;
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
  return 0;
}

static void delay_dtr(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  if (!dc)
    return;
  for (unsigned i = 0; i < DELAY_CLASSES; i++)
    if (dc->cls[i].dev)
      udm_put_device(ti, dc->cls[i].dev);
  if (dc->sync_ready) {
    pthread_cond_destroy(&dc->wake);
    pthread_mutex_destroy(&dc->lock);
  }
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
  uint64_t ticket = c->next_ticket++;
  /*
   * While suspending, requests are not held, but they still take a ticket
   * so that they cannot overtake the held ones being released.
   */
  bool held = dc->may_delay;
  uint64_t releases = dc->releases;
  uint64_t deadline = monotonic_ns() + (uint64_t)c->delay_ms * 1000000u;
  if (held)
    c->held++;
  for (;;) {
    if (held && (dc->releases != releases || monotonic_ns() >= deadline)) {
      held = false;
      c->held--;
    }
    if (!held && c->serving == ticket)
      break;
    if (held)
      delay_wait_until(dc, deadline);
    else
      pthread_cond_wait(&dc->wake, &dc->lock);
  }
  pthread_mutex_unlock(&dc->lock);

  int r = udm_dev_submit(io->dev, io);

  pthread_mutex_lock(&dc->lock);
  c->serving++;
  pthread_cond_broadcast(&dc->wake);
  pthread_mutex_unlock(&dc->lock);
  return r < 0 ? r : UDM_MAPIO_DONE;
}

/* Release every held request now, and hold no new ones until resume. */
static void delay_presuspend(struct udm_target *ti)
{
  struct delay *dc = ti->private;
  pthread_mutex_lock(&dc->lock);
  dc->may_delay = false;
  dc->releases++;
  pthread_cond_broadcast(&dc->wake);
  pthread_mutex_unlock(&dc->lock);
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
    .resume = delay_resume,
};
