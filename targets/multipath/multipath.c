/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * multipath: one device reached through several paths (dm-mpath).  Paths
 * are any backing devices (files, block devices, udm:, nbd: ...) that lead
 * to the same data; they form priority groups, and a path selector
 * (round-robin, queue-length, service-time, historical-service-time) picks
 * the path of the active group for each request.  A request that fails on
 * a path fails that path and is mapped again, onto another path; when no
 * usable path is left, requests fail with EIO, or with queue_if_no_path
 * wait on the core's hold list until a path is reinstated (or
 * fail_if_no_path).
 *
 * How it rides the core: map() picks a path under the target's lock and
 * remaps the request there; end_io() sees a path error, fails the path and
 * returns UDM_ENDIO_REQUEUE, and the kick that follows (udm_target_kick)
 * maps the request again at once.  Waiting requests are the core's held
 * pieces: no thread waits for a path.  Path changes raise an event
 * (udm_target_event, "udm wait").
 *
 * Where udm differs from the kernel (docs/architecture.md):
 *   - there are no SCSI hardware handlers: a table naming one is refused;
 *     pg_init_retries and pg_init_delay_msecs, which only act through a
 *     handler, are kept and shown, as the kernel does without one;
 *   - every suspend keeps held requests held (the kernel's suspend without
 *     --noflush turns queue_if_no_path off until resume and fails them):
 *     udm's hold list is not in flight, so a suspend never waits for it;
 *     they are mapped again at resume, by the new table if one was loaded;
 *   - queue_mode: rq and mq are accepted (udm's multipath is what the
 *     kernel calls request-based), bio is refused;
 *   - udm extension, off by default: the feature "udm_path_checker <msecs>"
 *     reads the first 4 KiB of every failed path that often and reinstates
 *     the paths that answer (what multipathd's checkers do for the kernel);
 *   - path selectors that take no selector arguments refuse them (the
 *     kernel ignores them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <udm/target.h>

#include "selector.h"

#define PG_INIT_DELAY_DEFAULT UINT32_MAX /* not given: the handler's default */
#define PROBE_BYTES 4096u

static const struct mpath_selector *const selectors[] = {
    &mpath_ps_round_robin,
    &mpath_ps_queue_length,
    &mpath_ps_service_time,
    &mpath_ps_historical_service_time,
};

/* Per request (io->per_io): the path it was sent to, for end_io. */
struct mpath_io {
  struct mpath_path *path;
  uint64_t nr_bytes;
  uint64_t start_ns;
};

struct multipath {
  pthread_mutex_t lock;      /* everything below but the worker */
  bool lock_ready;
  unsigned ngroups;
  struct mpath_group *groups;
  struct mpath_group *current_pg;
  struct mpath_group *next_pg;  /* switch_group, or the initial group */
  struct mpath_path *current_path;
  unsigned nr_valid;            /* usable paths over all groups */
  bool queue_io;                /* dm's MPATHF_QUEUE_IO: no group chosen yet */
  bool queue_if_no_path;
  bool retain_hw_handler;
  bool suspended;               /* postsuspend to resume: messages refused */
  unsigned pg_init_retries;     /* 0: not given */
  unsigned pg_init_delay_msecs; /* PG_INIT_DELAY_DEFAULT: not given */
  unsigned checker_msecs;       /* udm_path_checker; 0: off */
  struct udm_worker *worker;    /* the checker's */
  struct udm_timer check_timer;
  void *probe;                  /* PROBE_BYTES, aligned for O_DIRECT files */
  struct udm_target *ti;
};

int mpath_ps_repeat_count(const char *word, const char *name, unsigned *out,
                          struct udm_target *ti)
{
  if (udm_parse_uint(word, out) < 0) {
    udm_target_error(ti, "%s ps: invalid repeat count '%s'", name, word);
    return -EINVAL;
  }
  if (*out > 1)
    *out = 1; /* as the kernel: larger repeat counts are deprecated and act as 1 */
  return 0;
}

/* ---- paths and groups (under m->lock) ------------------------------------ */

/* Take P out of use; true when it was usable. */
static bool fail_path_locked(struct multipath *m, struct mpath_path *p)
{
  if (!p->active)
    return false;
  struct mpath_group *pg = p->pg;
  unsigned idx = (unsigned)(p - pg->paths);
  for (unsigned k = 0; k < pg->nvalid; k++)
    if (pg->order[k] == idx) {
      memmove(pg->order + k, pg->order + k + 1, (pg->nvalid - k - 1) * sizeof *pg->order);
      pg->nvalid--;
      break;
    }
  p->active = false;
  p->fail_count++;
  m->nr_valid--;
  if (m->current_path == p)
    m->current_path = NULL;
  return true;
}

/* Put P back in use, last in its group's order; true when it was failed. */
static bool reinstate_path_locked(struct multipath *m, struct mpath_path *p)
{
  if (p->active)
    return false;
  struct mpath_group *pg = p->pg;
  pg->order[pg->nvalid++] = (unsigned)(p - pg->paths);
  p->active = true;
  if (++m->nr_valid == 1)
    m->current_path = NULL;
  return true;
}

static struct mpath_path *choose_in_group(struct multipath *m, struct mpath_group *pg,
                                          uint64_t nr_bytes, uint64_t now)
{
  if (!pg->nvalid)
    return NULL;
  unsigned k = pg->ps->select(pg, nr_bytes, now);
  unsigned idx = pg->order[k];
  /* The chosen path goes last: the least preferred of equals next time. */
  memmove(pg->order + k, pg->order + k + 1, (pg->nvalid - k - 1) * sizeof *pg->order);
  pg->order[pg->nvalid - 1] = idx;
  struct mpath_path *p = &pg->paths[idx];
  if (m->current_pg != pg) {
    m->current_pg = pg;
    m->current_path = p;
    m->queue_io = false; /* no hardware handler to initialise the group */
  }
  return p;
}

/*
 * The path for the next request: the group asked for by switch_group (or
 * the table), else the current group, else the first group with a usable
 * path, trying disabled groups last.
 */
static struct mpath_path *choose_path(struct multipath *m, uint64_t nr_bytes, uint64_t now)
{
  struct mpath_path *p = NULL;
  if (!m->nr_valid) {
    m->queue_io = false;
    goto none;
  }
  if (m->next_pg) {
    struct mpath_group *pg = m->next_pg;
    m->next_pg = NULL;
    if ((p = choose_in_group(m, pg, nr_bytes, now)))
      return p;
  }
  if (m->current_pg && (p = choose_in_group(m, m->current_pg, nr_bytes, now)))
    return p;
  for (int bypassed = 0; bypassed < 2; bypassed++)
    for (unsigned g = 0; g < m->ngroups; g++)
      if (m->groups[g].bypassed == (bool)bypassed &&
          (p = choose_in_group(m, &m->groups[g], nr_bytes, now)))
        return p;
none:
  m->current_path = NULL;
  m->current_pg = NULL;
  return NULL;
}

/* ---- the checker (udm extension) ----------------------------------------- */

static void mpath_check(struct udm_timer *t)
{
  struct multipath *m = (struct multipath *)((char *)t - offsetof(struct multipath, check_timer));
  bool changed = false;
  for (unsigned g = 0; g < m->ngroups; g++) {
    struct mpath_group *pg = &m->groups[g];
    for (unsigned i = 0; i < pg->npaths; i++) {
      struct mpath_path *p = &pg->paths[i];
      pthread_mutex_lock(&m->lock);
      bool failed = !p->active;
      pthread_mutex_unlock(&m->lock);
      if (!failed)
        continue;
      udm_sector_t size = udm_dev_size(p->dev);
      struct udm_io io = {.op = UDM_OP_READ,
                          .nr_sectors = size < PROBE_BYTES / 512 ? size : PROBE_BYTES / 512,
                          .buf = m->probe};
      if (io.nr_sectors && udm_dev_submit(p->dev, &io) == 0) {
        pthread_mutex_lock(&m->lock);
        changed |= reinstate_path_locked(m, p);
        pthread_mutex_unlock(&m->lock);
      }
    }
  }
  if (changed) {
    udm_target_event(m->ti);
    udm_target_kick(m->ti);
  }
  udm_timer_arm(&m->check_timer, udm_now_ns() + (uint64_t)m->checker_msecs * 1000000u);
}

/* ---- construction -------------------------------------------------------- */

static int parse_features(struct multipath *m, struct udm_arg_set *as, struct udm_target *ti)
{
  static const struct udm_arg count = {0, 10, "invalid number of feature args"};
  static const struct udm_arg retries = {1, 50, "pg_init_retries must be between 1 and 50"};
  static const struct udm_arg delay = {0, 60000,
                                       "pg_init_delay_msecs must be between 0 and 60000"};
  static const struct udm_arg checker = {1, 3600000,
                                         "udm_path_checker: invalid interval in msecs"};
  unsigned argc;
  int r = udm_read_arg_group(as, &count, &argc, ti);
  while (r == 0 && argc--) {
    const char *name = udm_shift_arg(as);
    if (!strcasecmp(name, "queue_if_no_path")) {
      m->queue_if_no_path = true;
    } else if (!strcasecmp(name, "retain_attached_hw_handler")) {
      m->retain_hw_handler = true;
    } else if (!strcasecmp(name, "pg_init_retries") && argc) {
      argc--;
      r = udm_read_arg(as, &retries, &m->pg_init_retries, ti);
    } else if (!strcasecmp(name, "pg_init_delay_msecs") && argc) {
      argc--;
      r = udm_read_arg(as, &delay, &m->pg_init_delay_msecs, ti);
    } else if (!strcasecmp(name, "udm_path_checker") && argc) {
      argc--;
      r = udm_read_arg(as, &checker, &m->checker_msecs, ti);
    } else if (!strcasecmp(name, "queue_mode") && argc) {
      argc--;
      const char *mode = udm_shift_arg(as);
      if (strcasecmp(mode, "rq") && strcasecmp(mode, "mq")) {
        udm_target_error(ti, "queue_mode '%s' is not supported (udm's multipath is "
                             "request-based: rq or mq)", mode);
        r = -EINVAL;
      }
    } else {
      udm_target_error(ti, "unrecognised multipath feature '%s' (expected "
                           "queue_if_no_path, pg_init_retries N, pg_init_delay_msecs N, "
                           "retain_attached_hw_handler, queue_mode rq|mq, "
                           "udm_path_checker MSECS)", name);
      r = -EINVAL;
    }
  }
  return r;
}

static int parse_hw_handler(struct udm_arg_set *as, struct udm_target *ti)
{
  static const struct udm_arg count = {0, 1024, "invalid number of hardware handler args"};
  unsigned argc;
  int r = udm_read_arg_group(as, &count, &argc, ti);
  if (r == 0 && argc) {
    udm_target_error(ti, "hardware handler '%s' is not supported: udm has no SCSI device "
                         "handlers (give 0 hardware handler arguments)", as->argv[0]);
    r = -EINVAL;
  }
  return r;
}

static int parse_group(struct multipath *m, struct mpath_group *pg, struct udm_arg_set *as,
                       struct udm_target *ti)
{
  static const struct udm_arg ps_count = {0, 1024, "invalid number of path selector args"};
  static const struct udm_arg npaths = {1, 1024, "invalid number of paths"};
  static const struct udm_arg nargs = {0, 1024, "invalid number of selector args"};
  if (as->argc < 2) {
    udm_target_error(ti, "not enough priority group arguments for group %u", pg->num);
    return -EINVAL;
  }
  const char *name = udm_shift_arg(as);
  for (unsigned i = 0; i < sizeof selectors / sizeof *selectors; i++)
    if (!strcmp(name, selectors[i]->name))
      pg->ps = selectors[i];
  if (!pg->ps) {
    udm_target_error(ti, "unknown path selector type '%s' (expected round-robin, "
                         "queue-length, service-time or historical-service-time)", name);
    return -EINVAL;
  }
  unsigned ps_argc, selector_args;
  int r = udm_read_arg_group(as, &ps_count, &ps_argc, ti);
  if (r == 0)
    r = pg->ps->create(pg, ps_argc, as->argv, ti);
  if (r < 0)
    return r;
  udm_consume_args(as, ps_argc);
  if (udm_read_arg(as, &npaths, &pg->npaths, ti) < 0 ||
      udm_read_arg(as, &nargs, &selector_args, ti) < 0)
    return -EINVAL;
  pg->paths = calloc(pg->npaths, sizeof *pg->paths);
  pg->order = calloc(pg->npaths, sizeof *pg->order);
  if (!pg->paths || !pg->order)
    return -ENOMEM;
  for (unsigned i = 0; i < pg->npaths; i++) {
    struct mpath_path *p = &pg->paths[i];
    if (as->argc < 1 + selector_args) {
      udm_target_error(ti, "not enough path parameters: group %u path %u needs a device "
                           "and %u selector args", pg->num, i + 1, selector_args);
      return -EINVAL;
    }
    p->pg = pg;
    r = udm_get_device(ti, as->argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &p->dev);
    if (r == 0)
      r = pg->ps->add_path(p, selector_args, as->argv + 1, ti);
    if (r < 0)
      return r;
    udm_consume_args(as, 1 + selector_args);
    p->active = true;
    pg->order[pg->nvalid++] = i;
    m->nr_valid++;
  }
  return 0;
}

/*
 * Construct a multipath mapping:
 *   <#features> [queue_if_no_path] [pg_init_retries <1..50>]
 *               [pg_init_delay_msecs <0..60000>] [retain_attached_hw_handler]
 *               [queue_mode rq|mq] [udm_path_checker <msecs>]
 *   0                                   (hardware handler args: none)
 *   <#groups> <initial group (1-based; 0 when there are none)>
 *   then per group:
 *     <selector> <#selector args> <selector args>...
 *     <#paths> <#args per path> (<path> <args>...)...
 */
static int multipath_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  static const struct udm_arg ngroups = {0, 1024, "invalid number of priority groups"};
  static const struct udm_arg initial = {0, 1024, "invalid initial priority group number"};
  struct multipath *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  ti->private = m;
  m->ti = ti;
  m->queue_io = true;
  m->pg_init_delay_msecs = PG_INIT_DELAY_DEFAULT;
  if (pthread_mutex_init(&m->lock, NULL) != 0)
    return -ENOMEM;
  m->lock_ready = true;
  struct udm_arg_set as = {argc, argv};
  unsigned first;
  int r = parse_features(m, &as, ti);
  if (r == 0)
    r = parse_hw_handler(&as, ti);
  if (r == 0)
    r = udm_read_arg(&as, &ngroups, &m->ngroups, ti);
  if (r == 0)
    r = udm_read_arg(&as, &initial, &first, ti);
  if (r < 0)
    return r;
  /* As the kernel: an initial group past the last one just chooses none. */
  if (!m->ngroups != !first) {
    udm_target_error(ti, "invalid initial priority group %u (%u groups)", first,
                     m->ngroups);
    return -EINVAL;
  }
  if (m->ngroups && !(m->groups = calloc(m->ngroups, sizeof *m->groups)))
    return -ENOMEM;
  for (unsigned g = 0; g < m->ngroups; g++) {
    if (!as.argc) {
      udm_target_error(ti, "priority group count mismatch: %u announced, %u given",
                       m->ngroups, g);
      return -EINVAL;
    }
    m->groups[g].num = g + 1;
    if ((r = parse_group(m, &m->groups[g], &as, ti)) < 0)
      return r;
  }
  if (as.argc) {
    udm_target_error(ti, "priority group count mismatch: %u announced, more given "
                         "(from '%s')", m->ngroups, as.argv[0]);
    return -EINVAL;
  }
  if (first && first <= m->ngroups)
    m->next_pg = &m->groups[first - 1];
  ti->per_io_size = sizeof(struct mpath_io);
  if (m->checker_msecs) {
    if (posix_memalign(&m->probe, PROBE_BYTES, PROBE_BYTES) != 0) {
      m->probe = NULL;
      return -ENOMEM;
    }
    if ((r = udm_worker_create(ti, &m->worker)) < 0) {
      udm_target_error(ti, "cannot start the path checker thread");
      return r;
    }
    udm_timer_init(&m->check_timer, m->worker, mpath_check);
    udm_timer_arm(&m->check_timer, udm_now_ns() + (uint64_t)m->checker_msecs * 1000000u);
  }
  return 0;
}

static void multipath_dtr(struct udm_target *ti)
{
  struct multipath *m = ti->private;
  if (!m)
    return;
  udm_worker_destroy(m->worker);
  for (unsigned g = 0; m->groups && g < m->ngroups; g++) {
    struct mpath_group *pg = &m->groups[g];
    for (unsigned i = 0; pg->paths && i < pg->npaths; i++)
      if (pg->paths[i].dev)
        udm_put_device(ti, pg->paths[i].dev);
    free(pg->paths);
    free(pg->order);
  }
  free(m->groups);
  free(m->probe);
  if (m->lock_ready)
    pthread_mutex_destroy(&m->lock);
  free(m);
}

/* ---- I/O ----------------------------------------------------------------- */

static int multipath_map(struct udm_target *ti, struct udm_io *io)
{
  struct multipath *m = ti->private;
  struct mpath_io *mio = io->per_io;
  uint64_t bytes = io->nr_sectors * 512, now = udm_now_ns();
  pthread_mutex_lock(&m->lock);
  struct mpath_path *p = choose_path(m, bytes, now);
  bool hold = m->queue_if_no_path;
  if (p && p->pg->ps->start_io)
    p->pg->ps->start_io(p, bytes);
  pthread_mutex_unlock(&m->lock);
  if (!p)
    return hold ? UDM_MAPIO_REQUEUE : UDM_MAPIO_KILL;
  *mio = (struct mpath_io){p, bytes, now};
  /* The device's own sector, as dm-mpath sends it. */
  return udm_remap(ti, io, p->dev, ti->begin);
}

/* Errors no other path would answer differently (dm-mpath's noretry_error). */
static bool path_error(int err)
{
  switch (err) {
  case 0:
  case -EOPNOTSUPP:
  case -ENOSPC:
#ifdef EREMOTEIO /* Linux's; macOS has neither */
  case -EREMOTEIO:
#endif
#ifdef EBADE
  case -EBADE:
#endif
  case -ENODATA:
    return false;
  default:
    return true;
  }
}

static int multipath_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  struct multipath *m = ti->private;
  struct mpath_io *mio = io->per_io;
  struct mpath_path *p = mio->path;
  if (!p)
    return UDM_ENDIO_DONE;
  int r = UDM_ENDIO_DONE;
  bool failed = false, retry = false;
  pthread_mutex_lock(&m->lock);
  if (p->pg->ps->end_io)
    p->pg->ps->end_io(p, mio->nr_bytes, mio->start_ns, udm_now_ns());
  if (path_error(*err)) {
    failed = fail_path_locked(m, p);
    if (m->nr_valid || m->queue_if_no_path) {
      r = UDM_ENDIO_REQUEUE; /* held, and mapped again at once if a path is left */
      retry = m->nr_valid > 0;
      if (!retry) /* as the kernel's next map finds: no group */
        choose_path(m, 0, 0);
    }
  }
  pthread_mutex_unlock(&m->lock);
  if (failed)
    udm_target_event(ti);
  if (retry)
    udm_target_kick(ti);
  return r;
}

