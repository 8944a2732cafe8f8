/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The asynchronous request core: requests a target owns complete out of
 * order with the right bytes; pieces a target asks to hold survive a
 * suspend that does not wait for them and run again at resume or on a kick;
 * requests arriving while suspended wait for resume, and fail when the
 * device is removed instead; end_io sees each completion and may change
 * it; per-request data is sized and zeroed; a target built for API
 * version 1 still loads; 256 requests held by delay finish in about one
 * delay without a thread each; a constructor may wait for a suspended
 * device without holding the context; a slow device does not hold up
 * another.
 *
 * The test target "owner" maps onto a file and is steered by its table's
 * word: "own" keeps every request for the test to finish, "hold" requeues
 * until the message "open", "fix" remaps and lets end_io rewrite errors.
 */
#include <dirent.h>
#include <errno.h>
#ifdef __APPLE__
#include <libproc.h>
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <udm/target.h>

#include "check.h"
#include "pattern.h"
#include "testdev.h"

#define DISK_SIZE (4u << 20)

static struct udm_ctx *ctx;
static char disk[256];
/* The owner target made last (each test makes one table at a time). */
static struct owner *last_owner;

/* ---- the owner target ---- */

enum mode { OWN, HOLD, FIX };

struct owned {
  struct udm_io *ios[512];
  unsigned n;
};

struct owner {
  struct udm_dev *dev;
  struct udm_target *ti; /* kept: the targets array does not move */
  enum mode mode;
  pthread_mutex_t lock;
  bool open;
  struct owned owned;
  unsigned mapped, requeued, end_ios, bad_per_io;
  enum udm_op map_order[16]; /* the ops of the first pieces mapped, in order */
};

struct owner_io {
  uint64_t tag;
  unsigned char zero_check[56];
};

static int owner_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 2) {
    udm_target_error(ti, "owner takes '<dev> own|hold|fix'");
    return -EINVAL;
  }
  struct owner *o = calloc(1, sizeof *o);
  if (!o)
    return -ENOMEM;
  ti->private = o;
  o->ti = ti;
  last_owner = o;
  pthread_mutex_init(&o->lock, NULL);
  o->mode = strcmp(argv[1], "own") == 0 ? OWN : strcmp(argv[1], "hold") == 0 ? HOLD : FIX;
  ti->per_io_size = sizeof(struct owner_io);
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &o->dev);
}

static void owner_dtr(struct udm_target *ti)
{
  struct owner *o = ti->private;
  if (!o)
    return;
  if (o->dev)
    udm_put_device(ti, o->dev);
  pthread_mutex_destroy(&o->lock);
  free(o);
}

static int owner_map(struct udm_target *ti, struct udm_io *io)
{
  struct owner *o = ti->private;
  struct owner_io *pio = io->per_io;
  pthread_mutex_lock(&o->lock);
  if (o->mapped < sizeof o->map_order / sizeof o->map_order[0])
    o->map_order[o->mapped] = io->op;
  o->mapped++;
  bool dirty = false;
  for (size_t i = 0; i < sizeof pio->zero_check; i++)
    dirty |= pio->zero_check[i] != 0;
  o->bad_per_io += dirty || pio->tag != 0;
  memset(pio->zero_check, 0xa5, sizeof pio->zero_check); /* must be zero next time */
  pio->tag = 0x5eed0000u + o->mapped;
  int r = udm_remap(ti, io, o->dev, 0);
  if (o->mode == OWN && io->op != UDM_OP_FLUSH && o->owned.n < 512) {
    o->owned.ios[o->owned.n++] = io;
    r = UDM_MAPIO_SUBMITTED;
  } else if (o->mode == HOLD && !o->open) {
    o->requeued++;
    r = UDM_MAPIO_REQUEUE;
  }
  pthread_mutex_unlock(&o->lock);
  return r;
}

