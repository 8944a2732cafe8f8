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
#include <time.h>

#include "targets-test.h"

#define MiB (1024 * 1024)
#define BLOCK_SECTORS 128u /* 64 KiB era blocks */
#define ORIGIN_BLOCKS 128u

static const char *meta, *origin;
static char table[1024];

/* era of each block as era_dump --logical reports it (-1: not listed). */
static void logical_eras(const char *path, long *eras, unsigned n)
{
  char out[400];
  snprintf(out, sizeof out, "%s/dump.xml", scratch);
  CHECK(run_sh("era_dump --logical %s > %s", path, out) == 0);
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
  unsigned mbs = 0, era = 0;
  unsigned long long used = 0, total = 0;
  char snap[32] = "";
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
  if (!tool_on_path("era_check")) {
    printf("era_check not installed: era_dump/era_check checks skipped\n");
    return;
  }
  CHECK(run_sh("era_check %s", meta) == 0);
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
  CHECK(run_sh("era_check %s", meta) == 0);
  logical_eras(meta, got, ORIGIN_BLOCKS);
  bad = 0;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    bad += got[i] != want_era[i];
  CHECK(bad == 0);
  checked("era: metadata reopens (era 4 after the resume), keeps earlier eras, era_check clean");
}

/* Flip bytes of block BLOCK of META at OFF (LEN bytes xor 0xff) or write V there. */
static void poke(const char *path, uint64_t block, size_t off, const void *v, size_t len)
{
  int fd = open(path, O_RDWR);
  unsigned char b[4096];
  CHECK(fd >= 0 && pread(fd, b, sizeof b, (off_t)(block * 4096)) == (ssize_t)sizeof b);
  for (size_t i = 0; i < len; i++)
    b[off + i] = v ? ((const unsigned char *)v)[i] : (unsigned char)~b[off + i];
  CHECK(pwrite(fd, b, sizeof b, (off_t)(block * 4096)) == (ssize_t)sizeof b);
  close(fd);
}

/* Loading the table fails naming the block; no device is left. */
static void check_refused(const char *what, const char *frag)
{
  struct udm_device *d = udm_device_create(ctx, "bad-era", NULL, 0);
  CHECK(d != NULL);
  int r = udm_table_load(d, table);
  CHECK(r < 0);
  if (r < 0)
    CHECK_CONTAINS(udm_errmsg(), frag);
  else
    fprintf(stderr, "%s: loaded\n", what);
  char *info = NULL;
  CHECK(udm_device_table(d, 0, &info) < 0 || !info || !strstr(info, "era"));
  free(info);
  test_drop(d);
}

static void corrupt_metadata_is_refused_naming_the_block(void)
{
  char *copy = strdup(meta);
  char saved[600];
  snprintf(saved, sizeof saved, "%s/good.img", scratch);
  CHECK(run_sh("cp %s %s", copy, saved) == 0);
  /* Superblock: a flipped byte (checksum), another block's number, a wrong magic. */
  poke(copy, 0, 200, NULL, 1);
  check_refused("checksum", "block 0 is not a valid era superblock: bad checksum");
  CHECK(run_sh("cp %s %s", saved, copy) == 0);
  uint64_t seven = 7;
  poke(copy, 0, 8, &seven, 8);
  check_refused("blocknr", "block 0 is not a valid era superblock: it says it is block 7");
  CHECK(run_sh("cp %s %s", saved, copy) == 0);
  poke(copy, 0, 32, NULL, 2);
  check_refused("magic", "block 0 is not a valid era superblock: bad magic");
  /* The space map's index block: its location is in the superblock. */
  CHECK(run_sh("cp %s %s", saved, copy) == 0);
  unsigned char *sb = file_bytes(copy, 0, 4096);
  uint64_t index = 0;
  for (int i = 7; i >= 0; i--)
    index = index << 8 | sb[44 + 16 + i]; /* metadata_space_map_root.bitmap_root */
  free(sb);
  poke(copy, index, 100, NULL, 1);
  char frag[80];
  snprintf(frag, sizeof frag, "block %llu is not a valid space map index: bad checksum",
           (unsigned long long)index);
  check_refused("index", frag);
  CHECK(run_sh("cp %s %s", saved, copy) == 0);
  /* The good copy still loads. */
  struct udm_device *d = make("era", table);
  test_drop(d);
  free(copy);
  checked("era: metadata with a bad superblock checksum, block number or magic, or a bad "
          "space map index, is refused at load naming the block; no device is made");
}

