/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logical block sizes (docs/architecture.md, "Limits"): a table's is the
 * largest of 512, its targets' io_hints and its backing devices' (image
 * drivers' block_size included); stacked devices inherit it; segments,
 * device areas and request splits that are not whole blocks are refused
 * with a message naming the line, and the live table stays; a device may
 * not raise it under a table stacked on it; the byte-addressed calls
 * read-modify-write whole blocks of it.
 *
 * The target "blocks" is defined here so the core is tested without crypt:
 *   blocks <dev> <offset> <logical block size>
 * maps like linear, asks for the block size through io_hints, and fails
 * every request that does not cover whole blocks of it with EIO, as crypt
 * with sector_size does.
 */
#include <errno.h>
#include <stdlib.h>

#include <udm/driver.h>
#include <udm/target.h>
#include <udm/udm.h>

#include "check.h"
#include "testdev.h"
#include "platform.h"
#include "util.h"

static struct udm_ctx *ctx;

struct blocks {
  struct udm_dev *dev;
  udm_sector_t start;
  unsigned bs;
};

static int blocks_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct blocks *b = calloc(1, sizeof *b);
  if (!b)
    return -ENOMEM;
  ti->private = b;
  uint64_t start;
  if (argc != 3 || udm_parse_u64(argv[1], &start) < 0 ||
      udm_parse_uint(argv[2], &b->bs) < 0) {
    udm_target_error(ti, "expected <dev> <offset> <logical block size>");
    return -EINVAL;
  }
  b->start = start;
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &b->dev);
}

static void blocks_dtr(struct udm_target *ti)
{
  struct blocks *b = ti->private;
  if (b && b->dev)
    udm_put_device(ti, b->dev);
  free(b);
}

static int blocks_map(struct udm_target *ti, struct udm_io *io)
{
  struct blocks *b = ti->private;
  uint64_t spb = b->bs >= 512 ? b->bs / 512 : 1;
  if (io->op != UDM_OP_FLUSH &&
      (udm_target_offset(ti, io->sector) % spb || io->nr_sectors % spb))
    return -EIO;
  io->dev = b->dev;
  if (io->op != UDM_OP_FLUSH)
    io->sector = b->start + udm_target_offset(ti, io->sector);
  return UDM_MAPIO_REMAPPED;
}

static int blocks_iterate(struct udm_target *ti, udm_iterate_devices_fn fn, void *data)
{
  struct blocks *b = ti->private;
  return fn(ti, b->dev, b->start, ti->len, data);
}

static void blocks_io_hints(struct udm_target *ti, struct udm_limits *limits)
{
  struct blocks *b = ti->private;
  limits->logical_block_size = b->bs;
}

static const struct udm_target_type blocks_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "blocks",
    .version = {1, 0, 0},
    .ctr = blocks_ctr,
    .dtr = blocks_dtr,
    .map = blocks_map,
    .iterate_devices = blocks_iterate,
    .io_hints = blocks_io_hints,
};

/*
 * The image driver "mem": 1 MiB of memory per open, whose logical block size
 * is its option bs=N (any number, so that bad ones can be tried).
 */
struct mem {
  unsigned bs;
  unsigned char data[1 << 20];
};

static int mem_open(const char *path, const struct udm_image_options *opts, bool writable,
                    void **handle, char **errmsg)
{
  (void)path, (void)writable, (void)errmsg;
  struct mem *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  m->bs = 512;
  for (unsigned i = 0; i < opts->count; i++)
    if (strcmp(opts->keys[i], "bs") == 0)
      m->bs = (unsigned)strtoul(opts->values[i], NULL, 10);
  *handle = m;
  return 0;
}

static void mem_close(void *h)
{
  free(h);
}

static uint64_t mem_size(void *h)
{
  return sizeof ((struct mem *)h)->data;
}

static unsigned mem_block_size(void *h)
{
  return ((struct mem *)h)->bs;
}

static int mem_pread(void *h, void *buf, size_t len, uint64_t off)
{
  struct mem *m = h;
  if (off % m->bs || len % m->bs)
    return -EIO; /* the core promised whole blocks */
  memcpy(buf, m->data + off, len);
  return 0;
}

