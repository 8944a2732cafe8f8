/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mirror: the resync copies the default leg to the others (all of it, only
 * the regions a disk log calls dirty, or none with nosync), writes land on
 * every leg, the disk log is the kernel's format, reads survive a failing
 * leg, leg failures with and without handle_errors / keep_log, held writes
 * go to the reloaded table, the resync rate can be set, status and table
 * text are dm-raid1's, and bad tables are refused with the kernel's words.
 */
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "targets-test.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define SECTORS(bytes) ((bytes) / 512u)

static char table[1024];

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t event_nr(struct udm_device *d)
{
  struct udm_info info;
  CHECK(udm_device_info(d, &info) == 0);
  return info.event_nr;
}

/* The "<in sync>/<regions>" word of a mirror's status: true when they are equal. */
static int status_in_sync(struct udm_device *d)
{
  char *s = status_of(d), *save = NULL;
  int done = 0;
  for (char *w = s ? strtok_r(s, " ", &save) : NULL; w; w = strtok_r(NULL, " ", &save)) {
    unsigned long long x, y;
    char junk;
    if (sscanf(w, "%llu/%llu%c", &x, &y, &junk) == 2) {
      done = x == y;
      break;
    }
  }
  free(s);
  return done;
}

/* Wait until the status says every region is in sync. */
static void wait_in_sync(struct udm_device *d)
{
  for (int i = 0; i < 2000; i++) {
    if (status_in_sync(d))
      return;
    udm_device_wait_event(d, event_nr(d), 10);
  }
  fprintf(stderr, "mirror never got in sync\n");
  check_failures++;
}

static int files_equal(const char *a, const char *b, size_t len)
{
  unsigned char *x = file_bytes(a, 0, len), *y = file_bytes(b, 0, len);
  int eq = memcmp(x, y, len) == 0;
  free(x);
  free(y);
  return eq;
}

static void mirror_resync_copies_default_leg(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 2);
  snprintf(table, sizeof table, "0 2048 mirror core 1 256 2 %s 0 %s 0", a, b);
  struct udm_device *d = udm_device_create(ctx, "m", NULL, 0);
  CHECK(udm_table_load(d, table) == 0);
  uint32_t ev = event_nr(d);
  CHECK(udm_device_resume(d) == 0);
  CHECK(udm_device_wait_event(d, ev, 20000) == 0); /* "in sync" is an event */
  CHECK(file_has_pattern(b, 0, MiB, 1));
  snprintf(table, sizeof table, "0 2048 mirror 2 %s %s 8/8 1 AA 1 core\n", a, b);
  CHECK_STATUS(d, table);
  snprintf(table, sizeof table, "0 2048 mirror core 1 256 2 %s 0 %s 0\n", a, b);
  CHECK_TABLE(d, table);
  check_round_trip(d);
  checked("mirror: a new core-log mirror copies leg 0 onto leg 1, raises an event when "
          "in sync, and prints dm-raid1's status and table");

  unsigned char buf[64 * KiB], back[64 * KiB];
  fill_pattern(buf, sizeof buf, 7, 0);
  CHECK(wr(d, buf, sizeof buf, 100 * KiB, 0) == 0); /* crosses regions 0 and 1 */
  CHECK(rd(d, back, sizeof back, 100 * KiB) == 0);
  CHECK(memcmp(buf, back, sizeof buf) == 0);
  unsigned char *fa = file_bytes(a, 100 * KiB, sizeof buf), *fb = file_bytes(b, 100 * KiB, sizeof buf);
  CHECK(memcmp(fa, buf, sizeof buf) == 0 && memcmp(fb, buf, sizeof buf) == 0);
  free(fa);
  free(fb);
  CHECK(udm_device_flush(d) == 0);
  CHECK(udm_device_discard(d, 128 * KiB, 512 * KiB, 0) == 0);
  CHECK(udm_device_write_zeroes(d, 8 * KiB, 64 * KiB, 0) == 0);
  CHECK(files_equal(a, b, MiB));
  checked("mirror: writes, flushes, discards and write-zeroes reach both legs");
  test_drop(d);
}

