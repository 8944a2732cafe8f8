/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asynchronous image drivers (driver API 2): many requests in flight on an
 * image device, each checked byte for byte against the raw file, and the
 * engine's pool counted (udm__engine_stats: run jobs, never a timing).
 *
 *   test-image-aio hot SPEC RAW     the image's hot path: after one pass
 *       that fills the driver's caches, 256 random reads in flight at once
 *       (submitted from one thread, completing in whatever order the engine
 *       finds) run no pool job at all, on the image itself and through a
 *       stack of 3 udm devices over it, and the process has as many threads
 *       at queue depth 256 as at queue depth 1; a flush (the driver has
 *       none) runs no job either
 *   test-image-aio pool SPEC RAW    every request runs on the pool (run with
 *       UDM_IMAGE_AIO=off, or a path the driver declines): the same bytes,
 *       one job per request
 *   test-image-aio bytes SPEC RAW   the same bytes, jobs not counted (paths
 *       that mix both: compressed clusters, zstd chunks)
 *   test-image-aio old-api RAW      a driver stamped as built for API
 *       version 1 (its struct ends before aio) loads and reads the right
 *       bytes on the pool; a version-1 stamp with a larger struct never has
 *       its aio slot called
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udm/driver.h>
#include <udm/udm.h>

#include "../unit/check.h"
#include "engine.h"
#include "internal.h"

#define QD 256u
#define REQ 4096u

static uint8_t *raw;     /* the expected bytes */
static uint64_t raw_len;

static void load_raw(const char *path)
{
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    perror(path);
    exit(1);
  }
  raw_len = (uint64_t)st.st_size;
  raw = malloc(raw_len);
  if (!raw || udm__full_pread(fd, raw, raw_len, 0) < 0) {
    fprintf(stderr, "%s: cannot read\n", path);
    exit(1);
  }
  close(fd);
}

static int count_threads(void)
{
#ifdef __linux__
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d)
    return -1;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
#else
  return 0; /* counted on Linux only */
#endif
}

/* ---- a batch of reads in flight ---- */

struct batch {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned pending, order_next, out_of_order;
  int threads_max;
};

struct rd {
  struct batch *b;
  uint64_t off;
  uint8_t *buf;
  int err;
  unsigned index, done_order;
};

static void rd_done(void *opaque, int err)
{
  struct rd *r = opaque;
  struct batch *b = r->b;
  int t = count_threads();
  pthread_mutex_lock(&b->lock);
  r->err = err;
  r->done_order = b->order_next++;
  if (r->done_order != r->index)
    b->out_of_order++;
  if (t > b->threads_max)
    b->threads_max = t;
  if (--b->pending == 0)
    pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->lock);
}

static uint64_t rnd_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(uint64_t n)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state % n;
}

/*
 * DEPTH random 4K reads of DEV in flight at once; each compared with the raw
 * file.  The most threads the process had while they completed: *threads.
 */
static void read_batch(struct udm_device *dev, unsigned depth, int *threads,
                       unsigned *out_of_order)
{
  struct batch b = {.pending = depth};
  pthread_mutex_init(&b.lock, NULL);
  pthread_cond_init(&b.cond, NULL);
  struct rd *rs = calloc(depth, sizeof *rs);
  uint8_t *bufs = malloc((size_t)depth * REQ);
  CHECK(rs && bufs);
  if (!rs || !bufs)
    exit(1);
  b.threads_max = count_threads();
  for (unsigned i = 0; i < depth; i++) {
    struct rd *r = &rs[i];
    r->b = &b;
    r->index = i;
    r->off = rnd(raw_len / REQ) * REQ;
    r->buf = bufs + (size_t)i * REQ;
    memset(r->buf, 0xee, REQ);
    r->err = 1;
    if (udm_device_aio_pread(dev, r->buf, REQ, r->off, rd_done, r) < 0) {
      fprintf(stderr, "aio_pread: %s\n", udm_errmsg());
      exit(1);
    }
  }
  pthread_mutex_lock(&b.lock);
  while (b.pending)
    pthread_cond_wait(&b.cond, &b.lock);
  pthread_mutex_unlock(&b.lock);
  unsigned bad = 0;
  for (unsigned i = 0; i < depth; i++) {
    if (rs[i].err != 0 || memcmp(rs[i].buf, raw + rs[i].off, REQ) != 0) {
      if (bad++ < 5)
        fprintf(stderr, "request %u at %llu: err %d, bytes %s\n", i,
                (unsigned long long)rs[i].off, rs[i].err,
                memcmp(rs[i].buf, raw + rs[i].off, REQ) ? "differ" : "match");
    }
  }
  CHECK(bad == 0);
  *threads = b.threads_max;
  if (out_of_order)
    *out_of_order = b.out_of_order;
  free(rs);
  free(bufs);
  pthread_cond_destroy(&b.cond);
  pthread_mutex_destroy(&b.lock);
}