static int owner_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  struct owner *o = ti->private;
  struct owner_io *pio = io->per_io;
  pthread_mutex_lock(&o->lock);
  o->end_ios++;
  o->bad_per_io += (pio->tag & 0xffff0000u) != 0x5eed0000u;
  pthread_mutex_unlock(&o->lock);
  if (o->mode == FIX && *err == -EIO)
    *err = -ENOSPC; /* visible to the caller: end_io saw it and had the last word */
  return UDM_ENDIO_DONE;
}

static int owner_message(struct udm_target *ti, unsigned argc, char **argv,
                         struct udm_buf *out)
{
  struct owner *o = ti->private;
  (void)out;
  if (argc != 1 || strcmp(argv[0], "open") != 0)
    return -EINVAL;
  pthread_mutex_lock(&o->lock);
  o->open = true;
  pthread_mutex_unlock(&o->lock);
  udm_target_kick(ti);
  return 0;
}

static const struct udm_target_type owner_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "owner",
    .version = {1, 0, 0},
    .ctr = owner_ctr,
    .dtr = owner_dtr,
    .map = owner_map,
    .end_io = owner_end_io,
    .message = owner_message,
};


/* ---- completions ---- */

struct done {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned count;
  int errs[512];
  unsigned order[512];
  unsigned finished;
};

struct slot {
  struct done *d;
  unsigned index;
};

static void on_done(void *opaque, int err)
{
  struct slot *s = opaque;
  pthread_mutex_lock(&s->d->lock);
  s->d->errs[s->index] = err;
  s->d->order[s->d->finished++] = s->index;
  s->d->count++;
  pthread_cond_broadcast(&s->d->cond);
  pthread_mutex_unlock(&s->d->lock);
}

static void done_init(struct done *d)
{
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cond, NULL);
}

static unsigned done_count(struct done *d)
{
  pthread_mutex_lock(&d->lock);
  unsigned n = d->count;
  pthread_mutex_unlock(&d->lock);
  return n;
}

/* Wait until N completions, at most SECONDS; returns the count reached. */
static unsigned done_wait(struct done *d, unsigned n, int seconds)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  pthread_mutex_lock(&d->lock);
  while (d->count < n)
    if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
      break;
  unsigned got = d->count;
  pthread_mutex_unlock(&d->lock);
  return got;
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void make_disk(void)
{
  FILE *f = fopen(disk, "w+");
  unsigned char *b = malloc(DISK_SIZE);
  if (!f || !b) {
    perror(disk);
    exit(1);
  }
  fill_pattern(b, DISK_SIZE, 7, 0);
  fwrite(b, 1, DISK_SIZE, f);
  fclose(f);
  free(b);
}

static bool disk_has(const unsigned char *want, size_t len, uint64_t off)
{
  FILE *f = fopen(disk, "r");
  unsigned char *b = malloc(len);
  bool ok = f && b && fseek(f, (long)off, SEEK_SET) == 0 && fread(b, 1, len, f) == len &&
            memcmp(b, want, len) == 0;
  if (f)
    fclose(f);
  free(b);
  return ok;
}

/* ---- tests ---- */

static struct udm_device *make_owner(const char *name, const char *mode)
{
  char t[600];
  snprintf(t, sizeof t, "0 %u owner %s %s", DISK_SIZE / 512, disk, mode);
  return test_make(ctx, name, t, 0);
}

