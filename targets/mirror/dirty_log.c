/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mirror's dirty region log, core and disk (see dirty_log.h for the
 * on-disk format).  The rules are the kernel's dm-log:
 *   - a core log starts with every region dirty unless "nosync" (a full
 *     resync at the first resume), "sync" forces that for a disk log too;
 *   - a disk log is read at every resume: the regions its header counts keep
 *     their clean bit, new ones (a grown device, a new or foreign log) are
 *     dirty, or clean with "nosync"; in-sync is then what is clean;
 *   - the log block is written back whole, and flushed when a region became
 *     dirty; when regions were cleaned the legs are flushed first, and if
 *     that fails every region is marked dirty, since nobody knows which
 *     writes reached the legs.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_log.h"

#define MIRROR_MAGIC 0x4D695272u
#define MIRROR_DISK_VERSION 2u
#define LOG_OFFSET 1024u /* the bitset's byte offset in the log block */

/*
 * Bits change under the mirror's lock; the in-sync bits are also read
 * without it (mirror reads), so every access is atomic (relaxed).
 */
static bool test_bit8(const uint8_t *bs, uint64_t bit)
{
  return __atomic_load_n(&bs[bit >> 3], __ATOMIC_RELAXED) & (1u << (bit & 7));
}

static void set_bit8(uint8_t *bs, uint64_t bit)
{
  __atomic_fetch_or(&bs[bit >> 3], (uint8_t)(1u << (bit & 7)), __ATOMIC_RELAXED);
}

static void clear_bit8(uint8_t *bs, uint64_t bit)
{
  __atomic_fetch_and(&bs[bit >> 3], (uint8_t)~(1u << (bit & 7)), __ATOMIC_RELAXED);
}

static void log_set_bit(struct mlog *log, uint8_t *bs, uint64_t bit)
{
  set_bit8(bs, bit);
  log->touched_cleaned = true;
}

static void log_clear_bit(struct mlog *log, uint8_t *bs, uint64_t bit)
{
  clear_bit8(bs, bit);
  log->touched_dirtied = true;
}

