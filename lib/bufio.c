/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata block cache (dm-bufio), see <udm/target.h>.
 *
 * Buffers are found by block number through a hash (a multiplicative hash,
 * as drivers/common/blockcache.c does: metadata blocks are often multiples
 * of a stride).  Every buffer that nobody pins and nobody is reading is on
 * the LRU list, newest first; eviction takes the oldest clean one, or
 * writes the oldest dirty one back and looks again.  (blockcache.c is the
 * image drivers' copy-in/copy-out cache: it has no pins, dirty blocks or
 * I/O in flight, which are most of this file, so only its hashing idea is
 * shared.)
 *
 * One mutex per client guards the lists, the counters and each buffer's
 * state; no I/O is done under it.  A buffer in I/O carries READING or
 * WRITING; whoever wants to pin it, or to evict, write or forget it, waits
 * on c->cond until the I/O is over, and looks again, since the lock was
 * dropped meanwhile.  Pins taken before a write-back started are left
 * alone: the holder may still change the bytes, and dirty_seq tells
 * whether it marked the block dirty again while it was being written.
 * write_dirty starts all its writes at once (udm_dev_submit_async) and
 * sleeps until the last completes; an eviction writes its one block
 * synchronously.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "../drivers/common/crc32c.h"

#define SS UDM_SECTOR_SIZE
#define BUFIO_MAX_BLOCK_SIZE (1u << 20)

enum { READING = 1, WRITING = 2 };

struct udm_buffer {
  struct udm_bufio *c;
  uint64_t block;
  void *data;
  unsigned pins;
  unsigned state;           /* READING | WRITING */
  bool dirty;
  unsigned dirty_seq;       /* bumped by each mark_dirty */
  unsigned write_seq;       /* dirty_seq when the write-back started */
  int write_err;
  /* The validator that checked (or, for new blocks, stamps) the bytes. */
  const struct udm_bufio_validator *validated;
  struct udm_buffer *hnext;            /* hash chain */
  struct udm_buffer *newer, *older;    /* LRU list, when unpinned and not reading */
  bool on_lru;
  struct udm_io io;                    /* a prefetch, or a write of write_dirty */
  struct write_batch *batch;           /* that write's */
};

/* The writes of one write_dirty, in flight together. */
struct write_batch {
  pthread_mutex_t lock;
  pthread_cond_t done;
  unsigned left;
};

struct udm_bufio {
  struct udm_dev *dev;
  unsigned block_size;
  uint64_t nr_blocks;
  unsigned max_blocks;
  pthread_mutex_t lock;
  pthread_cond_t cond;      /* a buffer's I/O ended */
  unsigned bucket_bits;
  struct udm_buffer **buckets;
  struct udm_buffer lru;    /* sentinel: lru.older is the newest, lru.newer the oldest */
  unsigned nbuffers, ndirty, npinned;
  unsigned busy;            /* buffers in I/O */
  unsigned writing;         /* of which being written */
  uint64_t hits, misses, writes;
};

/* ---- hash and LRU (c->lock held) ---- */

static unsigned bucket_of(const struct udm_bufio *c, uint64_t block)
{
  return (unsigned)((block * 0x9E3779B97F4A7C15ull) >> (64 - c->bucket_bits));
}

static struct udm_buffer *find(struct udm_bufio *c, uint64_t block)
{
  for (struct udm_buffer *b = c->buckets[bucket_of(c, block)]; b; b = b->hnext)
    if (b->block == block)
      return b;
  return NULL;
}

static void hash_add(struct udm_bufio *c, struct udm_buffer *b)
{
  struct udm_buffer **head = &c->buckets[bucket_of(c, b->block)];
  b->hnext = *head;
  *head = b;
}

static void hash_del(struct udm_bufio *c, struct udm_buffer *b)
{
  struct udm_buffer **p = &c->buckets[bucket_of(c, b->block)];
  while (*p != b)
    p = &(*p)->hnext;
  *p = b->hnext;
}

static void lru_add(struct udm_bufio *c, struct udm_buffer *b)
{
  b->older = c->lru.older;
  b->newer = &c->lru;
  c->lru.older->newer = b;
  c->lru.older = b;
  b->on_lru = true;
}

static void lru_del(struct udm_buffer *b)
{
  b->newer->older = b->older;
  b->older->newer = b->newer;
  b->on_lru = false;
}

static void pin(struct udm_bufio *c, struct udm_buffer *b)
{
  if (b->pins++ == 0) {
    c->npinned++;
    if (b->on_lru)
      lru_del(b);
  }
}

