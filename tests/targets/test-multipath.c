/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * multipath over stacked udm devices: two linear devices over one file are
 * two paths to the same data; loading "error" into one fails that path and
 * loading linear back (plus reinstate_path, or the checker) recovers it.
 * Proves: table and status text for the four selectors, table round trip,
 * bad tables and messages refused with nothing changed, failover with no
 * error reaching the caller, path selection order, queue_if_no_path
 * holding I/O until reinstate_path, fail_if_no_path failing it, a suspend
 * and a table swap with I/O held, events on path changes, and the
 * udm_path_checker extension.
 */
#include <pthread.h>
#include <time.h>

#include "targets-test.h"

#define SIZE (1024 * 1024)
#define SECTORS (SIZE / 512)

static const char *file_a, *file_b;
static struct udm_device *p1, *p2;
static char paths_rr[256];

static void set_table(struct udm_device *d, const char *table)
{
  if (udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "reload '%s': %s\n", table, udm_errmsg());
    check_failures++;
  }
}

static void path_down(struct udm_device *d)
{
  char t[64];
  snprintf(t, sizeof t, "0 %d error", SECTORS);
  set_table(d, t);
}

static void path_up(struct udm_device *d, const char *file)
{
  char t[400];
  snprintf(t, sizeof t, "0 %d linear %s 0", SECTORS, file);
  set_table(d, t);
}

static struct udm_device *make_mp(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct udm_device *make_mp(const char *name, const char *fmt, ...)
{
  char t[1024];
  int n = snprintf(t, sizeof t, "0 %d multipath ", SECTORS);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t + n, sizeof t - (size_t)n, fmt, ap);
  va_end(ap);
  return make(name, t);
}

static uint32_t events(struct udm_device *d)
{
  struct udm_info i;
  return udm_device_info(d, &i) == 0 ? i.event_nr : 0;
}

