/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O engine (lib/engine.c, platform/uring.c) and the asynchronous
 * file and image devices on it: real bytes against pread, for each engine.
 *   - 512 random reads and writes in flight at once, from one thread and
 *     from eight, then the file compared; and from a thread that exits at
 *     once (io_uring fails such a thread's requests unless the engine owns them)
 *   - reads past the end of the file read zeros; errors come back (-EBADF,
 *     -EISDIR); flush is fdatasync
 *   - the number of threads does not grow from 1 to 256 requests in flight
 *   - dev_file: direct=on with aligned and misaligned buffers, FUA as a
 *     write and then a sync, discard and write-zeroes on the pool
 *   - udm_io_inline: an op on an idle engine is done on the submitting
 *     thread; without the hint, or with another op in flight, it is not
 *   - dev_image: the driver's call runs on the pool
 *   - io_uring refused by a seccomp filter: "threads", same bytes; forced
 *     with UDM_IO_ENGINE=io_uring: an error naming why
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __APPLE__
#include <libproc.h>
#endif
#ifdef __linux__
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include <udm/driver.h>

#include "check.h"
#include "engine.h"
#include "internal.h"
#include "testdev.h"
#include "util.h"

/* ---- waiting for completions ---- */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned pending;
};

static void waiter_init(struct waiter *w, unsigned pending)
{
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  w->pending = pending;
}

static void waiter_wait(struct waiter *w)
{
  pthread_mutex_lock(&w->lock);
  while (w->pending)
    pthread_cond_wait(&w->cond, &w->lock);
  pthread_mutex_unlock(&w->lock);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
}

static void waiter_done(struct waiter *w)
{
  pthread_mutex_lock(&w->lock);
  w->pending--;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* An engine op and what its completion said. */
struct top {
  struct udm_engine_op op;
  struct waiter *w;
  int res;
  unsigned calls;
  uint64_t shadow_off; /* reads: where in the shadow copy to compare */
  pthread_t thread;    /* the one that ran done */
};

static void top_done(struct udm_engine_op *op, int res)
{
  struct top *t = op->opaque;
  t->res = res;
  t->calls++;
  t->thread = pthread_self();
  waiter_done(t->w);
}

static void top_set(struct top *t, struct waiter *w, int fd, enum udm_op kind, void *buf,
                    size_t len, uint64_t off)
{
  memset(t, 0, sizeof *t);
  t->op.fd = fd;
  t->op.op = kind;
  t->op.buf = buf;
  t->op.len = len;
  t->op.off = off;
  t->op.done = top_done;
  t->op.opaque = t;
  t->w = w;
  t->res = 1; /* not called yet */
}

/* Run one op to completion; its result. */
static int engine_do(struct udm_engine *e, int fd, enum udm_op kind, void *buf, size_t len,
                     uint64_t off)
{
  struct waiter w;
  struct top t;
  waiter_init(&w, 1);
  top_set(&t, &w, fd, kind, buf, len, off);
  udm__engine_submit(e, &t.op);
  waiter_wait(&w);
  CHECK(t.calls == 1);
  return t.res;
}

/* ---- threads of the process (Linux: /proc/self/task; macOS: proc_pidinfo) ---- */

#if defined(__APPLE__)
static int count_threads(void)
{
  struct proc_taskinfo ti;
  int n = proc_pidinfo(getpid(), PROC_PIDTASKINFO, 0, &ti, sizeof ti);
  return n == (int)sizeof ti ? ti.pti_threadnum : -1;
}
#elif defined(__linux__)
/*
 * Threads of this process, without the kernel's io_uring workers
 * (iou-wrk-*), which the kernel starts and bounds itself.
 */
static int count_threads(void)
{
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[300], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* gone meanwhile: io_uring's workers come and go */
    bool named = fgets(comm, sizeof comm, f) != NULL;
    fclose(f);
    n += named && strncmp(comm, "iou-", 4) != 0;
  }
  closedir(d);
  return n;
}
#endif

/* ---- the engine alone ---- */

#define SLOTS 512
#define SLOT_SIZE (16u << 10)
#define FILE_SIZE ((uint64_t)SLOTS * SLOT_SIZE)

