/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

char *udm_drv_strf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  return s;
}

int udm_drv_pread_upto(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
  char *p = buf;
  *got = 0;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
    *got += (size_t)n;
  }
  return 0;
}

int udm_drv_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
  size_t got;
  int r = udm_drv_pread_upto(fd, buf, len, off, &got);
  if (r == 0 && got < len)
    memset((char *)buf + got, 0, len - got);
  return r;
}

int udm_drv_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
  size_t got;
  int r = udm_drv_pread_upto(fd, buf, len, off, &got);
  return r < 0 ? r : got < len ? -EIO : 0;
}

int udm_drv_split_options(char *opts, const char **keys, const char **values, unsigned *count,
                          char **errmsg)
{
  char *save = NULL;
  *count = 0;
  for (char *o = strtok_r(opts, "&", &save); o; o = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(o, '=');
    const char *v = "";
    if (eq) {
      *eq = '\0';
      v = eq + 1;
    }
    if (!*o) {
      *errmsg = udm_drv_strf("empty option name in '?%s'", v);
      return -EINVAL;
    }
    keys[*count] = o;
    values[(*count)++] = v;
  }
  return 0;
}