static void mirror_nosync_copies_nothing(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 2);
  snprintf(table, sizeof table, "0 2048 mirror core 2 256 nosync 2 %s 0 %s 0", a, b);
  struct udm_device *d = make("m", table);
  snprintf(table, sizeof table, "0 2048 mirror 2 %s %s 8/8 1 AA 1 core\n", a, b);
  CHECK_STATUS(d, table);
  test_drop(d);
  CHECK(file_has_pattern(b, 0, MiB, 2));
  checked("mirror: nosync leaves the legs alone and starts in sync");
}

static void set_bytes(const char *path, uint64_t off, const void *p, size_t n)
{
  int fd = open(path, O_WRONLY);
  CHECK(fd >= 0 && pwrite(fd, p, n, (off_t)off) == (ssize_t)n);
  close(fd);
}

static void mirror_disk_log_kernel_format(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 2);
  const char *log = backing("log.img", 64 * KiB, 3);
  snprintf(table, sizeof table, "0 2048 mirror disk 2 %s 128 2 %s 0 %s 0", log, a, b);
  struct udm_device *d = make("m", table);
  wait_in_sync(d);
  snprintf(table, sizeof table, "0 2048 mirror 2 %s %s 16/16 1 AA 3 disk %s A\n", a, b, log);
  CHECK_STATUS(d, table);
  unsigned char buf[8 * KiB];
  fill_pattern(buf, sizeof buf, 9, 0);
  CHECK(wr(d, buf, sizeof buf, 300 * KiB, 0) == 0);
  CHECK(udm_device_suspend(d, 0) == 0);
  unsigned char *h = file_bytes(log, 0, 1024 + 8);
  static const unsigned char want[16] = {0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0};
  CHECK(memcmp(h, want, 16) == 0);
  CHECK(h[16] == pattern_byte(3, 16) && h[1023] == pattern_byte(3, 1023));
  CHECK(h[1024] == 0xff && h[1025] == 0xff);          /* 16 clean regions */
  for (unsigned i = 1026; i < 1032; i++)
    CHECK(h[i] == 0);                                  /* to 64 bits: cleared */
  free(h);
  CHECK(udm_device_resume(d) == 0);
  test_drop(d);
  CHECK(files_equal(a, b, MiB));
  checked("mirror: the disk log holds magic MiRr, version 2, 16 regions, their clean bits "
          "from byte 1024 (cleared to 64 bits), and keeps the device's other bytes");

  /* Regions 3 and 9 dirty in the log, the legs different everywhere. */
  b = backing("b.img", MiB, 2);
  unsigned char bits[2] = {(unsigned char)~(1u << 3), (unsigned char)~(1u << 1)};
  set_bytes(log, 1024, bits, 2);
  snprintf(table, sizeof table, "0 2048 mirror disk 2 %s 128 2 %s 0 %s 0", log, a, b);
  d = make("m", table);
  wait_in_sync(d);
  test_drop(d);
  for (unsigned r = 0; r < 16; r++) {
    unsigned seed = (r == 3 || r == 9) ? 1 : 2;
    CHECK(file_has_pattern(b, r * 64 * KiB, 64 * KiB, seed));
  }
  h = file_bytes(log, 1024, 2);
  CHECK(h[0] == 0xff && h[1] == 0xff);
  free(h);
  checked("mirror: a disk log with regions 3 and 9 dirty resyncs exactly those, then "
          "marks them clean");

  /* nosync ignores the log; sync resyncs everything. */
  b = backing("b.img", MiB, 2);
  set_bytes(log, 1024, bits, 2);
  snprintf(table, sizeof table, "0 2048 mirror disk 3 %s 128 nosync 2 %s 0 %s 0", log, a, b);
  d = make("m", table);
  snprintf(table, sizeof table, "0 2048 mirror disk 3 %s 128 nosync 2 %s 0 %s 0\n", log, a, b);
  CHECK_TABLE(d, table);
  test_drop(d);
  CHECK(file_has_pattern(b, 0, MiB, 2));
  snprintf(table, sizeof table, "0 2048 mirror disk 3 %s 128 sync 2 %s 0 %s 0", log, a, b);
  d = make("m", table);
  wait_in_sync(d);
  test_drop(d);
  CHECK(files_equal(a, b, MiB));
  checked("mirror: nosync copies nothing whatever the log says; sync copies everything");
}