static void owned_requests_complete_out_of_order_with_their_bytes(void)
{
  make_disk();
  struct udm_device *d = make_owner("own", "own");
  struct owner *o = last_owner;
  enum { N = 64, LEN = 8192 };
  static unsigned char bufs[N][LEN];
  struct done dn;
  struct slot slots[N];
  done_init(&dn);
  for (unsigned i = 0; i < N; i++) {
    slots[i] = (struct slot){&dn, i};
    memset(bufs[i], 0, LEN);
    /* Odd requests read, even ones write a pattern of their own. */
    uint64_t off = (uint64_t)i * LEN * 3;
    if (i % 2) {
      CHECK(udm_device_aio_pread(d, bufs[i], LEN, off, on_done, &slots[i]) == 0);
    } else {
      fill_pattern(bufs[i], LEN, 100 + i, 0);
      CHECK(udm_device_aio_pwrite(d, bufs[i], LEN, off, 0, on_done, &slots[i]) == 0);
    }
  }
  sleep_ms(20);
  CHECK(done_count(&dn) == 0); /* the target owns them all */
  pthread_mutex_lock(&o->lock);
  unsigned owned = o->owned.n;
  pthread_mutex_unlock(&o->lock);
  CHECK(owned == N);
  /* Finish them last first, doing each one's I/O synchronously here. */
  for (unsigned k = owned; k-- > 0;) {
    struct udm_io *io = o->owned.ios[k];
    udm_io_complete(io, udm_dev_submit(io->dev, io));
  }
  CHECK(done_wait(&dn, N, 10) == N);
  unsigned right = 0, reversed = 0;
  for (unsigned i = 0; i < N; i++) {
    uint64_t off = (uint64_t)i * LEN * 3;
    unsigned char want[LEN];
    if (i % 2)
      fill_pattern(want, LEN, 7, off);
    else
      fill_pattern(want, LEN, 100 + i, 0);
    right += dn.errs[i] == 0 && memcmp(bufs[i], want, LEN) == 0 &&
             (i % 2 || disk_has(want, LEN, off));
    reversed += dn.order[i] == N - 1 - i;
  }
  CHECK(right == N);
  CHECK(reversed == N);
  CHECK(o->bad_per_io == 0);
  CHECK(o->end_ios == N); /* end_io saw every owned request */
  printf("ok: %u requests owned by a target, finished in reverse order, each with its "
         "own bytes (%u right)\n",
         N, right);
  test_drop(d);
}

static void held_pieces_survive_suspend_and_run_at_resume_or_kick(void)
{
  make_disk();
  struct udm_device *d = make_owner("hold", "hold");
  struct owner *o = last_owner;
  unsigned char w[4096], r[4096];
  struct done dn;
  struct slot s0 = {&dn, 0}, s1 = {&dn, 1};
  done_init(&dn);
  fill_pattern(w, sizeof w, 31, 0);
  CHECK(udm_device_aio_pwrite(d, w, sizeof w, 8192, 0, on_done, &s0) == 0);
  sleep_ms(20);
  CHECK(done_count(&dn) == 0 && o->requeued == 1);
  /* A suspend does not wait for what a target asked the core to hold. */
  double t0 = now_s();
  CHECK(udm_device_suspend(d, 0) == 0);
  CHECK(now_s() - t0 < 5);
  /* Arriving while suspended: deferred, not mapped. */
  unsigned mapped = o->mapped;
  CHECK(udm_device_aio_pread(d, r, sizeof r, 8192, on_done, &s1) == 0);
  sleep_ms(20);
  CHECK(o->mapped == mapped && done_count(&dn) == 0);
  pthread_mutex_lock(&o->lock);
  o->open = true;
  pthread_mutex_unlock(&o->lock);
  CHECK(udm_device_resume(d) == 0);
  CHECK(done_wait(&dn, 2, 10) == 2);
  CHECK(dn.errs[0] == 0 && dn.errs[1] == 0);
  /*
   * The held write was mapped again before the deferred read was mapped.
   * Both are then in flight together, so which completes first is the
   * backing device's business (with io_uring a cached read can overtake a
   * buffered write handed to a kernel worker): the bytes are checked after.
   */
  CHECK(o->mapped == mapped + 2 && o->map_order[mapped] == UDM_OP_WRITE &&
        o->map_order[mapped + 1] == UDM_OP_READ);
  CHECK(disk_has(w, sizeof w, 8192));
  CHECK(udm_device_pread(d, r, sizeof r, 8192) == 0 && memcmp(r, w, sizeof w) == 0);
  printf("ok: a held write did not block suspend, was mapped at resume before a read "
         "deferred behind it, and its bytes are on the disk\n");
  test_drop(d);

  /* A kick while live. */
  d = make_owner("hold", "hold");
  o = last_owner;
  struct slot s2 = {&dn, 2};
  fill_pattern(w, sizeof w, 32, 0);
  CHECK(udm_device_aio_pwrite(d, w, sizeof w, 0, 0, on_done, &s2) == 0);
  sleep_ms(20);
  CHECK(done_count(&dn) == 2);
  char *reply = NULL;
  CHECK(udm_device_message(d, 0, "open", &reply) == 0);
  free(reply);
  CHECK(done_wait(&dn, 3, 10) == 3 && dn.errs[2] == 0 && disk_has(w, sizeof w, 0));
  printf("ok: a held write ran when its target kicked the hold list\n");
  test_drop(d);

  /* Removal fails what waits instead of losing it. */
  d = make_owner("hold", "hold");
  struct slot s3 = {&dn, 3}, s4 = {&dn, 4};
  CHECK(udm_device_aio_pwrite(d, w, sizeof w, 0, 0, on_done, &s3) == 0);
  CHECK(udm_device_suspend(d, 0) == 0);
  CHECK(udm_device_aio_pread(d, r, sizeof r, 0, on_done, &s4) == 0);
  sleep_ms(20);
  CHECK(done_count(&dn) == 3);
  test_drop(d);
  CHECK(done_wait(&dn, 5, 10) == 5 && dn.errs[3] == -EIO && dn.errs[4] == -EIO);
  printf("ok: removing a device fails its held and deferred requests with EIO\n");
}

