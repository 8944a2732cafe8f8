/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata block cache over real backing: bytes reach the file only at
 * write-back, validators keep corrupt blocks out, a small cache evicts
 * without losing dirty data, a cache full of pinned blocks says ENOMEM,
 * prefetched blocks are hits, and a device that fails (an error table)
 * fails reads and keeps dirty blocks until a write-back succeeds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <udm/target.h>

#include "internal.h" /* udm__dev_open: the backing device a target's ctr would open */
#include "check.h"
#include "testdev.h"
#include "util.h"

#define BS 4096u
#define NBLOCKS 256u /* blocks in the scratch file */

static struct udm_ctx *ctx;
static const char *disk;

static struct udm_dev *open_dev(const char *name)
{
  struct udm_dev *d = NULL;
  char *msg = NULL;
  int r = udm__dev_open(ctx, NULL, name, UDM_DEV_READ | UDM_DEV_WRITE, false, &d, &msg);
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", name, msg ? msg : strerror(-r));
    exit(1);
  }
  return d;
}

static void close_dev(struct udm_dev *d)
{
  d->ops->close(d);
}

static struct udm_bufio *new_client(struct udm_dev *d, unsigned max)
{
  struct udm_bufio *c = NULL;
  if (udm_bufio_create(d, BS, max, &c) < 0) {
    fprintf(stderr, "udm_bufio_create: %s\n", udm_errmsg());
    exit(1);
  }
  return c;
}

/* Block BLOCK of the file as it is on disk. */
static void disk_block(const char *path, uint64_t block, unsigned char *out)
{
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0 && pread(fd, out, BS, (off_t)(block * BS)) == (ssize_t)BS);
  close(fd);
}

static void disk_write(const char *path, uint64_t block, const unsigned char *in)
{
  int fd = open(path, O_WRONLY);
  CHECK(fd >= 0 && pwrite(fd, in, BS, (off_t)(block * BS)) == (ssize_t)BS);
  close(fd);
}

static bool is_pattern(const unsigned char *b, unsigned seed, uint64_t off)
{
  for (unsigned i = 0; i < BS; i++)
    if (b[i] != pattern_byte(seed, off + i))
      return false;
  return true;
}

static struct udm_bufio_stats stats(struct udm_bufio *c)
{
  struct udm_bufio_stats s;
  udm_bufio_stats(c, &s);
  return s;
}