/* A leg over DISK that fails I/O in [from, from + len) sectors (an error segment). */
static struct udm_device *failing_leg(const char *name, const char *disk, unsigned from,
                                      unsigned len)
{
  char t[1024];
  size_t n = 0;
  if (from)
    n += (size_t)snprintf(t + n, sizeof t - n, "0 %u linear %s 0\n", from, disk);
  n += (size_t)snprintf(t + n, sizeof t - n, "%u %u error\n", from, len);
  if (from + len < 2048)
    snprintf(t + n, sizeof t - n, "%u %u linear %s %u", from + len, 2048 - from - len, disk,
             from + len);
  return make(name, t);
}

static void mirror_read_error_retries_other_leg(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 1);
  struct udm_device *bad = failing_leg("bad", a, 512, 64);
  snprintf(table, sizeof table,
           "0 2048 mirror core 2 256 nosync 2 udm:bad 0 %s 0 1 handle_errors", b);
  struct udm_device *d = make("m", table);
  uint32_t ev = event_nr(d);
  unsigned char buf[32 * KiB];
  /* Region 2 (sectors 512..767) is read from leg 0 (spread by region: 2 % 2). */
  CHECK(rd(d, buf, sizeof buf, 256 * KiB) == 0);
  for (size_t i = 0; i < sizeof buf; i++)
    if (buf[i] != pattern_byte(1, 256 * KiB + i)) {
      CHECK(!"read data");
      break;
    }
  snprintf(table, sizeof table, "0 2048 mirror 2 udm:bad %s 8/8 1 RA 1 core\n", b);
  CHECK_STATUS(d, table);
  CHECK(event_nr(d) != ev);
  checked("mirror: a read failing on leg 0 is retried on leg 1 and returns its data; "
          "leg 0 shows R and an event is raised");
  test_drop(d);
  test_drop(bad);
}

static void mirror_write_error_without_handle_errors(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 1);
  const char *log = backing("log.img", 64 * KiB, 0);
  struct udm_device *bad = failing_leg("bad", b, 512, 64);
  snprintf(table, sizeof table, "0 2048 mirror disk 3 %s 128 nosync 2 %s 0 udm:bad 0", log, a);
  struct udm_device *d = make("m", table);
  uint32_t ev = event_nr(d);
  unsigned char buf[4 * KiB];
  fill_pattern(buf, sizeof buf, 5, 0);
  CHECK(wr(d, buf, sizeof buf, 260 * KiB, 0) == 0); /* region 4, on the error segment */
  CHECK(file_has_pattern(a, 0, 4 * KiB, 1));
  unsigned char *fa = file_bytes(a, 260 * KiB, sizeof buf);
  CHECK(memcmp(fa, buf, sizeof buf) == 0);
  free(fa);
  snprintf(table, sizeof table, "0 2048 mirror 2 %s udm:bad 15/16 1 AD 3 disk %s A\n", a, log);
  CHECK_STATUS(d, table);
  CHECK(event_nr(d) == ev);
  test_drop(d);
  unsigned char *h = file_bytes(log, 1024, 2);
  CHECK(h[0] == (unsigned char)~(1u << 4) && h[1] == 0xff); /* region 4 stays dirty */
  free(h);
  test_drop(bad);
  checked("mirror: without handle_errors a write failing on one leg succeeds, the leg "
          "shows D, no event, and the region stays dirty in the disk log");

  /* The next mirror on that log resyncs region 4 only. */
  snprintf(table, sizeof table, "0 2048 mirror disk 2 %s 128 2 %s 0 %s 0", log, a, b);
  d = make("m", table);
  wait_in_sync(d);
  test_drop(d);
  CHECK(files_equal(a, b, MiB));
  checked("mirror: reloaded on the same disk log, the region a leg missed is resynced");
}