static uint32_t get_le32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p)
{
  return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le32(unsigned char *p, uint32_t v)
{
  for (unsigned i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
  put_le32(p, (uint32_t)v);
  put_le32(p + 4, (uint32_t)(v >> 32));
}

static bool is_power_of_2(uint64_t v)
{
  return v && !(v & (v - 1));
}

/*
 * "<region_size> [sync|nosync]" plus, for a disk log, "[block_on_error]"
 * (udm's extension) in any order after the region size.
 */
static int parse_context(struct mlog *log, struct udm_target *ti, bool disk, unsigned argc,
                         char **argv)
{
  bool seen_sync = false;
  for (unsigned i = 1; i < argc; i++) {
    if (disk && !strcmp(argv[i], "block_on_error") && !log->block_on_error) {
      log->block_on_error = true;
    } else if (!seen_sync && (!strcmp(argv[i], "sync") || !strcmp(argv[i], "nosync"))) {
      log->sync = !strcmp(argv[i], "sync") ? MLOG_FORCESYNC : MLOG_NOSYNC;
      seen_sync = true;
    } else {
      udm_target_error(ti, "Error creating mirror dirty log: unrecognised sync argument "
                           "to dirty region log: %s",
                       argv[i]);
      return -EINVAL;
    }
  }
  unsigned region_size;
  if (udm_parse_uint(argv[0], &region_size) < 0 || region_size < 2 ||
      region_size > ti->len || !is_power_of_2(region_size)) {
    udm_target_error(ti, "Error creating mirror dirty log: invalid region size %s (sectors: "
                         "a power of two from 2 to the target's length, %llu)",
                     argv[0], (unsigned long long)ti->len);
    return -EINVAL;
  }
  log->region_size = region_size;
  log->region_count = (ti->len + region_size - 1) / region_size;
  if (log->region_count > UINT_MAX) {
    udm_target_error(ti, "Error creating mirror dirty log: region count exceeds limit of %u",
                     UINT_MAX);
    return -EINVAL;
  }
  log->bitset_bytes = (size_t)((log->region_count + 63) / 64 * 8);
  return 0;
}

int mlog_ctr(struct mlog *log, struct udm_target *ti, bool disk, unsigned argc, char **argv)
{
  memset(log, 0, sizeof *log);
  log->ti = ti;
  unsigned lo = disk ? 2 : 1, hi = disk ? 4 : 2;
  if (argc < lo || argc > hi) {
    udm_target_error(ti, "Error creating mirror dirty log: wrong number of arguments to %s "
                         "dirty region log (%u, expected %s)",
                     disk ? "disk" : "core", argc,
                     disk ? "<dev> <region_size> [sync|nosync] [block_on_error]"
                          : "<region_size> [sync|nosync]");
    return -EINVAL;
  }
  if (disk) {
    int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &log->dev);
    if (r < 0) {
      char *why = ti->error ? strdup(ti->error) : NULL;
      udm_target_error(ti, "Error creating mirror dirty log: log device %s: %s", argv[0],
                       why ? why : "cannot open it");
      free(why);
      return r;
    }
    argc--;
    argv++;
  }
  int r = parse_context(log, ti, disk, argc, argv);
  if (r < 0)
    return r;
  if (disk) {
    size_t lbs = udm_dev_logical_block_size(log->dev);
    log->buf_size = (LOG_OFFSET + log->bitset_bytes + lbs - 1) / lbs * lbs;
    uint64_t have = udm_dev_size(log->dev) * UDM_SECTOR_SIZE;
    if (log->buf_size > have) {
      udm_target_error(ti, "Error creating mirror dirty log: log device %s too small: need "
                           "%zu bytes, it has %llu",
                       udm_dev_name(log->dev), log->buf_size, (unsigned long long)have);
      return -EINVAL;
    }
    log->buf = calloc(1, log->buf_size);
    if (!log->buf)
      return -ENOMEM;
    log->clean = log->buf + LOG_OFFSET;
  } else {
    log->clean = malloc(log->bitset_bytes);
    if (!log->clean)
      return -ENOMEM;
  }
  memset(log->clean, 0xff, log->bitset_bytes);
  log->sync_bits = malloc(log->bitset_bytes);
  log->recovering = calloc(1, log->bitset_bytes);
  if (!log->sync_bits || !log->recovering)
    return -ENOMEM;
  memset(log->sync_bits, log->sync == MLOG_NOSYNC ? 0xff : 0, log->bitset_bytes);
  log->sync_count = log->sync == MLOG_NOSYNC ? log->region_count : 0;
  return 0;
}

void mlog_dtr(struct mlog *log)
{
  if (log->dev)
    udm_put_device(log->ti, log->dev);
  if (log->buf)
    free(log->buf);
  else
    free(log->clean);
  free(log->sync_bits);
  free(log->recovering);
  memset(log, 0, sizeof *log);
}

/* ---- disk I/O (blocking: worker and control hooks only) ---- */

static int log_io(struct mlog *log, enum udm_op op)
{
  struct udm_io io = {
      .op = op,
      .nr_sectors = op == UDM_OP_FLUSH ? 0 : log->buf_size / UDM_SECTOR_SIZE,
      .buf = op == UDM_OP_FLUSH ? NULL : log->buf,
  };
  return udm_dev_submit(log->dev, &io);
}

static void fail_log_device(struct mlog *log)
{
  if (log->dev_failed)
    return;
  log->dev_failed = true;
  udm_target_event(log->ti);
}

/* The header as read: its region count, or 0 for a log to start afresh. */
static uint64_t read_header(struct mlog *log)
{
  if (log_io(log, UDM_OP_READ) < 0) {
    fail_log_device(log);
    return 0;
  }
  uint32_t magic = get_le32(log->buf), version = get_le32(log->buf + 4);
  if (log->sync != MLOG_DEFAULTSYNC || magic != MIRROR_MAGIC)
    return 0; /* a new log */
  if (version == 1)
    version = 2; /* version 1 was the same layout, written by little-endian hosts */
  if (version != MIRROR_DISK_VERSION) {
    fail_log_device(log); /* "incompatible disk log version": start afresh, marked D */
    return 0;
  }
  return get_le64(log->buf + 8);
}

static void count_sync(struct mlog *log)
{
  uint64_t n = 0;
  for (size_t i = 0; i < log->bitset_bytes; i++)
    n += (uint64_t)__builtin_popcount(log->sync_bits[i]);
  log->sync_count = n;
}

void mlog_resume(struct mlog *log)
{
  log->sync_search = 0;
  if (!log->dev)
    return;
  uint64_t nr = read_header(log);
  for (uint64_t i = nr; i < log->region_count; i++) {
    if (log->sync == MLOG_NOSYNC)
      log_set_bit(log, log->clean, i);
    else
      log_clear_bit(log, log->clean, i);
  }
  for (uint64_t i = log->region_count; i % 64; i++)
    log_clear_bit(log, log->clean, i);
  memcpy(log->sync_bits, log->clean, log->bitset_bytes);
  count_sync(log);
  put_le32(log->buf, MIRROR_MAGIC);
  put_le32(log->buf + 4, MIRROR_DISK_VERSION);
  put_le64(log->buf + 8, log->region_count);
  int r = log_io(log, UDM_OP_WRITE);
  if (r == 0) {
    r = log_io(log, UDM_OP_FLUSH);
    if (r < 0)
      log->dev_flush_failed = true;
  }
  if (r < 0)
    fail_log_device(log);
}

int mlog_flush(struct mlog *log, int (*flush_legs)(void *arg), void *arg)
{
  if (!log->dev || (!log->touched_cleaned && !log->touched_dirtied))
    return 0;
  if (log->touched_cleaned && flush_legs && flush_legs(arg) < 0) {
    log->flush_failed = true;
    for (uint64_t i = 0; i < log->region_count; i++)
      log_clear_bit(log, log->clean, i);
  }
  int r = log_io(log, UDM_OP_WRITE);
  if (r < 0) {
    fail_log_device(log);
    return r;
  }
  if (log->touched_dirtied) {
    r = log_io(log, UDM_OP_FLUSH);
    if (r < 0) {
      log->dev_flush_failed = true;
      fail_log_device(log);
      return r;
    }
    log->touched_dirtied = false;
  }
  log->touched_cleaned = false;
  return 0;
}

/* ---- region bits ---- */

bool mlog_in_sync(const struct mlog *log, uint64_t region)
{
  return test_bit8(log->sync_bits, region);
}

bool mlog_is_clean(const struct mlog *log, uint64_t region)
{
  return test_bit8(log->clean, region);
}

void mlog_mark_region(struct mlog *log, uint64_t region)
{
  log_clear_bit(log, log->clean, region);
}

void mlog_clear_region(struct mlog *log, uint64_t region)
{
  if (!log->flush_failed)
    log_set_bit(log, log->clean, region);
}

bool mlog_get_resync_work(struct mlog *log, uint64_t *region)
{
  while (log->sync_search < log->region_count) {
    uint64_t r = log->sync_search++;
    if (!test_bit8(log->sync_bits, r) && !test_bit8(log->recovering, r)) {
      set_bit8(log->recovering, r);
      *region = r;
      return true;
    }
  }
  return false;
}

void mlog_set_region_sync(struct mlog *log, uint64_t region, bool in_sync)
{
  clear_bit8(log->recovering, region);
  if (in_sync) {
    if (!test_bit8(log->sync_bits, region)) {
      set_bit8(log->sync_bits, region);
      log->sync_count++;
    }
  } else if (test_bit8(log->sync_bits, region)) {
    clear_bit8(log->sync_bits, region);
    log->sync_count--;
  }
}

/*
 * INFO:  core: "1 core"; disk: "3 disk <dev> <A|D|F>" (alive, failed, a
 *        flush failed)
 * TABLE: "<type> <#args> [<dev>] <region_size> [sync|nosync] " (a blank
 *        ends it, as the kernel's does), block_on_error last for udm's
 *        disk logs
 */
void mlog_status(const struct mlog *log, enum udm_status_type type, struct udm_buf *out)
{
  if (type == UDM_STATUS_INFO) {
    if (!log->dev)
      udm_buf_puts(out, "1 core");
    else
      udm_buf_printf(out, "3 disk %s %c", udm_dev_name(log->dev),
                     log->dev_flush_failed ? 'F' : log->dev_failed ? 'D' : 'A');
    return;
  }
  unsigned nargs = 1 + (log->dev != NULL) + (log->sync != MLOG_DEFAULTSYNC) +
                   log->block_on_error;
  if (log->dev)
    udm_buf_printf(out, "disk %u %s %u ", nargs, udm_dev_name(log->dev), log->region_size);
  else
    udm_buf_printf(out, "core %u %u ", nargs, log->region_size);
  if (log->sync != MLOG_DEFAULTSYNC)
    udm_buf_puts(out, log->sync == MLOG_NOSYNC ? "nosync " : "sync ");
  if (log->block_on_error)
    udm_buf_puts(out, "block_on_error ");
}
