/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flakey: while up everything passes; while down each feature does exactly
 * what dm-flakey does (which requests fail with EIO, which writes are
 * dropped, which byte is corrupted and to what), proved on the bytes of the
 * backing file; the up/down clock alternates from construction; the table
 * prints as the kernel prints it and reloads; bad tables are refused.
 *
 * "Always down" is up 0 / down 1, "always up" is up 1 / down 0, so that
 * only the cycle test depends on the clock, and it checks order, not time.
 */
#include <time.h>

#include "targets-test.h"

#define SIZE (1024 * 1024)

static const char *disk;

static struct udm_device *flakey(const char *args)
{
  char t[800];
  disk = backing("flakey.img", SIZE, 1);
  snprintf(t, sizeof t, "0 2048 flakey %s 0 %s", disk, args);
  return make("flakey", t);
}

static void flakey_up_passes_everything(void)
{
  struct udm_device *d = flakey("1 0 1 error_writes");
  unsigned char w[4096], r[4096];
  fill_pattern(w, sizeof w, 5, 0);
  CHECK(wr(d, w, sizeof w, 8192, 0) == 0);
  CHECK(rd(d, r, sizeof r, 8192) == 0);
  CHECK(memcmp(r, w, sizeof w) == 0);
  CHECK(udm_device_flush(d) == 0);
  unsigned char *f = file_bytes(disk, 8192, 4096);
  CHECK(memcmp(f, w, 4096) == 0);
  free(f);
  checked("flakey: while up (down interval 0) reads, writes and flushes pass to the disk");
  test_drop(d);
}

static void flakey_down_without_features_fails_all_io(void)
{
  struct udm_device *d = flakey("0 1");
  unsigned char w[4096];
  fill_pattern(w, sizeof w, 5, 0);
  CHECK(rd(d, w, 4096, 0) == EIO);
  CHECK(wr(d, w, 4096, 0, 0) == EIO);
  CHECK(udm_device_flush(d) < 0 && errno == EIO);
  CHECK(udm_device_discard(d, 4096, 0, 0) < 0 && errno == EIO);
  CHECK(file_has_pattern(disk, 0, SIZE, 1));
  checked("flakey: down with no features: reads, writes, flushes and discards fail "
          "with EIO and the disk is untouched");
  test_drop(d);
}

static void flakey_error_reads_fails_only_reads(void)
{
  struct udm_device *d = flakey("0 1 1 error_reads");
  unsigned char w[4096];
  fill_pattern(w, sizeof w, 6, 0);
  CHECK(rd(d, w + 0, 512, 512) == EIO);
  fill_pattern(w, sizeof w, 6, 0);
  CHECK(wr(d, w, 4096, 4096, 0) == 0);
  unsigned char *f = file_bytes(disk, 4096, 4096);
  CHECK(memcmp(f, w, 4096) == 0);
  free(f);
  CHECK(udm_device_flush(d) == 0);
  checked("flakey: error_reads fails reads with EIO while writes and flushes pass");
  test_drop(d);
}

static void flakey_drop_writes_drops_writes_silently(void)
{
  struct udm_device *d = flakey("0 1 1 drop_writes");
  unsigned char w[8192], r[8192];
  fill_pattern(w, sizeof w, 7, 0);
  CHECK(wr(d, w, sizeof w, 0, 0) == 0);
  CHECK(wr(d, w, 4096, 65536, UDM_IO_FUA) == 0);
  CHECK(udm_device_write_zeroes(d, 4096, 16384, 0) == 0);
  CHECK(udm_device_discard(d, 4096, 32768, 0) == 0);
  CHECK(udm_device_flush(d) == 0);
  CHECK(file_has_pattern(disk, 0, SIZE, 1));
  CHECK(rd(d, r, sizeof r, 0) == 0);
  for (size_t i = 0; i < sizeof r; i++)
    if (r[i] != pattern_byte(1, i)) {
      CHECK(!"read after a dropped write returns the old data");
      break;
    }
  checked("flakey: drop_writes: writes, FUA writes, write-zeroes and discards succeed "
          "but the disk keeps every old byte; reads return the old data");
  test_drop(d);
}

