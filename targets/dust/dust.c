/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dust: a device with a list of bad blocks (dm-dust).  While enabled, a read
 * of a bad block fails with EIO, as a disk answering "medium error" would;
 * a write to a bad block "remaps" it: the block leaves the list and the
 * write goes through (unless the block was given a write-failure count, in
 * which case that many writes fail first).  The list is managed by messages.
 *
 * Block numbers are those of the backing device: (offset + sector in the
 * segment) / sectors per block, exactly as dm-dust computes them.  Requests
 * are split at block boundaries of the segment (max_io_len), so each one
 * tests the list once, for the block its first sector lies in.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <udm/target.h>

struct badblock {
  uint64_t block;
  unsigned char write_fail_count; /* writes that fail before one remaps it */
};

struct dust {
  struct udm_dev *dev;
  udm_sector_t start;
  unsigned blksz;             /* bytes */
  unsigned sect_per_block;
  unsigned shift;             /* log2(sect_per_block) */
  atomic_bool fail_read_on_bb; /* "enable"/"disable"; off after construction */
  atomic_bool quiet;          /* "quiet" toggles it; only reported by status */

  pthread_mutex_t lock;       /* the list: map() and messages race */
  bool lock_ready;
  struct badblock *list;      /* sorted by block, no duplicates */
  size_t count;
  size_t cap;
};

/* Index of BLOCK in the list, or where it would go; *found says which. */
static size_t dust_search(const struct dust *dd, uint64_t block, bool *found)
{
  size_t lo = 0, hi = dd->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (dd->list[mid].block < block)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < dd->count && dd->list[lo].block == block;
  return lo;
}

static void dust_erase(struct dust *dd, size_t i)
{
  memmove(&dd->list[i], &dd->list[i + 1], (dd->count - i - 1) * sizeof dd->list[0]);
  dd->count--;
}

/*
 * Construct a dust mapping:
 *   <dev> <offset> <block size>
 * The block size is in bytes: a power of two, at least 512, and at most
 * the segment length and 1 GiB.
 */
static int dust_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 3) {
    udm_target_error(ti, "expected '<dev> <offset> <block size>', got %u argument%s",
                     argc, argc == 1 ? "" : "s");
    return -EINVAL;
  }
  unsigned blksz;
  if (udm_parse_uint(argv[2], &blksz) < 0 || blksz == 0) {
    udm_target_error(ti, "invalid block size '%s'", argv[2]);
    return -EINVAL;
  }
  if (blksz < UDM_SECTOR_SIZE) {
    udm_target_error(ti, "block size %u is below 512", blksz);
    return -EINVAL;
  }
  if (blksz & (blksz - 1)) {
    udm_target_error(ti, "block size %u is not a power of 2", blksz);
    return -EINVAL;
  }
  uint64_t max_sectors = ti->len < 2097152 ? ti->len : 2097152; /* 1 GiB */
  if (blksz / UDM_SECTOR_SIZE > max_sectors) {
    udm_target_error(ti, "block size %u is larger than %llu bytes (the segment, or "
                         "1 GiB)",
                     blksz, (unsigned long long)max_sectors * UDM_SECTOR_SIZE);
    return -EINVAL;
  }
  struct dust *dd = calloc(1, sizeof *dd);
  if (!dd)
    return -ENOMEM;
  ti->private = dd;
  if (udm_parse_u64(argv[1], &dd->start) < 0) {
    udm_target_error(ti, "invalid device offset sector '%s'", argv[1]);
    return -EINVAL;
  }
  if (pthread_mutex_init(&dd->lock, NULL) != 0)
    return -ENOMEM;
  dd->lock_ready = true;
  dd->blksz = blksz;
  dd->sect_per_block = blksz / UDM_SECTOR_SIZE;
  while ((1u << dd->shift) < dd->sect_per_block)
    dd->shift++;
  ti->max_io_len = dd->sect_per_block;
  /* dm-dust leaves write-zeroes unsupported: they arrive as plain writes. */
  ti->num_write_zeroes_ios = 0;
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &dd->dev);
}

static void dust_dtr(struct udm_target *ti)
{
  struct dust *dd = ti->private;
  if (!dd)
    return;
  if (dd->dev)
    udm_put_device(ti, dd->dev);
  if (dd->lock_ready)
    pthread_mutex_destroy(&dd->lock);
  free(dd->list);
  free(dd);
}