static struct udm_buffer *buffer_alloc(struct udm_bufio *c)
{
  struct udm_buffer *b = calloc(1, sizeof *b);
  size_t align = c->block_size < 4096 ? c->block_size : 4096; /* O_DIRECT backing */
  if (!b || posix_memalign(&b->data, align, c->block_size) != 0) {
    free(b);
    return NULL;
  }
  b->c = c;
  c->nbuffers++;
  return b;
}

/* Free a buffer that is on no list. */
static void buffer_free(struct udm_bufio *c, struct udm_buffer *b)
{
  c->nbuffers--;
  free(b->data);
  free(b);
}

/* Take a clean, idle, unpinned buffer out of the cache. */
static void drop(struct udm_bufio *c, struct udm_buffer *b)
{
  if (b->on_lru)
    lru_del(b);
  hash_del(c, b);
  buffer_free(c, b);
}

/* ---- I/O (called without c->lock) ---- */

static int block_io(struct udm_bufio *c, enum udm_op op, uint64_t block, void *data)
{
  struct udm_io io = {
      .op = op,
      .sector = block * (c->block_size / SS),
      .nr_sectors = c->block_size / SS,
      .buf = data,
  };
  return udm_dev_submit(c->dev, &io);
}

/*
 * Validators compute checksums (crc32c) with no context at hand: they run
 * under the choice of the context that opened the device (crc32c-accel).
 */
static bool crc32c_choice_begin(const struct udm_bufio *c)
{
  const struct udm_ctx *ctx = c->dev->ctx;
  return udm_crc32c_use_accel(!ctx || atomic_load(&ctx->crc32c_accel));
}

static void prepare_for_write(struct udm_bufio *c, struct udm_buffer *b)
{
  if (b->validated && b->validated->prepare_for_write) {
    bool was = crc32c_choice_begin(c);
    b->validated->prepare_for_write(b->validated, b->block, b->data, c->block_size);
    udm_crc32c_use_accel(was);
  }
}

static int check_block(struct udm_bufio *c, const struct udm_bufio_validator *v,
                       uint64_t block, const void *data)
{
  char why[256] = "";
  bool was = crc32c_choice_begin(c);
  int r = v->check(v, block, data, c->block_size, why, sizeof why);
  udm_crc32c_use_accel(was);
  if (r < 0)
    udm__fail(-r, "%s: block %llu is not a valid %s: %s", udm_dev_name(c->dev),
              (unsigned long long)block, v->name ? v->name : "block",
              why[0] ? why : strerror(-r));
  return r;
}

/*
 * Write a dirty, idle buffer back.  Drops c->lock while writing; the
 * buffer is WRITING meanwhile, so it stays.  0 or -errno (message set).
 */
static int write_back_locked(struct udm_bufio *c, struct udm_buffer *b)
{
  b->state |= WRITING;
  b->write_seq = b->dirty_seq;
  c->busy++;
  c->writing++;
  pthread_mutex_unlock(&c->lock);
  prepare_for_write(c, b);
  int r = block_io(c, UDM_OP_WRITE, b->block, b->data);
  pthread_mutex_lock(&c->lock);
  b->state &= ~WRITING;
  c->busy--;
  c->writing--;
  if (r == 0) {
    c->writes++;
    if (b->dirty_seq == b->write_seq) {
      b->dirty = false;
      c->ndirty--;
    }
  } else {
    udm__fail(-r, "%s: cannot write block %llu back: %s (it stays dirty)",
              udm_dev_name(c->dev), (unsigned long long)b->block, strerror(-r));
  }
  pthread_cond_broadcast(&c->cond);
  return r;
}

/*
 * A free buffer, on no list, for a new block; c->lock held.  -EAGAIN when
 * the lock was dropped meanwhile (the caller looks for its block again).
 * With !may_block (prefetch), nothing is written and nobody is waited for.
 */
static int take_free(struct udm_bufio *c, bool may_block, struct udm_buffer **out)
{
  if (c->nbuffers < c->max_blocks) {
    *out = buffer_alloc(c);
    if (*out)
      return 0;
    if (may_block)
      udm__fail(ENOMEM, "%s: block cache: out of memory", udm_dev_name(c->dev));
    return -ENOMEM;
  }
  struct udm_buffer *dirty = NULL;
  for (struct udm_buffer *b = c->lru.newer; b != &c->lru; b = b->newer) {
    if (b->state)
      continue;
    if (!b->dirty) {
      lru_del(b);
      hash_del(c, b);
      b->validated = NULL;
      b->dirty_seq = 0;
      *out = b;
      return 0;
    }
    if (!dirty)
      dirty = b;
  }
  if (!may_block)
    return -ENOMEM;
  if (dirty) {
    int r = write_back_locked(c, dirty);
    return r < 0 ? r : -EAGAIN;
  }
  if (c->busy) { /* buffers in I/O become evictable (or pinned) when it ends */
    pthread_cond_wait(&c->cond, &c->lock);
    return -EAGAIN;
  }
  udm__fail(ENOMEM, "%s: block cache: all %u blocks are pinned", udm_dev_name(c->dev),
            c->max_blocks);
  return -ENOMEM;
}

