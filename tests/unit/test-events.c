/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device events: a target raises one with udm_target_event, and
 * udm_device_wait_event wakes on it, times out without one, and fails with
 * ENXIO when the device goes away.  A test target raises an event for its
 * message "event" (no built-in target raises events, as in the kernel's
 * counterparts).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <udm/target.h>

#include "check.h"
#include "testdev.h"

static struct udm_ctx *ctx;

static int evt_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  (void)argv;
  if (argc) {
    udm_target_error(ti, "evt takes no arguments");
    return -EINVAL;
  }
  return 0;
}

static int evt_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti;
  if (io->buf)
    memset(io->buf, 0, io->nr_sectors * UDM_SECTOR_SIZE);
  return UDM_MAPIO_DONE;
}

static int evt_message(struct udm_target *ti, unsigned argc, char **argv,
                       struct udm_buf *out)
{
  (void)out;
  if (argc != 1 || strcmp(argv[0], "event") != 0) {
    udm_target_error(ti, "the only message is 'event'");
    return -EINVAL;
  }
  udm_target_event(ti);
  return 0;
}

static const struct udm_target_type evt_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "evt",
    .version = {1, 0, 0},
    .ctr = evt_ctr,
    .map = evt_map,
    .message = evt_message,
};

static uint32_t event_nr(struct udm_device *d)
{
  struct udm_info info;
  CHECK(udm_device_info(d, &info) == 0);
  return info.event_nr;
}

static long ms_since(const struct timespec *t0)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void nap_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

struct waiter {
  struct udm_device *d;
  uint32_t nr;
  int timeout_ms;
  atomic_int done;
  int result, err;
  char msg[256];
};

static void *wait_thread(void *arg)
{
  struct waiter *w = arg;
  w->result = udm_device_wait_event(w->d, w->nr, w->timeout_ms);
  w->err = w->result < 0 ? udm_errno() : 0;
  snprintf(w->msg, sizeof w->msg, "%s", w->result < 0 ? udm_errmsg() : "");
  atomic_store(&w->done, 1);
  return NULL;
}

static void a_message_event_wakes_a_waiter(void)
{
  struct udm_device *d = test_make(ctx, "ev", "0 8 evt", 0);
  uint32_t nr = event_nr(d);
  CHECK(nr == 0);
  struct waiter w = {.d = d, .nr = nr, .timeout_ms = -1};
  pthread_t th;
  pthread_create(&th, NULL, wait_thread, &w);
  nap_ms(150);
  CHECK(atomic_load(&w.done) == 0); /* nothing happened yet */
  char *reply = NULL;
  CHECK(udm_device_message(d, 0, "event", &reply) == 0);
  free(reply);
  pthread_join(th, NULL);
  CHECK(w.result == 0);
  CHECK(event_nr(d) == nr + 1);
  /* The old number is now in the past: waiting on it returns at once. */
  CHECK(udm_device_wait_event(d, nr, -1) == 0);
  /* Several waiters on one device all wake on one event. */
  struct waiter w2[3];
  pthread_t th2[3];
  for (int i = 0; i < 3; i++) {
    w2[i] = (struct waiter){.d = d, .nr = nr + 1, .timeout_ms = 10000};
    pthread_create(&th2[i], NULL, wait_thread, &w2[i]);
  }
  nap_ms(100);
  CHECK(udm_device_message(d, 0, "event", &reply) == 0);
  free(reply);
  for (int i = 0; i < 3; i++) {
    pthread_join(th2[i], NULL);
    CHECK(w2[i].result == 0);
  }
  CHECK(event_nr(d) == nr + 2);
  /* A table swap is no event (as in the kernel). */
  CHECK(udm_table_load(d, "0 16 evt") == 0 && udm_device_resume(d) == 0);
  CHECK(event_nr(d) == nr + 2);
  test_drop(d);
}

static void a_wait_times_out_without_an_event(void)
{
  struct udm_device *d = test_make(ctx, "quiet", "0 8 evt", 0);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(udm_device_wait_event(d, event_nr(d), 200) == -1);
  CHECK(udm_errno() == ETIMEDOUT);
  CHECK_CONTAINS(udm_errmsg(), "wait quiet: no event after event 0 within 200 ms");
  long took = ms_since(&t0);
  CHECK(took >= 190 && took < 5000);
  /* 0: only a check. */
  CHECK(udm_device_wait_event(d, event_nr(d), 0) == -1 && udm_errno() == ETIMEDOUT);
  CHECK(udm_device_wait_event(d, event_nr(d) + 7, 0) == 0);
  CHECK(udm_device_wait_event(d, 0, -2) == -1 && udm_errno() == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "invalid timeout -2 ms");
  test_drop(d);
}

static void removal_ends_a_wait_with_enxio(void)
{
  struct udm_device *d = test_make(ctx, "going", "0 8 evt", 0);
  struct waiter w = {.d = d, .nr = event_nr(d), .timeout_ms = -1};
  pthread_t th;
  pthread_create(&th, NULL, wait_thread, &w);
  nap_ms(100);
  CHECK(atomic_load(&w.done) == 0);
  CHECK(udm_device_remove(d, 0) == 0);
  pthread_join(th, NULL);
  CHECK(w.result == -1 && w.err == ENXIO);
  CHECK_CONTAINS(w.msg, "wait going: the device was removed");
  /* A removed device is not waited on at all. */
  CHECK(udm_device_wait_event(d, 0, -1) == -1 && udm_errno() == ENXIO);
  udm_device_unref(d);
}

int main(void)
{
  ctx = udm_ctx_new();
  if (!ctx || udm_target_register(ctx, &evt_type) < 0) {
    fprintf(stderr, "setup: %s\n", udm_errmsg());
    return 1;
  }
  a_message_event_wakes_a_waiter();
  a_wait_times_out_without_an_event();
  removal_ends_a_wait_with_enxio();
  udm_ctx_free(ctx);
  return check_summary("test-events");
}