static void mirror_keep_log_fails_over(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 1);
  struct udm_device *bad = failing_leg("bad", a, 0, 2048);
  snprintf(table, sizeof table,
           "0 2048 mirror core 2 256 nosync 2 udm:bad 0 %s 0 2 handle_errors keep_log", b);
  struct udm_device *d = make("m", table);
  uint32_t ev = event_nr(d);
  unsigned char buf[4 * KiB], back[4 * KiB];
  fill_pattern(buf, sizeof buf, 6, 0);
  CHECK(wr(d, buf, sizeof buf, 0, 0) == 0);
  CHECK(event_nr(d) != ev);
  CHECK(rd(d, back, sizeof back, 0) == 0);
  CHECK(memcmp(buf, back, sizeof buf) == 0);
  CHECK(wr(d, buf, sizeof buf, 512 * KiB, 0) == 0); /* region 4 now goes to leg 1 */
  snprintf(table, sizeof table, "0 2048 mirror 2 udm:bad %s 6/8 1 DA 1 core\n", b);
  CHECK_STATUS(d, table);
  checked("mirror: handle_errors keep_log: a dead leg 0 fails over to leg 1, writes and "
          "reads succeed, leg 0 shows D and an event is raised");
  test_drop(d);
  test_drop(bad);
}

struct held_write {
  struct udm_device *d;
  int err;
};

/* Whether PATH holds what write_thread writes. */
static int has_thread_write(const char *path)
{
  unsigned char buf[4 * KiB], *f = file_bytes(path, 4 * KiB, sizeof buf);
  fill_pattern(buf, sizeof buf, 8, 0);
  int eq = memcmp(f, buf, sizeof buf) == 0;
  free(f);
  return eq;
}

static void *write_thread(void *arg)
{
  struct held_write *h = arg;
  unsigned char buf[4 * KiB];
  fill_pattern(buf, sizeof buf, 8, 0);
  h->err = wr(h->d, buf, sizeof buf, 4 * KiB, 0);
  return NULL;
}

static void mirror_handle_errors_holds_until_reload(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 1);
  struct udm_device *bad = failing_leg("bad", b, 0, 2048);
  snprintf(table, sizeof table,
           "0 2048 mirror core 2 256 nosync 2 %s 0 udm:bad 0 1 handle_errors", a);
  struct udm_device *d = make("m", table);
  uint32_t ev = event_nr(d);
  struct held_write h = {d, -1};
  pthread_t t;
  pthread_create(&t, NULL, write_thread, &h);
  CHECK(udm_device_wait_event(d, ev, 10000) == 0);
  snprintf(table, sizeof table, "0 2048 mirror 2 %s udm:bad 7/8 1 AD 1 core\n", a);
  CHECK_STATUS(d, table);
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  CHECK(h.err == -1); /* still held */
  /* What dmeventd does: drop the failed leg. */
  snprintf(table, sizeof table, "0 2048 linear %s 0", a);
  CHECK(udm_table_load(d, table) == 0);
  CHECK(udm_device_resume(d) == 0);
  pthread_join(t, NULL);
  CHECK(h.err == 0);
  unsigned char *fa = file_bytes(a, 4 * KiB, 4 * KiB), buf[4 * KiB];
  fill_pattern(buf, sizeof buf, 8, 0);
  CHECK(memcmp(fa, buf, sizeof buf) == 0);
  free(fa);
  checked("mirror: handle_errors holds a write a leg failed, raises an event, shows D; "
          "reloaded without the leg, the write completes without error");
  test_drop(d);
  test_drop(bad);
}