/* ---- devices ---- */

static struct udm_device *make_dev(struct udm_ctx *ctx, const char *name,
                                   const char *table)
{
  struct udm_device *d = udm_device_create(ctx, name, NULL, 0);
  if (!d || udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "%s: '%s': %s\n", name, table, udm_errmsg());
    exit(1);
  }
  return d;
}

/* Every byte once, sequentially in 64 KiB reads: the driver's caches fill. */
static void read_all(struct udm_device *dev)
{
  const size_t step = 65536;
  uint8_t *b = malloc(step);
  for (uint64_t off = 0; b && off < raw_len; off += step) {
    size_t n = raw_len - off < step ? (size_t)(raw_len - off) : step;
    CHECK(udm_device_pread(dev, b, n, off) == 0);
    CHECK(memcmp(b, raw + off, n) == 0);
  }
  free(b);
}

static void drop_dev(struct udm_device *d)
{
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
}

static struct udm_engine *ctx_engine(struct udm_ctx *ctx)
{
  int err;
  struct udm_engine *e = udm__engine_get(ctx, &err);
  if (!e) {
    fprintf(stderr, "engine: %s\n", strerror(-err));
    exit(1);
  }
  return e;
}

static uint64_t jobs_of(struct udm_engine *e)
{
  struct udm_engine_stats st;
  udm__engine_stats(e, &st);
  return st.jobs;
}

/* QD1 then QD256 on DEV: pool jobs per batch into jobs1/jobs256, threads compared. */
static void measure(struct udm_engine *e, struct udm_device *dev, const char *what,
                    uint64_t *jobs1, uint64_t *jobs256)
{
  int t1, t256;
  unsigned ooo = 0;
  uint64_t j0 = jobs_of(e);
  read_batch(dev, 1, &t1, NULL);
  uint64_t j1 = jobs_of(e);
  read_batch(dev, QD, &t256, &ooo);
  uint64_t j2 = jobs_of(e);
  struct udm_engine_stats st;
  udm__engine_stats(e, &st);
  *jobs1 = j1 - j0;
  *jobs256 = j2 - j1;
  printf("%s: engine %s, QD1: %llu pool jobs, %d threads; QD%u: %llu pool jobs, %d "
         "threads, %u completions out of submission order; pool %u threads, at most %u "
         "jobs at once so far\n",
         what, udm__engine_name(e), (unsigned long long)*jobs1, t1, QD,
         (unsigned long long)*jobs256, t256, ooo, st.threads, st.jobs_running_max);
  CHECK(t256 == t1);
}

static uint64_t ops_of(struct udm_engine *e)
{
  struct udm_engine_stats st;
  udm__engine_stats(e, &st);
  return st.ops;
}

static void run_hot(const char *spec)
{
  const char *mode = getenv("UDM_IMAGE_AIO");
  bool engine_only = mode && strcmp(mode, "engine") == 0;
  struct udm_ctx *ctx = udm_ctx_new();
  char table[4096];
  uint64_t n = raw_len / 512;
  snprintf(table, sizeof table, "0 %llu linear %s 0", (unsigned long long)n, spec);
  struct udm_device *img = make_dev(ctx, "img", table);
  struct udm_engine *e = ctx_engine(ctx);
  read_all(img);
  uint64_t j1, j256;
  uint64_t ops0 = ops_of(e);
  measure(e, img, spec, &j1, &j256);
  CHECK(j1 == 0);
  CHECK(j256 == 0);
  /*
   * Page-cache data is copied on the submitting thread (no engine operation);
   * UDM_IMAGE_AIO=engine sends it through the engine (udmz answers what its
   * chunk cache holds without one, so not one per request).
   */
  uint64_t ops = ops_of(e) - ops0;
  printf("%s: %llu engine operations\n", spec, (unsigned long long)ops);
  if (engine_only)
    CHECK(ops > 0);
  else
    CHECK(ops == 0);
  /* A read-only driver has no flush: answered without a pool job. */
  uint64_t before = jobs_of(e);
  CHECK(udm_device_flush(img) == 0);
  CHECK(jobs_of(e) == before);

  /* A stack of three udm devices over the image: still no thread per request. */
  struct udm_device *s[3];
  const char *below = "img";
  const char *names[3] = {"s1", "s2", "s3"};
  for (int i = 0; i < 3; i++) {
    snprintf(table, sizeof table, "0 %llu linear udm:%s 0", (unsigned long long)n, below);
    s[i] = make_dev(ctx, names[i], table);
    below = names[i];
  }
  measure(e, s[2], "3 udm devices stacked over it", &j1, &j256);
  CHECK(j1 == 0);
  CHECK(j256 == 0);
  for (int i = 2; i >= 0; i--)
    drop_dev(s[i]);
  drop_dev(img);
  udm_ctx_free(ctx);
}