/* ---- suspend ------------------------------------------------------------- */

static void multipath_postsuspend(struct udm_target *ti)
{
  struct multipath *m = ti->private;
  pthread_mutex_lock(&m->lock);
  m->suspended = true;
  pthread_mutex_unlock(&m->lock);
}

static void multipath_resume(struct udm_target *ti)
{
  struct multipath *m = ti->private;
  pthread_mutex_lock(&m->lock);
  m->suspended = false;
  pthread_mutex_unlock(&m->lock);
}

/* ---- messages ------------------------------------------------------------ */

/* "udm:NAME" and "/dev/mapper/NAME" name the same udm device. */
static const char *udm_device_part(const char *s)
{
  if (!strncmp(s, "udm:", 4))
    return s + 4;
  if (!strncmp(s, "/dev/mapper/", 12))
    return s + 12;
  return NULL;
}

static bool names_path(const char *word, const struct mpath_path *p)
{
  const char *name = udm_dev_name(p->dev);
  if (!strcmp(word, name))
    return true;
  const char *a = udm_device_part(word), *b = udm_device_part(name);
  return a && b && !strcmp(a, b);
}

static int group_number(struct multipath *m, const char *word, struct udm_target *ti)
{
  unsigned n;
  if (udm_parse_uint(word, &n) < 0 || n < 1 || n > m->ngroups) {
    udm_target_error(ti, "invalid priority group number '%s' (this table has %u)", word,
                     m->ngroups);
    return -EINVAL;
  }
  return (int)n;
}