static void end_io_sees_errors_and_has_the_last_word(void)
{
  struct udm_device *err = test_make(ctx, "bad", "0 8192 error", 0);
  struct udm_device *d =
      test_make(ctx, "fix", "0 8192 owner udm:bad fix", 0);
  struct owner *o = last_owner;
  unsigned char b[512];
  struct done dn;
  struct slot s = {&dn, 0};
  done_init(&dn);
  CHECK(udm_device_aio_pread(d, b, sizeof b, 0, on_done, &s) == 0);
  CHECK(done_wait(&dn, 1, 10) == 1 && dn.errs[0] == -ENOSPC);
  CHECK(udm_device_pread(d, b, sizeof b, 0) < 0 && udm_errno() == ENOSPC);
  CHECK(o->end_ios == 2 && o->bad_per_io == 0);
  printf("ok: end_io saw the error device's EIO and changed it to ENOSPC\n");
  test_drop(d);
  test_drop(err);
}

/* A target as one built against API version 1: no end_io, smaller struct. */
static int v1_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti;
  memset(io->buf, 0x11, io->nr_sectors * 512);
  return UDM_MAPIO_DONE;
}

static int v1_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  (void)ti, (void)argc, (void)argv;
  return 0;
}

static void version_1_targets_still_load(void)
{
  static struct udm_target_type v1 = {
      UDM_TARGET_TYPE_INIT, .name = "v1", .ctr = v1_ctr, .map = v1_map};
  v1.api_version = 1;
  v1.struct_size = offsetof(struct udm_target_type, end_io);
  CHECK(udm_target_register(ctx, &v1) == 0);
  struct udm_device *d = test_make(ctx, "v1dev", "0 16 v1", 0);
  unsigned char b[1024] = {0};
  CHECK(udm_device_pread(d, b, sizeof b, 0) == 0 && b[0] == 0x11 && b[1023] == 0x11);
  test_drop(d);
  static struct udm_target_type v3 = {UDM_TARGET_TYPE_INIT, .name = "v3", .ctr = v1_ctr,
                                      .map = v1_map};
  v3.api_version = UDM_TARGET_API_VERSION + 1;
  CHECK(udm_target_register(ctx, &v3) < 0);
  CHECK_CONTAINS(udm_errmsg(), "API version");
  printf("ok: a version 1 target loads and serves reads; version %u is refused\n",
         UDM_TARGET_API_VERSION + 1);
}