static int mem_pwrite(void *h, const void *buf, size_t len, uint64_t off, unsigned flags)
{
  struct mem *m = h;
  (void)flags;
  if (off % m->bs || len % m->bs)
    return -EIO;
  memcpy(m->data + off, buf, len);
  return 0;
}

static const struct udm_image_driver mem_driver = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "mem",
    .description = "memory, with a chosen block size (test-limits)",
    .open = mem_open,
    .close = mem_close,
    .size = mem_size,
    .block_size = mem_block_size,
    .pread = mem_pread,
    .pwrite = mem_pwrite,
};

static struct udm_device *make(const char *name, const char *table)
{
  return test_make(ctx, name, table, 0);
}


static char *table_of(struct udm_device *d)
{
  char *t = NULL;
  CHECK(udm_device_table(d, 0, &t) == 0);
  return t;
}

/* TABLE is refused with EINVAL naming FRAG; D keeps its live table and size. */
static void refused(struct udm_device *d, const char *table, const char *frag)
{
  char *before = table_of(d);
  unsigned bs = udm_device_block_size(d);
  errno = 0;
  CHECK(udm_table_load(d, table) == -1);
  CHECK(errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), frag);
  char *after = table_of(d);
  CHECK_STR(after, before);
  CHECK(udm_device_block_size(d) == bs);
  struct udm_info info;
  udm_device_info(d, &info);
  CHECK(info.live_table && !info.inactive_table && !info.suspended);
  free(before);
  free(after);
}

static void block_size_is_the_largest_of_targets_and_devices(const char *img)
{
  char t[1024];
  struct udm_device *none = udm_device_create(ctx, "none", NULL, 0);
  CHECK(udm_device_block_size(none) == 512); /* no table yet */
  test_drop(none);

  snprintf(t, sizeof t, "0 256 linear %s 0", img);
  struct udm_device *plain = make("plain", t);
  CHECK(udm_device_block_size(plain) == 512);
  snprintf(t, sizeof t, "0 256 linear raw:%s?direct=on 0", img);
  CHECK(udm_table_load(plain, t) == 0 && udm_device_resume(plain) == 0);
  CHECK(udm_device_block_size(plain) == 512); /* a regular file has no blocks */
  test_drop(plain);

  snprintf(t, sizeof t, "0 256 blocks %s 0 4096", img);
  struct udm_device *b4k = make("b4k", t);
  CHECK(udm_device_block_size(b4k) == 4096);

  /* Stacked: a linear over it inherits 4096, whatever its own target says. */
  struct udm_device *up = make("up", "0 128 linear udm:b4k 64");
  CHECK(udm_device_block_size(up) == 4096);
  /* A target asking for less than its device has gets the device's. */
  CHECK(udm_table_load(up, "0 128 blocks udm:b4k 64 512") == 0);
  CHECK(udm_device_resume(up) == 0);
  CHECK(udm_device_block_size(up) == 4096);
  /* The largest segment wins for the whole table. */
  snprintf(t, sizeof t, "0 16 linear %s 0\n16 16 blocks %s 0 8192\n32 16 zero", img, img);
  CHECK(udm_table_load(up, t) == 0 && udm_device_resume(up) == 0);
  CHECK(udm_device_block_size(up) == 8192);
  CHECK(udm_device_size(up) == 48 * 512);
  test_drop(up);
  test_drop(b4k);
}