/* The log device dies after the mirror started: with block_on_error writes wait. */
static void mirror_log_failure(bool block_on_error)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 1);
  const char *log = backing("log.img", 64 * KiB, 0), *log2 = backing("log2.img", 64 * KiB, 0);
  snprintf(table, sizeof table, "0 128 linear %s 0", log);
  struct udm_device *ld = make("logdev", table);
  snprintf(table, sizeof table, "0 2048 mirror disk %u udm:logdev 128 nosync%s 2 %s 0 %s 0",
           block_on_error ? 4 : 3, block_on_error ? " block_on_error" : "", a, b);
  struct udm_device *d = make("m", table);
  strcat(table, "\n");
  CHECK_TABLE(d, table);
  CHECK(udm_table_load(ld, "0 128 error") == 0);
  CHECK(udm_device_resume(ld) == 0);
  uint32_t ev = event_nr(d);
  struct held_write h = {d, -1};
  pthread_t t;
  pthread_create(&t, NULL, write_thread, &h);
  CHECK(udm_device_wait_event(d, ev, 10000) == 0); /* the log failed */
  snprintf(table, sizeof table, "0 2048 mirror 2 %s %s 16/16 1 AA 3 disk udm:logdev D\n", a, b);
  CHECK_STATUS(d, table);
  if (block_on_error) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(h.err == -1); /* held: nothing may be written without the log */
    CHECK(file_has_pattern(a, 4 * KiB, 4 * KiB, 1) && file_has_pattern(b, 4 * KiB, 4 * KiB, 1));
    snprintf(table, sizeof table, "0 2048 mirror disk 2 %s 128 2 %s 0 %s 0", log2, a, b);
    CHECK(udm_table_load(d, table) == 0);
    CHECK(udm_device_resume(d) == 0); /* a new log: the held write goes to it */
  }
  pthread_join(t, NULL);
  CHECK(h.err == 0);
  CHECK(has_thread_write(a) && has_thread_write(b));
  checked("mirror: a disk log failing under a mirror shows D and raises an event; %s",
          block_on_error ? "block_on_error holds writes until a table with a working log "
                           "takes them"
                         : "without block_on_error or handle_errors writes go on");
  test_drop(d);
  test_drop(ld);
}

static void mirror_resync_rate_and_writes_during_resync(void)
{
  const char *a = backing("a.img", 4 * MiB, 1), *b = backing("b.img", 4 * MiB, 2);
  /* Leg 1 behind a delay of 100 ms per write, so the resync outlasts the message. */
  snprintf(table, sizeof table, "0 8192 delay %s 0 0 %s 0 100", b, b);
  struct udm_device *slow = make("slow", table);
  snprintf(table, sizeof table, "0 8192 mirror core 1 1024 2 %s 0 udm:slow 0", a);
  uint64_t t0 = now_ms();
  struct udm_device *d = make("m", table);
  CHECK_REPLY(d, "resync_rate 2097152", ""); /* 2 MiB/s: 4 MiB take about 2 s */
  CHECK(!status_in_sync(d));
  CHECK_MESSAGE_FAILS(d, "resync_rate fast", "invalid resync_rate");
  CHECK_MESSAGE_FAILS(d, "rebuild", "unrecognised mirror message");
  /* Writes while the resync runs land on both legs, whatever the region's state. */
  unsigned char buf[16 * KiB];
  for (unsigned i = 0; i < 8; i++) {
    fill_pattern(buf, sizeof buf, 20 + i, 0);
    CHECK(wr(d, buf, sizeof buf, (uint64_t)i * 512 * KiB + 3 * KiB, 0) == 0);
  }
  wait_in_sync(d);
  uint64_t ms = now_ms() - t0;
  CHECK(ms >= 1000);
  test_drop(d);
  test_drop(slow);
  CHECK(files_equal(a, b, 4 * MiB));
  for (unsigned i = 0; i < 8; i++) {
    unsigned char *fb = file_bytes(b, (uint64_t)i * 512 * KiB + 3 * KiB, sizeof buf);
    fill_pattern(buf, sizeof buf, 20 + i, 0);
    CHECK(memcmp(fb, buf, sizeof buf) == 0);
    free(fb);
  }
  checked("mirror: resync_rate 2 MiB/s makes a 4 MiB resync take %llu ms (at least 1 s), "
          "and writes made meanwhile are on both legs at the end",
          (unsigned long long)ms);
}