/* A constructor that reads its device, as one reading metadata does. */
static int reader_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct udm_dev *dev;
  if (argc != 1)
    return -EINVAL;
  int r = udm_get_device(ti, argv[0], UDM_DEV_READ, &dev);
  if (r < 0)
    return r;
  ti->private = dev;
  unsigned char b[512];
  struct udm_io io = {.op = UDM_OP_READ, .sector = 0, .nr_sectors = 1, .buf = b};
  r = udm_dev_submit(dev, &io);
  if (r < 0)
    udm_target_error(ti, "cannot read the metadata");
  return r;
}

static void reader_dtr(struct udm_target *ti)
{
  if (ti->private)
    udm_put_device(ti, ti->private);
}

static int reader_map(struct udm_target *ti, struct udm_io *io)
{
  return udm_remap(ti, io, ti->private, 0);
}

struct load_job {
  struct udm_device *d;
  const char *table;
  int r;
};

static void *load_thread(void *arg)
{
  struct load_job *j = arg;
  j->r = udm_table_load(j->d, j->table);
  return NULL;
}

static void constructors_run_without_the_context_lock(void)
{
  static const struct udm_target_type reader = {
      UDM_TARGET_TYPE_INIT, .name = "meta-reader", .ctr = reader_ctr,
      .dtr = reader_dtr, .map = reader_map};
  CHECK(udm_target_register(ctx, &reader) == 0);
  make_disk();
  char t[600];
  snprintf(t, sizeof t, "0 %u linear %s 0", DISK_SIZE / 512, disk);
  struct udm_device *low = test_make(ctx, "low", t, 0);
  CHECK(udm_device_suspend(low, 0) == 0);
  struct udm_device *top = udm_device_create(ctx, "top", NULL, 0);
  struct load_job j = {top, "0 8 meta-reader udm:low", 1};
  pthread_t th;
  pthread_create(&th, NULL, load_thread, &j);
  sleep_ms(50);
  /* The load waits for "low"; the context must still answer. */
  struct udm_info info;
  CHECK(udm_device_info(low, &info) == 0 && info.suspended);
  CHECK(udm_device_resume(low) == 0);
  pthread_join(th, NULL);
  CHECK(j.r == 0);
  CHECK(udm_device_resume(top) == 0);
  unsigned char b[512], want[512];
  fill_pattern(want, sizeof want, 7, 0);
  CHECK(udm_device_pread(top, b, sizeof b, 0) == 0 && memcmp(b, want, sizeof b) == 0);
  printf("ok: a constructor reading a suspended device waits for it without holding the "
         "context: the resume that frees it goes through; the name 'meta-reader' has a "
         "'-'\n");
  test_drop(top);
  test_drop(low);
}

/* A target that takes discards of at most 8 sectors and counts them. */
static unsigned chopped, chopped_bad;

static int chopper_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct udm_dev *dev;
  if (argc != 1)
    return -EINVAL;
  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &dev);
  ti->private = r == 0 ? dev : NULL;
  return r;
}

static void chopper_hints(struct udm_target *ti, struct udm_limits *limits)
{
  (void)ti;
  limits->max_discard_sectors = 8;
  limits->discard_granularity = 4096;
}

static int chopper_map(struct udm_target *ti, struct udm_io *io)
{
  if (io->op == UDM_OP_DISCARD) {
    chopped++;
    chopped_bad += io->nr_sectors > 8 || (io->nr_sectors < 8 && io->sector % 8 &&
                                          (io->sector + io->nr_sectors) % 8);
  }
  return udm_remap(ti, io, ti->private, 0);
}