/*
 * Messages (dm-mpath's):
 *   queue_if_no_path | fail_if_no_path
 *   disable_group <n> | enable_group <n> | switch_group <n>
 *   fail_path <dev> | reinstate_path <dev>      (<dev> as in the table)
 * All are refused while the device is suspended, as the kernel does.
 */
static int multipath_message(struct udm_target *ti, unsigned argc, char **argv,
                             struct udm_buf *out)
{
  struct multipath *m = ti->private;
  (void)out;
  bool kick = false, event = false;
  int r = 0;
  pthread_mutex_lock(&m->lock);
  if (m->suspended) {
    udm_target_error(ti, "multipath: no messages while the device is suspended");
    r = -EBUSY;
  } else if (argc == 1 && !strcasecmp(argv[0], "queue_if_no_path")) {
    m->queue_if_no_path = true;
  } else if (argc == 1 && !strcasecmp(argv[0], "fail_if_no_path")) {
    m->queue_if_no_path = false;
    kick = true; /* what waits for a path fails now */
  } else if (argc != 2) {
    udm_target_error(ti, "invalid multipath message '%s' with %u argument%s (expected "
                         "queue_if_no_path, fail_if_no_path, or disable_group, "
                         "enable_group, switch_group, fail_path or reinstate_path with "
                         "one argument)", argc ? argv[0] : "", argc ? argc - 1 : 0,
                     argc == 2 ? "" : "s");
    r = -EINVAL;
  } else if (!strcasecmp(argv[0], "disable_group") || !strcasecmp(argv[0], "enable_group")) {
    if ((r = group_number(m, argv[1], ti)) > 0) {
      m->groups[r - 1].bypassed = !strcasecmp(argv[0], "disable_group");
      m->current_path = NULL;
      m->current_pg = NULL;
      event = true;
      r = 0;
    }
  } else if (!strcasecmp(argv[0], "switch_group")) {
    if ((r = group_number(m, argv[1], ti)) > 0) {
      for (unsigned g = 0; g < m->ngroups; g++)
        m->groups[g].bypassed = false;
      m->current_path = NULL;
      m->current_pg = NULL;
      m->next_pg = &m->groups[r - 1];
      event = true;
      r = 0;
    }
  } else if (!strcasecmp(argv[0], "fail_path") || !strcasecmp(argv[0], "reinstate_path")) {
    bool fail = !strcasecmp(argv[0], "fail_path"), found = false;
    for (unsigned g = 0; g < m->ngroups; g++)
      for (unsigned i = 0; i < m->groups[g].npaths; i++) {
        struct mpath_path *p = &m->groups[g].paths[i];
        if (!names_path(argv[1], p))
          continue;
        found = true;
        if (fail ? fail_path_locked(m, p) : reinstate_path_locked(m, p))
          event = true;
      }
    if (!found) {
      udm_target_error(ti, "%s: no path '%s' in this multipath table", argv[0], argv[1]);
      r = -EINVAL;
    }
    kick = !fail && event;
  } else {
    udm_target_error(ti, "unrecognised multipath message '%s'", argv[0]);
    r = -EINVAL;
  }
  pthread_mutex_unlock(&m->lock);
  if (event)
    udm_target_event(ti);
  if (kick)
    udm_target_kick(ti);
  return r;
}