static int dust_map(struct udm_target *ti, struct udm_io *io)
{
  struct dust *dd = ti->private;
  io->dev = dd->dev;
  if (io->op == UDM_OP_FLUSH)
    return UDM_MAPIO_REMAPPED; /* carries no block (see docs/targets.md) */
  io->sector = dd->start + udm_target_offset(ti, io->sector);
  if (!atomic_load(&dd->fail_read_on_bb))
    return UDM_MAPIO_REMAPPED;

  uint64_t block = io->sector >> dd->shift;
  int r = UDM_MAPIO_REMAPPED;
  bool found;
  pthread_mutex_lock(&dd->lock);
  size_t i = dust_search(dd, block, &found);
  if (found) {
    if (io->op == UDM_OP_READ)
      r = -EIO;
    else if (dd->list[i].write_fail_count > 0) {
      dd->list[i].write_fail_count--;
      r = -EIO;
    } else {
      dust_erase(dd, i); /* written: the block counts as remapped */
    }
  }
  pthread_mutex_unlock(&dd->lock);
  return r;
}

static int dust_add_block(struct udm_target *ti, struct dust *dd, uint64_t block,
                          unsigned char write_fail_count)
{
  bool found;
  int r = 0;
  pthread_mutex_lock(&dd->lock);
  size_t i = dust_search(dd, block, &found);
  if (found) {
    udm_target_error(ti, "block %llu is already in the bad block list",
                     (unsigned long long)block);
    r = -EINVAL;
  } else if (dd->count == dd->cap) {
    size_t cap = dd->cap ? dd->cap * 2 : 16;
    struct badblock *l = realloc(dd->list, cap * sizeof *l);
    if (!l)
      r = -ENOMEM;
    else {
      dd->list = l;
      dd->cap = cap;
    }
  }
  if (r == 0) {
    memmove(&dd->list[i + 1], &dd->list[i], (dd->count - i) * sizeof dd->list[0]);
    dd->list[i] = (struct badblock){block, write_fail_count};
    dd->count++;
  }
  pthread_mutex_unlock(&dd->lock);
  return r;
}

static int dust_remove_block(struct udm_target *ti, struct dust *dd, uint64_t block)
{
  bool found;
  pthread_mutex_lock(&dd->lock);
  size_t i = dust_search(dd, block, &found);
  if (found)
    dust_erase(dd, i);
  pthread_mutex_unlock(&dd->lock);
  if (!found) {
    udm_target_error(ti, "block %llu is not in the bad block list",
                     (unsigned long long)block);
    return -EINVAL;
  }
  return 0;
}

/*
 * The messages and what they answer (the reply texts are dm-dust's, which
 * scripts parse):
 *   enable | disable                  (no reply) fail reads of bad blocks, or not
 *   quiet                             (no reply) toggle quiet/verbose
 *   addbadblock <block> [<wr fails>]  (no reply) EINVAL if already listed
 *   removebadblock <block>            (no reply) EINVAL if not listed
 *   queryblock <block>                "dust_query_block: block N [not ]found in badblocklist"
 *   countbadblocks                    "countbadblocks: N badblock(s) found"
 *   clearbadblocks                    "dust_clear_badblocks: badblocks cleared"
 *                                     or "dust_clear_badblocks: no badblocks found"
 *   listbadblocks                     "N\n" per block, or "No blocks in badblocklist"
 * A block number may be at most the backing device's size in blocks (dm
 * admits that one-past-the-end block too).
 */