/* Slots [first, first+count) of the file, worked on by one submitter. */
struct slots {
  struct udm_engine *e;
  int fd;
  unsigned char *shadow; /* what the file must hold; each submitter its slots */
  unsigned first, count, rounds;
  uint64_t rnd;          /* this submitter's random state */
  unsigned bad_results, bad_reads;
};

static uint64_t slots_rnd(struct slots *s, uint64_t n)
{
  s->rnd ^= s->rnd << 13;
  s->rnd ^= s->rnd >> 7;
  s->rnd ^= s->rnd << 17;
  return s->rnd % n;
}

/*
 * All the slots' requests in flight at once, each a random read or write
 * inside its own slot (so they never overlap and the expected bytes are
 * known), for s->rounds rounds.
 */
static void *slots_run(void *arg)
{
  struct slots *s = arg;
  struct top *t = calloc(s->count, sizeof *t);
  unsigned char *bufs = malloc((size_t)s->count * SLOT_SIZE);
  for (unsigned round = 0; round < s->rounds; round++) {
    struct waiter w;
    waiter_init(&w, s->count);
    for (unsigned i = 0; i < s->count; i++) {
      uint64_t in = slots_rnd(s, SLOT_SIZE);
      size_t len = 1 + (size_t)slots_rnd(s, SLOT_SIZE - in);
      uint64_t off = (uint64_t)(s->first + i) * SLOT_SIZE + in;
      unsigned char *b = bufs + (size_t)i * SLOT_SIZE;
      bool write = slots_rnd(s, 2);
      top_set(&t[i], &w, s->fd, write ? UDM_OP_WRITE : UDM_OP_READ, b, len, off);
      if (write) {
        fill_pattern(b, len, 100 + round, off);
        memcpy(s->shadow + off, b, len);
      } else {
        memset(b, 0xEE, len);
      }
    }
    for (unsigned i = 0; i < s->count; i++)
      udm__engine_submit(s->e, &t[i].op);
    waiter_wait(&w);
    for (unsigned i = 0; i < s->count; i++) {
      if (t[i].res != 0 || t[i].calls != 1 || t[i].op.moved != t[i].op.len)
        s->bad_results++;
      if (t[i].op.op == UDM_OP_READ &&
          memcmp(t[i].op.buf, s->shadow + t[i].op.off, t[i].op.len) != 0)
        s->bad_reads++;
    }
  }
  free(bufs);
  free(t);
  return NULL;
}

/*
 * SLOTS requests in flight, from SUBMITTERS threads at once (1: this one),
 * for ROUNDS rounds; then the whole file is compared with the shadow copy.
 */
static void check_random_io(struct udm_engine *e, const char *path, unsigned submitters,
                            unsigned rounds)
{
  unsigned char *shadow = malloc(FILE_SIZE);
  fill_pattern(shadow, FILE_SIZE, 7, 0);
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, shadow, FILE_SIZE, 0) == (ssize_t)FILE_SIZE);
  struct slots s[8];
  pthread_t th[8];
  unsigned per = SLOTS / submitters;
  for (unsigned k = 0; k < submitters; k++) {
    s[k] = (struct slots){.e = e, .fd = fd, .shadow = shadow, .first = k * per,
                          .count = per, .rounds = rounds, .rnd = 0x9E3779B97F4A7C15ull + k};
    if (submitters > 1)
      CHECK(pthread_create(&th[k], NULL, slots_run, &s[k]) == 0);
    else
      slots_run(&s[k]);
  }
  unsigned bad_results = 0, bad_reads = 0;
  for (unsigned k = 0; k < submitters; k++) {
    if (submitters > 1)
      pthread_join(th[k], NULL);
    bad_results += s[k].bad_results;
    bad_reads += s[k].bad_reads;
  }
  CHECK(bad_results == 0);
  CHECK(bad_reads == 0);
  unsigned char *back = read_file_at(path, 0, FILE_SIZE);
  CHECK(memcmp(back, shadow, FILE_SIZE) == 0);
  free(back);
  free(shadow);
  close(fd);
}

