/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Column reports as dmsetup prints them (info -c, splitname): fields chosen
 * with -o (a leading '+' adds to the defaults), sorted with -O/--sort
 * (fields, '-' for descending), one row per device.  Aligned, each column
 * as wide as its longest value, its heading or its minimum width, numbers
 * to the right, the last column padded too, separated by one blank; with
 * --noheadings (dmsetup's "old behaviour") or --separator, unaligned and
 * separated by ':' or the separator given.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct report_field *find_field(const struct report_field *fields,
                                             const char *id, size_t len)
{
  for (const struct report_field *f = fields; f->id; f++)
    if (strlen(f->id) == len && strncmp(f->id, id, len) == 0)
      return f;
  return NULL;
}

/* Parse "a,b,c" into columns; prints the error naming the unknown field. */
static int parse_list(struct report *r, const char *list, const char *what, bool sort)
{
  for (const char *p = list; *p;) {
    size_t whole = strcspn(p, ","), len = whole;
    const char *id = p;
    bool descending = false;
    if (sort && len && (*id == '+' || *id == '-')) {
      descending = *id == '-';
      id++;
      len--;
    }
    if (len) {
      const struct report_field *f = find_field(r->fields, id, len);
      if (!f) {
        cli_error("%s: unrecognised field: %.*s (see 'udm help -c')", what, (int)len, id);
        return -1;
      }
      if (f->unsupported) {
        cli_error("%s: field %s is not available in udm: %s", what, f->id, f->unsupported);
        return -1;
      }
      unsigned *n = sort ? &r->nsort : &r->ncols;
      if (*n == REPORT_MAX_COLS) {
        cli_error("%s: more than %d fields", what, REPORT_MAX_COLS);
        return -1;
      }
      if (sort) {
        r->sort[*n] = (unsigned)(f - r->fields);
        r->descending[*n] = descending;
      } else {
        r->cols[*n] = (unsigned)(f - r->fields);
      }
      ++*n;
    }
    p += whole + (p[whole] == ',');
  }
  return 0;
}

int report_init(struct report *r, const struct report_field *fields, const char *defaults,
                const struct cli_args *a, const char *what)
{
  memset(r, 0, sizeof *r);
  r->fields = fields;
  const char *opts = cli_opt_val(a, "options"), *sort = cli_opt_val(a, "sort");
  const char *sep = cli_opt_val(a, "separator");
  if (!opts || *opts == '+') {
    if (parse_list(r, defaults, what, false) < 0)
      return -1;
    if (opts && parse_list(r, opts + 1, what, false) < 0)
      return -1;
  } else if (parse_list(r, opts, what, false) < 0) {
    return -1;
  }
  if (sort && parse_list(r, sort, what, true) < 0)
    return -1;
  r->headings = !cli_opt_set(a, "noheadings");
  r->aligned = r->headings && !sep;
  r->separator = sep ? sep : r->headings ? " " : ":";
  r->json = cli_opt_set(a, "json");
  return 0;
}

int report_add(struct report *r, char **values)
{
  if (r->nrows == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 16;
    char ***rows = realloc(r->rows, cap * sizeof *rows);
    if (!rows) {
      cli_error("out of memory");
      return -1;
    }
    r->rows = rows;
    r->cap = cap;
  }
  r->rows[r->nrows++] = values;
  return 0;
}

static const struct report *sorting;

static int compare_rows(const void *pa, const void *pb)
{
  char **a = *(char **const *)pa, **b = *(char **const *)pb;
  for (unsigned k = 0; k < sorting->nsort; k++) {
    unsigned f = sorting->sort[k];
    int c;
    if (sorting->fields[f].number) {
      unsigned long long x = strtoull(a[f], NULL, 10), y = strtoull(b[f], NULL, 10);
      c = x == y ? 0 : x > y ? 1 : -1;
    } else {
      c = strcmp(a[f], b[f]);
    }
    if (c)
      return sorting->descending[k] ? -c : c;
  }
  return 0;
}

void report_print(struct report *r)
{
  if (r->nsort && r->nrows > 1) {
    /* qsort is not stable; rows that compare equal keep no promised order in dmsetup either */
    sorting = r;
    qsort(r->rows, r->nrows, sizeof *r->rows, compare_rows);
    sorting = NULL;
  }
  if (r->json) {
    fputs("[", stdout);
    for (size_t i = 0; i < r->nrows; i++) {
      fputs(i ? ",\n  {" : "\n  {", stdout);
      for (unsigned c = 0; c < r->ncols; c++) {
        const struct report_field *f = &r->fields[r->cols[c]];
        if (c)
          fputs(", ", stdout);
        json_str(stdout, f->id);
        fputs(": ", stdout);
        const char *v = r->rows[i][r->cols[c]];
        if (f->number && *v)
          fputs(v, stdout);
        else
          json_str(stdout, v);
      }
      fputs("}", stdout);
    }
    fputs("]\n", stdout);
    return;
  }
  int width[REPORT_MAX_COLS];
  for (unsigned c = 0; c < r->ncols; c++) {
    const struct report_field *f = &r->fields[r->cols[c]];
    width[c] = f->width;
    for (size_t i = 0; i < r->nrows; i++) {
      int n = (int)strlen(r->rows[i][r->cols[c]]);
      if (n > width[c])
        width[c] = n;
    }
  }
  /* dmsetup prints the headings only above rows. */
  if (r->headings && r->nrows) {
    for (unsigned c = 0; c < r->ncols; c++) {
      const char *h = r->fields[r->cols[c]].heading;
      if (r->aligned)
        printf("%-*s", width[c], h);
      else
        fputs(h, stdout);
      if (c + 1 < r->ncols)
        fputs(r->separator, stdout);
    }
    putchar('\n');
  }
  for (size_t i = 0; i < r->nrows; i++) {
    for (unsigned c = 0; c < r->ncols; c++) {
      const char *v = r->rows[i][r->cols[c]];
      if (!r->aligned)
        fputs(v, stdout);
      else if (r->fields[r->cols[c]].number)
        printf("%*s", width[c], v);
      else
        printf("%-*s", width[c], v);
      if (c + 1 < r->ncols)
        fputs(r->separator, stdout);
    }
    putchar('\n');
  }
}

void report_free(struct report *r)
{
  for (size_t i = 0; i < r->nrows; i++) {
    for (const struct report_field *f = r->fields; f->id; f++)
      free(r->rows[i][f - r->fields]);
    free(r->rows[i]);
  }
  free(r->rows);
  r->rows = NULL;
  r->nrows = r->cap = 0;
}