/* ---- status -------------------------------------------------------------- */

/*
 * INFO:  2 <queue_io> <pg_init_count> 0 <#groups> <group of the next request>
 *        then per group: A|E|D <selector status> <#paths> <#info args>
 *        then per path: <dev> A|F <fail count> <selector info>
 * TABLE: the constructor's syntax.  Both end in a blank, as the kernel's do.
 */
static void multipath_status(struct udm_target *ti, enum udm_status_type type,
                             unsigned flags, struct udm_buf *out)
{
  struct multipath *m = ti->private;
  (void)flags;
  pthread_mutex_lock(&m->lock);
  if (type == UDM_STATUS_IMA) {
    /* dm-mpath's measurement; the kernel's selectors all measure nothing,
     * so each path_selector_status is empty. */
    udm_target_ima_header(ti, out);
    udm_buf_printf(out, ",nr_priority_groups=%u", m->ngroups);
    for (unsigned g = 0; g < m->ngroups; g++) {
      struct mpath_group *pg = &m->groups[g];
      udm_buf_printf(out, ",pg_state_%u=%c,nr_pgpaths_%u=%u,path_selector_name_%u=%s", g,
                     pg->bypassed ? 'D' : pg == m->current_pg ? 'A' : 'E', g, pg->npaths, g,
                     pg->ps->name);
      for (unsigned i = 0; i < pg->npaths; i++) {
        struct mpath_path *p = &pg->paths[i];
        udm_buf_printf(out, ",path_name_%u_%u=%s,is_active_%u_%u=%c,fail_count_%u_%u=%u"
                            ",path_selector_status_%u_%u=",
                       g, i, udm_dev_name(p->dev), g, i, p->active ? 'A' : 'F', g, i,
                       p->fail_count, g, i);
      }
    }
    udm_buf_puts(out, ";");
    pthread_mutex_unlock(&m->lock);
    return;
  }
  if (type == UDM_STATUS_INFO) {
    udm_buf_printf(out, "2 %u 0 ", m->queue_io ? 1u : 0u);
  } else {
    udm_buf_printf(out, "%u ", m->queue_if_no_path + 2 * (m->pg_init_retries > 0) +
                                   2 * (m->pg_init_delay_msecs != PG_INIT_DELAY_DEFAULT) +
                                   m->retain_hw_handler + 2 * (m->checker_msecs > 0));
    if (m->queue_if_no_path)
      udm_buf_puts(out, "queue_if_no_path ");
    if (m->pg_init_retries)
      udm_buf_printf(out, "pg_init_retries %u ", m->pg_init_retries);
    if (m->pg_init_delay_msecs != PG_INIT_DELAY_DEFAULT)
      udm_buf_printf(out, "pg_init_delay_msecs %u ", m->pg_init_delay_msecs);
    if (m->retain_hw_handler)
      udm_buf_puts(out, "retain_attached_hw_handler ");
    if (m->checker_msecs)
      udm_buf_printf(out, "udm_path_checker %u ", m->checker_msecs);
  }
  unsigned pg_num = m->next_pg      ? m->next_pg->num
                    : m->current_pg ? m->current_pg->num
                                    : (m->ngroups ? 1 : 0);
  udm_buf_printf(out, "0 %u %u ", m->ngroups, pg_num);
  for (unsigned g = 0; g < m->ngroups; g++) {
    struct mpath_group *pg = &m->groups[g];
    if (type == UDM_STATUS_INFO)
      udm_buf_printf(out, "%c ", pg->bypassed ? 'D' : pg == m->current_pg ? 'A' : 'E');
    else
      udm_buf_printf(out, "%s ", pg->ps->name);
    pg->ps->status(pg, NULL, type, out);
    udm_buf_printf(out, "%u %u ", pg->npaths,
                   type == UDM_STATUS_INFO ? pg->ps->info_args : pg->ps->table_args);
    for (unsigned i = 0; i < pg->npaths; i++) {
      struct mpath_path *p = &pg->paths[i];
      if (type == UDM_STATUS_INFO)
        udm_buf_printf(out, "%s %s %u ", udm_dev_name(p->dev), p->active ? "A" : "F",
                       p->fail_count);
      else
        udm_buf_printf(out, "%s ", udm_dev_name(p->dev));
      pg->ps->status(pg, p, type, out);
    }
  }
  pthread_mutex_unlock(&m->lock);
}

static int multipath_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                     void *data)
{
  struct multipath *m = ti->private;
  int r = 0;
  for (unsigned g = 0; g < m->ngroups && r == 0; g++)
    for (unsigned i = 0; i < m->groups[g].npaths && r == 0; i++)
      r = fn(ti, m->groups[g].paths[i].dev, ti->begin, ti->len, data);
  return r;
}

const struct udm_target_type udm_target_type_multipath = {
    UDM_TARGET_TYPE_INIT,
    .name = "multipath",
    .version = {1, 15, 0},
    .ctr = multipath_ctr,
    .dtr = multipath_dtr,
    .map = multipath_map,
    .end_io = multipath_end_io,
    .status = multipath_status,
    .message = multipath_message,
    .iterate_devices = multipath_iterate_devices,
    .postsuspend = multipath_postsuspend,
    .resume = multipath_resume,
};