/* Submit and exit at once: the requests outlive the thread that made them. */
struct orphans {
  struct udm_engine *e;
  struct top *t;
  unsigned n;
};

static void *submit_and_exit(void *arg)
{
  struct orphans *o = arg;
  for (unsigned i = 0; i < o->n; i++)
    udm__engine_submit(o->e, &o->t[i].op);
  return NULL;
}

/*
 * io_uring fails requests that need their submitting thread after it is
 * gone (EFAULT: a read of uncached data, retried from the submitter's task
 * work; ECANCELED: its io-wq work).  The engine must finish them all the
 * same: writes and flushes, then reads of what was just written, dropped
 * from the page cache first, each round from a thread that exits at once.
 */
static void check_submitter_exits(struct udm_engine *e, const char *path)
{
  const unsigned n = 256, len = 65536;
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  struct top *t = calloc(n, sizeof *t);
  unsigned char *bufs = malloc((size_t)n * len);
  unsigned bad = 0, bad_bytes = 0;
  for (unsigned round = 0; round < 4; round++) {
    for (int reading = 0; reading <= 1; reading++) {
      if (reading) {
        CHECK(udm__sync_fd(fd) == 0);
#ifdef POSIX_FADV_DONTNEED /* not on macOS */
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#endif
      }
      struct waiter w;
      waiter_init(&w, n);
      for (unsigned i = 0; i < n; i++) {
        unsigned char *b = bufs + (size_t)i * len;
        uint64_t off = (uint64_t)((i * 7 + round) % (FILE_SIZE / len)) * len;
        enum udm_op op = reading ? UDM_OP_READ : i % 8 == 7 ? UDM_OP_FLUSH : UDM_OP_WRITE;
        if (op == UDM_OP_WRITE)
          fill_pattern(b, len, 200 + round, off);
        else
          memset(b, 0xEE, len);
        top_set(&t[i], &w, fd, op, b, len, off);
      }
      struct orphans o = {e, t, n};
      pthread_t th;
      CHECK(pthread_create(&th, NULL, submit_and_exit, &o) == 0);
      pthread_join(th, NULL);
      waiter_wait(&w);
      for (unsigned i = 0; i < n; i++) {
        if (t[i].res != 0 && bad++ < 3)
          fprintf(stderr, "  %s of an exited thread: %s\n",
                  reading ? "read" : "write or flush", strerror(-t[i].res));
        if (reading && t[i].res == 0) {
          unsigned char *back = read_file_at(path, t[i].op.off, len);
          bad_bytes += memcmp(back, t[i].op.buf, len) != 0;
          free(back);
        }
      }
    }
  }
  CHECK(bad == 0);
  CHECK(bad_bytes == 0);
  free(bufs);
  free(t);
  close(fd);
}

static void check_eof_and_errors(struct udm_engine *e, const char *dir)
{
  char path[512];
  snprintf(path, sizeof path, "%s/short", dir);
  const uint64_t size = 10000;
  scratch_file("short", size, 3);
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);

  /* Across the end: the tail reads as zeros. */
  unsigned char buf[8192], want[8192];
  memset(buf, 0xAA, sizeof buf);
  CHECK(engine_do(e, fd, UDM_OP_READ, buf, sizeof buf, 8192) == 0);
  memset(want, 0, sizeof want);
  fill_pattern(want, (size_t)(size - 8192), 3, 8192);
  CHECK(memcmp(buf, want, sizeof buf) == 0);
  /* Wholly past the end: all zeros. */
  memset(buf, 0xAA, sizeof buf);
  CHECK(engine_do(e, fd, UDM_OP_READ, buf, sizeof buf, 1 << 20) == 0);
  memset(want, 0, sizeof want);
  CHECK(memcmp(buf, want, sizeof buf) == 0);
  /* Flush: fdatasync, and a zero-length read is done at once. */
  CHECK(engine_do(e, fd, UDM_OP_FLUSH, NULL, 0, 0) == 0);
  CHECK(engine_do(e, fd, UDM_OP_READ, buf, 0, 0) == 0);
  close(fd);

  /* Errors come back as -errno. */
  fd = open(path, O_RDONLY);
  CHECK(engine_do(e, fd, UDM_OP_WRITE, buf, 512, 0) == -EBADF);
  close(fd);
  fd = open(dir, O_RDONLY | O_DIRECTORY);
  CHECK(fd >= 0);
  CHECK(engine_do(e, fd, UDM_OP_READ, buf, 512, 0) == -EISDIR);
  close(fd);
  CHECK(engine_do(e, -1, UDM_OP_FLUSH, NULL, 0, 0) == -EBADF);
  struct waiter w;
  struct top t;
  waiter_init(&w, 1);
  top_set(&t, &w, 0, UDM_OP_DISCARD, NULL, 512, 0);
  udm__engine_submit(e, &t.op);
  waiter_wait(&w);
  CHECK(t.res == -EINVAL); /* the engine moves bytes and syncs, nothing else */
}

