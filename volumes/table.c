/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crypt table lines from checked fields (see table.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/udm.h>

#include "msg.h"
#include "table.h"

static bool word_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool separator(char c)
{
  return c == '-' || c == ':' || c == ',' || c == '(' || c == ')';
}

bool vol_cipher_spec_ok(const char *spec)
{
  size_t len = strnlen(spec, VOL_CIPHER_MAX + 1);
  if (len == 0 || len > VOL_CIPHER_MAX)
    return false;
  bool capi = !strncmp(spec, "capi:", 5);
  const char *p = capi ? spec + 5 : spec;
  int depth = 0, pairs = 0;
  char prev = ':'; /* a word must come first */
  for (; *p; prev = *p++) {
    if (word_char(*p))
      continue;
    if (!separator(*p))
      return false; /* blanks, newlines, control characters, '\\', '/', ... */
    if (!capi && (*p == '(' || *p == ')' || *p == ','))
      return false;
    if (*p == '(') {
      if (!word_char(prev) || ++depth > 4)
        return false;
      pairs++;
    } else if (*p == ')') {
      if ((!word_char(prev) && prev != ')') || --depth < 0)
        return false;
    } else if (!word_char(prev) && prev != ')') {
      return false; /* an empty word: "--", "-:", "(-", ... */
    }
  }
  return depth == 0 && (word_char(prev) || prev == ')') && (!capi || pairs > 0);
}

static bool has_control(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

int vol_crypt_table(const struct vol_crypt_line *l, char **table, char **errmsg)
{
  if (!vol_cipher_spec_ok(l->cipher))
    return vol_fail(errmsg, -EINVAL, "invalid cipher specification '%.*s'",
                    VOL_CIPHER_MAX, has_control(l->cipher) ? "(control characters)" : l->cipher);
  if (l->key_len > VOL_KEY_MAX)
    return vol_fail(errmsg, -EINVAL, "invalid key size %zu bytes (at most %d)", l->key_len,
                    VOL_KEY_MAX);
  if (!l->length)
    return vol_fail(errmsg, -EINVAL, "the volume has no data area");
  if (l->sector_size != 512 && l->sector_size != 1024 && l->sector_size != 2048 &&
      l->sector_size != 4096)
    return vol_fail(errmsg, -EINVAL, "invalid sector size %u", l->sector_size);
  if (!*l->device || has_control(l->device))
    return vol_fail(errmsg, -EINVAL, "the device path is empty or holds control characters");
  char *dev = udm_table_escape(l->device);
  size_t cap = strlen(l->cipher) + 2 * l->key_len + (dev ? strlen(dev) : 0) + 128;
  char *t = dev ? malloc(cap) : NULL;
  if (!t) {
    free(dev);
    return -ENOMEM;
  }
  int n = snprintf(t, cap, "0 %llu crypt %s ", (unsigned long long)l->length, l->cipher);
  for (size_t i = 0; i < l->key_len; i++)
    n += snprintf(t + n, cap - (size_t)n, "%02x", l->show_key ? l->key[i] : 0);
  if (!l->key_len)
    n += snprintf(t + n, cap - (size_t)n, "-");
  n += snprintf(t + n, cap - (size_t)n, " %llu %s %llu", (unsigned long long)l->iv_offset, dev,
                (unsigned long long)l->offset);
  if (l->sector_size != 512)
    snprintf(t + n, cap - (size_t)n, " 1 sector_size:%u", l->sector_size);
  free(dev);
  *table = t;
  return 0;
}
