/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fan-out I/O (udm_dmio_submit): through a two-leg mirror test target that
 * owns each write and sends it to both legs at once, the bytes land on
 * every leg, write-zeroes, discards and flushes reach both, and a leg that
 * is an `error` device reports its -EIO alone while the other leg takes the
 * write; 64 writes in flight over delayed legs all complete once with
 * their bytes; a read comes from one region; a region past its device's
 * end fails alone; bad arguments are refused before anything starts.
 *
 * Backing devices are real files in a scratch directory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <udm/target.h>

#include "check.h"
#include "testdev.h"
#include "util.h"

#define LEG_SIZE (2u << 20)

static struct udm_ctx *ctx;

/* ---- mirror2: <leg0> <leg1>; reads from leg0, everything else to both ---- */

struct mirror2 {
  struct udm_dev *leg[2];
  pthread_mutex_t lock;
  int last_errs[2];     /* the legs' results of the last fan-out */
  unsigned fanouts;     /* fan-outs completed */
};

static struct mirror2 *last_mirror;

static int mirror2_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 2) {
    udm_target_error(ti, "mirror2 takes '<leg0> <leg1>'");
    return -EINVAL;
  }
  struct mirror2 *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  pthread_mutex_init(&m->lock, NULL);
  ti->private = m;
  last_mirror = m;
  for (int i = 0; i < 2; i++) {
    int r = udm_get_device(ti, argv[i], UDM_DEV_READ | UDM_DEV_WRITE, &m->leg[i]);
    if (r < 0)
      return r;
  }
  return 0;
}

static void mirror2_dtr(struct udm_target *ti)
{
  struct mirror2 *m = ti->private;
  if (!m)
    return;
  for (int i = 0; i < 2; i++)
    if (m->leg[i])
      udm_put_device(ti, m->leg[i]);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

struct mirror2_io {
  struct mirror2 *m;
  struct udm_io *io;
};

static void mirror2_written(void *opaque, int err, const int *errs)
{
  struct mirror2_io *mio = opaque;
  struct mirror2 *m = mio->m;
  pthread_mutex_lock(&m->lock);
  m->last_errs[0] = errs[0];
  m->last_errs[1] = errs[1];
  m->fanouts++;
  pthread_mutex_unlock(&m->lock);
  udm_io_complete(mio->io, err);
}

static int mirror2_map(struct udm_target *ti, struct udm_io *io)
{
  struct mirror2 *m = ti->private;
  if (io->op == UDM_OP_READ)
    return udm_remap(ti, io, m->leg[0], 0);
  udm_sector_t s = udm_target_offset(ti, io->sector);
  struct udm_region legs[2] = {{m->leg[0], s}, {m->leg[1], s}};
  struct mirror2_io *mio = io->per_io;
  *mio = (struct mirror2_io){m, io};
  int r = udm_dmio_submit(legs, 2, io->op, io->flags, io->nr_sectors, io->buf,
                          mirror2_written, mio);
  return r < 0 ? r : UDM_MAPIO_SUBMITTED;
}

static int mirror2_ctr_sized(struct udm_target *ti, unsigned argc, char **argv)
{
  int r = mirror2_ctr(ti, argc, argv);
  ti->per_io_size = sizeof(struct mirror2_io);
  return r;
}

static const struct udm_target_type mirror2_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "mirror2",
    .version = {1, 0, 0},
    .ctr = mirror2_ctr_sized,
    .dtr = mirror2_dtr,
    .map = mirror2_map,
};

/* ---- helpers ---- */

static struct udm_device *make_mirror(const char *leg0, const char *leg1)
{
  char t[700];
  snprintf(t, sizeof t, "0 %u mirror2 %s %s", LEG_SIZE / 512, leg0, leg1);
  return test_make(ctx, "m", t, 0);
}

static bool file_has_pattern(const char *path, uint64_t off, size_t len, unsigned seed,
                             uint64_t pattern_off)
{
  unsigned char *got = read_file_at(path, off, len);
  unsigned char *want = malloc(len);
  fill_pattern(want, len, seed, pattern_off);
  bool ok = memcmp(got, want, len) == 0;
  free(got);
  free(want);
  return ok;
}

static bool file_is_zero(const char *path, uint64_t off, size_t len)
{
  unsigned char *got = read_file_at(path, off, len);
  bool ok = true;
  for (size_t i = 0; i < len && ok; i++)
    ok = got[i] == 0;
  free(got);
  return ok;
}

/* One fan-out's completion, waited for by the test. */
struct result {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned calls;
  int err;
  int errs[4];
  unsigned n;
};

static void result_init(struct result *r, unsigned n)
{
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->n = n;
}

static void on_result(void *opaque, int err, const int *errs)
{
  struct result *r = opaque;
  pthread_mutex_lock(&r->lock);
  r->calls++;
  r->err = err;
  for (unsigned i = 0; i < r->n; i++)
    r->errs[i] = errs[i];
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

static unsigned result_wait(struct result *r)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&r->lock);
  while (r->calls == 0)
    if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
      break;
  unsigned calls = r->calls;
  pthread_mutex_unlock(&r->lock);
  return calls;
}