static void read_modify_write_back_flush_gives_the_bytes_on_disk(void)
{
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 16);
  struct udm_buffer *b;
  unsigned char on_disk[BS];

  CHECK(udm_bufio_read(c, 3, NULL, &b) == 0);
  CHECK(udm_buffer_block(b) == 3);
  CHECK(is_pattern(udm_buffer_data(b), 1, 3 * BS));
  memset(udm_buffer_data(b), 'A', 100);
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  CHECK(udm_bufio_read(c, 3, NULL, &b) == 0); /* a hit, with the change */
  CHECK(memcmp(udm_buffer_data(b), "AAAA", 4) == 0);
  udm_bufio_release(b);
  /* A new block: no read, zeros, to be overwritten. */
  CHECK(udm_bufio_new(c, 5, NULL, &b) == 0);
  unsigned char zero[BS] = {0};
  CHECK(memcmp(udm_buffer_data(b), zero, BS) == 0);
  fill_pattern(udm_buffer_data(b), BS, 2, 0);
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  struct udm_bufio_stats s = stats(c);
  CHECK(s.hits == 1 && s.misses == 1 && s.writes == 0);
  CHECK(s.cached == 2 && s.dirty == 2 && s.pinned == 0);
  /* Nothing reached the disk yet. */
  disk_block(disk, 3, on_disk);
  CHECK(is_pattern(on_disk, 1, 3 * BS));
  disk_block(disk, 5, on_disk);
  CHECK(is_pattern(on_disk, 1, 5 * BS));
  CHECK(udm_bufio_write_dirty(c) == 0);
  disk_block(disk, 3, on_disk);
  CHECK(memcmp(on_disk, "AAAA", 4) == 0 && on_disk[99] == 'A');
  CHECK(on_disk[100] == pattern_byte(1, 3 * BS + 100));
  disk_block(disk, 5, on_disk);
  CHECK(is_pattern(on_disk, 2, 0));
  s = stats(c);
  CHECK(s.writes == 2 && s.dirty == 0 && s.cached == 2);
  CHECK(udm_bufio_write_dirty(c) == 0); /* nothing dirty: only the flush */
  CHECK(stats(c).writes == 2);

  /* One block written back alone. */
  CHECK(udm_bufio_read(c, 7, NULL, &b) == 0);
  memset(udm_buffer_data(b), 'B', BS);
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  CHECK(udm_bufio_write_block(c, 7) == 0);
  disk_block(disk, 7, on_disk);
  CHECK(on_disk[0] == 'B' && on_disk[BS - 1] == 'B');
  CHECK(stats(c).dirty == 0 && stats(c).writes == 3);
  CHECK(udm_bufio_write_block(c, 8) == 0); /* not cached: nothing to do */

  /* forget: a clean block goes (the next read is a miss), a pinned or dirty one stays. */
  uint64_t misses = stats(c).misses;
  CHECK(udm_bufio_forget(c, 3) == 0);
  CHECK(udm_bufio_forget(c, 3) == 0);
  CHECK(udm_bufio_read(c, 3, NULL, &b) == 0 && stats(c).misses == misses + 1);
  CHECK(udm_bufio_forget(c, 3) == -EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "cannot forget block 3: it is pinned");
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  CHECK(udm_bufio_forget(c, 3) == -EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "it is dirty");

  /* Past the end, and bad clients. */
  CHECK(udm_bufio_read(c, NBLOCKS, NULL, &b) == -EIO && b == NULL);
  CHECK_CONTAINS(udm_errmsg(), "block 256 is beyond the end of the device (256 blocks of "
                               "4096 bytes)");
  struct udm_bufio *bad;
  CHECK(udm_bufio_create(d, 1000, 4, &bad) == -EINVAL && bad == NULL);
  CHECK_CONTAINS(udm_errmsg(), "invalid block size 1000");
  CHECK(udm_bufio_create(d, BS, 0, &bad) == -EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "at least one block");

  /* destroy writes back what is still dirty (block 3). */
  CHECK(udm_bufio_destroy(c) == 0);
  disk_block(disk, 3, on_disk);
  CHECK(on_disk[0] == 'A');
  close_dev(d);
}

/* ---- a validator: le64 block number, then a checksum of the rest ---- */

static atomic_uint checks;

static uint32_t checksum(const unsigned char *p, size_t n)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static uint64_t get_le64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static int test_check(const struct udm_bufio_validator *v, uint64_t block,
                      const void *data, size_t size, char *why, size_t n)
{
  (void)v;
  const unsigned char *p = data;
  atomic_fetch_add(&checks, 1);
  uint64_t nr = get_le64(p);
  if (nr != block) {
    snprintf(why, n, "it says it is block %llu", (unsigned long long)nr);
    return -EILSEQ;
  }
  uint32_t want;
  memcpy(&want, p + 8, 4);
  if (checksum(p + 12, size - 12) != want) {
    snprintf(why, n, "bad checksum");
    return -EILSEQ;
  }
  return 0;
}

static void stamp(uint64_t block, unsigned char *p, size_t size)
{
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(block >> (8 * i));
  uint32_t sum = checksum(p + 12, size - 12);
  memcpy(p + 8, &sum, 4);
}

static void test_prepare(const struct udm_bufio_validator *v, uint64_t block, void *data,
                         size_t size)
{
  (void)v;
  stamp(block, data, size);
}

static const struct udm_bufio_validator test_validator = {
    .name = "test block",
    .check = test_check,
    .prepare_for_write = test_prepare,
};