static void flakey_error_writes_fails_only_writes(void)
{
  struct udm_device *d = flakey("0 1 1 error_writes");
  unsigned char w[4096], r[4096];
  fill_pattern(w, sizeof w, 8, 0);
  CHECK(wr(d, w, sizeof w, 0, 0) == EIO);
  CHECK(udm_device_flush(d) < 0 && errno == EIO);
  CHECK(udm_device_discard(d, 4096, 0, 0) < 0 && errno == EIO);
  CHECK(rd(d, r, sizeof r, 4096) == 0);
  CHECK(r[0] == pattern_byte(1, 4096) && r[4095] == pattern_byte(1, 8191));
  CHECK(file_has_pattern(disk, 0, SIZE, 1));
  checked("flakey: error_writes: writes, flushes and discards fail with EIO, the disk "
          "is untouched, reads pass");
  test_drop(d);
}

/* Positions where buffer A differs from the disk's pattern at OFF. */
static unsigned diff_positions(const unsigned char *a, size_t len, unsigned seed,
                               uint64_t off, size_t *first)
{
  unsigned n = 0;
  for (size_t i = 0; i < len; i++)
    if (a[i] != pattern_byte(seed, off + i)) {
      if (n++ == 0)
        *first = i;
    }
  return n;
}

static void flakey_corrupt_bio_byte_on_reads(void)
{
  struct udm_device *d = flakey("0 1 5 corrupt_bio_byte 32 r 1 0");
  unsigned char r[8192];
  size_t first = 0;
  CHECK(rd(d, r, 4096, 4096) == 0);
  CHECK(diff_positions(r, 4096, 1, 4096, &first) == (pattern_byte(1, 4096 + 31) != 1));
  CHECK(r[31] == 1);
  CHECK(rd(d, r, 8192, 0) == 0);
  CHECK(r[31] == 1);
  CHECK(diff_positions(r, 8192, 1, 0, &first) <= 1);
  CHECK(file_has_pattern(disk, 0, SIZE, 1));
  /* Writes pass untouched. */
  unsigned char w[4096];
  fill_pattern(w, sizeof w, 9, 0);
  CHECK(wr(d, w, sizeof w, 65536, 0) == 0);
  unsigned char *f = file_bytes(disk, 65536, 4096);
  CHECK(memcmp(f, w, 4096) == 0);
  free(f);
  checked("flakey: corrupt_bio_byte 32 r 1 0: byte 31 of every read request becomes 1, "
          "no other byte changes, the disk is not changed, writes pass");
  test_drop(d);
}

static void flakey_corrupt_bio_byte_on_writes(void)
{
  struct udm_device *d = flakey("0 1 5 corrupt_bio_byte 513 w 7 0");
  unsigned char w[4096], keep[4096];
  fill_pattern(w, sizeof w, 10, 0);
  memcpy(keep, w, sizeof w);
  CHECK(wr(d, w, sizeof w, 8192, 0) == 0);
  CHECK(memcmp(keep, w, sizeof w) == 0); /* the caller's buffer is not touched */
  unsigned char *f = file_bytes(disk, 8192, 4096);
  CHECK(f[512] == 7);
  f[512] = w[512];
  CHECK(memcmp(f, w, 4096) == 0);
  free(f);
  /* A request of 512 bytes has no byte 513: written as given. */
  CHECK(wr(d, w, 512, 32768, 0) == 0);
  f = file_bytes(disk, 32768, 512);
  CHECK(memcmp(f, w, 512) == 0);
  free(f);
  unsigned char r[4096];
  CHECK(rd(d, r, sizeof r, 65536) == 0);
  CHECK(r[0] == pattern_byte(1, 65536) && r[512] == pattern_byte(1, 65536 + 512));
  checked("flakey: corrupt_bio_byte 513 w 7 0: the disk gets 7 at byte 512 of each "
          "write of more than 512 bytes, the rest as written; reads pass");
  test_drop(d);
}