/* Many asynchronous requests: how often each one completed, and with what. */
struct aio_done {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned total;
  unsigned calls[64];
  int errs[64];
};

struct aio_slot {
  struct aio_done *all;
  unsigned index;
};

static void aio_done_init(struct aio_done *a)
{
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
}

static void on_aio(void *opaque, int err)
{
  struct aio_slot *s = opaque;
  pthread_mutex_lock(&s->all->lock);
  s->all->calls[s->index]++;
  s->all->errs[s->index] = err;
  s->all->total++;
  pthread_cond_broadcast(&s->all->cond);
  pthread_mutex_unlock(&s->all->lock);
}

static unsigned aio_wait(struct aio_done *a, unsigned n)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&a->lock);
  while (a->total < n)
    if (pthread_cond_timedwait(&a->cond, &a->lock, &until) == ETIMEDOUT)
      break;
  unsigned got = a->total;
  pthread_mutex_unlock(&a->lock);
  return got;
}

/* ---- tests ---- */

static void writes_land_on_every_leg(void)
{
  const char *a = scratch_file("a.img", LEG_SIZE, 1);
  const char *b = scratch_file("b.img", LEG_SIZE, 2);
  struct udm_device *d = make_mirror(a, b);
  size_t len = 1u << 20;
  unsigned char *buf = malloc(len);
  fill_pattern(buf, len, 9, 0);
  CHECK(udm_device_pwrite(d, buf, len, 65536, 0) == 0);
  CHECK(file_has_pattern(a, 65536, len, 9, 0));
  CHECK(file_has_pattern(b, 65536, len, 9, 0));
  /* What the write did not cover is untouched on each leg. */
  CHECK(file_has_pattern(a, 0, 65536, 1, 0));
  CHECK(file_has_pattern(b, 0, 65536, 2, 0));
  CHECK(file_has_pattern(b, 65536 + len, LEG_SIZE - 65536 - len, 2, 65536 + len));
  CHECK(udm_device_write_zeroes(d, 8192, 65536 + 4096, 0) == 0);
  CHECK(file_is_zero(a, 65536 + 4096, 8192) && file_is_zero(b, 65536 + 4096, 8192));
  CHECK(udm_device_discard(d, 4096, 65536 + 65536, 0) == 0);
  CHECK(file_is_zero(a, 65536 + 65536, 4096) && file_is_zero(b, 65536 + 65536, 4096));
  CHECK(udm_device_flush(d) == 0);
  pthread_mutex_lock(&last_mirror->lock);
  CHECK(last_mirror->fanouts >= 4);
  CHECK(last_mirror->last_errs[0] == 0 && last_mirror->last_errs[1] == 0);
  pthread_mutex_unlock(&last_mirror->lock);
  printf("ok: a write, write-zeroes, discard and flush through a 2-leg mirror land on "
         "both legs\n");
  free(buf);
  test_drop(d);
}

static void an_error_leg_fails_alone(void)
{
  const char *a = scratch_file("a.img", LEG_SIZE, 1);
  char t[100];
  snprintf(t, sizeof t, "0 %u error", LEG_SIZE / 512);
  struct udm_device *bad = test_make(ctx, "bad", t, 0);
  struct udm_device *d = make_mirror(a, "udm:bad");
  size_t len = 128 * 1024;
  unsigned char *buf = malloc(len);
  fill_pattern(buf, len, 5, 0);
  CHECK(udm_device_pwrite(d, buf, len, 4096, 0) < 0);
  CHECK(errno == EIO);
  pthread_mutex_lock(&last_mirror->lock);
  CHECK(last_mirror->last_errs[0] == 0);
  CHECK(last_mirror->last_errs[1] == -EIO);
  pthread_mutex_unlock(&last_mirror->lock);
  CHECK(file_has_pattern(a, 4096, len, 5, 0)); /* the good leg took the write */
  printf("ok: with an error leg the write fails with EIO, errs = {0, -EIO}, and the "
         "good leg has the bytes\n");
  free(buf);
  test_drop(d);
  test_drop(bad);
}

