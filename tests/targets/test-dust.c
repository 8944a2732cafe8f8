/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dust: bad blocks fail reads with EIO only while enabled, a write remaps
 * (removes) a bad block unless it has write failures left, block numbers
 * are the backing device's, and every message answers with dm-dust's text.
 */
#include "targets-test.h"

#define MiB (1024 * 1024)

static char table[512];
static const char *disk;

static struct udm_device *fresh(const char *name, unsigned long long offset, unsigned blksz)
{
  disk = backing("dust.img", MiB, 1);
  snprintf(table, sizeof table, "0 %llu dust %s %llu %u", 2048ull - offset, disk, offset,
           blksz);
  return make(name, table);
}

static void dust_reads_fail_only_on_bad_blocks_while_enabled(void)
{
  struct udm_device *d = fresh("dust", 0, 4096);
  unsigned char buf[8192];
  CHECK_REPLY(d, "addbadblock 3", "");
  /* Bypass is the initial state: the bad block reads fine. */
  CHECK(rd(d, buf, 4096, 3 * 4096) == 0);
  CHECK(buf[0] == pattern_byte(1, 3 * 4096));
  CHECK_REPLY(d, "enable", "");
  CHECK(rd(d, buf, 4096, 3 * 4096) == EIO);
  CHECK(rd(d, buf, 512, 3 * 4096 + 3584) == EIO); /* last sector of the block */
  CHECK(rd(d, buf, 8192, 2 * 4096) == EIO);       /* spans blocks 2 and 3 */
  CHECK(rd(d, buf, 4096, 2 * 4096) == 0);
  CHECK(rd(d, buf, 4096, 4 * 4096) == 0);
  CHECK(buf[100] == pattern_byte(1, 4 * 4096 + 100));
  CHECK_REPLY(d, "disable", "");
  CHECK(rd(d, buf, 4096, 3 * 4096) == 0);
  checked("dust: bad block 3 reads EIO (whole block, and inside a larger read) only "
          "between enable and disable; blocks 2 and 4 read their data");
  test_drop(d);
}

static void dust_write_removes_bad_block(void)
{
  struct udm_device *d = fresh("dust", 0, 4096);
  unsigned char buf[4096], back[4096];
  CHECK_REPLY(d, "addbadblock 5", "");
  CHECK_REPLY(d, "addbadblock 6", "");
  /* Disabled: writes leave the list alone. */
  fill_pattern(buf, sizeof buf, 9, 0);
  CHECK(wr(d, buf, 512, 6 * 4096, 0) == 0);
  CHECK_REPLY(d, "queryblock 6", "dust_query_block: block 6 found in badblocklist");
  CHECK_REPLY(d, "enable", "");
  CHECK(wr(d, buf, sizeof buf, 5 * 4096, 0) == 0);
  CHECK_REPLY(d, "queryblock 5", "dust_query_block: block 5 not found in badblocklist");
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 1 badblock(s) found");
  CHECK(rd(d, back, sizeof back, 5 * 4096) == 0);
  CHECK(memcmp(back, buf, sizeof buf) == 0);
  unsigned char *f = file_bytes(disk, 5 * 4096, 4096);
  CHECK(memcmp(f, buf, 4096) == 0);
  free(f);
  /* A one-sector write anywhere in the block remaps all of it. */
  CHECK(wr(d, buf, 512, 6 * 4096 + 1024, 0) == 0);
  CHECK(rd(d, back, sizeof back, 6 * 4096) == 0);
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 0 badblock(s) found");
  checked("dust: a write to a bad block while enabled lands on disk and removes the "
          "block from the list; while disabled it leaves the list alone");
  test_drop(d);
}