static void text_of_each_selector(void)
{
  struct udm_device *m = make_mp("mp", "0 0 1 1 round-robin 0 2 1 udm:p1 1 udm:p2 1");
  CHECK_TABLE(m, "0 2048 multipath 0 0 1 1 round-robin 0 2 1 udm:p1 1 udm:p2 1 \n");
  /* Before any I/O no group was chosen yet: queue_io 1, group E. */
  CHECK_STATUS(m, "0 2048 multipath 2 1 0 0 1 1 E 0 2 0 udm:p1 A 0 udm:p2 A 0 \n");
  unsigned char b[4096];
  CHECK(rd(m, b, sizeof b, 0) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 udm:p1 A 0 udm:p2 A 0 \n");
  check_round_trip(m);
  test_drop(m);

  /* Repeat counts above 1 act and print as 1, as the kernel's since 4.x. */
  m = make_mp("mp", "3 queue_if_no_path pg_init_retries 5 0 2 2 "
                    "queue-length 0 1 1 udm:p1 7 "
                    "service-time 0 2 2 udm:p1 1 50 udm:p2 0 0");
  CHECK_TABLE(m, "0 2048 multipath 3 queue_if_no_path pg_init_retries 5 0 2 2 "
                 "queue-length 0 1 1 udm:p1 1 service-time 0 2 2 udm:p1 1 50 "
                 "udm:p2 0 0 \n");
  CHECK_STATUS(m, "0 2048 multipath 2 1 0 0 2 2 E 0 1 1 udm:p1 A 0 0 "
                  "E 0 2 2 udm:p1 A 0 0 50 udm:p2 A 0 0 0 \n");
  check_round_trip(m);
  test_drop(m);

  m = make_mp("mp", "5 pg_init_delay_msecs 0 retain_attached_hw_handler "
                    "udm_path_checker 1000 0 1 1 historical-service-time 2 900 3 2 1 "
                    "udm:p1 1 udm:p2 4");
  CHECK_TABLE(m, "0 2048 multipath 5 pg_init_delay_msecs 0 retain_attached_hw_handler "
                 "udm_path_checker 1000 0 1 1 historical-service-time 2 900 3 2 1 "
                 "udm:p1 0 udm:p2 0 \n");
  CHECK_STATUS(m, "0 2048 multipath 2 1 0 0 1 1 E 2 900 3 2 3 "
                  "udm:p1 A 0 1024 0 0 udm:p2 A 0 1024 0 0 \n");
  check_round_trip(m);
  test_drop(m);

  /* No groups at all: every request fails, or waits with queue_if_no_path. */
  m = make_mp("mp", "0 0 0 0");
  CHECK_TABLE(m, "0 2048 multipath 0 0 0 0 \n");
  CHECK(rd(m, b, sizeof b, 0) == EIO);
  test_drop(m);
  checked("table and status text of each selector, before and after I/O; round trips");
}

static void bad_tables(void)
{
  static const char *const bad[][2] = {
      {"0 1 emc 1 1 round-robin 0 1 1 udm:p1 1", "hardware handler 'emc' is not supported"},
      {"0 0 1 1 fifo 0 1 1 udm:p1 1", "unknown path selector type 'fifo'"},
      {"0 0 1 1 round-robin 1 x 1 1 udm:p1 1", "round-robin takes no selector arguments"},
      {"0 0 1 1 round-robin 0 1 2 udm:p1 1 2", "round-robin ps: incorrect number of arguments"},
      {"0 0 1 1 round-robin 0 1 1 udm:p1 x", "round-robin ps: invalid repeat count 'x'"},
      {"0 0 1 1 service-time 0 1 2 udm:p1 1 101", "invalid relative_throughput value '101'"},
      {"0 0 1 1 historical-service-time 1 1024 1 0 udm:p1", "invalid base weight '1024'"},
      {"0 0 1 1 round-robin 0 2 1 udm:p1 1", "not enough path parameters"},
      {"0 0 2 1 round-robin 0 1 1 udm:p1 1", "priority group count mismatch"},
      {"0 0 1 1 round-robin 0 1 1 udm:p1 1 round-robin 0 1 1 udm:p2 1",
       "priority group count mismatch"},
      {"0 0 1 0 round-robin 0 1 1 udm:p1 1", "invalid initial priority group 0"},
      {"0 0 0 1", "invalid initial priority group 1"},
      {"1 frob 0 1 1 round-robin 0 1 1 udm:p1 1", "unrecognised multipath feature 'frob'"},
      {"2 pg_init_retries 0 0 1 1 round-robin 0 1 1 udm:p1 1",
       "pg_init_retries must be between 1 and 50"},
      {"2 pg_init_delay_msecs 60001 0 1 1 round-robin 0 1 1 udm:p1 1",
       "pg_init_delay_msecs must be between 0 and 60000"},
      {"2 queue_mode bio 0 1 1 round-robin 0 1 1 udm:p1 1", "queue_mode 'bio' is not supported"},
      {"1 queue_if_no_path", "invalid number of hardware handler args: argument missing"},
      {"0 0 1 1 round-robin 0 0 0", "invalid number of paths '0'"},
  };
  struct udm_device *m = make_mp("mp", "1 queue_if_no_path 0 1 1 round-robin 0 1 1 udm:p1 1");
  char *before = table_of(m), *status_before = status_of(m);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char t[512];
    snprintf(t, sizeof t, "0 %d multipath %s", SECTORS, bad[i][0]);
    CHECK_BAD_TABLE(t, bad[i][1]);
    /* The same table refused by a live device leaves it as it was. */
    CHECK(udm_table_load(m, t) < 0);
    struct udm_info info;
    CHECK(udm_device_info(m, &info) == 0 && !info.inactive_table && !info.suspended);
  }
  CHECK_TABLE(m, before);
  CHECK_STATUS(m, status_before);
  free(before);
  free(status_before);
  /* A path that cannot be opened. */
  struct udm_device *b = udm_device_create(ctx, "bad", NULL, 0);
  char t[200];
  snprintf(t, sizeof t, "0 %d multipath 0 0 1 1 round-robin 0 1 1 udm:nosuch 1", SECTORS);
  CHECK(b && udm_table_load(b, t) < 0);
  CHECK_CONTAINS(udm_errmsg(), "nosuch");
  test_drop(b);
  test_drop(m);
  checked("%zu bad tables refused with a message naming the problem; the live one kept",
          sizeof bad / sizeof bad[0]);
}