#if defined(__linux__) || defined(__APPLE__)
static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(uint64_t n)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state % n;
}

/* The most threads seen while it ran, sampled by another thread. */
struct sampler {
  pthread_t thread;
  atomic_bool stop;
  int max;
};

static void *sample(void *arg)
{
  struct sampler *s = arg;
  while (!atomic_load(&s->stop)) {
    int n = count_threads();
    if (n > s->max)
      s->max = n;
    usleep(200);
  }
  return NULL;
}

/* Most threads seen with DEPTH requests in flight, over several rounds. */
static int threads_at_depth(struct udm_engine *e, int fd, unsigned depth)
{
  struct sampler s = {.max = 0};
  atomic_init(&s.stop, false);
  pthread_create(&s.thread, NULL, sample, &s);
  struct top *t = calloc(depth, sizeof *t);
  unsigned char *bufs = malloc((size_t)depth * 65536);
  int max = count_threads(); /* the sampler may not have looked yet */
  for (unsigned round = 0; round < 20; round++) {
    struct waiter w;
    waiter_init(&w, depth);
    for (unsigned i = 0; i < depth; i++) {
      uint64_t off = rnd(FILE_SIZE / 65536) * 65536;
      top_set(&t[i], &w, fd, (i + round) % 2 ? UDM_OP_WRITE : UDM_OP_READ,
              bufs + (size_t)i * 65536, 65536, off);
    }
    for (unsigned i = 0; i < depth; i++)
      udm__engine_submit(e, &t[i].op);
    int n = count_threads();
    if (n > max)
      max = n;
    waiter_wait(&w);
  }
  atomic_store(&s.stop, true);
  pthread_join(s.thread, NULL);
  free(bufs);
  free(t);
  return s.max > max ? s.max : max;
}
#endif

static void check_thread_count(struct udm_engine *e, const char *path)
{
#if defined(__linux__) || defined(__APPLE__)
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  int one = threads_at_depth(e, fd, 1);
  int many = threads_at_depth(e, fd, 256);
  printf("  %s: %d threads with 1 request in flight, %d with 256 (without io_uring's "
         "own workers)\n",
         udm__engine_name(e), one, many);
  CHECK(one > 1);
  /*
   * One more at most: io_uring names a worker it starts only just after
   * starting it, so a sample may catch one under our name.  A thread per
   * request would show 256 more.
   */
  CHECK(many <= one + 1);
  close(fd);
#else
  (void)e;
  (void)path;
#endif
}

/* ---- file devices ---- */

struct dio {
  struct udm_io io;
  struct waiter *w;
  int err;
  unsigned calls;
};

static void dio_end(struct udm_io *io, int err)
{
  struct dio *d = io->end_private;
  d->err = err;
  d->calls++;
  waiter_done(d->w);
}

/* One asynchronous request on a backing device, to completion. */
static int dev_do(struct udm_dev *dev, enum udm_op op, unsigned flags, void *buf,
                  udm_sector_t sector, uint64_t nr)
{
  struct waiter w;
  struct dio d = {.io = {.op = op, .flags = flags, .sector = sector, .nr_sectors = nr,
                         .buf = buf, .end_io = dio_end},
                  .w = &w,
                  .err = 1};
  d.io.end_private = &d;
  waiter_init(&w, 1);
  dev->ops->submit_async(dev, &d.io);
  waiter_wait(&w);
  CHECK(d.calls == 1);
  return d.err;
}

