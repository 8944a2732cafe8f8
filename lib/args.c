/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Strict number parsing and dm_arg-style argument cursors for constructors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int udm_parse_u64(const char *s, uint64_t *out)
{
  if (!s || *s < '0' || *s > '9')
    return -EINVAL; /* empty, sign, space */
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -EINVAL; /* trailing junk */
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -ERANGE;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int udm_parse_uint(const char *s, unsigned *out)
{
  uint64_t v;
  int r = udm_parse_u64(s, &v);
  if (r < 0)
    return r;
  if (v > UINT32_MAX)
    return -ERANGE;
  *out = (unsigned)v;
  return 0;
}

void udm_target_error(struct udm_target *ti, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = udm__vstrf(fmt, ap);
  va_end(ap);
  free(ti->error);
  ti->error = msg;
}

const char *udm_shift_arg(struct udm_arg_set *as)
{
  if (as->argc == 0)
    return NULL;
  as->argc--;
  return *as->argv++;
}

void udm_consume_args(struct udm_arg_set *as, unsigned n)
{
  if (n > as->argc)
    n = as->argc;
  as->argc -= n;
  as->argv += n;
}

static int read_arg(struct udm_arg_set *as, const struct udm_arg *arg,
                    unsigned *value, struct udm_target *ti, bool group)
{
  const char *word = udm_shift_arg(as);
  unsigned v;
  if (!word) {
    udm_target_error(ti, "%s: argument missing", arg->error);
    return -EINVAL;
  }
  if (udm_parse_uint(word, &v) < 0 || v < arg->min || v > arg->max) {
    udm_target_error(ti, "%s '%s' (expected %u..%u)", arg->error, word, arg->min,
                     arg->max);
    return -EINVAL;
  }
  if (group && v > as->argc) {
    udm_target_error(ti, "%s: %u arguments announced, only %u given", arg->error, v,
                     as->argc);
    return -EINVAL;
  }
  *value = v;
  return 0;
}

int udm_read_arg(struct udm_arg_set *as, const struct udm_arg *arg, unsigned *value,
                 struct udm_target *ti)
{
  return read_arg(as, arg, value, ti, false);
}

int udm_read_arg_group(struct udm_arg_set *as, const struct udm_arg *arg,
                       unsigned *value, struct udm_target *ti)
{
  return read_arg(as, arg, value, ti, true);
}