static void a_validator_keeps_corrupt_blocks_out(void)
{
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 16);
  struct udm_buffer *b;
  unsigned char blk[BS];

  /* Made with the validator: stamped at write-back, then read back fine, checked once. */
  CHECK(udm_bufio_new(c, 10, &test_validator, &b) == 0);
  memset(udm_buffer_data(b), 'V', BS);
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  CHECK(udm_bufio_write_dirty(c) == 0);
  disk_block(disk, 10, blk);
  CHECK(get_le64(blk) == 10 && blk[12] == 'V');
  CHECK(udm_bufio_forget(c, 10) == 0);
  atomic_store(&checks, 0);
  CHECK(udm_bufio_read(c, 10, &test_validator, &b) == 0);
  udm_bufio_release(b);
  CHECK(udm_bufio_read(c, 10, &test_validator, &b) == 0);
  udm_bufio_release(b);
  CHECK(atomic_load(&checks) == 1);

  /* One byte changed on disk: the checksum fails, and nothing is cached. */
  CHECK(udm_bufio_forget(c, 10) == 0);
  blk[100] ^= 1;
  disk_write(disk, 10, blk);
  unsigned cached = stats(c).cached;
  CHECK(udm_bufio_read(c, 10, &test_validator, &b) == -EILSEQ && b == NULL);
  CHECK(udm_errno() == EILSEQ);
  CHECK_CONTAINS(udm_errmsg(), "block 10 is not a valid test block: bad checksum");
  CHECK(stats(c).cached == cached);
  uint64_t misses = stats(c).misses;
  CHECK(udm_bufio_read(c, 10, &test_validator, &b) == -EILSEQ);
  CHECK(stats(c).misses == misses + 1); /* read from the disk again */

  /* A good block in the wrong place: the location check fails. */
  memset(blk, 'W', BS);
  stamp(12, blk, BS);
  disk_write(disk, 11, blk);
  CHECK(udm_bufio_read(c, 11, &test_validator, &b) == -EILSEQ);
  CHECK_CONTAINS(udm_errmsg(), "block 11 is not a valid test block: it says it is block 12");
  /* ... while the same bytes read without a validator are just bytes. */
  CHECK(udm_bufio_read(c, 11, NULL, &b) == 0);
  CHECK(((unsigned char *)udm_buffer_data(b))[20] == 'W');
  udm_bufio_release(b);
  /* A block cached without the check gets it when read with the validator. */
  CHECK(udm_bufio_read(c, 11, &test_validator, &b) == -EILSEQ);
  CHECK(stats(c).cached == cached); /* and is dropped */

  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
}

static void eviction_under_a_small_limit_keeps_dirty_data(void)
{
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 4);
  struct udm_buffer *b;
  for (uint64_t i = 0; i < 12; i++) {
    CHECK(udm_bufio_new(c, 100 + i, NULL, &b) == 0);
    fill_pattern(udm_buffer_data(b), BS, 3, i * BS);
    udm_bufio_mark_dirty(b);
    udm_bufio_release(b);
    CHECK(stats(c).cached <= 4);
  }
  struct udm_bufio_stats s = stats(c);
  CHECK(s.cached == 4 && s.dirty == 4 && s.writes == 8); /* the 8 oldest went to disk */
  unsigned char blk[BS];
  disk_block(disk, 100, blk);
  CHECK(is_pattern(blk, 3, 0));
  /* Clean blocks go before dirty ones: reading the old ones evicts no dirty block. */
  CHECK(udm_bufio_write_block(c, 108) == 0);
  CHECK(udm_bufio_read(c, 100, NULL, &b) == 0);
  CHECK(is_pattern(udm_buffer_data(b), 3, 0));
  udm_bufio_release(b);
  CHECK(stats(c).writes == 9 && stats(c).dirty == 3);
  /* Every block reads back right, through the cache and on the disk. */
  for (uint64_t i = 0; i < 12; i++) {
    CHECK(udm_bufio_read(c, 100 + i, NULL, &b) == 0);
    CHECK(is_pattern(udm_buffer_data(b), 3, i * BS));
    udm_bufio_release(b);
  }
  CHECK(udm_bufio_write_dirty(c) == 0);
  for (uint64_t i = 0; i < 12; i++) {
    disk_block(disk, 100 + i, blk);
    CHECK(is_pattern(blk, 3, i * BS));
  }
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
}

static void a_cache_of_pinned_blocks_says_enomem(void)
{
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 3);
  struct udm_buffer *b[4];
  for (int i = 0; i < 3; i++)
    CHECK(udm_bufio_read(c, 20 + (uint64_t)i, NULL, &b[i]) == 0);
  CHECK(udm_bufio_read(c, 23, NULL, &b[3]) == -ENOMEM && b[3] == NULL);
  CHECK_CONTAINS(udm_errmsg(), "block cache: all 3 blocks are pinned");
  CHECK(udm_bufio_new(c, 23, NULL, &b[3]) == -ENOMEM);
  /* A block pinned twice needs two releases. */
  struct udm_buffer *again;
  CHECK(udm_bufio_read(c, 21, NULL, &again) == 0 && again == b[1]);
  udm_bufio_release(again);
  udm_bufio_prefetch(c, 10, 4); /* no room: skipped, without blocking */
  CHECK(stats(c).cached == 3 && stats(c).misses == 3);
  udm_bufio_release(b[1]);
  CHECK(udm_bufio_read(c, 23, NULL, &b[3]) == 0);
  CHECK(is_pattern(udm_buffer_data(b[3]), 1, 23 * BS));
  CHECK(stats(c).pinned == 3);
  udm_bufio_release(b[0]);
  udm_bufio_release(b[2]);
  udm_bufio_release(b[3]);
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
}