static void misaligned_tables_are_refused_and_the_live_table_stays(const char *img)
{
  char t[1024];
  snprintf(t, sizeof t, "0 256 blocks %s 0 4096", img);
  struct udm_device *b4k = make("b4k", t);
  struct udm_device *v = make("victim", "0 64 linear udm:b4k 0");

  /* The area on a 4096-byte device must start and end on its blocks. */
  refused(v, "0 8 linear udm:b4k 1",
          "line 1: linear: the table maps sectors 1..8 (8 sectors) of udm:b4k, which has a logical "
          "block size of 4096 bytes: start and length must be multiples of 8 sectors");
  refused(v, "0 16 zero\n16 8 linear udm:b4k 4",
          "line 2: linear: the table maps sectors 4..11 (8 sectors) of udm:b4k");
  /* A segment of the table must be whole blocks of the table's size. */
  refused(v, "0 8 linear udm:b4k 0\n8 7 zero",
          "line 2: segment (start 8, length 7 sectors) is not aligned to the device's "
          "logical block size of 4096 bytes (8 sectors), which line 1 sets");
  refused(v, "0 4 zero\n4 8 linear udm:b4k 0",
          "line 1: segment (start 0, length 4 sectors) is not aligned to the device's "
          "logical block size of 4096 bytes (8 sectors), which line 2 sets");
  snprintf(t, sizeof t, "0 8 linear %s 0\n8 4 blocks %s 0 4096", img, img);
  refused(v, t, "line 2: segment (start 8, length 4 sectors) is not aligned to the "
                "device's logical block size of 4096 bytes (8 sectors), which line 2 sets");
  /* Requests split below a block would reach udm:b4k in pieces it refuses. */
  refused(v, "0 16 striped 2 1 udm:b4k 0 udm:b4k 8",
          "line 1: striped: requests are split every 1 sectors, which is not a multiple "
          "of the device's logical block size of 4096 bytes (8 sectors)");
  /* What the target asks for must be a block size. */
  snprintf(t, sizeof t, "0 64 blocks %s 0 3000", img);
  refused(v, t, "line 1: blocks: the target asks for a logical block size of 3000 bytes "
                "(a power of two from 512 to 65536 is needed)");
  snprintf(t, sizeof t, "0 256 blocks %s 0 131072", img);
  refused(v, t, "asks for a logical block size of 131072 bytes");
  /* An aligned striped table over it is fine. */
  CHECK(udm_table_load(v, "0 32 striped 2 8 udm:b4k 0 udm:b4k 64") == 0);
  CHECK(udm_device_resume(v) == 0 && udm_device_block_size(v) == 4096);
  test_drop(v);
  test_drop(b4k);
}

/* What a lower device's new table may not do under a table stacked on it. */
static void a_held_device_cannot_raise_its_block_size(const char *img)
{
  char t[1024];
  snprintf(t, sizeof t, "0 256 linear %s 0", img);
  struct udm_device *low = make("low", t);
  struct udm_device *top = make("top", "0 64 linear udm:low 8");
  CHECK(udm_device_block_size(top) == 512);
  snprintf(t, sizeof t, "0 256 blocks %s 0 4096", img);
  CHECK(udm_table_load(low, t) == 0); /* load builds it: no one is hurt yet */
  errno = 0;
  CHECK(udm_device_resume(low) == -1 && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "resume low: the new table's logical block size is 4096 "
                               "bytes, but the live table of device 'top' uses low with "
                               "512-byte blocks; reload or remove 'top' first");
  /* Nothing changed: not suspended, the old table live, 512-byte I/O through top. */
  struct udm_info info;
  udm_device_info(low, &info);
  CHECK(info.live_table && info.inactive_table && !info.suspended);
  CHECK(udm_device_block_size(low) == 512);
  unsigned char buf[512], want[512];
  fill_pattern(want, sizeof want, 7, 8 * 512 + 512);
  CHECK(udm_device_pread(top, buf, 512, 512) == 0 && memcmp(buf, want, 512) == 0);
  /* Lowering, or keeping, the size is always fine; so is raising once top is gone. */
  test_drop(top);
  CHECK(udm_device_resume(low) == 0 && udm_device_block_size(low) == 4096);
  top = make("top", "0 64 linear udm:low 8");
  CHECK(udm_device_block_size(top) == 4096);
  snprintf(t, sizeof t, "0 256 linear %s 0", img);
  CHECK(udm_table_load(low, t) == 0 && udm_device_resume(low) == 0);
  CHECK(udm_device_block_size(low) == 512 && udm_device_block_size(top) == 4096);
  test_drop(top);
  test_drop(low);
}

