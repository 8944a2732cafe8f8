/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * delay: reads, writes and flushes go to their own devices and offsets;
 * held requests are counted in status; requests of one class leave in the
 * order they arrived; classes do not wait for each other; suspend releases
 * every held request at once and resume delays again; the table prints as
 * the kernel prints it and reloads; bad tables are refused.
 *
 * Order is observed with a "recorder" target registered by this test under
 * the delay device: it logs each request reaching it.  Time is never
 * asserted except as a bound far from the delay (a 60 s delay released by
 * suspend must not take 30 s).
 */
#include <pthread.h>
#include <time.h>

#include <udm/target.h>

#include "targets-test.h"

#define SIZE (1024 * 1024)

/* ---- the recorder target: linear onto a file, logging what it sees ---- */

struct record {
  enum udm_op op;
  unsigned char first; /* first data byte of a write */
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct record log_entries[256];
static unsigned log_len;

static int recorder_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct udm_dev **dev = calloc(1, sizeof *dev);
  if (argc != 1 || !dev) {
    free(dev);
    udm_target_error(ti, "recorder takes '<dev>'");
    return -EINVAL;
  }
  ti->private = dev;
  ti->num_write_zeroes_ios = 0;
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, dev);
}

static void recorder_dtr(struct udm_target *ti)
{
  struct udm_dev **dev = ti->private;
  if (dev && *dev)
    udm_put_device(ti, *dev);
  free(dev);
}

static int recorder_map(struct udm_target *ti, struct udm_io *io)
{
  pthread_mutex_lock(&log_lock);
  if (log_len < sizeof log_entries / sizeof log_entries[0])
    log_entries[log_len++] = (struct record){
        io->op, io->op == UDM_OP_WRITE ? ((unsigned char *)io->buf)[0] : 0};
  pthread_mutex_unlock(&log_lock);
  /*
   * Written before the next one is mapped: what delay submits in order
   * lands in order (delay promises the order of submission, as the kernel's).
   */
  int r = udm_dev_submit(*(struct udm_dev **)ti->private, io);
  return r < 0 ? r : UDM_MAPIO_DONE;
}

static const struct udm_target_type recorder_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "recorder",
    .version = {1, 0, 0},
    .ctr = recorder_ctr,
    .dtr = recorder_dtr,
    .map = recorder_map,
};

static void log_reset(void)
{
  pthread_mutex_lock(&log_lock);
  log_len = 0;
  pthread_mutex_unlock(&log_lock);
}

/* ---- requests in threads ---- */

struct job {
  struct udm_device *d;
  enum udm_op op;
  unsigned char value; /* writes fill 4 KiB with it */
  uint64_t off;
  unsigned char buf[4096];
  int err;
  pthread_t thread;
};

static void *job_run(void *opaque)
{
  struct job *j = opaque;
  if (j->op == UDM_OP_READ) {
    j->err = rd(j->d, j->buf, sizeof j->buf, j->off);
  } else if (j->op == UDM_OP_WRITE) {
    memset(j->buf, j->value, sizeof j->buf);
    j->err = wr(j->d, j->buf, sizeof j->buf, j->off, 0);
  } else {
    j->err = udm_device_flush(j->d) < 0 ? errno : 0;
  }
  return NULL;
}

static void job_start(struct job *j)
{
  if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
    perror("pthread_create");
    exit(1);
  }
}