/* Through direct=on when the file system takes O_DIRECT, else the page cache. */
static void check_file_dev(struct udm_engine *e, bool direct)
{
  const uint64_t size = 1 << 20;
  const char *path = scratch_file(direct ? "direct" : "cached", size, 11);
  struct udm_dev *dev = NULL;
  char *msg = NULL;
  int r = udm__dev_open_file("f", path, UDM_DEV_READ | UDM_DEV_WRITE, direct, e, &dev,
                             &msg);
  if (direct && r == -EINVAL) {
    printf("  %s: the file system refuses O_DIRECT; direct=on not checked\n",
           udm__engine_name(e));
    free(msg);
    return;
  }
  CHECK(r == 0);
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", path, msg);
    free(msg);
    return;
  }
  CHECK(dev->ops->submit_async != NULL);
  unsigned char *raw;
  CHECK(posix_memalign((void **)&raw, 4096, 3 * 65536) == 0);
  unsigned char *aligned = raw, *misaligned = raw + 65536 + 1;
  unsigned char *want = malloc(65536);

  /* Write from a misaligned buffer, read back into both kinds. */
  fill_pattern(misaligned, 65536, 21, 8192);
  CHECK(dev_do(dev, UDM_OP_WRITE, 0, misaligned, 16, 128) == 0);
  memcpy(want, misaligned, 65536);
  memset(aligned, 0, 65536);
  CHECK(dev_do(dev, UDM_OP_READ, 0, aligned, 16, 128) == 0);
  CHECK(memcmp(aligned, want, 65536) == 0);
  memset(misaligned, 0, 65536);
  CHECK(dev_do(dev, UDM_OP_READ, 0, misaligned, 16, 128) == 0);
  CHECK(memcmp(misaligned, want, 65536) == 0);
  /* Write from an aligned buffer, with FUA; flush. */
  fill_pattern(aligned, 65536, 22, 0);
  CHECK(dev_do(dev, UDM_OP_WRITE, UDM_IO_FUA, aligned, 640, 128) == 0);
  CHECK(dev_do(dev, UDM_OP_FLUSH, 0, NULL, 0, 0) == 0);
  unsigned char *back = read_file_at(path, 640 * 512, 65536);
  CHECK(memcmp(back, aligned, 65536) == 0);
  free(back);
  back = read_file_at(path, 8192, 65536);
  CHECK(memcmp(back, want, 65536) == 0);
  free(back);
  /* The rest of the file is untouched. */
  back = read_file_at(path, 73728, 4096);
  fill_pattern(want, 4096, 11, 73728);
  CHECK(memcmp(back, want, 4096) == 0);
  free(back);

  /* Write-zeroes and discard run on the pool: zeros where they went. */
  CHECK(dev_do(dev, UDM_OP_WRITE_ZEROES, 0, NULL, 256, 16) == 0);
  CHECK(dev_do(dev, UDM_OP_DISCARD, 0, NULL, 512, 16) == 0);
  memset(want, 0, 8192);
  back = read_file_at(path, 256 * 512, 8192);
  CHECK(memcmp(back, want, 8192) == 0);
  free(back);
  back = read_file_at(path, 512 * 512, 8192);
  CHECK(memcmp(back, want, 8192) == 0);
  free(back);
  back = read_file_at(path, 272 * 512, 512);
  fill_pattern(want, 512, 11, 272 * 512);
  CHECK(memcmp(back, want, 512) == 0);
  free(back);

  free(want);
  free(raw);
  dev->ops->close(dev);
}

/*
 * FUA is the write and then a sync, and flush is a sync: shown with a
 * device whose descriptor is swapped for /dev/null, where writes succeed
 * and fdatasync fails with EINVAL.
 */