/* Writes complete from delay's timer thread, many at once. */
static void many_writes_in_flight_over_delayed_legs(void)
{
  const char *a = scratch_file("a.img", LEG_SIZE, 1);
  const char *b = scratch_file("b.img", LEG_SIZE, 2);
  char t[700];
  snprintf(t, sizeof t, "0 %u delay %s 0 50", LEG_SIZE / 512, a);
  struct udm_device *sa = test_make(ctx, "slowa", t, 0);
  snprintf(t, sizeof t, "0 %u delay %s 0 20", LEG_SIZE / 512, b);
  struct udm_device *sb = test_make(ctx, "slowb", t, 0);
  struct udm_device *d = make_mirror("udm:slowa", "udm:slowb");
  enum { N = 64, LEN = 8192 };
  static unsigned char bufs[N][LEN];
  static struct aio_slot slots[N];
  static struct aio_done all;
  aio_done_init(&all);
  for (unsigned i = 0; i < N; i++) {
    fill_pattern(bufs[i], LEN, 11, (uint64_t)i * LEN);
    slots[i] = (struct aio_slot){&all, i};
  }
  for (unsigned i = 0; i < N; i++)
    CHECK(udm_device_aio_pwrite(d, bufs[i], LEN, (uint64_t)i * LEN, 0, on_aio,
                                &slots[i]) == 0);
  CHECK(aio_wait(&all, N) == N);
  unsigned once = 0;
  for (unsigned i = 0; i < N; i++)
    once += all.calls[i] == 1 && all.errs[i] == 0;
  CHECK(once == N);
  CHECK(file_has_pattern(a, 0, (size_t)N * LEN, 11, 0));
  CHECK(file_has_pattern(b, 0, (size_t)N * LEN, 11, 0));
  printf("ok: %u writes in flight over delayed legs each complete once, bytes on both "
         "legs\n", N);
  test_drop(d);
  test_drop(sb);
  test_drop(sa);
}

static void dmio_reads_one_region_and_refuses_bad_calls(void)
{
  const char *a = scratch_file("a.img", LEG_SIZE, 3);
  const char *b = scratch_file("b.img", LEG_SIZE, 4);
  struct udm_device *d = make_mirror(a, b);
  struct udm_dev *leg0 = last_mirror->leg[0], *leg1 = last_mirror->leg[1];
  unsigned char buf[4096];
  struct result r;
  result_init(&r, 1);
  struct udm_region one = {leg1, 8};
  CHECK(udm_dmio_submit(&one, 1, UDM_OP_READ, 0, 8, buf, on_result, &r) == 0);
  CHECK(result_wait(&r) == 1);
  CHECK(r.err == 0 && r.errs[0] == 0);
  unsigned char want[4096];
  fill_pattern(want, sizeof want, 4, 4096);
  CHECK(memcmp(buf, want, sizeof want) == 0);

  /* A region past its device's end fails alone. */
  result_init(&r, 2);
  struct udm_region two[2] = {{leg0, 0}, {leg1, LEG_SIZE / 512 - 4}};
  fill_pattern(buf, sizeof buf, 6, 0);
  CHECK(udm_dmio_submit(two, 2, UDM_OP_WRITE, 0, 8, buf, on_result, &r) == 0);
  CHECK(result_wait(&r) == 1);
  CHECK(r.errs[0] == 0 && r.errs[1] == -EIO && r.err == -EIO);
  CHECK(file_has_pattern(a, 0, sizeof buf, 6, 0));

  /* Refused before anything starts: done is never called. */
  result_init(&r, 2);
  CHECK(udm_dmio_submit(two, 2, UDM_OP_READ, 0, 8, buf, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out read: takes exactly one region");
  CHECK(udm_dmio_submit(two, 2, UDM_OP_WRITE, 0, 8, NULL, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out write: needs a buffer");
  CHECK(udm_dmio_submit(two, 2, UDM_OP_WRITE, 0, 0, buf, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out write: needs sectors");
  CHECK(udm_dmio_submit(two, 2, UDM_OP_FLUSH, 0, 8, NULL, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out flush: takes no sectors");
  CHECK(udm_dmio_submit(two, 2, UDM_OP_DISCARD, 0, 8, buf, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out discard: takes no buffer");
  CHECK(udm_dmio_submit(two, 0, UDM_OP_WRITE, 0, 8, buf, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out write: no region");
  CHECK(udm_dmio_submit(two, 2, UDM_OP_WRITE, 0, 8, buf, NULL, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out write: no completion callback");
  struct udm_region nodev[1] = {{NULL, 0}};
  CHECK(udm_dmio_submit(nodev, 1, UDM_OP_WRITE, 0, 8, buf, on_result, &r) == -EINVAL);
  CHECK_STR(udm_errmsg(), "fan-out write: region 0 has no device");
  CHECK(r.calls == 0);

  /* A flush reaches both legs; its sectors are ignored. */
  result_init(&r, 2);
  CHECK(udm_dmio_submit(two, 2, UDM_OP_FLUSH, 0, 0, NULL, on_result, &r) == 0);
  CHECK(result_wait(&r) == 1 && r.err == 0 && r.errs[0] == 0 && r.errs[1] == 0);
  printf("ok: a read from one region, a region past the end failing alone, flush, and "
         "bad calls refused without a callback\n");
  test_drop(d);
}

int main(void)
{
  scratch_init();
  ctx = udm_ctx_new();
  if (!ctx || udm_target_register(ctx, &mirror2_type) < 0) {
    fprintf(stderr, "setup: %s\n", udm_errmsg());
    return 1;
  }
  writes_land_on_every_leg();
  an_error_leg_fails_alone();
  many_writes_in_flight_over_delayed_legs();
  dmio_reads_one_region_and_refuses_bad_calls();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-dmio");
}
