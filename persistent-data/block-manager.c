/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block manager over the core's block cache, see block-manager.h.
 *
 * Held locks are few (a btree operation holds two or three), so they are a
 * short list searched by block number; a write lock marks the buffer dirty
 * when it is released, so that a block changed under a write lock reaches
 * the disk at the next flush.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "block-manager.h"
#include "../drivers/common/crc32c.h"

struct pd_block {
  struct pd_bm *bm;
  struct udm_buffer *buf;
  pd_block_t b;
  bool write;
  unsigned readers;
  struct pd_block *next;
};

struct pd_bm {
  struct udm_dev *dev;
  struct udm_bufio *cache;
  pthread_mutex_t lock;
  struct pd_block *held;
  unsigned nheld;
};

int pd_fail(int err, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  udm__fail(err, "%s", msg);
  return -err;
}

uint32_t pd_checksum(const void *data, size_t len, uint32_t xor)
{
  /* udm_crc32c inverts at the end; the kernel's crc32c(~0, ...) does not. */
  return ~udm_crc32c(0, data, len) ^ xor;
}

int pd_check_header(pd_block_t where, uint64_t blocknr, const void *data, size_t size,
                    uint32_t xor, char *why, size_t n)
{
  if (blocknr != where) {
    snprintf(why, n, "it says it is block %llu", (unsigned long long)blocknr);
    return -EILSEQ;
  }
  const unsigned char *p = data;
  uint32_t stored = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                    (uint32_t)p[3] << 24;
  uint32_t csum = pd_checksum(p + 4, size - 4, xor);
  if (csum != stored) {
    snprintf(why, n, "bad checksum (0x%08x stored, 0x%08x computed)", stored, csum);
    return -EILSEQ;
  }
  return 0;
}

static uint64_t get_le64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int pd_check_superblock(pd_block_t where, const void *data, size_t size, uint64_t magic,
                        uint32_t xor, const char *what, char *why, size_t n)
{
  const unsigned char *p = data;
  uint64_t blocknr = get_le64(p + 8), found = get_le64(p + 32);
  if (blocknr != where) {
    snprintf(why, n, "it says it is block %llu", (unsigned long long)blocknr);
    return -EILSEQ;
  }
  if (found != magic) {
    snprintf(why, n, "bad magic %llu (%s has %llu)", (unsigned long long)found, what,
             (unsigned long long)magic);
    return -EILSEQ;
  }
  return pd_check_header(where, where, data, size, xor, why, n);
}

void pd_prepare_superblock(pd_block_t where, void *data, size_t size, uint32_t xor)
{
  unsigned char *p = data;
  for (int i = 0; i < 8; i++)
    p[8 + i] = (unsigned char)(where >> (8 * i));
  uint32_t csum = pd_checksum(p + 4, size - 4, xor);
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(csum >> (8 * i));
}

int pd_bm_create(struct udm_dev *dev, unsigned cache_blocks, struct pd_bm **out)
{
  struct pd_bm *bm = calloc(1, sizeof *bm);
  if (!bm)
    return pd_fail(ENOMEM, "block manager: out of memory");
  bm->dev = dev;
  int r = udm_bufio_create(dev, PD_BLOCK_SIZE, cache_blocks, &bm->cache);
  if (r < 0) {
    free(bm);
    return r;
  }
  pthread_mutex_init(&bm->lock, NULL);
  *out = bm;
  return 0;
}

void pd_bm_destroy(struct pd_bm *bm)
{
  if (!bm)
    return;
  while (bm->held) { /* a caller's leak: release rather than crash */
    struct pd_block *h = bm->held;
    bm->held = h->next;
    udm_bufio_release(h->buf);
    free(h);
  }
  /* Dirty blocks of an uncommitted transaction are new blocks only
   * (shadows): writing them is harmless, and bufio writes them anyway. */
  udm_bufio_destroy(bm->cache);
  pthread_mutex_destroy(&bm->lock);
  free(bm);
}

pd_block_t pd_bm_nr_blocks(const struct pd_bm *bm)
{
  return udm_dev_size(bm->dev) / PD_SECTORS_PER_BLOCK;
}

const char *pd_bm_name(const struct pd_bm *bm)
{
  return udm_dev_name(bm->dev);
}

static struct pd_block *find_held(struct pd_bm *bm, pd_block_t b)
{
  for (struct pd_block *h = bm->held; h; h = h->next)
    if (h->b == b)
      return h;
  return NULL;
}