static int check_range(struct udm_bufio *c, uint64_t block)
{
  if (block < c->nr_blocks)
    return 0;
  udm__fail(EIO, "%s: block %llu is beyond the end of the device (%llu blocks of %u bytes)",
            udm_dev_name(c->dev), (unsigned long long)block,
            (unsigned long long)c->nr_blocks, c->block_size);
  return -EIO;
}

/* ---- the client ---- */

int udm_bufio_create(struct udm_dev *dev, unsigned block_size, unsigned max_blocks,
                     struct udm_bufio **out)
{
  *out = NULL;
  unsigned lbs = dev->logical_block_size ? dev->logical_block_size : SS;
  if (block_size < SS || block_size > BUFIO_MAX_BLOCK_SIZE ||
      (block_size & (block_size - 1)) || block_size < lbs) {
    udm__fail(EINVAL,
              "%s: invalid block size %u for a block cache (a power of two from 512 to "
              "%u, at least the device's %u-byte logical blocks)",
              udm_dev_name(dev), block_size, BUFIO_MAX_BLOCK_SIZE, lbs);
    return -EINVAL;
  }
  if (max_blocks == 0) {
    udm__fail(EINVAL, "%s: a block cache needs room for at least one block",
              udm_dev_name(dev));
    return -EINVAL;
  }
  struct udm_bufio *c = calloc(1, sizeof *c);
  if (!c)
    goto oom;
  c->bucket_bits = 1;
  while (c->bucket_bits < 20 && (1u << c->bucket_bits) < max_blocks)
    c->bucket_bits++;
  c->buckets = calloc((size_t)1 << c->bucket_bits, sizeof *c->buckets);
  if (!c->buckets) {
    free(c);
    goto oom;
  }
  c->dev = dev;
  c->block_size = block_size;
  c->nr_blocks = udm_dev_size(dev) / (block_size / SS);
  c->max_blocks = max_blocks;
  c->lru.newer = c->lru.older = &c->lru;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  *out = c;
  return 0;
oom:
  udm__fail(ENOMEM, "%s: block cache: out of memory", udm_dev_name(dev));
  return -ENOMEM;
}

int udm_bufio_destroy(struct udm_bufio *c)
{
  if (!c)
    return 0;
  pthread_mutex_lock(&c->lock);
  while (c->busy)
    pthread_cond_wait(&c->cond, &c->lock);
  unsigned dirty = c->ndirty;
  pthread_mutex_unlock(&c->lock);
  int r = dirty ? udm_bufio_write_dirty(c) : 0;
  for (unsigned i = 0; i < (1u << c->bucket_bits); i++)
    while (c->buckets[i]) {
      struct udm_buffer *b = c->buckets[i];
      c->buckets[i] = b->hnext;
      buffer_free(c, b);
    }
  free(c->buckets);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
  free(c);
  return r;
}