static void dust_write_fail_count_fails_that_many_writes(void)
{
  struct udm_device *d = fresh("dust", 0, 4096);
  unsigned char buf[4096];
  fill_pattern(buf, sizeof buf, 11, 0);
  CHECK_REPLY(d, "addbadblock 7 2", "");
  CHECK_REPLY(d, "enable", "");
  CHECK(wr(d, buf, sizeof buf, 7 * 4096, 0) == EIO);
  CHECK(wr(d, buf, sizeof buf, 7 * 4096, 0) == EIO);
  CHECK(file_has_pattern(disk, 7 * 4096, 4096, 1));
  CHECK_REPLY(d, "queryblock 7", "dust_query_block: block 7 found in badblocklist");
  CHECK(wr(d, buf, sizeof buf, 7 * 4096, 0) == 0);
  CHECK_REPLY(d, "queryblock 7", "dust_query_block: block 7 not found in badblocklist");
  unsigned char *f = file_bytes(disk, 7 * 4096, 4096);
  CHECK(memcmp(f, buf, 4096) == 0);
  free(f);
  /* Discards are writes to dm-dust too. */
  CHECK_REPLY(d, "addbadblock 8 1", "");
  CHECK(udm_device_discard(d, 4096, 8 * 4096, 0) < 0 && errno == EIO);
  CHECK(udm_device_discard(d, 4096, 8 * 4096, 0) == 0);
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 0 badblock(s) found");
  checked("dust: 'addbadblock 7 2' fails two writes with EIO (disk untouched), the "
          "third lands and remaps; a discard counts as a write");
  test_drop(d);
}

static void dust_blocks_are_numbered_on_the_backing_device(void)
{
  /* offset 8 sectors, 4 KiB blocks: device bytes 0..4095 are backing block 1. */
  struct udm_device *d = fresh("dust", 8, 4096);
  unsigned char buf[4096];
  CHECK_REPLY(d, "addbadblock 1", "");
  CHECK_REPLY(d, "enable", "");
  CHECK(rd(d, buf, 4096, 0) == EIO);
  CHECK(rd(d, buf, 4096, 4096) == 0);
  CHECK(buf[0] == pattern_byte(1, 8 * 512 + 4096));
  checked("dust: with offset 8 and 4 KiB blocks, bad block 1 is device bytes 0..4095");
  test_drop(d);

  /* 512-byte blocks: one sector each. */
  d = fresh("dust", 0, 512);
  CHECK_REPLY(d, "addbadblock 9", "");
  CHECK_REPLY(d, "enable", "");
  CHECK(rd(d, buf, 512, 9 * 512) == EIO);
  CHECK(rd(d, buf, 512, 8 * 512) == 0);
  CHECK(rd(d, buf, 512, 10 * 512) == 0);
  CHECK(rd(d, buf, 4096, 8 * 512) == EIO);
  checked("dust: with 512-byte blocks only sector 9 fails, and any read covering it");
  test_drop(d);
}

static void dust_messages_reply_as_dm_dust(void)
{
  struct udm_device *d = fresh("dust", 0, 4096);
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 0 badblock(s) found");
  CHECK_REPLY(d, "listbadblocks", "No blocks in badblocklist");
  CHECK_REPLY(d, "clearbadblocks", "dust_clear_badblocks: no badblocks found");
  CHECK_REPLY(d, "addbadblock 60", "");
  CHECK_REPLY(d, "addbadblock 2", "");
  CHECK_REPLY(d, "addbadblock 256", ""); /* the device has 256 blocks: dm admits 256 */
  CHECK_REPLY(d, "queryblock 60", "dust_query_block: block 60 found in badblocklist");
  CHECK_REPLY(d, "queryblock 61", "dust_query_block: block 61 not found in badblocklist");
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 3 badblock(s) found");
  CHECK_REPLY(d, "listbadblocks", "2\n60\n256\n");
  CHECK_REPLY(d, "removebadblock 60", "");
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 2 badblock(s) found");
  CHECK_REPLY(d, "clearbadblocks", "dust_clear_badblocks: badblocks cleared");
  CHECK_REPLY(d, "countbadblocks", "countbadblocks: 0 badblock(s) found");
  CHECK_REPLY(d, "QueryBlock 2", "dust_query_block: block 2 not found in badblocklist");
  checked("dust: queryblock/countbadblocks/clearbadblocks/listbadblocks reply with "
          "dm-dust's texts; add/remove/enable/disable/quiet reply nothing; verbs are "
          "case-insensitive");

  CHECK_MESSAGE_FAILS(d, "addbadblock", "requires a block number");
  CHECK_MESSAGE_FAILS(d, "removebadblock", "requires a block number");
  CHECK_MESSAGE_FAILS(d, "queryblock", "requires a block number");
  CHECK_REPLY(d, "addbadblock 4", "");
  CHECK_MESSAGE_FAILS(d, "addbadblock 4", "already in the bad block list");
  CHECK_MESSAGE_FAILS(d, "removebadblock 5", "not in the bad block list");
  CHECK_MESSAGE_FAILS(d, "addbadblock 257", "out of range");
  CHECK_MESSAGE_FAILS(d, "queryblock 257", "out of range");
  CHECK_MESSAGE_FAILS(d, "addbadblock x", "invalid block number 'x'");
  CHECK_MESSAGE_FAILS(d, "addbadblock 5 256", "invalid write fail count '256'");
  CHECK_MESSAGE_FAILS(d, "removebadblock 4 1", "unrecognised message 'removebadblock'");
  CHECK_MESSAGE_FAILS(d, "enable 1", "unrecognised message 'enable'");
  CHECK_MESSAGE_FAILS(d, "frobnicate", "unrecognised message 'frobnicate'");
  CHECK_MESSAGE_FAILS(d, "addbadblock 1 2 3", "invalid number of message arguments 4");
  checked("dust: missing/duplicate/absent/out-of-range blocks, bad counts, unknown "
          "verbs and wrong arities fail with EINVAL and say why");
  test_drop(d);
}

