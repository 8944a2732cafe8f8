/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgcrypt's secure allocations in one region kept out of core dumps (see
 * crypt_mem.h).  The region is reserved once (address space only; a page
 * costs memory when first used) and handed out in whole pages, first fit
 * over a bitmap: allocations are rare (a table load, a key change), so the
 * simple scan is enough.  Freed pages are wiped at once and reused.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gcrypt.h>

#include "crypt_mem.h"
#include "platform.h"

#define REGION_BYTES (sizeof(void *) >= 8 ? (size_t)1 << 30 : (size_t)64 << 20)
#define HEADER 64 /* before each block: its page count; keeps blocks 64-byte aligned */

static struct {
  pthread_mutex_t lock;
  unsigned char *base;
  size_t page, npages;
  uint64_t *used; /* one bit a page */
} region = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool region_init(void)
{
  long page = sysconf(_SC_PAGESIZE);
  region.page = page > 0 ? (size_t)page : 4096;
  region.npages = REGION_BYTES / region.page;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
  void *m = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (m == MAP_FAILED)
    return false;
  region.used = calloc((region.npages + 63) / 64, sizeof *region.used);
  if (!region.used) {
    munmap(m, REGION_BYTES);
    return false;
  }
  /* Where the system cannot exclude it, handles are as safe as the heap. */
  udm_platform_no_core(m, REGION_BYTES);
  region.base = m;
  return true;
}

static bool used(size_t i)
{
  return region.used[i / 64] >> (i % 64) & 1;
}

static void mark(size_t first, size_t n, bool on)
{
  for (size_t i = first; i < first + n; i++) {
    if (on)
      region.used[i / 64] |= (uint64_t)1 << (i % 64);
    else
      region.used[i / 64] &= ~((uint64_t)1 << (i % 64));
  }
}

static bool owns(const void *p)
{
  const unsigned char *c = p;
  return region.base && c >= region.base && c < region.base + REGION_BYTES;
}

static void *secure_alloc(size_t n)
{
  if (n > REGION_BYTES - HEADER) {
    errno = ENOMEM;
    return NULL;
  }
  size_t pages = (n + HEADER + region.page - 1) / region.page, run = 0, first = 0;
  pthread_mutex_lock(&region.lock);
  for (size_t i = 0; i < region.npages && run < pages; i++) {
    if (used(i)) {
      run = 0;
    } else if (run++ == 0) {
      first = i;
    }
  }
  if (run < pages) {
    pthread_mutex_unlock(&region.lock);
    errno = ENOMEM;
    return NULL;
  }
  mark(first, pages, true);
  pthread_mutex_unlock(&region.lock);
  unsigned char *m = region.base + first * region.page;
  (void)mlock(m, pages * region.page); /* best effort, as the keys themselves */
  memset(m, 0, pages * region.page);
  *(size_t *)m = pages;
  return m + HEADER;
}

static size_t block_pages(const void *p)
{
  return *(const size_t *)((const unsigned char *)p - HEADER);
}

static void secure_release(void *p)
{
  unsigned char *m = (unsigned char *)p - HEADER;
  size_t pages = block_pages(p);
  volatile unsigned char *v = m;
  for (size_t i = 0; i < pages * region.page; i++)
    v[i] = 0;
  munlock(m, pages * region.page);
  pthread_mutex_lock(&region.lock);
  mark((size_t)(m - region.base) / region.page, pages, false);
  pthread_mutex_unlock(&region.lock);
}

static int secure_check(const void *p)
{
  return owns(p);
}

static void any_free(void *p)
{
  if (owns(p))
    secure_release(p);
  else
    free(p); /* libgcrypt's ordinary allocations are malloc's */
}

static void *any_realloc(void *p, size_t n)
{
  if (!p || !owns(p))
    return realloc(p, n);
  void *q = secure_alloc(n);
  if (!q)
    return NULL;
  size_t have = block_pages(p) * region.page - HEADER;
  memcpy(q, p, have < n ? have : n);
  secure_release(p);
  return q;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool usable, ours;

static void init_once(void)
{
  if (!gcry_check_version(NULL))
    return;
  usable = true;
  /* A program that initialised libgcrypt first keeps its own memory setup. */
  if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
    return;
  if (region_init()) {
    gcry_set_allocation_handler(NULL, secure_alloc, secure_check, any_realloc, any_free);
    ours = true;
  } else {
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
  }
  gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
}

bool crypt_gcrypt_init(void)
{
  pthread_once(&once, init_once);
  return usable;
}

bool crypt_gcrypt_secure_region(void)
{
  pthread_once(&once, init_once);
  return ours;
}