/* Read (or with !read, make) block, pinned. */
static int get_block(struct udm_bufio *c, uint64_t block,
                     const struct udm_bufio_validator *v, bool read,
                     struct udm_buffer **out)
{
  *out = NULL;
  int r = check_range(c, block);
  if (r < 0)
    return r;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    struct udm_buffer *b = find(c, block);
    if (b) {
      if (b->state) {
        pthread_cond_wait(&c->cond, &c->lock);
        continue;
      }
      pin(c, b);
      c->hits++;
      if (!read) {
        if (v)
          b->validated = v;
      } else if (v && b->validated != v) {
        /* Cached without this check (prefetched, or read as another kind). */
        pthread_mutex_unlock(&c->lock);
        r = check_block(c, v, block, b->data);
        pthread_mutex_lock(&c->lock);
        if (r < 0) {
          if (--b->pins == 0) {
            c->npinned--;
            if (!b->dirty && !b->state)
              drop(c, b); /* what the disk holds is bad: do not keep it */
            else
              lru_add(c, b);
          }
          pthread_mutex_unlock(&c->lock);
          return r;
        }
        b->validated = v;
      }
      pthread_mutex_unlock(&c->lock);
      *out = b;
      return 0;
    }
    r = take_free(c, true, &b);
    if (r == -EAGAIN)
      continue;
    if (r < 0) {
      pthread_mutex_unlock(&c->lock);
      return r;
    }
    b->block = block;
    b->pins = 1;
    c->npinned++;
    hash_add(c, b);
    if (!read) {
      memset(b->data, 0, c->block_size);
      b->validated = v;
      pthread_mutex_unlock(&c->lock);
      *out = b;
      return 0;
    }
    b->state = READING;
    c->busy++;
    c->misses++;
    pthread_mutex_unlock(&c->lock);
    r = block_io(c, UDM_OP_READ, block, b->data);
    if (r < 0)
      udm__fail(-r, "%s: cannot read block %llu: %s", udm_dev_name(c->dev),
                (unsigned long long)block, strerror(-r));
    else if (v)
      r = check_block(c, v, block, b->data);
    pthread_mutex_lock(&c->lock);
    b->state = 0;
    c->busy--;
    if (r < 0) {
      c->npinned--;
      hash_del(c, b);
      buffer_free(c, b);
    } else {
      b->validated = v;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (r == 0)
      *out = b;
    return r;
  }
}

int udm_bufio_read(struct udm_bufio *c, uint64_t block,
                   const struct udm_bufio_validator *v, struct udm_buffer **out)
{
  return get_block(c, block, v, true, out);
}

int udm_bufio_new(struct udm_bufio *c, uint64_t block,
                  const struct udm_bufio_validator *v, struct udm_buffer **out)
{
  return get_block(c, block, v, false, out);
}

void *udm_buffer_data(struct udm_buffer *b)
{
  return b->data;
}

uint64_t udm_buffer_block(const struct udm_buffer *b)
{
  return b->block;
}

void udm_bufio_mark_dirty(struct udm_buffer *b)
{
  struct udm_bufio *c = b->c;
  pthread_mutex_lock(&c->lock);
  if (!b->dirty) {
    b->dirty = true;
    c->ndirty++;
  }
  b->dirty_seq++;
  pthread_mutex_unlock(&c->lock);
}

void udm_bufio_release(struct udm_buffer *b)
{
  struct udm_bufio *c = b->c;
  pthread_mutex_lock(&c->lock);
  if (b->pins && --b->pins == 0) {
    c->npinned--;
    lru_add(c, b);
  }
  pthread_mutex_unlock(&c->lock);
}

static int by_block(const void *x, const void *y)
{
  const struct udm_buffer *a = *(struct udm_buffer *const *)x;
  const struct udm_buffer *b = *(struct udm_buffer *const *)y;
  return a->block < b->block ? -1 : a->block > b->block;
}

static void batch_write_done(struct udm_io *io, int err)
{
  struct udm_buffer *b = io->end_private;
  struct write_batch *batch = b->batch;
  b->write_err = err;
  pthread_mutex_lock(&batch->lock);
  if (--batch->left == 0)
    pthread_cond_signal(&batch->done);
  pthread_mutex_unlock(&batch->lock);
}

