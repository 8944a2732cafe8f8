/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mapfile format, as GNU ddrescue writes it:
 *   # comment lines (the first ones name the version and command line)
 *   0x00120000     ?               1          <- current_pos current_status [pass]
 *   #      pos        size  status
 *   0x00000000  0x00010000  +                 <- pos size status, sorted
 * Numbers are decimal, 0x hex or 0 octal (ddrescue reads them with base 0).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../drivers/common/util.h"
#include "mapfile.h"

static bool parse_num(const char *s, uint64_t *out)
{
  if (!*s || *s == '-' || *s == '+')
    return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end)
    return false;
  *out = v;
  return true;
}

static int add(struct udmz_range **r, size_t *n, size_t *cap, uint64_t off,
               uint64_t len)
{
  if (len == 0)
    return 0;
  if (*n && (*r)[*n - 1].off + (*r)[*n - 1].len == off) {
    (*r)[*n - 1].len += len;
    return 0;
  }
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 32;
    struct udmz_range *x = realloc(*r, c * sizeof *x);
    if (!x)
      return -ENOMEM;
    *r = x;
    *cap = c;
  }
  (*r)[*n].off = off;
  (*r)[(*n)++].len = len;
  return 0;
}

int ddrescue_mapfile_read(const char *path, uint64_t size, struct udmz_range **bad,
                          size_t *nbad, char **errmsg)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    int e = errno;
    *errmsg = udm_drv_strf("cannot open mapfile %s: %s", path, strerror(e));
    return -e;
  }
  struct udmz_range *r = NULL;
  size_t n = 0, cap = 0;
  char line[1024];
  unsigned lineno = 0;
  bool seen_status = false;
  uint64_t covered = 0; /* end of the last block */
  int ret = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line + strspn(line, " \t");
    if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
      continue;
    char *save = NULL;
    char *w1 = strtok_r(p, " \t\r\n", &save);
    char *w2 = strtok_r(NULL, " \t\r\n", &save);
    char *w3 = strtok_r(NULL, " \t\r\n", &save);
    char *w4 = strtok_r(NULL, " \t\r\n", &save);
    uint64_t pos, len;
    if (!seen_status) {
      /* current_pos current_status [current_pass] */
      if (!w1 || !w2 || w4 || !parse_num(w1, &pos) || strlen(w2) != 1 ||
          !strchr("?*/-FG+", w2[0])) {
        *errmsg = udm_drv_strf("%s:%u: expected 'current_pos current_status "
                               "[current_pass]'",
                               path, lineno);
        ret = -EINVAL;
        break;
      }
      seen_status = true;
      continue;
    }
    if (!w1 || !w2 || !w3 || w4 || !parse_num(w1, &pos) || !parse_num(w2, &len) ||
        strlen(w3) != 1 || !strchr("?*/-+", w3[0])) {
      *errmsg = udm_drv_strf("%s:%u: expected 'pos size status' with status one of "
                             "? * / - +",
                             path, lineno);
      ret = -EINVAL;
      break;
    }
    if (pos < covered || pos + len < pos) {
      *errmsg = udm_drv_strf("%s:%u: block at %" PRIu64 " overlaps the previous one "
                             "(mapfile not sorted)",
                             path, lineno, pos);
      ret = -EINVAL;
      break;
    }
    uint64_t end = pos + len;
    /* A gap was never tried: bad.  Everything not '+' is bad. */
    if (pos > covered && covered < size)
      ret = add(&r, &n, &cap, covered, (pos < size ? pos : size) - covered);
    if (ret == 0 && w3[0] != '+' && pos < size)
      ret = add(&r, &n, &cap, pos, (end < size ? end : size) - pos);
    if (ret < 0)
      break;
    covered = end;
  }
  if (ret == 0 && !seen_status) {
    *errmsg = udm_drv_strf("%s: not a ddrescue mapfile (no status line)", path);
    ret = -EINVAL;
  }
  if (ret == 0 && covered < size)
    ret = add(&r, &n, &cap, covered, size - covered);
  fclose(f);
  if (ret < 0) {
    free(r);
    return ret;
  }
  *bad = r;
  *nbad = n;
  return 0;
}
