/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "platform.h"
#include "secure.h"

void udm_wipe(void *p, size_t n)
{
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

void *udm_secure_alloc(size_t len)
{
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t total = (len + sizeof(size_t) + page - 1) / page * page;
  void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  (void)mlock(m, total);
  udm_platform_no_core(m, total);
  *(size_t *)m = total;
  return (char *)m + sizeof(size_t);
}

void udm_secure_free(void *p)
{
  if (!p)
    return;
  char *m = (char *)p - sizeof(size_t);
  size_t total = *(size_t *)m;
  udm_wipe(m, total);
  munlock(m, total);
  munmap(m, total);
}

void udm_wipe_free_str(char *s)
{
  if (s) {
    udm_wipe(s, strlen(s));
    free(s);
  }
}
