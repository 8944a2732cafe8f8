/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy service (udm_copier_*, udm_copy_*): 10 MiB plus a partial chunk
 * copied between files of odd sizes at odd offsets to two destinations
 * arrives byte for byte, nothing around it touched; zeroing zeroes exactly
 * its range; chunks in flight over both a delayed source and delayed
 * destinations never pass the copier's limit (8, then 3), shared by two
 * jobs at once; a 4 MiB copy at 8 MiB/s takes at least the time its rate
 * allows (a lower bound only); a cancel stops a job early and it still
 * completes exactly once, as does a suspend of the owning target's device
 * (its presuspend cancels and waits); a failing destination reports its
 * error alone while the other gets every byte; a failing source fails the
 * job; progress only grows, ends at the total, and comes before done; bad
 * jobs are refused before anything starts; 65536 chunks completing inline
 * do not grow the stack.
 *
 * The test target "copyhost" opens the devices of its table line and owns a
 * copier, as a mirror or snapshot target would; "count" wraps a device and
 * counts the requests in flight through it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <udm/target.h>

#include "check.h"
#include "testdev.h"
#include "util.h"

#define MiB (1ull << 20)
#define SECTOR 512u

static struct udm_ctx *ctx;

/* ---- copyhost <dev>...: opens up to four devices and owns a copier ---- */

struct copyhost {
  struct udm_dev *dev[4];
  unsigned ndev;
  struct udm_copier *copier;
  atomic_uint presuspends;
};

static struct copyhost *host;

static int copyhost_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc < 1 || argc > 4) {
    udm_target_error(ti, "copyhost takes one to four devices");
    return -EINVAL;
  }
  struct copyhost *h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  ti->private = h;
  host = h;
  for (unsigned i = 0; i < argc; i++) {
    int r = udm_get_device(ti, argv[i], UDM_DEV_READ | UDM_DEV_WRITE, &h->dev[i]);
    if (r < 0)
      return r;
    h->ndev++;
  }
  udm_target_set_remap(ti, h->dev[0], 0);
  return udm_copier_create(ti, &h->copier);
}

static void copyhost_dtr(struct udm_target *ti)
{
  struct copyhost *h = ti->private;
  if (!h)
    return;
  udm_copier_destroy(h->copier);
  for (unsigned i = 0; i < h->ndev; i++)
    udm_put_device(ti, h->dev[i]);
  free(h);
}

/* A target stops its copies at presuspend and waits for them. */
static void copyhost_presuspend(struct udm_target *ti)
{
  struct copyhost *h = ti->private;
  atomic_fetch_add(&h->presuspends, 1);
  udm_copy_cancel(h->copier, 0);
  udm_copier_wait(h->copier);
}

static const struct udm_target_type copyhost_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "copyhost",
    .version = {1, 0, 0},
    .ctr = copyhost_ctr,
    .dtr = copyhost_dtr,
    .presuspend = copyhost_presuspend,
};

/* ---- count <dev>: remaps, counting requests between map and end_io ---- */

static atomic_uint count_now, count_max, count_total;

static int count_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct udm_dev *dev;
  if (argc != 1) {
    udm_target_error(ti, "count takes '<dev>'");
    return -EINVAL;
  }
  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &dev);
  if (r < 0)
    return r;
  ti->private = dev;
  return 0;
}

static void count_dtr(struct udm_target *ti)
{
  if (ti->private)
    udm_put_device(ti, ti->private);
}

static int count_map(struct udm_target *ti, struct udm_io *io)
{
  unsigned now = atomic_fetch_add(&count_now, 1) + 1;
  atomic_fetch_add(&count_total, 1);
  unsigned max = atomic_load(&count_max);
  while (now > max && !atomic_compare_exchange_weak(&count_max, &max, now))
    ;
  return udm_remap(ti, io, ti->private, 0);
}