/* Held counts from INFO ("<reads> <writes> <flushes>" after the segment words). */
static void held(struct udm_device *d, unsigned *r, unsigned *w, unsigned *f)
{
  char *s = status_of(d);
  *r = *w = *f = ~0u;
  if (!s || sscanf(s, "%*u %*u delay %u %u %u", r, w, f) != 3)
    fprintf(stderr, "unexpected status '%s'\n", s ? s : "(null)");
  free(s);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait (bounded) until the held counts reach at least R/W/F. */
static int wait_held(struct udm_device *d, unsigned r, unsigned w, unsigned f)
{
  double until = now_s() + 20;
  struct timespec pause = {0, 1000 * 1000};
  while (now_s() < until) {
    unsigned hr, hw, hf;
    held(d, &hr, &hw, &hf);
    if (hr >= r && hw >= w && hf >= f)
      return 1;
    nanosleep(&pause, NULL);
  }
  fprintf(stderr, "requests never became held (%u %u %u wanted)\n", r, w, f);
  check_failures++;
  return 0;
}

/* ---- tests ---- */

static void delay_sends_each_class_to_its_device(void)
{
  const char *rdisk = backing("r.img", SIZE, 1), *wdisk = backing("w.img", SIZE, 2);
  char t[900];
  snprintf(t, sizeof t, "0 1024 delay %s 16 1 %s 32 1", rdisk, wdisk);
  struct udm_device *d = make("slow", t);
  unsigned char buf[4096], w[4096];
  CHECK(rd(d, buf, sizeof buf, 4096) == 0);
  CHECK(buf[0] == pattern_byte(1, 16 * 512 + 4096) && buf[4095] == pattern_byte(1, 16 * 512 + 8191));
  fill_pattern(w, sizeof w, 3, 0);
  CHECK(wr(d, w, sizeof w, 4096, 0) == 0);
  unsigned char *f = file_bytes(wdisk, 32 * 512 + 4096, 4096);
  CHECK(memcmp(f, w, 4096) == 0);
  free(f);
  CHECK(file_has_pattern(rdisk, 0, SIZE, 1));
  CHECK(udm_device_discard(d, 4096, 0, 0) == 0);
  f = file_bytes(wdisk, 32 * 512, 4096);
  CHECK(f[0] == 0 && f[4095] == 0);
  free(f);
  CHECK(file_has_pattern(rdisk, 0, SIZE, 1));
  CHECK(udm_device_flush(d) == 0);
  CHECK_STATUS(d, "0 1024 delay 0 0 0\n");
  checked("delay: 6-argument form reads from <rdev> at <roffset>, writes and discards go "
          "to <wdev> at <woffset>; nothing held afterwards ('0 0 0')");
  test_drop(d);
}

static void delay_keeps_arrival_order_per_class(void)
{
  const char *disk = backing("o.img", SIZE, 4);
  char t[900];
  snprintf(t, sizeof t, "0 2048 recorder %s", disk);
  struct udm_device *rec = make("rec", t);
  struct udm_device *d = make("slow", "0 2048 delay udm:rec 0 2000");
  struct job jobs[8];
  log_reset();
  for (unsigned i = 0; i < 8; i++) {
    jobs[i] = (struct job){.d = d, .op = UDM_OP_WRITE, .value = (unsigned char)(i + 1)};
    job_start(&jobs[i]);
    wait_held(d, 0, i + 1, 0); /* the next one arrives strictly later */
  }
  for (unsigned i = 0; i < 8; i++) {
    pthread_join(jobs[i].thread, NULL);
    CHECK(jobs[i].err == 0);
  }
  pthread_mutex_lock(&log_lock);
  CHECK(log_len == 8);
  unsigned in_order = 0;
  for (unsigned i = 0; i < log_len; i++)
    in_order += log_entries[i].op == UDM_OP_WRITE && log_entries[i].first == i + 1;
  pthread_mutex_unlock(&log_lock);
  CHECK(in_order == 8);
  unsigned char *f = file_bytes(disk, 0, 4096);
  CHECK(f[0] == 8 && f[4095] == 8);
  free(f);
  checked("delay: 8 overlapping writes held 2 s each reach the device below in arrival "
          "order (%u of 8 in place) and the last one's data is on disk",
          in_order);
  test_drop(d);
  test_drop(rec);
}

static void delay_classes_do_not_wait_for_each_other(void)
{
  const char *disk = backing("c.img", SIZE, 5);
  char t[900];
  snprintf(t, sizeof t, "0 2048 delay %s 0 0 %s 0 60000", disk, disk);
  struct udm_device *d = make("slow", t);
  struct job w = {.d = d, .op = UDM_OP_WRITE, .value = 0xab, .off = 8192};
  job_start(&w);
  wait_held(d, 0, 1, 0);
  unsigned char buf[4096];
  CHECK(rd(d, buf, sizeof buf, 8192) == 0); /* not delayed, not behind the write */
  CHECK(buf[0] == pattern_byte(5, 8192));
  CHECK_STATUS(d, "0 2048 delay 0 1 0\n");
  CHECK(udm_device_suspend(d, 0) == 0);
  pthread_join(w.thread, NULL);
  CHECK(w.err == 0);
  CHECK(udm_device_resume(d) == 0);
  CHECK(rd(d, buf, sizeof buf, 8192) == 0);
  CHECK(buf[0] == 0xab);
  checked("delay: a read with delay 0 completes while a write is held (status '0 1 0')");
  test_drop(d);
}

static void delay_suspend_releases_held_io(void)
{
  const char *disk = backing("s.img", SIZE, 6);
  char t[900];
  snprintf(t, sizeof t, "0 2048 delay %s 0 60000", disk);
  struct udm_device *d = make("slow", t);
  struct job r = {.d = d, .op = UDM_OP_READ, .off = 4096};
  double t0 = now_s();
  job_start(&r);
  wait_held(d, 1, 0, 0);
  CHECK_STATUS(d, "0 2048 delay 1 0 0\n");
  /* Suspend drains in-flight I/O: it returns once the held read completed. */
  CHECK(udm_device_suspend(d, 0) == 0);
  pthread_join(r.thread, NULL);
  CHECK(r.err == 0);
  CHECK(r.buf[0] == pattern_byte(6, 4096) && r.buf[4095] == pattern_byte(6, 8191));
  CHECK(now_s() - t0 < 30);
  CHECK_STATUS(d, "0 2048 delay 0 0 0\n");
  CHECK(udm_device_resume(d) == 0);
  checked("delay: a read held for 60 s completes with its data when the device is "
          "suspended (after %.2f s)",
          now_s() - t0);

  /* After resume requests are held again, and a table reload releases them too. */
  struct job w = {.d = d, .op = UDM_OP_WRITE, .value = 0x5a, .off = 0};
  job_start(&w);
  wait_held(d, 0, 1, 0);
  snprintf(t, sizeof t, "0 2048 delay %s 0 0", disk);
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
  pthread_join(w.thread, NULL);
  CHECK(w.err == 0);
  unsigned char *f = file_bytes(disk, 0, 4096);
  CHECK(f[0] == 0x5a && f[4095] == 0x5a);
  free(f);
  checked("delay: after resume writes are held again; loading and resuming a new table "
          "releases the held write, whose data lands");
  test_drop(d);
}

static void delay_flushes_have_their_own_class(void)
{
  const char *disk = backing("f.img", SIZE, 7), *fdisk = backing("ff.img", SIZE, 8);
  char t[900];
  snprintf(t, sizeof t, "0 2048 recorder %s", fdisk);
  struct udm_device *rec = make("rec", t);
  snprintf(t, sizeof t, "0 2048 delay %s 0 0 %s 0 0 udm:rec 0 60000", disk, disk);
  struct udm_device *d = make("slow", t);
  log_reset();
  struct job fl = {.d = d, .op = UDM_OP_FLUSH};
  job_start(&fl);
  wait_held(d, 0, 0, 1);
  CHECK_STATUS(d, "0 2048 delay 0 0 1\n");
  unsigned char buf[512];
  CHECK(wr(d, buf, sizeof buf, 0, 0) == 0); /* writes are not behind the flush */
  CHECK(udm_device_suspend(d, 0) == 0);
  pthread_join(fl.thread, NULL);
  CHECK(fl.err == 0);
  CHECK(udm_device_resume(d) == 0);
  pthread_mutex_lock(&log_lock);
  CHECK(log_len == 1 && log_entries[0].op == UDM_OP_FLUSH);
  pthread_mutex_unlock(&log_lock);
  checked("delay: 9-argument form holds flushes in their own class ('0 0 1') and sends "
          "them to <fdev>; writes pass meanwhile");
  test_drop(d);
  test_drop(rec);
}

static void delay_table_text_is_the_kernels(void)
{
  const char *a = backing("a.img", SIZE, 1), *b = backing("b.img", SIZE, 2),
             *c = backing("c.img", SIZE, 3);
  char t[900], want[1000];
  snprintf(t, sizeof t, "0 2048 delay %s 0 100", a);
  struct udm_device *d = make("slow", t);
  snprintf(want, sizeof want, "%s\n", t);
  CHECK_TABLE(d, want);
  CHECK_STATUS(d, "0 2048 delay 0 0 0\n");
  check_round_trip(d);
  test_drop(d);
  snprintf(t, sizeof t, "0 1024 delay %s 8 100 %s 16 0", a, b);
  d = make("slow", t);
  snprintf(want, sizeof want, "%s\n", t);
  CHECK_TABLE(d, want);
  check_round_trip(d);
  test_drop(d);
  snprintf(t, sizeof t, "0 1024 delay %s 8 100 %s 16 0 %s 24 4294967295", a, b, c);
  d = make("slow", t);
  snprintf(want, sizeof want, "%s\n", t);
  CHECK_TABLE(d, want);
  check_round_trip(d);
  test_drop(d);
  checked("delay: TABLE prints the 3, 6 or 9 words given; INFO is '<reads> <writes> "
          "<flushes>' held; tables reload to themselves");
}

static void delay_rejects_bad_tables(void)
{
  const char *p = backing("t.img", SIZE, 9), *small = backing("small.img", 4096, 9);
  static const char *const arity[] = {"", "X 0", "X 0 1 X", "X 0 1 X 0", "X 0 1 X 0 1 X",
                                      "X 0 1 X 0 1 X 0 1 X"};
  char t[900], args[800];
  for (size_t i = 0; i < sizeof arity / sizeof arity[0]; i++) {
    char *o = args;
    *o = '\0';
    for (const char *s = arity[i]; *s; s++)
      o += *s == 'X' ? sprintf(o, "%s", p) : sprintf(o, "%c", *s);
    snprintf(t, sizeof t, "0 2048 delay %s", args);
    CHECK_BAD_TABLE(t, "expected 3, 6 or 9 arguments");
  }
  static const struct {
    const char *fmt, *frag;
  } cases[] = {
      {"%s x 10", "invalid read device sector 'x'"},
      {"%s 0 -1", "invalid read delay '-1'"},
      {"%s 0 1.5", "invalid read delay '1.5'"},
      {"%s 0 4294967296", "invalid read delay '4294967296'"},
      {"%s 0 10 %s 1x 10", "invalid write device sector '1x'"},
      {"%s 0 10 %s 0 10ms", "invalid write delay '10ms'"},
      {"%s 0 10 %s 0 10 %s 0 +5", "invalid flush delay '+5'"},
      {"%s 2048 10", "too small"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(args, sizeof args, cases[i].fmt, p, p, p);
    snprintf(t, sizeof t, "0 2048 delay %s", args);
    CHECK_BAD_TABLE(t, cases[i].frag);
  }
  snprintf(t, sizeof t, "0 2048 delay %s 0 10 %s 0 10", p, small);
  CHECK_BAD_TABLE(t, "too small");
  struct udm_device *b = udm_device_create(ctx, "bad", NULL, 0);
  snprintf(t, sizeof t, "0 2048 delay %s 0 10 /nonexistent/w 0 10", p);
  CHECK(udm_table_load(b, t) < 0);
  CHECK_CONTAINS(udm_errmsg(), "/nonexistent/w");
  test_drop(b);
  checked("delay: wrong arity, bad offsets and delays of each class (signs, fractions, "
          "units, overflow), short and missing devices are refused with a specific "
          "message");
}

int main(void)
{
  setup();
  if (udm_target_register(ctx, &recorder_type) < 0) {
    fprintf(stderr, "register recorder: %s\n", udm_errmsg());
    return 1;
  }
  delay_sends_each_class_to_its_device();
  delay_table_text_is_the_kernels();
  delay_rejects_bad_tables();
  delay_classes_do_not_wait_for_each_other();
  delay_suspend_releases_held_io();
  delay_flushes_have_their_own_class();
  delay_keeps_arrival_order_per_class();
  return finish("test-delay");
}