static void discards_are_split_at_the_targets_maximum(void)
{
  static const struct udm_target_type chopper = {
      UDM_TARGET_TYPE_INIT, .name = "chopper", .ctr = chopper_ctr, .dtr = reader_dtr,
      .map = chopper_map, .io_hints = chopper_hints};
  CHECK(udm_target_register(ctx, &chopper) == 0);
  make_disk();
  char t[600];
  snprintf(t, sizeof t, "0 %u chopper %s", DISK_SIZE / 512, disk);
  struct udm_device *d = test_make(ctx, "chop", t, 0);
  chopped = chopped_bad = 0;
  /* Sectors 4..68: 4 to the first boundary, 7 whole runs of 8, 4 after. */
  CHECK(udm_device_discard(d, 64 * 512, 4 * 512, 0) == 0);
  CHECK(chopped == 9 && chopped_bad == 0);
  printf("ok: a 64-sector discard reached a target limited to 8 as %u pieces on its "
         "8-sector boundaries\n",
         chopped);
  test_drop(d);
}

/* Threads of this process; 0 where the system cannot tell (then unchecked). */
#ifdef __APPLE__
static unsigned thread_count(void)
{
  struct proc_taskinfo ti;
  int n = proc_pidinfo(getpid(), PROC_PIDTASKINFO, 0, &ti, sizeof ti);
  return n == (int)sizeof ti && ti.pti_threadnum > 0 ? (unsigned)ti.pti_threadnum : 0;
}
#else
static unsigned thread_count(void)
{
  DIR *dir = opendir("/proc/self/task");
  unsigned n = 0;
  if (!dir)
    return 0;
  for (struct dirent *e; (e = readdir(dir));)
    n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}
#endif

static void many_delayed_requests_overlap_without_threads(void)
{
  make_disk();
  char t[600];
  snprintf(t, sizeof t, "0 %u delay %s 0 300", DISK_SIZE / 512, disk);
  struct udm_device *d = test_make(ctx, "slow", t, 0);
  enum { N = 256, LEN = 4096 };
  static unsigned char bufs[N][LEN];
  static struct slot slots[N];
  static struct done dn;
  done_init(&dn);
  unsigned before = thread_count();
  double t0 = now_s();
  for (unsigned i = 0; i < N; i++) {
    slots[i] = (struct slot){&dn, i};
    CHECK(udm_device_aio_pread(d, bufs[i], LEN, (uint64_t)i * LEN, on_done, &slots[i]) ==
          0);
  }
  unsigned during = thread_count();
  CHECK(done_wait(&dn, N, 30) == N);
  double took = now_s() - t0;
  unsigned right = 0;
  for (unsigned i = 0; i < N; i++) {
    unsigned char want[LEN];
    fill_pattern(want, LEN, 7, (uint64_t)i * LEN);
    right += dn.errs[i] == 0 && memcmp(bufs[i], want, LEN) == 0;
  }
  CHECK(right == N);
  /* Serialised, 256 delays would take 77 s: overlapping, about one. */
  CHECK(took < 10);
  if (before)
    CHECK(during == before);
  printf("ok: %u reads held 300 ms each by delay finished in %.2f s with the right bytes; "
         "threads %u before, %u with all in flight\n",
         N, took, before, during);
  test_drop(d);
}

/*
 * Striped pieces and a table's flushes go out together: 8 stripes over 8
 * delay devices (250 ms each) answer a read across all of them, and a flush,
 * in about one delay; one after another would take 2 s.
 */