/* An image driver's block_size() is the image's logical block size. */
static void image_drivers_bring_their_block_size(void)
{
  struct udm_device *d = make("img", "0 2048 linear mem:x?bs=4096 0");
  CHECK(udm_device_block_size(d) == 4096);
  CHECK(udm_table_load(d, "0 2048 linear mem:x?bs=8192 0") == 0);
  CHECK(udm_device_resume(d) == 0 && udm_device_block_size(d) == 8192);
  struct udm_device *up = make("img-up", "0 1024 linear udm:img 1024");
  CHECK(udm_device_block_size(up) == 8192);
  test_drop(up);
  CHECK(udm_table_load(d, "0 2048 linear mem:x 0") == 0); /* no bs=: 512 */
  CHECK(udm_device_resume(d) == 0 && udm_device_block_size(d) == 512);
  refused(d, "0 2040 linear mem:x?bs=4096 4",
          "line 1: linear: the table maps sectors 4..2043 (2040 sectors) of mem:x?bs=4096, which has a "
          "logical block size of 4096 bytes");
  refused(d, "0 2048 linear mem:x?bs=1000 0",
          "line 1: linear: mem:x?bs=1000: the mem driver reports a logical block size of "
          "1000 bytes (a power of two from 512 to 65536 is needed)");
  refused(d, "0 2048 linear mem:x?bs=256 0", "logical block size of 256 bytes");
  refused(d, "0 2048 linear mem:x?bs=131072 0", "logical block size of 131072 bytes");
  test_drop(d);
}

/*
 * The byte-addressed calls align to the device's block size: "blocks" fails
 * anything smaller with EIO, so these only pass if the core read-modify-
 * writes whole 4096-byte blocks, and the file shows that the neighbours of
 * each range kept their bytes.
 */
static void byte_calls_read_modify_write_whole_blocks(void)
{
  const char *f = scratch_file("rmw4k.img", 64 * 1024, 11);
  char t[512];
  snprintf(t, sizeof t, "0 128 blocks %s 0 4096", f);
  struct udm_device *d = make("rmw4k", t);
  unsigned char want[64 * 1024], got[64 * 1024];
  fill_pattern(want, sizeof want, 11, 0);

  unsigned char sector[512];
  fill_pattern(sector, sizeof sector, 12, 0);
  CHECK(udm_device_pwrite(d, sector, 512, 512, 0) == 0);
  memcpy(want + 512, sector, 512);
  CHECK(udm_device_pread(d, got, 512, 512) == 0 && memcmp(got, sector, 512) == 0);
  /* Odd bytes across a block boundary, then a read of odd bytes. */
  const char msg[] = "straddles the block boundary at 8 KiB";
  CHECK(udm_device_pwrite(d, msg, sizeof msg, 8192 - 7, UDM_IO_FUA) == 0);
  memcpy(want + 8192 - 7, msg, sizeof msg);
  CHECK(udm_device_pread(d, got, 3, 8191) == 0 && memcmp(got, want + 8191, 3) == 0);
  unsigned char *back = read_file_at(f, 0, sizeof want);
  CHECK(memcmp(back, want, sizeof want) == 0);
  free(back);

  /* write-zeroes zeroes exactly its range; fast-only refuses partial blocks. */
  CHECK(udm_device_write_zeroes(d, 12288, 1000, 0) == 0);
  memset(want + 1000, 0, 12288);
  CHECK(udm_device_write_zeroes(d, 100, 20000, 0) == 0); /* inside one block */
  memset(want + 20000, 0, 100);
  errno = 0;
  CHECK(udm_device_write_zeroes(d, 8192, 512, UDM_IO_NO_FALLBACK) == -1 &&
        errno == EOPNOTSUPP);
  back = read_file_at(f, 0, sizeof want);
  CHECK(memcmp(back, want, sizeof want) == 0);
  free(back);

  /* discard takes only the whole blocks inside: [512, 16896) discards 4K..16K. */
  CHECK(udm_device_discard(d, 16384, 512, 0) == 0);
  memset(want + 4096, 0, 12288);
  back = read_file_at(f, 0, sizeof want);
  CHECK(memcmp(back, want, sizeof want) == 0);
  free(back);
  CHECK(udm_device_discard(d, 4000, 100, 0) == 0); /* no whole block: nothing */

  /* Past the end, and read-only devices, fail as before. */
  errno = 0;
  CHECK(udm_device_pwrite(d, msg, sizeof msg, 64 * 1024 - 10, 0) == -1 && errno == EIO);
  CHECK(udm_device_pread(d, got, 20, 64 * 1024 - 10) == -1 && errno == EIO);
  test_drop(d);
  struct udm_device *ro = udm_device_create(ctx, "ro4k", NULL, UDM_DEVICE_READONLY);
  CHECK(ro && udm_table_load(ro, t) == 0 && udm_device_resume(ro) == 0);
  errno = 0;
  CHECK(udm_device_pwrite(ro, msg, sizeof msg, 100, 0) == -1 && errno == EROFS);
  CHECK(udm_device_pread(ro, got, 100, 100) == 0 && memcmp(got, want + 100, 100) == 0);
  test_drop(ro);
}