static void dust_status_and_table_text(void)
{
  struct udm_device *d = fresh("dust", 16, 1024);
  char want[600];
  snprintf(want, sizeof want, "0 2032 dust %s 16 1024\n", disk);
  CHECK_TABLE(d, want);
  snprintf(want, sizeof want, "0 2032 dust %s bypass verbose\n", disk);
  CHECK_STATUS(d, want);
  CHECK_REPLY(d, "enable", "");
  CHECK_REPLY(d, "quiet", "");
  snprintf(want, sizeof want, "0 2032 dust %s fail_read_on_bad_block quiet\n", disk);
  CHECK_STATUS(d, want);
  CHECK_REPLY(d, "quiet", ""); /* quiet toggles */
  snprintf(want, sizeof want, "0 2032 dust %s fail_read_on_bad_block verbose\n", disk);
  CHECK_STATUS(d, want);
  check_round_trip(d);
  checked("dust: TABLE '<dev> <offset> <blksz>', INFO '<dev> bypass|fail_read_on_bad_block "
          "verbose|quiet', quiet toggles, table reloads to the same table");
  test_drop(d);
}

static void dust_rejects_bad_tables(void)
{
  const char *p = backing("t.img", MiB, 2);
  char t[600];
  snprintf(t, sizeof t, "0 2048 dust %s 0", p);
  CHECK_BAD_TABLE(t, "expected '<dev> <offset> <block size>', got 2 arguments");
  snprintf(t, sizeof t, "0 2048 dust %s 0 4096 x", p);
  CHECK_BAD_TABLE(t, "got 4 arguments");
  snprintf(t, sizeof t, "0 2048 dust %s 0 0", p);
  CHECK_BAD_TABLE(t, "invalid block size '0'");
  snprintf(t, sizeof t, "0 2048 dust %s 0 4k", p);
  CHECK_BAD_TABLE(t, "invalid block size '4k'");
  snprintf(t, sizeof t, "0 2048 dust %s 0 256", p);
  CHECK_BAD_TABLE(t, "block size 256 is below 512");
  snprintf(t, sizeof t, "0 2048 dust %s 0 1536", p);
  CHECK_BAD_TABLE(t, "block size 1536 is not a power of 2");
  snprintf(t, sizeof t, "0 4 dust %s 0 4096", p);
  CHECK_BAD_TABLE(t, "block size 4096 is larger than 2048 bytes");
  snprintf(t, sizeof t, "0 2048 dust %s -1 4096", p);
  CHECK_BAD_TABLE(t, "invalid device offset sector '-1'");
  snprintf(t, sizeof t, "0 2048 dust %s 8 4096", p);
  CHECK_BAD_TABLE(t, "too small");
  struct udm_device *b = udm_device_create(ctx, "bad", NULL, 0);
  CHECK(udm_table_load(b, "0 2048 dust /nonexistent/disk 0 4096") < 0);
  CHECK_CONTAINS(udm_errmsg(), "/nonexistent/disk");
  test_drop(b);
  checked("dust: wrong arity, bad/small/non-power-of-2/too-large block sizes, bad "
          "offsets, short and missing devices are refused with a specific message");
}

int main(void)
{
  setup();
  dust_reads_fail_only_on_bad_blocks_while_enabled();
  dust_write_removes_bad_block();
  dust_write_fail_count_fails_that_many_writes();
  dust_blocks_are_numbered_on_the_backing_device();
  dust_messages_reply_as_dm_dust();
  dust_status_and_table_text();
  dust_rejects_bad_tables();
  return finish("test-dust");
}