static int count_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  (void)ti, (void)io, (void)err;
  atomic_fetch_sub(&count_now, 1);
  return UDM_ENDIO_DONE;
}

static const struct udm_target_type count_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "count",
    .version = {1, 0, 0},
    .ctr = count_ctr,
    .dtr = count_dtr,
    .map = count_map,
    .end_io = count_end_io,
};

/* ---- watching a job ---- */

struct watch {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t total;        /* bytes */
  unsigned n;
  unsigned done_calls;
  int err;
  int errs[4];
  unsigned progress_calls;
  uint64_t last;         /* the last progress value */
  bool progress_grows;   /* every value above the one before, at most total */
  bool progress_after_done;
  bool overlapping;      /* two callbacks ran at once */
  bool in_callback;
  uint64_t chunk_bytes;   /* progress moves by whole chunks (any order) */
  bool chunk_aligned;
  struct udm_copier *cancel_copier; /* cancel its jobs at the first progress */
};

/* The next start() watches for this chunk size, and cancels at its first progress. */
static uint64_t next_chunk_bytes = 512 * 1024;
static bool next_cancels_itself;

static void watch_init(struct watch *w, uint64_t total, unsigned n)
{
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  w->total = total;
  w->n = n;
  w->progress_grows = true;
  w->chunk_aligned = true;
  w->chunk_bytes = next_chunk_bytes;
}

static void enter(struct watch *w)
{
  pthread_mutex_lock(&w->lock);
  w->overlapping |= w->in_callback;
  w->in_callback = true;
}

static void on_progress(void *opaque, uint64_t bytes)
{
  struct watch *w = opaque;
  enter(w);
  w->progress_grows &= bytes > w->last && bytes <= w->total;
  w->progress_after_done |= w->done_calls > 0;
  /* A sum of whole chunks, the last (partial) one perhaps among them. */
  w->chunk_aligned &= bytes % w->chunk_bytes == 0 ||
                      bytes % w->chunk_bytes == w->total % w->chunk_bytes;
  w->last = bytes;
  w->progress_calls++;
  struct udm_copier *cancel = w->cancel_copier;
  w->in_callback = false;
  pthread_mutex_unlock(&w->lock);
  if (cancel)
    udm_copy_cancel(cancel, 0); /* from a callback: allowed */
}