int udm_bufio_write_dirty(struct udm_bufio *c)
{
  pthread_mutex_lock(&c->lock);
  /* A write started before (an eviction) must be on the device before the flush. */
  while (c->writing)
    pthread_cond_wait(&c->cond, &c->lock);
  unsigned n = 0;
  struct udm_buffer **list = c->ndirty ? malloc(c->ndirty * sizeof *list) : NULL;
  if (c->ndirty && !list) {
    pthread_mutex_unlock(&c->lock);
    udm__fail(ENOMEM, "%s: block cache: out of memory", udm_dev_name(c->dev));
    return -ENOMEM;
  }
  for (unsigned i = 0; i < (1u << c->bucket_bits); i++)
    for (struct udm_buffer *b = c->buckets[i]; b; b = b->hnext)
      if (b->dirty) {
        b->state |= WRITING;
        b->write_seq = b->dirty_seq;
        c->busy++;
        c->writing++;
        list[n++] = b;
      }
  pthread_mutex_unlock(&c->lock);

  /* Started in block order, all at once; the flush waits for every one. */
  if (n > 1)
    qsort(list, n, sizeof *list, by_block);
  struct write_batch batch = {.left = n};
  pthread_mutex_init(&batch.lock, NULL);
  pthread_cond_init(&batch.done, NULL);
  for (unsigned i = 0; i < n; i++) {
    struct udm_buffer *b = list[i];
    prepare_for_write(c, b);
    b->batch = &batch;
    b->io = (struct udm_io){
        .op = UDM_OP_WRITE,
        .sector = b->block * (c->block_size / SS),
        .nr_sectors = c->block_size / SS,
        .buf = b->data,
        .end_io = batch_write_done,
        .end_private = b,
    };
    udm_dev_submit_async(c->dev, &b->io);
  }
  pthread_mutex_lock(&batch.lock);
  while (batch.left)
    pthread_cond_wait(&batch.done, &batch.lock);
  pthread_mutex_unlock(&batch.lock);
  pthread_cond_destroy(&batch.done);
  pthread_mutex_destroy(&batch.lock);

  int r = 0;
  pthread_mutex_lock(&c->lock);
  for (unsigned i = 0; i < n; i++) {
    struct udm_buffer *b = list[i];
    b->state &= ~WRITING;
    c->busy--;
    c->writing--;
    if (b->write_err == 0) {
      c->writes++;
      if (b->dirty_seq == b->write_seq) {
        b->dirty = false;
        c->ndirty--;
      }
    } else if (r == 0) {
      r = b->write_err;
      udm__fail(-r, "%s: cannot write block %llu back: %s (it stays dirty)",
                udm_dev_name(c->dev), (unsigned long long)b->block, strerror(-r));
    }
  }
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
  free(list);
  if (r < 0)
    return r;
  struct udm_io flush = {.op = UDM_OP_FLUSH};
  r = udm_dev_submit(c->dev, &flush);
  if (r < 0)
    udm__fail(-r, "%s: cannot flush after writing %u block%s back: %s",
              udm_dev_name(c->dev), n, n == 1 ? "" : "s", strerror(-r));
  return r;
}

int udm_bufio_write_block(struct udm_bufio *c, uint64_t block)
{
  int r = 0;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    struct udm_buffer *b = find(c, block);
    if (!b || !b->dirty)
      break;
    if (b->state) {
      pthread_cond_wait(&c->cond, &c->lock);
      continue;
    }
    r = write_back_locked(c, b);
    break;
  }
  pthread_mutex_unlock(&c->lock);
  return r;
}

int udm_bufio_forget(struct udm_bufio *c, uint64_t block)
{
  int r = 0;
  pthread_mutex_lock(&c->lock);
  struct udm_buffer *b = find(c, block);
  if (b && (b->pins || b->dirty || b->state)) {
    r = -EBUSY;
    udm__fail(EBUSY, "%s: cannot forget block %llu: it is %s", udm_dev_name(c->dev),
              (unsigned long long)block,
              b->pins ? "pinned" : b->dirty ? "dirty" : "in I/O");
  } else if (b) {
    drop(c, b);
  }
  pthread_mutex_unlock(&c->lock);
  return r;
}

static void prefetch_done(struct udm_io *io, int err)
{
  struct udm_buffer *b = io->end_private;
  struct udm_bufio *c = b->c;
  pthread_mutex_lock(&c->lock);
  b->state = 0;
  c->busy--;
  if (err < 0) {
    hash_del(c, b);
    buffer_free(c, b);
  } else {
    lru_add(c, b);
  }
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

void udm_bufio_prefetch(struct udm_bufio *c, uint64_t block, uint64_t count)
{
  for (uint64_t i = 0; i < count && block + i < c->nr_blocks && block + i >= block; i++) {
    struct udm_buffer *b;
    pthread_mutex_lock(&c->lock);
    if (find(c, block + i)) {
      pthread_mutex_unlock(&c->lock);
      continue;
    }
    if (take_free(c, false, &b) < 0) {
      pthread_mutex_unlock(&c->lock);
      return; /* no room: the rest would find none either */
    }
    b->block = block + i;
    b->state = READING;
    hash_add(c, b);
    c->busy++;
    c->misses++;
    pthread_mutex_unlock(&c->lock);
    b->io = (struct udm_io){
        .op = UDM_OP_READ,
        .sector = b->block * (c->block_size / SS),
        .nr_sectors = c->block_size / SS,
        .buf = b->data,
        .end_io = prefetch_done,
        .end_private = b,
    };
    udm_dev_submit_async(c->dev, &b->io);
  }
}

void udm_bufio_stats(struct udm_bufio *c, struct udm_bufio_stats *out)
{
  pthread_mutex_lock(&c->lock);
  *out = (struct udm_bufio_stats){
      .hits = c->hits,
      .misses = c->misses,
      .writes = c->writes,
      .cached = c->nbuffers,
      .dirty = c->ndirty,
      .pinned = c->npinned,
  };
  pthread_mutex_unlock(&c->lock);
}