static void flakey_corrupt_bio_flags_select_requests(void)
{
  /* 131072 is the kernel's REQ_FUA: only FUA writes are corrupted. */
  struct udm_device *d = flakey("0 1 5 corrupt_bio_byte 1 w 255 131072");
  unsigned char w[4096];
  fill_pattern(w, sizeof w, 12, 0);
  w[0] = 0;
  CHECK(wr(d, w, sizeof w, 0, 0) == 0);
  unsigned char *f = file_bytes(disk, 0, 1);
  CHECK(f[0] == 0);
  free(f);
  CHECK(wr(d, w, sizeof w, 4096, UDM_IO_FUA) == 0);
  f = file_bytes(disk, 4096, 1);
  CHECK(f[0] == 255);
  free(f);
  test_drop(d);
  /* flags 1 (REQ_OP_WRITE) can never match a read. */
  d = flakey("0 1 5 corrupt_bio_byte 1 r 0 1");
  unsigned char r[512];
  CHECK(rd(d, r, sizeof r, 0) == 0);
  CHECK(r[0] == pattern_byte(1, 0));
  checked("flakey: corrupt_bio_byte flags: mask 131072 (REQ_FUA) corrupts only FUA "
          "writes; mask 1 (REQ_OP_WRITE) never matches reads");
  test_drop(d);
}

/* Write BUF through a fresh seeded device and return the resulting disk. */
static unsigned char *seeded_write_run(const char *features, const unsigned char *buf)
{
  struct udm_device *d = flakey(features);
  for (unsigned i = 0; i < 64; i++)
    CHECK(wr(d, buf + i * 4096, 4096, (uint64_t)i * 4096, 0) == 0);
  test_drop(d);
  return file_bytes(disk, 0, 64 * 4096);
}

static void flakey_random_write_corrupt_is_replayable_with_a_seed(void)
{
  unsigned char *w = malloc(64 * 4096);
  fill_pattern(w, 64 * 4096, 13, 0);
  const char *f = "0 1 4 random_write_corrupt 1000000000 random_seed 42";
  unsigned char *a = seeded_write_run(f, w);
  unsigned char *b = seeded_write_run(f, w);
  unsigned changed = 0, bad = 0;
  for (unsigned i = 0; i < 64; i++) {
    unsigned n = 0;
    for (unsigned j = 0; j < 4096; j++)
      n += a[i * 4096 + j] != w[i * 4096 + j];
    changed += n == 1;
    bad += n > 1;
  }
  CHECK(bad == 0);
  CHECK(changed >= 60); /* a random byte may happen to keep its value (1/256) */
  CHECK(memcmp(a, b, 64 * 4096) == 0);
  checked("flakey: random_write_corrupt 1000000000: each 4 KiB write lands with at most "
          "one byte changed (%u of 64 changed); the same random_seed gives the same "
          "bytes on disk",
          changed);
  free(a);
  free(b);

  /* Probability 0.5: some writes are corrupted, some are not, replayably. */
  f = "0 1 4 random_write_corrupt 500000000 random_seed 7";
  a = seeded_write_run(f, w);
  b = seeded_write_run(f, w);
  changed = 0;
  for (unsigned i = 0; i < 64; i++)
    changed += memcmp(a + i * 4096, w + i * 4096, 4096) != 0;
  CHECK(changed > 0 && changed < 64);
  CHECK(memcmp(a, b, 64 * 4096) == 0);
  checked("flakey: random_write_corrupt 500000000 random_seed 7 corrupts %u of 64 "
          "writes, the same ones on replay",
          changed);
  free(a);
  free(b);
  free(w);
}

