/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "msg.h"
#include "../drivers/common/util.h"

char *vol_vformat(const char *fmt, va_list ap)
{
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  char *s = n < 0 ? NULL : malloc((size_t)n + 1);
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *vol_format(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = vol_vformat(fmt, ap);
  va_end(ap);
  return s;
}

int vol_fail(char **errmsg, int err, const char *fmt, ...)
{
  if (errmsg && !*errmsg) {
    va_list ap;
    va_start(ap, fmt);
    *errmsg = vol_vformat(fmt, ap);
    va_end(ap);
  }
  return err;
}

int vol_read_at(int fd, uint64_t off, void *buf, size_t len)
{
  size_t got;
  int r = udm_drv_pread_upto(fd, buf, len, off, &got);
  return r < 0 ? r : got < len ? -ENODATA : 0;
}