static void prefetched_blocks_are_hits(void)
{
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 32);
  struct udm_buffer *b;
  udm_bufio_prefetch(c, 40, 8);
  udm_bufio_prefetch(c, NBLOCKS - 2, 10); /* stops at the end */
  CHECK(stats(c).misses == 10);
  for (uint64_t i = 0; i < 8; i++) {
    CHECK(udm_bufio_read(c, 40 + i, NULL, &b) == 0);
    CHECK(is_pattern(udm_buffer_data(b), 1, (40 + i) * BS));
    udm_bufio_release(b);
  }
  struct udm_bufio_stats s = stats(c);
  CHECK(s.misses == 10 && s.hits == 8);
  /* A prefetched block meets its validator at the first read that gives one. */
  atomic_store(&checks, 0);
  CHECK(udm_bufio_read(c, NBLOCKS - 1, &test_validator, &b) == -EILSEQ);
  CHECK(atomic_load(&checks) == 1);
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
}

static void a_failing_device_fails_reads_and_keeps_dirty_blocks(void)
{
  /* "meta" is an error device until it gets a linear table over the file. */
  struct udm_device *meta = test_make(ctx, "meta", "0 2048 error", 0);
  struct udm_dev *d = open_dev("udm:meta");
  struct udm_bufio *c = new_client(d, 1);
  struct udm_buffer *b;
  CHECK(udm_bufio_read(c, 0, NULL, &b) == -EIO && b == NULL);
  CHECK_CONTAINS(udm_errmsg(), "udm:meta: cannot read block 0: ");
  CHECK(stats(c).cached == 0);
  CHECK(udm_bufio_new(c, 2, NULL, &b) == 0);
  memset(udm_buffer_data(b), 'E', BS);
  udm_bufio_mark_dirty(b);
  udm_bufio_release(b);
  CHECK(udm_bufio_write_dirty(c) == -EIO);
  CHECK_CONTAINS(udm_errmsg(), "udm:meta: cannot write block 2 back: ");
  CHECK_CONTAINS(udm_errmsg(), "(it stays dirty)");
  CHECK(stats(c).dirty == 1 && stats(c).writes == 0);
  CHECK(udm_bufio_write_block(c, 2) == -EIO);
  /* A read that must evict the dirty block fails, and the block stays. */
  CHECK(udm_bufio_new(c, 3, NULL, &b) == -EIO);
  CHECK_CONTAINS(udm_errmsg(), "cannot write block 2 back");
  CHECK(stats(c).dirty == 1 && stats(c).cached == 1);
  /* The device is repaired: the kept block reaches the disk. */
  char table[512];
  snprintf(table, sizeof table, "0 2048 linear %s 0", disk);
  CHECK(udm_table_load(meta, table) == 0 && udm_device_resume(meta) == 0);
  CHECK(udm_bufio_write_dirty(c) == 0);
  unsigned char blk[BS];
  disk_block(disk, 2, blk);
  CHECK(blk[0] == 'E' && blk[BS - 1] == 'E');
  CHECK(stats(c).dirty == 0 && stats(c).writes == 1);
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
  test_drop(meta);
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A commit's writes are in flight together: over a 300 ms delay, 6 take one delay. */
static void a_commit_writes_its_blocks_together(void)
{
  char table[512];
  snprintf(table, sizeof table, "0 2048 delay %s 0 300", disk);
  struct udm_device *slow = test_make(ctx, "slow", table, 0);
  struct udm_dev *d = open_dev("udm:slow");
  struct udm_bufio *c = new_client(d, 16);
  struct udm_buffer *b;
  for (uint64_t i = 0; i < 6; i++) {
    CHECK(udm_bufio_new(c, 150 + i, NULL, &b) == 0);
    fill_pattern(udm_buffer_data(b), BS, 4, i * BS);
    udm_bufio_mark_dirty(b);
    udm_bufio_release(b);
  }
  long long t0 = now_ms();
  CHECK(udm_bufio_write_dirty(c) == 0);
  long long took = now_ms() - t0;
  /* One after another: 6 x 300 ms and the flush's 300. */
  CHECK(took >= 300 && took < 1500);
  if (took >= 1500)
    fprintf(stderr, "6 delayed writes and a flush took %lld ms\n", took);
  unsigned char blk[BS];
  for (uint64_t i = 0; i < 6; i++) {
    disk_block(disk, 150 + i, blk);
    CHECK(is_pattern(blk, 4, i * BS));
  }
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
  test_drop(slow);
}

/*
 * Threads change their own counters in shared blocks through a cache too
 * small for all, and commit now and then.  As a target must, they keep
 * writers out during a commit (the rwlock: changes shared, commits alone).
 */
static pthread_rwlock_t commit_lock = PTHREAD_RWLOCK_INITIALIZER;

#define THREADS 4
#define ROUNDS 300
#define SPAN 24

struct worker {
  struct udm_bufio *c;
  unsigned id;
  int failures;
};

static void *work(void *arg)
{
  struct worker *w = arg;
  unsigned seed = w->id * 7919u + 1;
  for (unsigned i = 0; i < ROUNDS; i++) {
    seed = seed * 1103515245u + 12345u;
    uint64_t block = 200 + (seed >> 16) % SPAN;
    struct udm_buffer *b;
    pthread_rwlock_rdlock(&commit_lock);
    if (udm_bufio_read(w->c, block, NULL, &b) < 0) {
      w->failures++;
    } else {
      uint32_t *counter = (uint32_t *)udm_buffer_data(b) + w->id;
      (*counter)++;
      udm_bufio_mark_dirty(b);
      udm_bufio_release(b);
    }
    pthread_rwlock_unlock(&commit_lock);
    if (i % 50 == 49) {
      pthread_rwlock_wrlock(&commit_lock);
      if (udm_bufio_write_dirty(w->c) < 0)
        w->failures++;
      pthread_rwlock_unlock(&commit_lock);
    }
  }
  return NULL;
}

static void threads_share_a_small_cache_without_losing_writes(void)
{
  unsigned char zero[BS] = {0};
  for (uint64_t i = 0; i < SPAN; i++)
    disk_write(disk, 200 + i, zero);
  struct udm_dev *d = open_dev(disk);
  struct udm_bufio *c = new_client(d, 8);
  struct worker w[THREADS];
  pthread_t th[THREADS];
  for (unsigned t = 0; t < THREADS; t++) {
    w[t] = (struct worker){.c = c, .id = t};
    pthread_create(&th[t], NULL, work, &w[t]);
  }
  for (unsigned t = 0; t < THREADS; t++) {
    pthread_join(th[t], NULL);
    CHECK(w[t].failures == 0);
  }
  CHECK(udm_bufio_write_dirty(c) == 0);
  uint32_t total[THREADS] = {0};
  for (uint64_t i = 0; i < SPAN; i++) {
    unsigned char blk[BS];
    disk_block(disk, 200 + i, blk);
    for (unsigned t = 0; t < THREADS; t++) {
      uint32_t v;
      memcpy(&v, blk + 4 * t, 4);
      total[t] += v;
    }
  }
  for (unsigned t = 0; t < THREADS; t++)
    CHECK(total[t] == ROUNDS);
  CHECK(udm_bufio_destroy(c) == 0);
  close_dev(d);
}

/*
 * The pattern <udm/target.h> documents: a target "counter DEV" keeps a
 * checked superblock (block 0 of DEV, the test validator's format) through
 * its own client, made in ctr and destroyed in dtr; message "bump" counts
 * in the superblock and commits; status shows the count and the counters.
 */
struct counter {
  struct udm_dev *dev;
  struct udm_bufio *bufio;
};

static void counter_dtr(struct udm_target *ti)
{
  struct counter *k = ti->private;
  if (!k)
    return;
  udm_bufio_destroy(k->bufio);
  if (k->dev)
    udm_put_device(ti, k->dev);
  free(k);
}

static int counter_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 1) {
    udm_target_error(ti, "counter DEV");
    return -EINVAL;
  }
  struct counter *k = calloc(1, sizeof *k);
  if (!k)
    return -ENOMEM;
  ti->private = k;
  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &k->dev);
  if (r < 0)
    return r;
  struct udm_buffer *b;
  if ((r = udm_bufio_create(k->dev, BS, 8, &k->bufio)) < 0 ||
      (r = udm_bufio_read(k->bufio, 0, &test_validator, &b)) < 0) {
    udm_target_error(ti, "%s", udm_errmsg());
    return r;
  }
  udm_bufio_release(b);
  return 0;
}