static void flakey_random_read_corrupt_changes_one_byte(void)
{
  struct udm_device *d = flakey("0 1 4 random_read_corrupt 1000000000 random_seed 3");
  unsigned char r[4096], first[4096];
  unsigned changed = 0;
  size_t pos = 0;
  for (unsigned i = 0; i < 32; i++) {
    CHECK(rd(d, r, sizeof r, 0) == 0);
    unsigned n = diff_positions(r, sizeof r, 1, 0, &pos);
    CHECK(n <= 1);
    changed += n;
    if (i == 0)
      memcpy(first, r, sizeof r);
  }
  CHECK(changed >= 28);
  CHECK(file_has_pattern(disk, 0, SIZE, 1));
  test_drop(d);
  d = flakey("0 1 4 random_read_corrupt 1000000000 random_seed 3");
  CHECK(rd(d, r, sizeof r, 0) == 0);
  CHECK(memcmp(r, first, sizeof r) == 0);
  checked("flakey: random_read_corrupt 1000000000: every read returns at most one "
          "changed byte (%u of 32 changed), the disk is not changed, the seed replays",
          changed);
  test_drop(d);
}

static void flakey_cycles_up_and_down_from_construction(void)
{
  /* 1 s up, 1 s down: sample for about 4.5 s and look at the runs. */
  struct udm_device *d = flakey("1 1");
  unsigned char r[512];
  char states[128];
  unsigned n = 0;
  struct timespec pause = {0, 50 * 1000 * 1000};
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    int e = rd(d, r, sizeof r, 0);
    CHECK(e == 0 || e == EIO);
    states[n++] = e == 0 ? 'u' : 'd';
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (n < sizeof states - 1 &&
           (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 < 4500);
  states[n] = '\0';
  unsigned runs = 1;
  for (unsigned i = 1; i < n; i++)
    runs += states[i] != states[i - 1];
  CHECK(states[0] == 'u');
  CHECK(runs >= 3);
  printf("  samples: %s\n", states);
  checked("flakey: with 1 s up / 1 s down the device starts up and alternates (%u runs "
          "of up/down in ~4.5 s)",
          runs);
  test_drop(d);
}

static void flakey_table_text_is_the_kernels(void)
{
  static const struct {
    const char *args, *table_args;
  } cases[] = {
      {"1 1", "1 1 2 error_reads error_writes"},
      {"1 1 0", "1 1 2 error_reads error_writes"},
      {"5 3 1 drop_writes", "5 3 1 drop_writes"},
      {"5 3 1 ERROR_WRITES", "5 3 1 error_writes"},
      {"0 7 2 error_writes error_reads", "0 7 2 error_reads error_writes"},
      {"1 2 5 corrupt_bio_byte 32 R 1 0", "1 2 5 corrupt_bio_byte 32 r 1 0"},
      {"1 2 8 random_write_corrupt 5 error_reads corrupt_bio_byte 1 w 2 3",
       "1 2 8 error_reads corrupt_bio_byte 1 w 2 3 random_write_corrupt 5"},
      {"1 2 4 random_read_corrupt 10 random_write_corrupt 20",
       "1 2 4 random_read_corrupt 10 random_write_corrupt 20"},
      {"1 2 2 random_read_corrupt 0", "1 2 2 error_reads error_writes"},
      {"1 2 4 random_seed 99 random_read_corrupt 1",
       "1 2 4 random_read_corrupt 1 random_seed 99"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct udm_device *d = flakey(cases[i].args);
    char want[900];
    snprintf(want, sizeof want, "0 2048 flakey %s 0 %s\n", disk, cases[i].table_args);
    CHECK_TABLE(d, want);
    CHECK_STATUS(d, "0 2048 flakey \n");
    check_round_trip(d);
    test_drop(d);
  }
  checked("flakey: TABLE prints the feature count and features in dm's order (no "
          "features reads back as '2 error_reads error_writes'), names lower-cased; "
          "INFO is empty; each table reloads to itself");
}

static void flakey_takes_no_messages(void)
{
  struct udm_device *d = flakey("1 0");
  CHECK_MESSAGE_FAILS(d, "anything", "does not take messages");
  checked("flakey: messages fail with EINVAL (dm-flakey has none)");
  test_drop(d);
}

static void flakey_rejects_bad_tables(void)
{
  static const struct {
    const char *args, *frag;
  } cases[] = {
      {"", "got 2 arguments"},
      {"1", "got 3 arguments"},
      {"x 1", "invalid up interval 'x'"},
      {"1 -1", "invalid down interval '-1'"},
      {"0 0", "total (up + down) interval is zero"},
      {"4294967295 2", "up + down interval overflows"},
      {"1 1 x", "invalid number of feature args 'x'"},
      {"1 1 14", "invalid number of feature args '14'"},
      {"1 1 2 drop_writes", "2 arguments announced, only 1 given"},
      {"1 1 1 flaky", "unrecognised flakey feature 'flaky'"},
      {"1 1 2 error_reads error_reads", "feature error_reads given twice"},
      {"1 1 2 drop_writes drop_writes", "feature drop_writes given twice"},
      {"1 1 2 drop_writes error_writes", "error_writes conflicts with drop_writes"},
      {"1 1 2 error_writes drop_writes", "drop_writes conflicts with error_writes"},
      {"1 1 4 corrupt_bio_byte 1 r 1", "corrupt_bio_byte requires 4 parameters"},
      {"1 1 5 corrupt_bio_byte 0 r 1 0", "invalid corrupt bio byte '0'"},
      {"1 1 5 corrupt_bio_byte 1 x 1 0", "invalid corrupt bio direction 'x'"},
      {"1 1 5 corrupt_bio_byte 1 r 256 0", "invalid corrupt value (0-255) '256'"},
      {"1 1 5 corrupt_bio_byte 1 r 1 -1", "invalid corrupt bio flags mask '-1'"},
      {"1 1 10 corrupt_bio_byte 1 r 1 0 corrupt_bio_byte 2 r 1 0",
       "feature corrupt_bio_byte given twice"},
      {"1 1 1 random_read_corrupt", "random_read_corrupt requires 1 parameter"},
      {"1 1 2 random_read_corrupt 1000000001",
       "invalid random corrupt probability '1000000001'"},
      {"1 1 4 random_write_corrupt 1 random_write_corrupt 2",
       "feature random_write_corrupt given twice"},
      {"1 1 3 drop_writes random_write_corrupt 1", "drop_writes is incompatible"},
      {"1 1 6 error_writes corrupt_bio_byte 1 w 1 0", "error_writes is incompatible"},
      {"1 1 6 error_reads corrupt_bio_byte 1 r 1 0", "error_reads is incompatible"},
      {"1 1 3 error_reads random_read_corrupt 5", "error_reads is incompatible"},
      {"1 1 1 random_seed", "random_seed requires 1 parameter"},
      {"1 1 2 random_seed x", "invalid random_seed 'x'"},
      {"1 1 1 drop_writes extra", "unexpected argument 'extra'"},
  };
  const char *p = backing("t.img", SIZE, 2);
  char t[900];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(t, sizeof t, "0 2048 flakey %s 0 %s", p, cases[i].args);
    CHECK_BAD_TABLE(t, cases[i].frag);
  }
  snprintf(t, sizeof t, "0 2048 flakey %s x 1 1", p);
  CHECK_BAD_TABLE(t, "invalid device sector 'x'");
  snprintf(t, sizeof t, "0 2048 flakey %s 1 1 1", p);
  CHECK_BAD_TABLE(t, "too small");
  checked("flakey: %zu malformed tables (arity, intervals, feature counts, unknown, "
          "duplicated, conflicting and incompatible features, out-of-range values, "
          "trailing words, short device) are refused with a specific message",
          sizeof cases / sizeof cases[0] + 2);
}

int main(void)
{
  setup();
  flakey_up_passes_everything();
  flakey_down_without_features_fails_all_io();
  flakey_error_reads_fails_only_reads();
  flakey_drop_writes_drops_writes_silently();
  flakey_error_writes_fails_only_writes();
  flakey_corrupt_bio_byte_on_reads();
  flakey_corrupt_bio_byte_on_writes();
  flakey_corrupt_bio_flags_select_requests();
  flakey_random_write_corrupt_is_replayable_with_a_seed();
  flakey_random_read_corrupt_changes_one_byte();
  flakey_table_text_is_the_kernels();
  flakey_takes_no_messages();
  flakey_rejects_bad_tables();
  flakey_cycles_up_and_down_from_construction();
  return finish("test-flakey");
}