static int dust_message(struct udm_target *ti, unsigned argc, char **argv,
                        struct udm_buf *out)
{
  struct dust *dd = ti->private;
  const char *verb = argv[0];
  if (argc == 1) {
    if (!strcasecmp(verb, "addbadblock") || !strcasecmp(verb, "removebadblock") ||
        !strcasecmp(verb, "queryblock")) {
      udm_target_error(ti, "%s requires a block number", verb);
      return -EINVAL;
    }
    if (!strcasecmp(verb, "enable") || !strcasecmp(verb, "disable")) {
      atomic_store(&dd->fail_read_on_bb, !strcasecmp(verb, "enable"));
      return 0;
    }
    if (!strcasecmp(verb, "quiet")) {
      atomic_store(&dd->quiet, !atomic_load(&dd->quiet));
      return 0;
    }
    if (!strcasecmp(verb, "countbadblocks")) {
      pthread_mutex_lock(&dd->lock);
      udm_buf_printf(out, "countbadblocks: %zu badblock(s) found", dd->count);
      pthread_mutex_unlock(&dd->lock);
      return 0;
    }
    if (!strcasecmp(verb, "clearbadblocks")) {
      pthread_mutex_lock(&dd->lock);
      bool had = dd->count > 0;
      dd->count = 0;
      pthread_mutex_unlock(&dd->lock);
      udm_buf_puts(out, had ? "dust_clear_badblocks: badblocks cleared"
                            : "dust_clear_badblocks: no badblocks found");
      return 0;
    }
    if (!strcasecmp(verb, "listbadblocks")) {
      pthread_mutex_lock(&dd->lock);
      for (size_t i = 0; i < dd->count; i++)
        udm_buf_printf(out, "%llu\n", (unsigned long long)dd->list[i].block);
      if (dd->count == 0)
        udm_buf_puts(out, "No blocks in badblocklist");
      pthread_mutex_unlock(&dd->lock);
      return 0;
    }
  } else if (argc == 2 || argc == 3) {
    uint64_t block;
    unsigned fails = 0;
    if (udm_parse_u64(argv[1], &block) < 0) {
      udm_target_error(ti, "invalid block number '%s'", argv[1]);
      return -EINVAL;
    }
    if (argc == 3 && (udm_parse_uint(argv[2], &fails) < 0 || fails > 255)) {
      udm_target_error(ti, "invalid write fail count '%s' (0..255)", argv[2]);
      return -EINVAL;
    }
    uint64_t blocks = udm_dev_size(dd->dev) / dd->sect_per_block;
    if (block > blocks) {
      udm_target_error(ti, "block %llu is out of range (the device has %llu blocks)",
                       (unsigned long long)block, (unsigned long long)blocks);
      return -EINVAL;
    }
    if (!strcasecmp(verb, "addbadblock"))
      return dust_add_block(ti, dd, block, (unsigned char)fails);
    if (argc == 2 && !strcasecmp(verb, "removebadblock"))
      return dust_remove_block(ti, dd, block);
    if (argc == 2 && !strcasecmp(verb, "queryblock")) {
      bool found;
      pthread_mutex_lock(&dd->lock);
      dust_search(dd, block, &found);
      pthread_mutex_unlock(&dd->lock);
      udm_buf_printf(out, "dust_query_block: block %llu %sfound in badblocklist",
                     (unsigned long long)block, found ? "" : "not ");
      return 0;
    }
  } else {
    udm_target_error(ti, "invalid number of message arguments %u", argc);
    return -EINVAL;
  }
  udm_target_error(ti, "unrecognised message '%s' with %u argument%s", verb, argc - 1,
                   argc == 2 ? "" : "s");
  return -EINVAL;
}

/*
 * INFO:  <dev> <fail_read_on_bad_block|bypass> <quiet|verbose>
 * TABLE: <dev> <offset> <block size>
 */
static void dust_status(struct udm_target *ti, enum udm_status_type type, unsigned flags,
                        struct udm_buf *out)
{
  struct dust *dd = ti->private;
  (void)flags;
  if (type == UDM_STATUS_IMA)
    return; /* the kernel's dust measures nothing (empty IMA text) */
  if (type == UDM_STATUS_INFO)
    udm_buf_printf(out, "%s %s %s", udm_dev_name(dd->dev),
                   atomic_load(&dd->fail_read_on_bb) ? "fail_read_on_bad_block" : "bypass",
                   atomic_load(&dd->quiet) ? "quiet" : "verbose");
  else
    udm_buf_printf(out, "%s %llu %u", udm_dev_name(dd->dev),
                   (unsigned long long)dd->start, dd->blksz);
}

static int dust_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                void *data)
{
  struct dust *dd = ti->private;
  return fn(ti, dd->dev, dd->start, ti->len, data);
}

/* Allocation is the backing device's (bad blocks are not marked, yet). */
struct dust_extents {
  udm_extent_fn fn;
  void *opaque;
  udm_sector_t start;
};

static int dust_extent_shift(void *opaque, udm_sector_t sector, uint64_t nr,
                             unsigned flags)
{
  struct dust_extents *s = opaque;
  return s->fn(s->opaque, sector - s->start, nr, flags);
}

static int dust_extents(struct udm_target *ti, udm_sector_t sector, uint64_t nr,
                        udm_extent_fn fn, void *opaque)
{
  struct dust *dd = ti->private;
  struct dust_extents s = {fn, opaque, dd->start};
  return udm_dev_extents(dd->dev, dd->start + sector, nr, dust_extent_shift, &s);
}

const struct udm_target_type udm_target_type_dust = {
    UDM_TARGET_TYPE_INIT,
    .name = "dust",
    .version = {1, 0, 0},
    .ctr = dust_ctr,
    .dtr = dust_dtr,
    .map = dust_map,
    .status = dust_status,
    .message = dust_message,
    .iterate_devices = dust_iterate_devices,
    .extents = dust_extents,
};
