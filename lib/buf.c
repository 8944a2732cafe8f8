/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Growable text buffers for status, table and message output. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *udm__vstrf(const char *fmt, va_list ap)
{
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, again);
  va_end(again);
  return s;
}

char *udm__strf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = udm__vstrf(fmt, ap);
  va_end(ap);
  return s;
}

void udm__wipe(void *p, size_t n)
{
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

void udm_buf_init(struct udm_buf *b)
{
  memset(b, 0, sizeof *b);
}

/* Buffers may hold table text with keys: wiped when freed or moved. */
void udm_buf_free(struct udm_buf *b)
{
  if (b->data)
    udm__wipe(b->data, b->cap);
  free(b->data);
  udm_buf_init(b);
}

static bool reserve(struct udm_buf *b, size_t extra)
{
  if (b->failed)
    return false;
  if (b->len + extra + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 128;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *p = malloc(cap);
  if (!p) {
    b->failed = true;
    return false;
  }
  if (b->data) {
    memcpy(p, b->data, b->len + 1);
    udm__wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void udm_buf_printf(struct udm_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(b, (size_t)n)) {
    b->failed = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void udm_buf_puts(struct udm_buf *b, const char *s)
{
  size_t n = strlen(s);
  if (!reserve(b, n))
    return;
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
}

void udm_target_ima_header(struct udm_target *ti, struct udm_buf *b)
{
  const struct udm_target_type *tt = ti->type;
  udm_buf_printf(b, "target_name=%s,target_version=%u.%u.%u", tt->name, tt->version[0],
                 tt->version[1], tt->version[2]);
}

char *udm_buf_steal(struct udm_buf *b)
{
  if (b->failed) {
    udm_buf_free(b);
    return NULL;
  }
  if (!reserve(b, 0))
    return NULL;
  b->data[b->len] = '\0';
  char *s = b->data;
  udm_buf_init(b);
  return s;
}