enum lock_kind { LOCK_READ, LOCK_WRITE, LOCK_ZERO };

static int lock_block(struct pd_bm *bm, pd_block_t b, const struct udm_bufio_validator *v,
                      enum lock_kind kind, struct pd_block **out)
{
  if (b >= pd_bm_nr_blocks(bm))
    return pd_fail(EINVAL, "%s: block %llu is past the end of the metadata device (%llu blocks)",
                   pd_bm_name(bm), (unsigned long long)b,
                   (unsigned long long)pd_bm_nr_blocks(bm));
  pthread_mutex_lock(&bm->lock);
  struct pd_block *h = find_held(bm, b);
  if (h && (kind != LOCK_READ || h->write)) {
    pthread_mutex_unlock(&bm->lock);
    return pd_fail(EBUSY, "%s: block %llu is locked already (%s)", pd_bm_name(bm),
                   (unsigned long long)b, h->write ? "for writing" : "for reading");
  }
  if (h) {
    h->readers++;
    pthread_mutex_unlock(&bm->lock);
    *out = h;
    return 0;
  }
  h = calloc(1, sizeof *h);
  if (!h) {
    pthread_mutex_unlock(&bm->lock);
    return pd_fail(ENOMEM, "block manager: out of memory");
  }
  h->bm = bm;
  h->b = b;
  h->write = kind != LOCK_READ;
  h->readers = 1;
  h->next = bm->held;
  bm->held = h;
  bm->nheld++;
  pthread_mutex_unlock(&bm->lock);

  int r = kind == LOCK_ZERO ? udm_bufio_new(bm->cache, b, v, &h->buf)
                            : udm_bufio_read(bm->cache, b, v, &h->buf);
  if (r < 0) {
    pthread_mutex_lock(&bm->lock);
    struct pd_block **p = &bm->held;
    while (*p != h)
      p = &(*p)->next;
    *p = h->next;
    bm->nheld--;
    pthread_mutex_unlock(&bm->lock);
    free(h);
    return r;
  }
  if (kind == LOCK_ZERO)
    memset(udm_buffer_data(h->buf), 0, PD_BLOCK_SIZE);
  *out = h;
  return 0;
}

int pd_bm_read_lock(struct pd_bm *bm, pd_block_t b, const struct udm_bufio_validator *v,
                    struct pd_block **out)
{
  return lock_block(bm, b, v, LOCK_READ, out);
}

int pd_bm_block_is_zero(struct pd_bm *bm, pd_block_t b, bool *zero)
{
  struct pd_block *h = NULL; /* set when r == 0; -O3 cannot see it */
  int r = pd_bm_read_lock(bm, b, NULL, &h);
  if (r < 0)
    return r;
  const uint8_t *p = pd_block_data(h);
  *zero = true;
  for (size_t i = 0; i < PD_BLOCK_SIZE && *zero; i++)
    *zero = p[i] == 0;
  pd_bm_unlock(h);
  return 0;
}

int pd_bm_write_lock(struct pd_bm *bm, pd_block_t b, const struct udm_bufio_validator *v,
                     struct pd_block **out)
{
  return lock_block(bm, b, v, LOCK_WRITE, out);
}

int pd_bm_write_lock_zero(struct pd_bm *bm, pd_block_t b,
                          const struct udm_bufio_validator *v, struct pd_block **out)
{
  return lock_block(bm, b, v, LOCK_ZERO, out);
}

void pd_bm_unlock(struct pd_block *h)
{
  struct pd_bm *bm = h->bm;
  pthread_mutex_lock(&bm->lock);
  if (--h->readers > 0) {
    pthread_mutex_unlock(&bm->lock);
    return;
  }
  struct pd_block **p = &bm->held;
  while (*p != h)
    p = &(*p)->next;
  *p = h->next;
  bm->nheld--;
  pthread_mutex_unlock(&bm->lock);
  if (h->write)
    udm_bufio_mark_dirty(h->buf);
  udm_bufio_release(h->buf);
  free(h);
}

void *pd_block_data(struct pd_block *h)
{
  return udm_buffer_data(h->buf);
}

pd_block_t pd_block_location(const struct pd_block *h)
{
  return h->b;
}

int pd_bm_flush(struct pd_bm *bm)
{
  return udm_bufio_write_dirty(bm->cache);
}

unsigned pd_bm_locks_held(struct pd_bm *bm)
{
  pthread_mutex_lock(&bm->lock);
  unsigned n = bm->nheld;
  pthread_mutex_unlock(&bm->lock);
  return n;
}
