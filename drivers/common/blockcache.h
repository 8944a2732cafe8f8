/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small thread-safe LRU cache of equal-sized blocks (L2 tables,
 * decompressed clusters and chunks), keyed by a non-zero 64-bit number.
 * I/O never happens under its lock: callers read on a miss, then put.
 * Lookups hash the key and the LRU order is a list, so every operation
 * costs the same however many slots there are (udmz images with small
 * chunks have thousands).
 */
#ifndef UDM_DRIVERS_BLOCKCACHE_H
#define UDM_DRIVERS_BLOCKCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct udm_blockcache_slot {
  uint64_t key;        /* 0: empty (not in any bucket) */
  uint8_t *data;       /* block_size bytes once filled */
  unsigned next;       /* next slot in the same bucket */
  unsigned newer;      /* LRU list neighbours */
  unsigned older;
};

struct udm_blockcache {
  pthread_mutex_t lock;
  unsigned nslots;
  size_t block_size;
  unsigned bucket_bits;
  unsigned *buckets;   /* first slot of each bucket's chain */
  unsigned newest, oldest;
  struct udm_blockcache_slot *slots;
};

int udm_blockcache_init(struct udm_blockcache *c, unsigned nslots, size_t block_size);
void udm_blockcache_free(struct udm_blockcache *c);
/* Copy LEN bytes at POS of block KEY into OUT; false on a miss. */
bool udm_blockcache_get(struct udm_blockcache *c, uint64_t key, size_t pos, void *out,
                        size_t len);
/* Insert block KEY (block_size bytes), evicting the least recently used. */
void udm_blockcache_put(struct udm_blockcache *c, uint64_t key, const void *data);
/*
 * The same without the copy: the cache takes DATA (malloc'd, block_size
 * bytes) and returns a buffer the caller now owns, to reuse or free: the
 * evicted block's, DATA itself when KEY is already cached, or NULL.
 */
void *udm_blockcache_put_owned(struct udm_blockcache *c, uint64_t key, void *data);

#endif