static int counter_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti;
  if (io->buf)
    memset(io->buf, 0, io->nr_sectors * UDM_SECTOR_SIZE);
  return UDM_MAPIO_DONE;
}

static uint32_t *count_in(struct udm_buffer *b)
{
  return (uint32_t *)((unsigned char *)udm_buffer_data(b) + 16);
}

static void counter_status(struct udm_target *ti, enum udm_status_type type,
                           unsigned flags, struct udm_buf *out)
{
  (void)flags;
  struct counter *k = ti->private;
  if (type == UDM_STATUS_TABLE) {
    udm_buf_puts(out, udm_dev_name(k->dev));
    return;
  }
  struct udm_buffer *b;
  struct udm_bufio_stats s;
  uint32_t n = 0;
  if (udm_bufio_read(k->bufio, 0, &test_validator, &b) == 0) {
    memcpy(&n, count_in(b), 4);
    udm_bufio_release(b);
  }
  udm_bufio_stats(k->bufio, &s);
  udm_buf_printf(out, "%u %llu/%llu/%llu", n, (unsigned long long)s.hits,
                 (unsigned long long)s.misses, (unsigned long long)s.writes);
}

static int counter_message(struct udm_target *ti, unsigned argc, char **argv,
                           struct udm_buf *out)
{
  (void)argc;
  (void)argv;
  (void)out;
  struct counter *k = ti->private;
  struct udm_buffer *b;
  int r = udm_bufio_read(k->bufio, 0, &test_validator, &b);
  if (r == 0) {
    uint32_t n;
    memcpy(&n, count_in(b), 4);
    n++;
    memcpy(count_in(b), &n, 4);
    udm_bufio_mark_dirty(b);
    udm_bufio_release(b);
    r = udm_bufio_write_dirty(k->bufio);
  }
  if (r < 0)
    udm_target_error(ti, "%s", udm_errmsg());
  return r;
}