static void mirror_bad_tables(void)
{
  const char *a = backing("a.img", MiB, 1), *b = backing("b.img", MiB, 2);
  const char *tiny = backing("tiny.img", 512, 0);
  char t[1024];
  struct {
    const char *fmt;
    const char *frag;
  } bad[] = {
      {"0 2048 mirror core", "Insufficient mirror log arguments"},
      {"0 2048 mirror core x 256 2 %s 0 %s 0", "Invalid mirror log argument count"},
      {"0 2048 mirror core 9 256 2 %s 0 %s 0", "Insufficient mirror log arguments"},
      {"0 2048 mirror core 5 256 2 %s 0 %s 0", "wrong number of arguments to core"},
      {"0 2048 mirror userspace 1 256 2 %s 0 %s 0", "unknown log type 'userspace'"},
      {"0 2048 mirror core 1 100 2 %s 0 %s 0", "invalid region size 100"},
      {"0 2048 mirror core 1 4096 2 %s 0 %s 0", "invalid region size 4096"},
      {"0 2048 mirror core 2 256 maybe 2 %s 0 %s 0", "unrecognised sync argument"},
      {"0 2048 mirror core 2 256 block_on_error 2 %s 0 %s 0", "unrecognised sync argument"},
      {"0 2048 mirror core 3 256 sync nosync 2 %s 0 %s 0", "wrong number of arguments"},
      {"0 2048 mirror disk 2 %s 256 2 %s 0 %s 0", "too small"},
      {"0 2048 mirror core 1 256 1 %s 0", "Invalid number of mirrors"},
      {"0 2048 mirror core 1 256 10 %s 0 %s 0", "Invalid number of mirrors"},
      {"0 2048 mirror core 1 256 3 %s 0 %s 0", "Too few mirror arguments"},
      {"0 2048 mirror core 1 256 2 %s 0x %s 0", "Invalid offset"},
      {"0 2048 mirror core 1 256 2 %s 0 /nonexistent/leg 0", "Device lookup failure"},
      {"0 2048 mirror core 1 256 2 %s 0 %s 0 x", "Invalid number of features"},
      {"0 2048 mirror core 1 256 2 %s 0 %s 0 2 handle_errors", "Not enough arguments"},
      {"0 2048 mirror core 1 256 2 %s 0 %s 0 1 keep_log", "requires the handle_errors"},
      {"0 2048 mirror core 1 256 2 %s 0 %s 0 1 fast", "Unrecognised feature requested"},
      {"0 2048 mirror core 1 256 2 %s 0 %s 0 1 handle_errors x", "Too many mirror arguments"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (strstr(bad[i].fmt, "disk 2 %s"))
      snprintf(t, sizeof t, bad[i].fmt, tiny, a, b);
    else
      snprintf(t, sizeof t, bad[i].fmt, a, b);
    struct udm_device *x = udm_device_create(ctx, "bad", NULL, 0);
    int r = udm_table_load(x, t), e = errno;
    CHECK(r < 0);
    CHECK(e == (strstr(t, "nonexistent") ? ENOENT : EINVAL));
    CHECK_CONTAINS(udm_errmsg(), bad[i].frag);
    test_drop(x);
  }
  CHECK(file_has_pattern(a, 0, MiB, 1) && file_has_pattern(b, 0, MiB, 2));
  /* A bad reload leaves the live mirror as it was. */
  snprintf(t, sizeof t, "0 2048 mirror core 2 256 nosync 2 %s 0 %s 0", a, b);
  struct udm_device *d = make("m", t);
  snprintf(t, sizeof t, "0 2048 mirror core 1 256 2 %s 0 %s 0 1 keep_log", a, b);
  CHECK(udm_table_load(d, t) < 0);
  snprintf(t, sizeof t, "0 2048 mirror core 2 256 nosync 2 %s 0 %s 0\n", a, b);
  CHECK_TABLE(d, t);
  test_drop(d);
  CHECK(file_has_pattern(b, 0, MiB, 2));
  checked("mirror: %zu bad tables refused with dm-raid1's messages, legs untouched, a "
          "live mirror kept",
          sizeof bad / sizeof bad[0]);
}

int main(void)
{
  setup();
  mirror_resync_copies_default_leg();
  mirror_nosync_copies_nothing();
  mirror_disk_log_kernel_format();
  mirror_read_error_retries_other_leg();
  mirror_write_error_without_handle_errors();
  mirror_keep_log_fails_over();
  mirror_handle_errors_holds_until_reload();
  mirror_log_failure(false);
  mirror_log_failure(true);
  mirror_resync_rate_and_writes_during_resync();
  mirror_bad_tables();
  return finish("test-mirror");
}
