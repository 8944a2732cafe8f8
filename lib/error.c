/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-thread error messages: one message per failure, naming the cause. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char errmsg[2048];
static _Thread_local int errnum;

const char *udm_errmsg(void)
{
  return errmsg[0] ? errmsg : "no error";
}

int udm_errno(void)
{
  return errnum;
}

static void record(int err, const char *fmt, va_list ap)
{
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  errnum = err;
  errno = err;
}

int udm__fail(int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  record(err, fmt, ap);
  va_end(ap);
  return -1;
}

int udm_error_set(int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  record(err, fmt, ap);
  va_end(ap);
  return -1;
}

void *udm__fail_null(int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  record(err, fmt, ap);
  va_end(ap);
  return NULL;
}

const char *udm_version_string(void)
{
  return UDM_VERSION_STRING;
}