/* A target built before io_hints existed (a smaller struct) is not asked. */
static void targets_without_io_hints_keep_the_devices_block_size(const char *img)
{
  struct udm_target_type old = blocks_type;
  old.name = "old-blocks";
  old.struct_size = offsetof(struct udm_target_type, io_hints);
  CHECK(udm_target_register(ctx, &old) == 0);
  char t[1024];
  snprintf(t, sizeof t, "0 256 old-blocks %s 0 4096", img);
  struct udm_device *d = make("old", t);
  CHECK(udm_device_block_size(d) == 512);
  test_drop(d);
}

/* A block device opened with direct=on has its own logical block size. */
static void direct_block_devices_bring_their_block_size(void)
{
  if (geteuid() != 0) {
    printf("not root: the loop device case is not run\n");
    return;
  }
  const char *file = scratch_file("loop4k.img", 1 << 20, 9);
  char loop[64];
  int r = udm_platform_attach(file, false, 4096, loop, sizeof loop, NULL);
  if (r < 0) {
    const char *ci = getenv("CI");
    printf("no loop device (%s): the loop device case is not run\n", strerror(-r));
    CHECK(!(ci && strcmp(ci, "true") == 0));
    return;
  }
  char t[256];
  snprintf(t, sizeof t, "0 2048 linear raw:%s?direct=on 0", loop);
  struct udm_device *d = make("direct", t);
  CHECK(udm_device_block_size(d) == 4096);
  snprintf(t, sizeof t, "0 2048 linear %s 0", loop); /* buffered: any sector */
  CHECK(udm_table_load(d, t) == 0 && udm_device_resume(d) == 0);
  CHECK(udm_device_block_size(d) == 512);
  snprintf(t, sizeof t, "0 2040 linear raw:%s?direct=on 4", loop);
  refused(d, t, "which has a logical block size of 4096 bytes");
  test_drop(d);
  CHECK(udm_platform_detach(loop) == 0);
}

int main(void)
{
  scratch_init();
  ctx = udm_ctx_new();
  if (udm_target_register(ctx, &blocks_type) < 0) {
    fprintf(stderr, "register blocks: %s\n", udm_errmsg());
    return 1;
  }
  if (udm_image_driver_register(ctx, &mem_driver) < 0) {
    fprintf(stderr, "register mem: %s\n", udm_errmsg());
    return 1;
  }
  const char *img = scratch_file("disk.img", 256 * 512, 7);
  block_size_is_the_largest_of_targets_and_devices(img);
  misaligned_tables_are_refused_and_the_live_table_stays(img);
  a_held_device_cannot_raise_its_block_size(img);
  targets_without_io_hints_keep_the_devices_block_size(img);
  image_drivers_bring_their_block_size();
  byte_calls_read_modify_write_whole_blocks();
  direct_block_devices_bring_their_block_size();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-limits");
}