static void check_fua_syncs(struct udm_engine *e)
{
#ifdef __linux__
  const char *path = scratch_file("fua", 1 << 16, 0);
  int lowest = dup(0);
  close(lowest); /* the device's descriptor will be this one */
  struct udm_dev *dev = NULL;
  char *msg = NULL;
  CHECK(udm__dev_open_file("f", path, UDM_DEV_READ | UDM_DEV_WRITE, false, e, &dev,
                           &msg) == 0);
  if (!dev) {
    free(msg);
    return;
  }
  int null = open("/dev/null", O_RDWR);
  CHECK(dup2(null, lowest) == lowest);
  close(null);
  unsigned char buf[4096] = {0};
  CHECK(dev_do(dev, UDM_OP_WRITE, 0, buf, 0, 8) == 0);
  CHECK(dev_do(dev, UDM_OP_WRITE, UDM_IO_FUA, buf, 0, 8) == -EINVAL);
  CHECK(dev_do(dev, UDM_OP_FLUSH, 0, NULL, 0, 0) == -EINVAL);
  dev->ops->close(dev);
#else
  (void)e;
#endif
}

/* ---- image devices ---- */

/* A driver over a plain file; the first 4 KiB are bad. */
struct plain {
  int fd;
  uint64_t size;
};
static pthread_t plain_reader; /* the thread of the last pread */

static int plain_open(const char *path, const struct udm_image_options *o, bool w,
                      void **handle, char **errmsg)
{
  (void)o;
  (void)errmsg;
  struct plain *p = calloc(1, sizeof *p);
  p->fd = open(path, w ? O_RDWR : O_RDONLY);
  struct stat st;
  if (p->fd < 0 || fstat(p->fd, &st) < 0) {
    free(p);
    return -errno;
  }
  p->size = (uint64_t)st.st_size;
  *handle = p;
  return 0;
}

static void plain_close(void *h)
{
  struct plain *p = h;
  close(p->fd);
  free(p);
}

static uint64_t plain_size(void *h)
{
  return ((struct plain *)h)->size;
}

static int plain_pread(void *h, void *buf, size_t len, uint64_t off)
{
  struct plain *p = h;
  plain_reader = pthread_self();
  if (off < 4096)
    return -EIO;
  return udm__full_pread(p->fd, buf, len, off);
}

static int plain_pwrite(void *h, const void *buf, size_t len, uint64_t off, unsigned f)
{
  (void)f;
  return udm__full_pwrite(((struct plain *)h)->fd, buf, len, off);
}

static const struct udm_image_driver plain_driver = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "plain",
    .open = plain_open,
    .close = plain_close,
    .size = plain_size,
    .pread = plain_pread,
    .pwrite = plain_pwrite,
};

static void check_image_dev(struct udm_engine *e)
{
  const char *path = scratch_file("plain", 1 << 16, 31);
  struct udm_dev *dev = NULL;
  char *msg = NULL;
  CHECK(udm__dev_open_image(NULL, &plain_driver, "plain:x", path,
                            UDM_DEV_READ | UDM_DEV_WRITE, e, &dev, &msg) == 0);
  if (!dev) {
    free(msg);
    return;
  }
  unsigned char buf[8192], want[8192];
  fill_pattern(buf, sizeof buf, 32, 16384);
  CHECK(dev_do(dev, UDM_OP_WRITE, 0, buf, 32, 16) == 0);
  memcpy(want, buf, sizeof buf);
  memset(buf, 0, sizeof buf);
  plain_reader = pthread_self();
  CHECK(dev_do(dev, UDM_OP_READ, 0, buf, 32, 16) == 0);
  CHECK(memcmp(buf, want, sizeof buf) == 0);
  CHECK(!pthread_equal(plain_reader, pthread_self())); /* ran on the pool */
  CHECK(dev_do(dev, UDM_OP_READ, 0, buf, 0, 8) == -EIO);
  CHECK(dev_do(dev, UDM_OP_DISCARD, 0, NULL, 0, 8) == -EOPNOTSUPP);
  dev->ops->close(dev);
}

/* ---- one engine through all of it ---- */

/* An op whose done waits until released: the engine is busy meanwhile. */
struct held {
  struct udm_engine_op op;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool running, released, finished;
};