static void on_done(void *opaque, int err, const int *errs)
{
  struct watch *w = opaque;
  enter(w);
  w->done_calls++;
  w->err = err;
  for (unsigned i = 0; i < w->n; i++)
    w->errs[i] = errs[i];
  w->in_callback = false;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static unsigned watch_wait(struct watch *w)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  pthread_mutex_lock(&w->lock);
  while (w->done_calls == 0)
    if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
      break;
  unsigned calls = w->done_calls;
  pthread_mutex_unlock(&w->lock);
  return calls;
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ---- helpers ---- */

static struct udm_device *make_host(const char *devs)
{
  char t[1200];
  snprintf(t, sizeof t, "0 8 copyhost %s", devs);
  return test_make(ctx, "host", t, 0);
}

static bool file_has_pattern(const char *path, uint64_t off, uint64_t len, unsigned seed,
                             uint64_t pattern_off)
{
  unsigned char *got = read_file_at(path, off, (size_t)len);
  unsigned char *want = malloc((size_t)len);
  fill_pattern(want, (size_t)len, seed, pattern_off);
  bool ok = memcmp(got, want, (size_t)len) == 0;
  free(got);
  free(want);
  return ok;
}

static bool file_is_zero(const char *path, uint64_t off, uint64_t len)
{
  unsigned char *got = read_file_at(path, off, (size_t)len);
  bool ok = true;
  for (size_t i = 0; i < len && ok; i++)
    ok = got[i] == 0;
  free(got);
  return ok;
}

static int start(struct udm_region *from, struct udm_region *to, unsigned n,
                 uint64_t sectors, struct watch *w, uint64_t *id)
{
  watch_init(w, sectors * SECTOR, n);
  if (next_cancels_itself)
    w->cancel_copier = host->copier;
  next_cancels_itself = false;
  struct udm_copy job = {
      .from = from,
      .to = to,
      .n = n,
      .nr_sectors = sectors,
      .progress = on_progress,
      .done = on_done,
      .opaque = w,
  };
  return udm_copy_start(host->copier, &job, id);
}

/* Every job ends the same way when it succeeds. */
static void check_success(struct watch *w)
{
  CHECK(watch_wait(w) == 1);
  CHECK(w->err == 0);
  for (unsigned i = 0; i < w->n; i++)
    CHECK(w->errs[i] == 0);
  CHECK(w->progress_grows && !w->progress_after_done && !w->overlapping);
  CHECK(w->chunk_aligned);
  CHECK(w->last == w->total);
}

/* ---- tests ---- */

static void copies_arrive_byte_for_byte_at_odd_offsets(void)
{
  /* Odd sizes: the files end inside a sector, which the devices do not show. */
  const char *src = scratch_file("src.img", 12 * MiB + 3 * SECTOR + 100, 1);
  const char *d1 = scratch_file("d1.img", 11 * MiB + 7 * SECTOR + 33, 2);
  const char *d2 = scratch_file("d2.img", 10 * MiB + 40 * SECTOR + 1, 3);
  char devs[1000];
  snprintf(devs, sizeof devs, "%s %s %s", src, d1, d2);
  struct udm_device *d = make_host(devs);
  /* 10 MiB and 7 sectors: 20 whole chunks of 512 KiB and a partial one. */
  uint64_t sectors = 10 * MiB / SECTOR + 7;
  struct udm_region from = {host->dev[0], 3};
  struct udm_region to[2] = {{host->dev[1], 11}, {host->dev[2], 29}};
  struct watch w;
  uint64_t id = 0;
  CHECK(start(&from, to, 2, sectors, &w, &id) == 0);
  CHECK(id != 0);
  check_success(&w);
  CHECK(w.progress_calls >= 2);
  uint64_t len = sectors * SECTOR;
  CHECK(file_has_pattern(d1, 11 * SECTOR, len, 1, 3 * SECTOR));
  CHECK(file_has_pattern(d2, 29 * SECTOR, len, 1, 3 * SECTOR));
  /* Around the copies nothing changed. */
  CHECK(file_has_pattern(d1, 0, 11 * SECTOR, 2, 0));
  uint64_t end1 = (11 * SECTOR) + len;
  CHECK(file_has_pattern(d1, end1, 11 * MiB + 7 * SECTOR + 33 - end1, 2, end1));
  CHECK(file_has_pattern(d2, 0, 29 * SECTOR, 3, 0));
  uint64_t end2 = (29 * SECTOR) + len;
  CHECK(file_has_pattern(d2, end2, 10 * MiB + 40 * SECTOR + 1 - end2, 3, end2));
  printf("ok: 10 MiB + 7 sectors copied from sector 3 to sectors 11 and 29 of files of "
         "odd sizes, byte for byte, %u progress calls growing to the total\n",
         w.progress_calls);

  /* A smaller chunk size than the region, not dividing it. */
  CHECK(udm_copier_set_chunk_size(host->copier, 24) == 0);
  next_chunk_bytes = 24 * SECTOR;
  struct udm_region from2 = {host->dev[2], 29 + 100};
  struct udm_region to2[1] = {{host->dev[1], 5000}};
  CHECK(start(&from2, to2, 1, 1000, &w, NULL) == 0);
  check_success(&w);
  next_chunk_bytes = 512 * 1024;
  CHECK(w.progress_calls >= 2 && w.progress_calls <= (1000 + 23) / 24);
  CHECK(file_has_pattern(d1, 5000 * SECTOR, 1000 * SECTOR, 1, 103 * SECTOR));
  printf("ok: 1000 sectors in chunks of 24: %u progress calls, bytes right\n",
         w.progress_calls);
  test_drop(d);
}

static void zeroing_zeroes_exactly_its_range(void)
{
  const char *a = scratch_file("a.img", 3 * MiB, 4);
  const char *b = scratch_file("b.img", 3 * MiB + 512, 5);
  char devs[700];
  snprintf(devs, sizeof devs, "%s %s", a, b);
  struct udm_device *d = make_host(devs);
  struct udm_region to[2] = {{host->dev[0], 1}, {host->dev[1], 1030}};
  struct watch w;
  uint64_t sectors = 2 * MiB / SECTOR + 5;
  CHECK(start(NULL, to, 2, sectors, &w, NULL) == 0);
  check_success(&w);
  CHECK(file_is_zero(a, SECTOR, sectors * SECTOR));
  CHECK(file_is_zero(b, 1030 * SECTOR, sectors * SECTOR));
  CHECK(file_has_pattern(a, 0, SECTOR, 4, 0));
  uint64_t end = (1 + sectors) * SECTOR;
  CHECK(file_has_pattern(a, end, 3 * MiB - end, 4, end));
  CHECK(file_has_pattern(b, 0, 1030 * SECTOR, 5, 0));
  end = (1030 + sectors) * SECTOR;
  CHECK(file_has_pattern(b, end, 3 * MiB + 512 - end, 5, end));
  printf("ok: zeroing 2 MiB + 5 sectors on two devices zeroes exactly that\n");
  test_drop(d);
}

/*
 * The source and destination are count devices over delay devices: each
 * request waits 100 ms in delay's queue, so chunks pile up as far as the
 * copier lets them.
 */
static void chunks_in_flight_stay_within_the_limit(void)
{
  const char *src = scratch_file("src.img", 12 * MiB, 6);
  const char *dst = scratch_file("dst.img", 12 * MiB, 7);
  char t[700];
  snprintf(t, sizeof t, "0 %llu delay %s 0 100", 12 * MiB / SECTOR, src);
  struct udm_device *ss = test_make(ctx, "slowsrc", t, 0);
  snprintf(t, sizeof t, "0 %llu delay %s 0 100", 12 * MiB / SECTOR, dst);
  struct udm_device *sd = test_make(ctx, "slowdst", t, 0);
  snprintf(t, sizeof t, "0 %llu count udm:slowsrc", 12 * MiB / SECTOR);
  struct udm_device *cs = test_make(ctx, "cntsrc", t, 0);
  snprintf(t, sizeof t, "0 %llu count udm:slowdst", 12 * MiB / SECTOR);
  struct udm_device *cd = test_make(ctx, "cntdst", t, 0);
  struct udm_device *d = make_host("udm:cntsrc udm:cntdst");

  atomic_store(&count_max, 0);
  atomic_store(&count_total, 0);
  struct udm_region from = {host->dev[0], 0};
  struct udm_region to[1] = {{host->dev[1], 0}};
  struct watch w;
  CHECK(start(&from, to, 1, 10 * MiB / SECTOR, &w, NULL) == 0);
  check_success(&w);
  unsigned max8 = atomic_load(&count_max);
  CHECK(max8 <= 8);
  CHECK(max8 >= 2); /* chunks really overlapped: the limit was what held them */
  CHECK(atomic_load(&count_total) == 40); /* 20 reads, 20 writes */
  CHECK(file_has_pattern(dst, 0, 10 * MiB, 6, 0));

  /* Two jobs at once share a limit of 3. */
  CHECK(udm_copier_set_max_in_flight(host->copier, 3) == 0);
  CHECK(udm_copier_set_max_in_flight(host->copier, 0) == -EINVAL);
  CHECK_STR(udm_errmsg(), "copy: at least one chunk must be allowed in flight");
  atomic_store(&count_max, 0);
  struct udm_region from2 = {host->dev[0], 10 * MiB / SECTOR};
  struct udm_region to2[1] = {{host->dev[1], 10 * MiB / SECTOR}};
  struct watch w2;
  CHECK(start(&from, to, 1, 2 * MiB / SECTOR, &w, NULL) == 0);
  CHECK(start(&from2, to2, 1, 2 * MiB / SECTOR, &w2, NULL) == 0);
  check_success(&w);
  check_success(&w2);
  unsigned max3 = atomic_load(&count_max);
  CHECK(max3 <= 3 && max3 >= 2);
  CHECK(file_has_pattern(dst, 0, 12 * MiB, 6, 0));
  printf("ok: at most %u chunks in flight with a limit of 8, %u with 3 shared by two "
         "jobs; bytes right\n",
         max8, max3);
  test_drop(d);
  test_drop(cd);
  test_drop(cs);
  test_drop(sd);
  test_drop(ss);
}

static void a_throttled_copy_takes_the_time_its_rate_allows(void)
{
  const char *src = scratch_file("src.img", 4 * MiB, 8);
  const char *dst = scratch_file("dst.img", 4 * MiB, 9);
  char devs[700];
  snprintf(devs, sizeof devs, "%s %s", src, dst);
  struct udm_device *d = make_host(devs);
  CHECK(udm_copier_set_throttle(host->copier, 8 * MiB) == 0);
  struct udm_region from = {host->dev[0], 0};
  struct udm_region to[1] = {{host->dev[1], 0}};
  struct watch w;
  uint64_t t0 = udm_now_ns();
  CHECK(start(&from, to, 1, 4 * MiB / SECTOR, &w, NULL) == 0);
  check_success(&w);
  double took = (double)(udm_now_ns() - t0) / 1e9;
  /* 8 chunks of 512 KiB: the last may start 7/16 s after the first. */
  CHECK(took >= 0.4375 - 0.001);
  CHECK(file_has_pattern(dst, 0, 4 * MiB, 8, 0));
  CHECK(udm_copier_set_throttle(host->copier, 0) == 0);
  t0 = udm_now_ns();
  CHECK(start(&from, to, 1, 4 * MiB / SECTOR, &w, NULL) == 0);
  check_success(&w);
  printf("ok: 4 MiB at 8 MiB/s took %.3f s (at least 0.4375 s); unthrottled %.3f s\n",
         took, (double)(udm_now_ns() - t0) / 1e9);
  test_drop(d);
}

static void a_cancel_stops_early_and_completes_once(void)
{
  const char *src = scratch_file("src.img", 10 * MiB, 10);
  const char *dst = scratch_file("dst.img", 10 * MiB, 11);
  char devs[700];
  snprintf(devs, sizeof devs, "%s %s", src, dst);
  struct udm_device *d = make_host(devs);
  CHECK(udm_copier_set_throttle(host->copier, 4 * MiB) == 0);
  struct udm_region from = {host->dev[0], 0};
  struct udm_region to[1] = {{host->dev[1], 0}};
  struct watch w;
  uint64_t id = 0;
  /* Cancelled by the test thread while the throttle holds it. */
  CHECK(start(&from, to, 1, 10 * MiB / SECTOR, &w, &id) == 0);
  sleep_ms(300);
  udm_copy_cancel(host->copier, id);
  CHECK(watch_wait(&w) == 1);
  CHECK(w.err == -ECANCELED && w.errs[0] == 0);
  CHECK(w.last < w.total && w.progress_grows && !w.progress_after_done);
  udm_copy_cancel(host->copier, id); /* finished: ignored */
  udm_copier_wait(host->copier);
  sleep_ms(200);
  CHECK(w.done_calls == 1);
  uint64_t stopped_at = w.last;
  /* What was reported done is on the destination, in whole chunks (any order). */
  unsigned copied = 0;
  for (uint64_t off = 0; off < 10 * MiB; off += 512 * 1024)
    copied += file_has_pattern(dst, off, 512 * 1024, 10, off);
  CHECK(copied >= stopped_at / (512 * 1024) && copied < 20);
  printf("ok: cancelled after %llu of %llu bytes: done once with -ECANCELED\n",
         (unsigned long long)stopped_at, (unsigned long long)w.total);

  /* Cancelled from its own progress callback. */
  struct watch w2;
  next_cancels_itself = true;
  CHECK(start(&from, to, 1, 10 * MiB / SECTOR, &w2, NULL) == 0);
  CHECK(watch_wait(&w2) == 1);
  CHECK(w2.err == -ECANCELED && w2.last < w2.total && w2.progress_calls >= 1);
  CHECK(!w2.progress_after_done && !w2.overlapping);

  /* A suspend of the host's device cancels and waits through presuspend. */
  struct watch w3;
  CHECK(start(&from, to, 1, 10 * MiB / SECTOR, &w3, NULL) == 0);
  sleep_ms(100);
  CHECK(udm_device_suspend(d, 0) == 0);
  CHECK(atomic_load(&host->presuspends) == 1);
  pthread_mutex_lock(&w3.lock);
  CHECK(w3.done_calls == 1); /* done before suspend returned */
  CHECK(w3.err == -ECANCELED && w3.last < w3.total);
  pthread_mutex_unlock(&w3.lock);
  CHECK(udm_device_resume(d) == 0);
  printf("ok: cancelled from its own progress callback; a suspend stops a copy and "
         "returns after its completion\n");
  /* Removing the device with a job running: dtr cancels and waits. */
  struct watch w4;
  CHECK(start(&from, to, 1, 10 * MiB / SECTOR, &w4, NULL) == 0);
  test_drop(d);
  CHECK(w4.done_calls == 1 && w4.err == -ECANCELED);
}

/*
 * Where files complete inline (no asynchronous engine), a copy in 65536
 * one-sector chunks runs in the thread that starts it, and must loop rather
 * than recurse once per chunk (about a kilobyte of stack each: 64 MiB would
 * overflow).
 */
static void many_inline_chunks_do_not_grow_the_stack(void)
{
  const char *src = scratch_file("src.img", 32 * MiB, 14);
  const char *dst = scratch_file("dst.img", 32 * MiB, 15);
  char devs[700];
  snprintf(devs, sizeof devs, "%s %s", src, dst);
  struct udm_device *d = make_host(devs);
  CHECK(udm_copier_set_chunk_size(host->copier, 1) == 0);
  next_chunk_bytes = SECTOR;
  struct udm_region from = {host->dev[0], 0};
  struct udm_region to[1] = {{host->dev[1], 0}};
  struct watch w;
  CHECK(start(&from, to, 1, 32 * MiB / SECTOR, &w, NULL) == 0);
  check_success(&w);
  next_chunk_bytes = 512 * 1024;
  CHECK(file_has_pattern(dst, 0, 32 * MiB, 14, 0));
  printf("ok: 65536 one-sector chunks, %u progress calls\n",
         w.progress_calls);
  test_drop(d);
}

static void a_failing_destination_fails_alone(void)
{
  const char *src = scratch_file("src.img", 4 * MiB, 12);
  const char *dst = scratch_file("dst.img", 4 * MiB, 13);
  char t[100];
  snprintf(t, sizeof t, "0 %llu error", 4 * MiB / SECTOR);
  struct udm_device *bad = test_make(ctx, "bad", t, 0);
  char devs[700];
  snprintf(devs, sizeof devs, "%s %s udm:bad", src, dst);
  struct udm_device *d = make_host(devs);
  CHECK(udm_copier_set_chunk_size(host->copier, 256) == 0);
  struct udm_region from = {host->dev[0], 0};
  struct udm_region to[2] = {{host->dev[2], 0}, {host->dev[1], 0}};
  struct watch w;
  CHECK(start(&from, to, 2, 3 * MiB / SECTOR, &w, NULL) == 0);
  CHECK(watch_wait(&w) == 1);
  CHECK(w.err == -EIO && w.errs[0] == -EIO && w.errs[1] == 0);
  CHECK(w.last == w.total); /* the good destination got every chunk */
  CHECK(file_has_pattern(dst, 0, 3 * MiB, 12, 0));
  printf("ok: a failing destination reports -EIO alone; the other gets all 3 MiB\n");

  /* A failing source fails the job, once. */
  struct udm_region bad_from = {host->dev[2], 0};
  struct udm_region to1[1] = {{host->dev[1], 0}};
  CHECK(start(&bad_from, to1, 1, 3 * MiB / SECTOR, &w, NULL) == 0);
  CHECK(watch_wait(&w) == 1);
  CHECK(w.err == -EIO && w.errs[0] == 0 && w.last == 0);
  udm_copier_wait(host->copier);
  CHECK(w.done_calls == 1);

  /* Refused before anything starts, saying why. */
  char want[600];
  struct udm_copy job = {.from = &from, .to = to1, .n = 1, .nr_sectors = 8,
                         .done = on_done, .opaque = &w};
  watch_init(&w, 0, 1);
  job.n = 0;
  CHECK(udm_copy_start(host->copier, &job, NULL) == -EINVAL);
  CHECK_STR(udm_errmsg(), "copy: no destination");
  job.n = 1;
  job.done = NULL;
  CHECK(udm_copy_start(host->copier, &job, NULL) == -EINVAL);
  CHECK_STR(udm_errmsg(), "copy: no done callback");
  job.done = on_done;
  struct udm_region past = {host->dev[1], 4 * MiB / SECTOR - 4};
  job.to = &past;
  CHECK(udm_copy_start(host->copier, &job, NULL) == -EINVAL);
  snprintf(want, sizeof want, "copy: the destination 0 (8 sectors at sector 8188) ends past the end of %s (8192 sectors)", dst);
  CHECK_STR(udm_errmsg(), want);
  job.to = to1;
  job.from = &past;
  CHECK(udm_copy_start(host->copier, &job, NULL) == -EINVAL);
  snprintf(want, sizeof want, "copy: the source (8 sectors at sector 8188) ends past the end of %s (8192 sectors)", dst);
  CHECK_STR(udm_errmsg(), want);
  CHECK(udm_copier_set_chunk_size(host->copier, 0) == -EINVAL);
  CHECK_STR(udm_errmsg(), "copy: chunk size 0 sectors is outside 1..131072");
  CHECK(udm_copier_set_chunk_size(host->copier, (1u << 17) + 1) == -EINVAL);
  /* Zero sectors: done at once, no progress. */
  job.from = &from;
  job.nr_sectors = 0;
  CHECK(udm_copy_start(host->copier, &job, NULL) == 0);
  CHECK(watch_wait(&w) == 1 && w.err == 0 && w.progress_calls == 0);
  udm_copier_wait(host->copier);
  CHECK(w.done_calls == 1);
  printf("ok: a failing source fails the job once; bad jobs refused without a "
         "callback\n");
  test_drop(d);
  test_drop(bad);
}

int main(void)
{
  scratch_init();
  ctx = udm_ctx_new();
  if (!ctx || udm_target_register(ctx, &copyhost_type) < 0 ||
      udm_target_register(ctx, &count_type) < 0) {
    fprintf(stderr, "setup: %s\n", udm_errmsg());
    return 1;
  }
  copies_arrive_byte_for_byte_at_odd_offsets();
  zeroing_zeroes_exactly_its_range();
  chunks_in_flight_stay_within_the_limit();
  a_throttled_copy_takes_the_time_its_rate_allows();
  a_cancel_stops_early_and_completes_once();
  a_failing_destination_fails_alone();
  many_inline_chunks_do_not_grow_the_stack();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-copy");
}