static void messages(void)
{
  struct udm_device *m = make_mp("mp", "0 0 2 1 round-robin 0 1 1 udm:p1 1 "
                                       "round-robin 0 1 1 udm:p2 1");
  unsigned char *b = malloc(SIZE), *want = file_bytes(file_a, 0, SIZE);
  uint32_t ev = events(m);
  CHECK_REPLY(m, "fail_path udm:p1", "");
  CHECK(events(m) == ev + 1);
  CHECK_STATUS(m, "0 2048 multipath 2 1 0 0 2 1 E 0 1 0 udm:p1 F 1 E 0 1 0 udm:p2 A 0 \n");
  CHECK_REPLY(m, "fail_path /dev/mapper/p1", ""); /* the same device; already failed */
  CHECK(events(m) == ev + 1);
  /* Group 1 has no usable path: the I/O goes to group 2. */
  CHECK(rd(m, b, 4096, 0) == 0 && memcmp(b, want, 4096) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 udm:p1 F 1 A 0 1 0 udm:p2 A 0 \n");
  CHECK_REPLY(m, "reinstate_path udm:p1", "");
  CHECK(events(m) == ev + 2);
  /* The current group stays current while it has a path. */
  CHECK(rd(m, b, 4096, 0) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 udm:p1 A 1 A 0 1 0 udm:p2 A 0 \n");
  CHECK_REPLY(m, "switch_group 1", "");
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 1 E 0 1 0 udm:p1 A 1 E 0 1 0 udm:p2 A 0 \n");
  CHECK(rd(m, b, 4096, 0) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 1 A 0 1 0 udm:p1 A 1 E 0 1 0 udm:p2 A 0 \n");
  CHECK_REPLY(m, "disable_group 1", "");
  CHECK(rd(m, b, 4096, 0) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 2 D 0 1 0 udm:p1 A 1 A 0 1 0 udm:p2 A 0 \n");
  CHECK_REPLY(m, "enable_group 1", "");
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 1 E 0 1 0 udm:p1 A 1 E 0 1 0 udm:p2 A 0 \n");
  /* A disabled group is still used when no other has a path. */
  CHECK_REPLY(m, "disable_group 1", "");
  CHECK_REPLY(m, "FAIL_PATH udm:p2", ""); /* names are case-blind, as dm's */
  CHECK(rd(m, b, 4096, 0) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 2 1 D 0 1 0 udm:p1 A 1 E 0 1 0 udm:p2 F 1 \n");
  CHECK_REPLY(m, "reinstate_path udm:p2", "");
  CHECK_REPLY(m, "queue_if_no_path", "");
  CHECK_TABLE(m, "0 2048 multipath 1 queue_if_no_path 0 2 1 round-robin 0 1 1 udm:p1 1 "
                 "round-robin 0 1 1 udm:p2 1 \n");
  CHECK_REPLY(m, "fail_if_no_path", "");

  char *st = status_of(m), *tb = table_of(m);
  ev = events(m);
  CHECK_MESSAGE_FAILS(m, "fail_path udm:p3", "no path 'udm:p3' in this multipath table");
  CHECK_MESSAGE_FAILS(m, "reinstate_path", "invalid multipath message 'reinstate_path'");
  CHECK_MESSAGE_FAILS(m, "switch_group 3", "invalid priority group number '3'");
  CHECK_MESSAGE_FAILS(m, "switch_group 0", "invalid priority group number '0'");
  CHECK_MESSAGE_FAILS(m, "enable_group 1x", "invalid priority group number '1x'");
  CHECK_MESSAGE_FAILS(m, "frob 1", "unrecognised multipath message 'frob'");
  CHECK_MESSAGE_FAILS(m, "queue_if_no_path 1", "unrecognised multipath message 'queue_if_no_path'");
  CHECK_STATUS(m, st);
  CHECK_TABLE(m, tb);
  CHECK(events(m) == ev);
  free(st);
  free(tb);
  /* Refused while suspended, as the kernel refuses them. */
  CHECK(udm_device_suspend(m, 0) == 0);
  char *reply = NULL;
  CHECK(udm_device_message(m, 0, "fail_path udm:p1", &reply) < 0 && errno == EBUSY);
  free(reply);
  CHECK(udm_device_resume(m) == 0);
  CHECK_REPLY(m, "fail_path udm:p1", "");
  free(b);
  free(want);
  test_drop(m);
  checked("messages: fail/reinstate_path, disable/enable/switch_group, queue and fail_if_no_path; "
          "events; bad ones refused with nothing changed; refused while suspended");
}

/* Round-robin alternates; service-time prefers the faster; failover is silent. */
static void selection_and_failover(void)
{
  /* Two paths to *different* data only to see which path answered. */
  struct udm_device *q = make("q", paths_rr);
  unsigned char *b = malloc(SIZE), *a = file_bytes(file_a, 0, SIZE),
                *bb = file_bytes(file_b, 0, SIZE);
  char t[600];
  snprintf(t, sizeof t, "0 %d multipath 0 0 1 1 round-robin 0 2 1 %s 1 udm:q 1", SECTORS,
           file_a);
  struct udm_device *m = make("mp", t);
  CHECK(rd(m, b, 4096, 0) == 0 && memcmp(b, a, 4096) == 0);
  CHECK(rd(m, b, 4096, 0) == 0 && memcmp(b, bb, 4096) == 0);
  CHECK(rd(m, b, 4096, 0) == 0 && memcmp(b, a, 4096) == 0);
  test_drop(m);
  snprintf(t, sizeof t, "0 %d multipath 0 0 1 1 service-time 0 2 2 %s 1 0 udm:q 1 5",
           SECTORS, file_a);
  m = make("mp", t);
  for (int i = 0; i < 3; i++)
    CHECK(rd(m, b, 4096, 0) == 0 && memcmp(b, bb, 4096) == 0);
  test_drop(m);
  test_drop(q);
  checked("round-robin alternates; service-time idle picks the higher relative throughput");

  /* Same data on both paths from here on. */
  m = make_mp("mp", "0 0 1 1 round-robin 0 2 1 udm:p1 1 udm:p2 1");
  uint32_t ev = events(m);
  path_down(p1);
  fill_pattern(b, SIZE, 77, 0);
  for (unsigned off = 0; off < SIZE; off += 64 * 1024)
    CHECK(wr(m, b + off, 64 * 1024, off, 0) == 0);
  CHECK(file_has_pattern(file_a, 0, SIZE, 77));
  unsigned char *on_disk = file_bytes(file_a, 0, SIZE);
  CHECK(rd(m, b, SIZE, 0) == 0 && memcmp(b, on_disk, SIZE) == 0);
  free(on_disk);
  CHECK(events(m) > ev);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 udm:p1 F 1 udm:p2 A 0 \n");
  /* A flush too finds the path that works. */
  CHECK(udm_device_flush(m) == 0);
  path_up(p1, file_a);
  CHECK_REPLY(m, "reinstate_path udm:p1", "");
  path_down(p2);
  CHECK(rd(m, b, SIZE, 0) == 0 && file_has_pattern(file_a, 0, SIZE, 77));
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 udm:p1 A 1 udm:p2 F 1 \n");
  /* The last path fails too: without queue_if_no_path the caller sees EIO. */
  path_down(p1);
  CHECK(rd(m, b, 4096, 0) == EIO);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 udm:p1 F 2 udm:p2 F 1 \n");
  CHECK(rd(m, b, 4096, 0) == EIO); /* now no group is chosen */
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 E 0 2 0 udm:p1 F 2 udm:p2 F 1 \n");
  path_up(p1, file_a);
  path_up(p2, file_a);
  test_drop(m);
  free(a);
  free(bb);
  free(b);
  checked("a failing path is failed and the request goes to another: no error reaches "
          "the caller; EIO once no path is left");
}

struct pending {
  struct udm_device *d;
  unsigned char *buf;
  int err;
  int done;
  pthread_mutex_t lock;
  pthread_t thread;
};

static void *pending_read(void *arg)
{
  struct pending *p = arg;
  int r = rd(p->d, p->buf, 64 * 1024, 0);
  pthread_mutex_lock(&p->lock);
  p->err = r;
  p->done = 1;
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

static void start_read(struct pending *p, struct udm_device *d)
{
  *p = (struct pending){.d = d, .buf = malloc(64 * 1024)};
  pthread_mutex_init(&p->lock, NULL);
  pthread_create(&p->thread, NULL, pending_read, p);
}

static int is_done(struct pending *p)
{
  pthread_mutex_lock(&p->lock);
  int d = p->done;
  pthread_mutex_unlock(&p->lock);
  return d;
}

/* Still waiting 300 ms after it started: it is held (not a timing claim). */
static int still_held(struct pending *p)
{
  nanosleep(&(struct timespec){0, 300000000}, NULL);
  return !is_done(p);
}

/* The read's errno, or -1 when it succeeded with the wrong bytes. */
static int finish_read(struct pending *p)
{
  pthread_join(p->thread, NULL);
  pthread_mutex_destroy(&p->lock);
  int r = p->err;
  if (r == 0) {
    unsigned char *want = file_bytes(file_a, 0, 64 * 1024);
    if (memcmp(p->buf, want, 64 * 1024) != 0)
      r = -1;
    free(want);
  }
  free(p->buf);
  return r;
}

static void queueing(void)
{
  struct udm_device *m =
      make_mp("mp", "1 queue_if_no_path 0 1 1 round-robin 0 2 1 udm:p1 1 udm:p2 1");
  struct pending r;

  /* All paths down: the read waits, and completes after reinstate_path. */
  path_down(p1);
  path_down(p2);
  start_read(&r, m);
  CHECK(still_held(&r));
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 E 0 2 0 udm:p1 F 1 udm:p2 F 1 \n");
  path_up(p2, file_a);
  CHECK_REPLY(m, "reinstate_path udm:p2", "");
  CHECK(finish_read(&r) == 0);
  checked("queue_if_no_path: I/O waits with every path down, completes after reinstate_path");

  /* fail_if_no_path fails what waits. */
  path_down(p2);
  start_read(&r, m);
  CHECK(still_held(&r));
  CHECK_REPLY(m, "fail_if_no_path", "");
  CHECK(finish_read(&r) == EIO);
  CHECK_REPLY(m, "queue_if_no_path", "");
  checked("fail_if_no_path fails the held I/O with EIO");

  /* A suspend completes with I/O held; resume keeps it held; then a path returns. */
  start_read(&r, m);
  CHECK(still_held(&r));
  CHECK(udm_device_suspend(m, 0) == 0);
  CHECK(udm_device_resume(m) == 0);
  CHECK(still_held(&r));
  path_up(p1, file_a);
  CHECK_REPLY(m, "reinstate_path udm:p1", "");
  CHECK(finish_read(&r) == 0);
  checked("suspend and resume with I/O held: it stays held, completes once a path returns");

  /* A new table swapped in while I/O is held maps it (dmsetup's noflush reload). */
  path_down(p1);
  start_read(&r, m);
  CHECK(still_held(&r));
  CHECK(udm_device_suspend(m, 0) == 0);
  char t[600];
  snprintf(t, sizeof t, "0 %d multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 %s 1",
           SECTORS, file_a);
  CHECK(udm_table_load(m, t) == 0);
  CHECK(is_done(&r) == 0);
  CHECK(udm_device_resume(m) == 0);
  CHECK(finish_read(&r) == 0);
  path_up(p1, file_a);
  path_up(p2, file_a);
  test_drop(m);
  checked("a table loaded and resumed while I/O is held maps the held I/O");
}

static void checker(void)
{
  struct udm_device *m = make_mp("mp", "3 queue_if_no_path udm_path_checker 20 0 1 1 "
                                       "round-robin 0 2 1 udm:p1 1 udm:p2 1");
  path_down(p1);
  path_down(p2);
  struct pending r;
  start_read(&r, m);
  CHECK(still_held(&r));
  /* The checker does not reinstate paths that still fail. */
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 E 0 2 0 udm:p1 F 1 udm:p2 F 1 \n");
  uint32_t ev = events(m);
  path_up(p2, file_a);
  /* It reinstates p2 on its own: the held read completes, an event is raised. */
  CHECK(udm_device_wait_event(m, ev, 10000) == 0);
  CHECK(finish_read(&r) == 0);
  CHECK_STATUS(m, "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 udm:p1 F 1 udm:p2 A 1 \n");
  path_up(p1, file_a);
  test_drop(m);
  checked("udm_path_checker reinstates a path that answers again; held I/O completes");
}

int main(void)
{
  setup();
  file_a = backing("a.img", SIZE, 11);
  file_b = backing("b.img", SIZE, 22);
  char t[400];
  snprintf(t, sizeof t, "0 %d linear %s 0", SECTORS, file_a);
  p1 = make("p1", t);
  p2 = make("p2", t);
  snprintf(paths_rr, sizeof paths_rr, "0 %d linear %s 0", SECTORS, file_b);
  text_of_each_selector();
  bad_tables();
  messages();
  selection_and_failover();
  queueing();
  checker();
  test_drop(p1);
  test_drop(p2);
  return finish("test-multipath");
}