static void held_done(struct udm_engine_op *op, int res)
{
  struct held *h = op->opaque;
  CHECK(res == 0);
  pthread_mutex_lock(&h->lock);
  h->running = true;
  pthread_cond_broadcast(&h->cond);
  while (!h->released)
    pthread_cond_wait(&h->cond, &h->lock);
  h->finished = true; /* the last use of h: then it may be destroyed */
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

/*
 * udm_io_inline: on an idle engine the op is done on the submitting thread
 * before the call returns; without the hint, or while another op is in
 * flight, an engine thread does it.  The bytes are right each way.
 */
static void check_inline(struct udm_engine *e, const char *path)
{
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  char want[4096], buf[4096];
  CHECK(pread(fd, want, sizeof want, 8192) == (ssize_t)sizeof want);
  struct waiter w;
  struct top t;

  udm_io_inline(1); /* idle: here, at once */
  waiter_init(&w, 1);
  top_set(&t, &w, fd, UDM_OP_READ, memset(buf, 0, sizeof buf), sizeof buf, 8192);
  udm__engine_submit(e, &t.op);
  CHECK(t.calls == 1 && t.res == 0);
  CHECK(pthread_equal(t.thread, pthread_self()));
  CHECK(memcmp(buf, want, sizeof buf) == 0);
  waiter_wait(&w);

  udm_io_inline(0); /* no hint: an engine thread */
  waiter_init(&w, 1);
  top_set(&t, &w, fd, UDM_OP_READ, memset(buf, 0, sizeof buf), sizeof buf, 8192);
  udm__engine_submit(e, &t.op);
  waiter_wait(&w);
  CHECK(t.res == 0 && !pthread_equal(t.thread, pthread_self()));
  CHECK(memcmp(buf, want, sizeof buf) == 0);

  /* Busy: an op whose done has not returned yet. */
  struct held h = {.op = {.fd = fd, .op = UDM_OP_READ, .len = 512, .done = held_done}};
  char hbuf[512];
  h.op.buf = hbuf;
  h.op.opaque = &h;
  pthread_mutex_init(&h.lock, NULL);
  pthread_cond_init(&h.cond, NULL);
  udm__engine_submit(e, &h.op);
  pthread_mutex_lock(&h.lock);
  while (!h.running)
    pthread_cond_wait(&h.cond, &h.lock);
  pthread_mutex_unlock(&h.lock);
  udm_io_inline(1);
  waiter_init(&w, 1);
  top_set(&t, &w, fd, UDM_OP_READ, memset(buf, 0, sizeof buf), sizeof buf, 8192);
  udm__engine_submit(e, &t.op);
  udm_io_inline(0);
  pthread_mutex_lock(&h.lock);
  h.released = true;
  pthread_cond_broadcast(&h.cond);
  while (!h.finished) /* held_done still holds h's lock and cond until then */
    pthread_cond_wait(&h.cond, &h.lock);
  pthread_mutex_unlock(&h.lock);
  waiter_wait(&w);
  CHECK(t.res == 0 && !pthread_equal(t.thread, pthread_self()));
  CHECK(memcmp(buf, want, sizeof buf) == 0);
  pthread_cond_destroy(&h.cond);
  pthread_mutex_destroy(&h.lock);
  close(fd);
}

static void check_engine(struct udm_engine *e)
{
  printf("engine %s\n", udm__engine_name(e));
  const char *path = scratch_file("random", FILE_SIZE, 0);
  check_inline(e, path);
  check_random_io(e, path, 1, 8);
  check_random_io(e, path, 8, 4); /* 8 threads submitting 64 each at once */
  check_submitter_exits(e, path);
  check_eof_and_errors(e, scratch_dir);
  check_thread_count(e, path);
  check_file_dev(e, false);
  check_file_dev(e, true);
  check_fua_syncs(e);
  check_image_dev(e);
}

/* ---- io_uring refused ---- */

#if defined(__linux__) && defined(HAVE_LIBURING) && defined(__NR_io_uring_setup)
/* Make io_uring_setup fail with EPERM in this process, as container profiles do. */
static int refuse_io_uring(void)
{
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = (unsigned short)UDM_ARRAY_SIZE(f), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return -errno;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}

/* In a child, before this process has any other thread. */
static void check_refused_falls_back(void)
{
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    CHECK(refuse_io_uring() == 0);
    unsetenv("UDM_IO_ENGINE");
    struct udm_engine *e = NULL;
    char *msg = NULL;
    CHECK(udm__engine_new(UDM_ENGINE_AUTO, &e, &msg) == 0);
    if (e) {
      CHECK_STR(udm__engine_name(e), "threads");
      check_random_io(e, scratch_file("refused", FILE_SIZE, 0), 1, 2);
      udm__engine_free(e);
    }
    /* Forced: refused, saying why; through a table too. */
    setenv("UDM_IO_ENGINE", "io_uring", 1);
    e = NULL;
    CHECK(udm__engine_new(UDM_ENGINE_AUTO, &e, &msg) == -EPERM);
    CHECK(e == NULL);
    CHECK_CONTAINS(msg, "UDM_IO_ENGINE=io_uring");
    CHECK_CONTAINS(msg, "io_uring_queue_init");
    CHECK_CONTAINS(msg, strerror(EPERM));
    free(msg);
    struct udm_ctx *ctx = udm_ctx_new();
    struct udm_device *d = udm_device_create(ctx, "refused", NULL, 0);
    char table[600];
    snprintf(table, sizeof table, "0 8 linear %s 0", scratch_file("t", 4096, 0));
    CHECK(udm_table_load(d, table) < 0);
    CHECK_CONTAINS(udm_errmsg(), "UDM_IO_ENGINE=io_uring: io_uring cannot be set up");
    udm_device_unref(d);
    udm_ctx_free(ctx);
    fflush(NULL);
    _exit(check_failures ? 1 : 0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#else
static void check_refused_falls_back(void)
{
  /* No io_uring in this build: asking for it is an error that says so. */
  struct udm_engine *e = NULL;
  char *msg = NULL;
  CHECK(udm__engine_new(UDM_ENGINE_IO_URING, &e, &msg) == -ENOSYS);
  CHECK_CONTAINS(msg, "built without liburing");
  free(msg);
}
#endif

static void check_env_choice(void)
{
  struct udm_engine *e = NULL;
  char *msg = NULL;
  setenv("UDM_IO_ENGINE", "fast", 1);
  CHECK(udm__engine_new(UDM_ENGINE_AUTO, &e, &msg) == -EINVAL);
  CHECK_STR(msg, "UDM_IO_ENGINE='fast' is not an I/O engine (io_uring or threads)");
  free(msg);
  setenv("UDM_IO_ENGINE", "threads", 1);
  CHECK(udm__engine_new(UDM_ENGINE_AUTO, &e, &msg) == 0);
  CHECK_STR(e ? udm__engine_name(e) : NULL, "threads");
  udm__engine_free(e);
  unsetenv("UDM_IO_ENGINE");

  /* The context's engine is made once, shared, and freed with the context. */
  struct udm_ctx *ctx = udm_ctx_new();
  int err = 1;
  struct udm_engine *a = udm__engine_get(ctx, &err);
  CHECK(a != NULL && err == 0);
  CHECK(udm__engine_get(ctx, &err) == a);
  udm_ctx_free(ctx);
}

int main(void)
{
  scratch_init();
  check_refused_falls_back();
  check_env_choice();

  struct udm_engine *e = NULL;
  char *msg = NULL;
  CHECK(udm__engine_new(UDM_ENGINE_THREADS, &e, &msg) == 0);
  if (e) {
    CHECK_STR(udm__engine_name(e), "threads");
    check_engine(e);
    udm__engine_free(e);
  }
  e = NULL;
  int r = udm__engine_new(UDM_ENGINE_IO_URING, &e, &msg);
#ifdef HAVE_LIBURING
  if (r == 0) {
    CHECK_STR(udm__engine_name(e), "io_uring");
    check_engine(e);
    udm__engine_free(e);
  } else {
    /* A container profile or an old kernel: nothing here can use it. */
    printf("io_uring refused here (%s): its checks are skipped\n", msg);
    free(msg);
  }
#else
  CHECK(r == -ENOSYS);
  free(msg);
#endif
  scratch_cleanup();
  return check_summary("test-engine");
}