static void striped_pieces_and_flushes_run_in_parallel(void)
{
  make_disk();
  struct udm_device *legs[8];
  char t[4096], name[16];
  int w = snprintf(t, sizeof t, "0 %u striped 8 8", 8 * 1024);
  for (unsigned i = 0; i < 8; i++) {
    char lt[600];
    snprintf(name, sizeof name, "leg%u", i);
    snprintf(lt, sizeof lt, "0 1024 delay %s %u 250", disk, i * 1024);
    legs[i] = test_make(ctx, name, lt, 0);
    w += snprintf(t + w, sizeof t - (size_t)w, " udm:%s 0", name);
  }
  struct udm_device *d = test_make(ctx, "stripes", t, 0);
  unsigned char b[8 * 4096], want[4096];
  double t0 = now_s();
  CHECK(udm_device_pread(d, b, sizeof b, 0) == 0);
  double read_s = now_s() - t0;
  unsigned right = 0;
  for (unsigned i = 0; i < 8; i++) {
    fill_pattern(want, sizeof want, 7, (uint64_t)i * 1024 * 512);
    right += memcmp(b + i * 4096, want, sizeof want) == 0;
  }
  CHECK(right == 8);
  t0 = now_s();
  CHECK(udm_device_flush(d) == 0);
  double flush_s = now_s() - t0;
  CHECK(read_s < 1.5 && flush_s < 1.5);
  printf("ok: a read over 8 stripes each delayed 250 ms took %.2f s (%u stripes right), "
         "a flush of them %.2f s\n",
         read_s, right, flush_s);
  test_drop(d);
  for (unsigned i = 0; i < 8; i++)
    test_drop(legs[i]);
}

/* A device whose requests wait does not hold up another device. */
static void a_slow_device_does_not_slow_another(void)
{
  make_disk();
  char t[600];
  snprintf(t, sizeof t, "0 %u delay %s 0 1000", DISK_SIZE / 512, disk);
  struct udm_device *slow = test_make(ctx, "slow1", t, 0);
  snprintf(t, sizeof t, "0 %u linear %s 0", DISK_SIZE / 512, disk);
  struct udm_device *fast = test_make(ctx, "fast1", t, 0);
  enum { N = 64 };
  static unsigned char bufs[N][4096];
  static struct slot slots[N];
  static struct done dn;
  done_init(&dn);
  for (unsigned i = 0; i < N; i++) {
    slots[i] = (struct slot){&dn, i};
    CHECK(udm_device_aio_pread(slow, bufs[i], 4096, (uint64_t)i * 4096, on_done,
                               &slots[i]) == 0);
  }
  unsigned char b[4096], want[4096];
  double t0 = now_s();
  for (unsigned i = 0; i < 100; i++)
    CHECK(udm_device_pread(fast, b, sizeof b, (uint64_t)i * 4096) == 0);
  double fast_s = now_s() - t0;
  fill_pattern(want, sizeof want, 7, 99 * 4096);
  CHECK(memcmp(b, want, sizeof b) == 0);
  unsigned early = done_count(&dn);
  CHECK(early == 0 && fast_s < 0.9);
  CHECK(done_wait(&dn, N, 30) == N);
  printf("ok: 100 reads of a fast device took %.3f s while %u reads of a device "
         "delaying 1 s were in flight (%u had finished)\n",
         fast_s, N, early);
  test_drop(fast);
  test_drop(slow);
}

int main(void)
{
  snprintf(disk, sizeof disk, "%s/udm-test-async-%d.img",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  ctx = udm_ctx_new();
  if (!ctx || udm_target_register(ctx, &owner_type) < 0) {
    fprintf(stderr, "setup: %s\n", udm_errmsg());
    return 1;
  }
  owned_requests_complete_out_of_order_with_their_bytes();
  held_pieces_survive_suspend_and_run_at_resume_or_kick();
  end_io_sees_errors_and_has_the_last_word();
  version_1_targets_still_load();
  constructors_run_without_the_context_lock();
  discards_are_split_at_the_targets_maximum();
  many_delayed_requests_overlap_without_threads();
  striped_pieces_and_flushes_run_in_parallel();
  a_slow_device_does_not_slow_another();
  udm_ctx_free(ctx);
  unlink(disk);
  return check_summary("test-async");
}