static void run_pool(const char *spec, bool count)
{
  struct udm_ctx *ctx = udm_ctx_new();
  char table[4096];
  snprintf(table, sizeof table, "0 %llu linear %s 0", (unsigned long long)(raw_len / 512),
           spec);
  struct udm_device *img = make_dev(ctx, "img", table);
  struct udm_engine *e = ctx_engine(ctx);
  read_all(img);
  uint64_t j1, j256;
  measure(e, img, spec, &j1, &j256);
  if (count) {
    CHECK(j1 == 1);
    CHECK(j256 == QD);
  }
  drop_dev(img);
  udm_ctx_free(ctx);
}

/* ---- a driver built for API version 1 ---- */

struct old_handle {
  int fd;
  uint64_t size;
};

static int old_open(const char *path, const struct udm_image_options *o, bool w, void **h,
                    char **err)
{
  (void)o;
  (void)w;
  (void)err;
  struct old_handle *x = calloc(1, sizeof *x);
  struct stat st;
  if (!x || (x->fd = open(path, O_RDONLY)) < 0 || fstat(x->fd, &st) < 0) {
    free(x);
    return -errno;
  }
  x->size = (uint64_t)st.st_size;
  *h = x;
  return 0;
}

static void old_close(void *h)
{
  struct old_handle *x = h;
  close(x->fd);
  free(x);
}

static uint64_t old_size(void *h)
{
  return ((struct old_handle *)h)->size;
}

static int old_pread(void *h, void *buf, size_t len, uint64_t off)
{
  return udm__full_pread(((struct old_handle *)h)->fd, buf, len, off);
}

static atomic_uint aio_calls;

static int never_aio(void *h, struct udm_image_req *req)
{
  (void)h;
  (void)req;
  atomic_fetch_add(&aio_calls, 1);
  return -EIO;
}

static void run_old_api(const char *raw_path)
{
  /* As a driver compiled against the version 1 header is stamped. */
  struct udm_image_driver v1 = {
      .struct_size = offsetof(struct udm_image_driver, aio),
      .api_version = 1,
      .name = "oldraw",
      .open = old_open,
      .close = old_close,
      .size = old_size,
      .pread = old_pread,
  };
  /* A version 1 stamp on a bigger struct: the extra field is not version 1's. */
  struct udm_image_driver v1big = v1;
  v1big.struct_size = sizeof v1big;
  v1big.name = "oldraw-big";
  v1big.aio = never_aio;
  struct udm_ctx *ctx = udm_ctx_new();
  CHECK(udm_image_driver_register(ctx, &v1) == 0);
  CHECK(udm_image_driver_register(ctx, &v1big) == 0);
  struct udm_engine *e = ctx_engine(ctx);
  const char *fmts[2] = {"oldraw", "oldraw-big"};
  for (int i = 0; i < 2; i++) {
    char table[4096], name[32];
    snprintf(table, sizeof table, "0 %llu linear %s:%s 0",
             (unsigned long long)(raw_len / 512), fmts[i], raw_path);
    snprintf(name, sizeof name, "old%d", i);
    struct udm_device *img = make_dev(ctx, name, table);
    uint64_t j1, j256;
    measure(e, img, fmts[i], &j1, &j256);
    CHECK(j1 == 1);
    CHECK(j256 == QD);
    drop_dev(img);
  }
  CHECK(atomic_load(&aio_calls) == 0);
  udm_ctx_free(ctx);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "old-api") == 0) {
    load_raw(argv[2]);
    run_old_api(argv[2]);
  } else if (argc == 4 && strcmp(argv[1], "hot") == 0) {
    load_raw(argv[3]);
    run_hot(argv[2]);
  } else if (argc == 4 && (strcmp(argv[1], "pool") == 0 || strcmp(argv[1], "bytes") == 0)) {
    load_raw(argv[3]);
    run_pool(argv[2], strcmp(argv[1], "pool") == 0);
  } else {
    fprintf(stderr, "usage: %s hot|pool|bytes SPEC RAW | old-api RAW\n", argv[0]);
    return 2;
  }
  free(raw);
  if (check_failures) {
    fprintf(stderr, "%d check(s) failed\n", check_failures);
    return 1;
  }
  return 0;
}