static const struct udm_target_type counter_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "counter",
    .version = {1, 0, 0},
    .ctr = counter_ctr,
    .dtr = counter_dtr,
    .map = counter_map,
    .status = counter_status,
    .message = counter_message,
};

static void a_target_keeps_its_metadata_through_a_client(void)
{
  CHECK(udm_target_register(ctx, &counter_type) == 0);
  const char *meta = scratch_file("counter.img", 16 * BS, 0);
  char table[512];
  snprintf(table, sizeof table, "0 8 counter %s", meta);
  /* No superblock yet: the table is refused with the validator's reason. */
  struct udm_device *d = udm_device_create(ctx, "counter", NULL, 0);
  CHECK(udm_table_load(d, table) == -1 && udm_errno() == EILSEQ);
  CHECK_CONTAINS(udm_errmsg(), "block 0 is not a valid test block: bad checksum");
  unsigned char blk[BS] = {0};
  stamp(0, blk, BS);
  disk_write(meta, 0, blk);
  CHECK(udm_table_load(d, table) == 0 && udm_device_resume(d) == 0);
  char *reply = NULL, *st = NULL;
  for (int i = 0; i < 3; i++) {
    CHECK(udm_device_message(d, 0, "bump", &reply) == 0);
    free(reply);
  }
  CHECK(udm_device_status(d, 0, &st) == 0);
  CHECK_STR(st, "0 8 counter 3 4/1/3\n"); /* 1 miss (ctr), 3 hits by bump, 1 by status */
  free(st);
  /* Committed: stamped and counted on disk. */
  disk_block(meta, 0, blk);
  uint32_t n;
  memcpy(&n, blk + 16, 4);
  CHECK(n == 3 && test_check(NULL, 0, blk, BS, (char[64]){0}, 64) == 0);
  test_drop(d);
}

int main(void)
{
  scratch_init();
  disk = scratch_file("meta.img", (uint64_t)NBLOCKS * BS, 1);
  ctx = udm_ctx_new();
  read_modify_write_back_flush_gives_the_bytes_on_disk();
  a_validator_keeps_corrupt_blocks_out();
  eviction_under_a_small_limit_keeps_dirty_data();
  a_cache_of_pinned_blocks_says_enomem();
  prefetched_blocks_are_hits();
  a_failing_device_fails_reads_and_keeps_dirty_blocks();
  a_commit_writes_its_blocks_together();
  threads_share_a_small_cache_without_losing_writes();
  a_target_keeps_its_metadata_through_a_client();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-bufio");
}