/* era_restore (thin-provisioning-tools' own writer) makes metadata udm opens. */
static void metadata_era_restore_writes_opens_in_udm(void)
{
  char xml[600], restored[600];
  snprintf(xml, sizeof xml, "%s/era.xml", scratch);
  snprintf(restored, sizeof restored, "%s/restored.img", scratch);
  long before[ORIGIN_BLOCKS], after[ORIGIN_BLOCKS];
  logical_eras(meta, before, ORIGIN_BLOCKS);
  CHECK(run_sh("era_dump %s > %s", meta, xml) == 0);
  CHECK(run_sh("truncate -s 4M %s && era_restore -i %s -o %s", restored, xml, restored) == 0);
  char t[1100];
  snprintf(t, sizeof t, "0 %u era %s %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS, restored, origin,
           BLOCK_SECTORS);
  struct udm_device *d = make("era", t);
  char *st = status_of(d);
  unsigned mbs = 0, era = 0;
  unsigned long long used = 0, total = 0;
  char snap[32] = "";
  CHECK(st && sscanf(st, "%*u %*u era %u %llu/%llu %u %31s", &mbs, &used, &total, &era,
                     snap) == 5);
  CHECK(era == 6 && strcmp(snap, "-") == 0); /* the dump's era 5, then the resume's */
  free(st);
  write_block(d, 1, 15);
  test_drop(d);
  CHECK(run_sh("era_check %s", restored) == 0);
  logical_eras(restored, after, ORIGIN_BLOCKS);
  before[1] = 6;
  unsigned bad = 0;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    bad += before[i] != after[i];
  CHECK(bad == 0);
  checked("era: metadata era_restore wrote from udm's dump opens in udm with its eras, "
          "takes a new write in a new era, and stays era_check clean");
}

/*
 * Metadata Linux's dm-era wrote (tests/targets/data/README.md: the first part
 * of tests/kernel/scenarios/era.scn in the kernel VM, the disk read back)
 * opens in udm with the status the kernel printed when it reopened it, keeps
 * its eras, and takes writes.
 */
static void metadata_the_kernel_wrote_opens_in_udm(void)
{
  char img[600], t[1100], want[200];
  snprintf(img, sizeof img, "%s/kernel-meta.img", scratch);
  if (run_sh("xz -dc %s/era-linux-6.12.meta.xz > %s", UDM_TEST_DATA, img) != 0) {
    fprintf(stderr, "cannot unpack %s/era-linux-6.12.meta.xz\n", UDM_TEST_DATA);
    check_failures++;
    return;
  }
  FILE *f = fopen(UDM_TEST_DATA "/era-linux-6.12.status", "r");
  CHECK(f && fgets(want, sizeof want, f));
  if (f)
    fclose(f);
  CHECK(run_sh("era_check %s", img) == 0);
  long before[ORIGIN_BLOCKS], after[ORIGIN_BLOCKS];
  logical_eras(img, before, ORIGIN_BLOCKS);
  snprintf(t, sizeof t, "0 %u era %s %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS, img, origin,
           BLOCK_SECTORS);
  struct udm_device *d = make("era", t);
  struct timespec pause = {1, 0};
  nanosleep(&pause, NULL); /* digestion settles, as in the scenario */
  free(status_of(d));      /* its commit */
  char *st = status_of(d);
  CHECK_STR(st, want);
  free(st);
  write_block(d, 20, 16);
  test_drop(d);
  CHECK(run_sh("era_check %s", img) == 0);
  logical_eras(img, after, ORIGIN_BLOCKS);
  unsigned bad = 0;
  long newest = 0;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    newest = before[i] > newest ? before[i] : newest;
  for (unsigned i = 0; i < ORIGIN_BLOCKS; i++)
    bad += i == 20 ? after[i] <= newest : after[i] != before[i];
  CHECK(bad == 0);
  checked("era: metadata Linux 6.12's dm-era wrote opens in udm with the kernel's status "
          "line, keeps its eras, takes a write, stays era_check clean");
}

static void era_rejects_bad_tables(void)
{
  char t[1100];
  snprintf(t, sizeof t, "0 1024 era %s %s", meta, origin);
  CHECK_BAD_TABLE(t, "Invalid argument count");
  snprintf(t, sizeof t, "0 1024 era %s %s 12", meta, origin);
  CHECK_BAD_TABLE(t, "Invalid block size 12");
  snprintf(t, sizeof t, "0 1024 era %s %s 0", meta, origin);
  CHECK_BAD_TABLE(t, "Invalid block size 0");
  snprintf(t, sizeof t, "0 1024 era %s %s 8x", meta, origin);
  CHECK_BAD_TABLE(t, "Error parsing block size '8x'");
  snprintf(t, sizeof t, "0 1024 era %s %s 64", meta, origin);
  CHECK_BAD_TABLE(t, "changing the data block size (from 128 to 64) is not supported");
  checked("era: wrong arity, bad block sizes and a block size other than the metadata's "
          "are refused with a specific message");
}

int main(void)
{
  setup();
  era_records_writes_by_era();
  corrupt_metadata_is_refused_naming_the_block();
  if (tool_on_path("era_restore"))
    metadata_era_restore_writes_opens_in_udm();
  if (tool_on_path("xz"))
    metadata_the_kernel_wrote_opens_in_udm();
  era_rejects_bad_tables();
  return finish("test-era");
}
