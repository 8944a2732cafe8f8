/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdevmapper's column reports (dmsetup info -c) and the memory pools
 * their field functions allocate from: the program describes its fields and
 * object types; the library picks the fields named in the options, calls
 * their functions for each object, sorts the rows and prints them aligned
 * or separated, with headings or name prefixes.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libdm.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- the published ABI ---- */
#define FIELD_ALIGN_LEFT 0x1u
#define FIELD_ALIGN_RIGHT 0x2u
#define FIELD_TYPE_NUMBER 0x20u
#define OUT_ALIGNED 0x1u
#define OUT_BUFFERED 0x2u
#define OUT_HEADINGS 0x4u
#define OUT_NAME_PREFIX 0x8u
#define OUT_UNQUOTED 0x10u
#define OUT_COLUMNS_AS_ROWS 0x20u

struct dm_report;
struct dm_pool;
struct dm_report_field;
struct dm_report_object_type {
  uint32_t id;
  const char *desc;
  const char *prefix;
  void *(*data_fn)(void *object);
};
struct dm_report_field_type {
  uint32_t type;
  uint32_t flags;
  uint32_t offset;
  int32_t width;
  const char id[32];
  const char heading[32];
  int (*report_fn)(struct dm_report *rh, struct dm_pool *mem, struct dm_report_field *field,
                   const void *data, void *private_data);
  const char *desc;
};

/* ---- pools: every allocation lives until the pool goes ---- */
struct chunk {
  struct chunk *next;
  max_align_t data[];
};
struct dm_pool {
  struct chunk *chunks;
  char *obj; /* the object being grown */
  size_t obj_len, obj_cap;
};

static void *pool_take(struct dm_pool *p, size_t size)
{
  struct chunk *c = malloc(sizeof *c + (size ? size : 1));
  if (!c) {
    libdm_log(3, ENOMEM, "dm_pool: out of memory");
    return NULL;
  }
  c->next = p->chunks;
  p->chunks = c;
  return c->data;
}

static void pool_clear(struct dm_pool *p)
{
  while (p->chunks) {
    struct chunk *n = p->chunks->next;
    free(p->chunks);
    p->chunks = n;
  }
  free(p->obj);
  p->obj = NULL;
  p->obj_len = p->obj_cap = 0;
}

EXPORT void *dm_pool_alloc(struct dm_pool *p, size_t s)
{
  return pool_take(p, s);
}

EXPORT char *dm_pool_strdup(struct dm_pool *p, const char *str)
{
  size_t n = strlen(str) + 1;
  char *d = pool_take(p, n);
  if (d)
    memcpy(d, str, n);
  return d;
}

EXPORT int dm_pool_begin_object(struct dm_pool *p, size_t hint)
{
  free(p->obj);
  p->obj_cap = hint ? hint : 64;
  p->obj_len = 0;
  p->obj = malloc(p->obj_cap);
  if (!p->obj)
    libdm_log(3, ENOMEM, "dm_pool_begin_object: out of memory");
  return p->obj != NULL;
}

EXPORT int dm_pool_grow_object(struct dm_pool *p, const void *extra, size_t delta)
{
  if (!p->obj)
    return 0;
  if (!delta)
    delta = strlen(extra);
  if (p->obj_len + delta > p->obj_cap) {
    size_t cap = (p->obj_len + delta) * 2;
    char *n = realloc(p->obj, cap);
    if (!n) {
      libdm_log(3, ENOMEM, "dm_pool_grow_object: out of memory");
      return 0;
    }
    p->obj = n;
    p->obj_cap = cap;
  }
  memcpy(p->obj + p->obj_len, extra, delta);
  p->obj_len += delta;
  return 1;
}

EXPORT void *dm_pool_end_object(struct dm_pool *p)
{
  if (!p->obj)
    return NULL;
  char *d = pool_take(p, p->obj_len);
  if (d)
    memcpy(d, p->obj, p->obj_len);
  free(p->obj);
  p->obj = NULL;
  p->obj_len = p->obj_cap = 0;
  return d;
}

EXPORT void dm_pool_abandon_object(struct dm_pool *p)
{
  free(p->obj);
  p->obj = NULL;
  p->obj_len = p->obj_cap = 0;
}

/* ---- reports ---- */
struct dm_report_field {
  const char *text;   /* what is printed */
  const void *sort;   /* the sort value: a uint64_t for numbers, else the text */
  uint64_t num;
  bool is_num;
};

struct column {
  unsigned field; /* index into fields */
  unsigned width;
};

struct key {
  unsigned column;
  bool descending;
};

struct dm_report {
  const struct dm_report_object_type *types;
  const struct dm_report_field_type *fields;
  unsigned nfields;
  struct column *cols;
  unsigned ncols;
  struct key *keys;
  unsigned nkeys;
  uint32_t flags;
  char *separator;
  char *prefix;
  void *private_data;
  struct dm_pool mem;
  struct dm_report_field **rows; /* ncols fields each */
  size_t nrows;
  bool headings_done;
};

static const struct dm_report_object_type *type_of(const struct dm_report *rh, uint32_t id)
{
  for (const struct dm_report_object_type *t = rh->types; t->data_fn; t++)
    if (t->id == id)
      return t;
  return NULL;
}

/*
 * Whether NAME (LEN bytes) is PREFIX followed by ID, as libdevmapper
 * compares field names: without case, and without their '_' (dmsetup's
 * "statsname" is the field stats_name).
 */
static bool same_field(const char *prefix, const char *id, const char *name, size_t len)
{
  const char *parts[2] = {prefix, id};
  size_t n = 0;
  for (int k = 0; k < 2; k++)
    for (const char *w = parts[k]; *w; w++) {
      if (*w == '_')
        continue;
      while (n < len && name[n] == '_')
        n++;
      if (n == len || tolower((unsigned char)name[n]) != tolower((unsigned char)*w))
        return false;
      n++;
    }
  while (n < len && name[n] == '_')
    n++;
  return n == len;
}

/* The field named NAME (LEN bytes), with or without its type's prefix. */
static int find_field(const struct dm_report *rh, const char *name, size_t len)
{
  for (unsigned i = 0; i < rh->nfields; i++) {
    const char *id = rh->fields[i].id;
    if (same_field("", id, name, len))
      return (int)i;
    const struct dm_report_object_type *t = type_of(rh, rh->fields[i].type);
    if (t && t->prefix && *t->prefix && same_field(t->prefix, id, name, len))
      return (int)i;
  }
  return -1;
}

static void list_fields(const struct dm_report *rh)
{
  for (const struct dm_report_object_type *t = rh->types; t->data_fn; t++) {
    printf("%s Fields\n", t->desc);
    for (unsigned i = 0; i < rh->nfields; i++)
      if (rh->fields[i].type == t->id)
        printf("  %-20s - %s\n", rh->fields[i].id, rh->fields[i].desc);
    printf("\n");
  }
}

EXPORT void dm_report_free(struct dm_report *rh);

EXPORT struct dm_report *dm_report_init_with_selection(
    uint32_t *report_types, const struct dm_report_object_type *types,
    const struct dm_report_field_type *fields, const char *output_fields,
    const char *output_separator, uint32_t output_flags, const char *sort_keys,
    const char *selection, const void *reserved_values, void *private_data)
{
  (void)reserved_values;
  if (selection && *selection) {
    libdm_log(3, ENOTSUP, "dm_report_init_with_selection: selection (-S) is not supported by "
                          "udm's libdevmapper");
    return NULL;
  }
  if ((output_flags & OUT_COLUMNS_AS_ROWS) && (output_flags & OUT_NAME_PREFIX)) {
    libdm_log(3, ENOTSUP, "dm_report_init_with_selection: columns as rows (--rows) with name "
                          "prefixes (--nameprefixes) is not supported by udm's libdevmapper");
    return NULL;
  }
  struct dm_report *rh = calloc(1, sizeof *rh);
  if (!rh)
    return NULL;
  rh->types = types;
  rh->fields = fields;
  /* The table ends with an empty id (some fields have no function of their own). */
  while (fields[rh->nfields].id[0])
    rh->nfields++;
  rh->flags = output_flags;
  rh->separator = strdup(output_separator ? output_separator : " ");
  rh->private_data = private_data;
  const char *p = output_fields ? output_fields : "";
  uint32_t used = 0;
  while (rh->separator && *p) {
    size_t len = strcspn(p, ",");
    if (len == 4 && strncmp(p, "help", 4) == 0) {
      list_fields(rh);
      dm_report_free(rh);
      return NULL;
    }
    if (len) {
      int f = find_field(rh, p, len);
      if (f < 0) {
        libdm_log(3, EINVAL, "Unrecognised field: %.*s", (int)len, p);
        dm_report_free(rh);
        return NULL;
      }
      if (!fields[f].report_fn) {
        libdm_log(3, ENOTSUP, "dm_report_init_with_selection: field %s has no report function: "
                              "not supported by udm's libdevmapper", fields[f].id);
        dm_report_free(rh);
        return NULL;
      }
      struct column *c = realloc(rh->cols, (rh->ncols + 1) * sizeof *c);
      if (!c) {
        dm_report_free(rh);
        return NULL;
      }
      rh->cols = c;
      unsigned w = fields[f].width > 0 ? (unsigned)fields[f].width : 0;
      if ((output_flags & OUT_HEADINGS) && strlen(fields[f].heading) > w)
        w = (unsigned)strlen(fields[f].heading);
      rh->cols[rh->ncols++] = (struct column){.field = (unsigned)f, .width = w};
      used |= fields[f].type;
    }
    p += len + (p[len] == ',');
  }
  /* Sort keys: [+|-]FIELD,...; a key not among the columns is added, unprinted. */
  p = sort_keys ? sort_keys : "";
  while (*p) {
    size_t len = strcspn(p, ",");
    bool desc = false;
    const char *k = p;
    if (len && (*k == '+' || *k == '-')) {
      desc = *k == '-';
      k++;
    }
    size_t kl = len - (size_t)(k - p);
    if (kl) {
      int f = find_field(rh, k, kl);
      if (f < 0) {
        libdm_log(3, EINVAL, "Unrecognised field: %.*s", (int)kl, k);
        dm_report_free(rh);
        return NULL;
      }
      unsigned ci = 0;
      while (ci < rh->ncols && rh->cols[ci].field != (unsigned)f)
        ci++;
      if (ci == rh->ncols) {
        libdm_log(3, ENOTSUP, "dm_report_init_with_selection: sorting by %.*s, which is not "
                              "shown, is not supported by udm's libdevmapper",
                  (int)kl, k);
        dm_report_free(rh);
        return NULL;
      }
      struct key *nk = realloc(rh->keys, (rh->nkeys + 1) * sizeof *nk);
      if (!nk) {
        dm_report_free(rh);
        return NULL;
      }
      rh->keys = nk;
      rh->keys[rh->nkeys++] = (struct key){.column = ci, .descending = desc};
    }
    p += len + (p[len] == ',');
  }
  if (!rh->separator) {
    dm_report_free(rh);
    return NULL;
  }
  if (report_types)
    *report_types = used;
  return rh;
}

EXPORT int dm_report_set_output_field_name_prefix(struct dm_report *rh, const char *prefix)
{
  free(rh->prefix);
  rh->prefix = strdup(prefix ? prefix : "");
  for (char *c = rh->prefix; c && *c; c++)
    *c = (char)toupper((unsigned char)*c);
  return rh->prefix != NULL;
}

EXPORT int dm_report_object(struct dm_report *rh, void *object)
{
  struct dm_report_field *row = calloc(rh->ncols ? rh->ncols : 1, sizeof *row);
  struct dm_report_field **rows = realloc(rh->rows, (rh->nrows + 1) * sizeof *rows);
  if (!row || !rows) {
    free(row);
    if (rows)
      rh->rows = rows;
    libdm_log(3, ENOMEM, "dm_report_object: out of memory");
    return 0;
  }
  rh->rows = rows;
  for (unsigned i = 0; i < rh->ncols; i++) {
    const struct dm_report_field_type *ft = &rh->fields[rh->cols[i].field];
    const struct dm_report_object_type *t = type_of(rh, ft->type);
    char *data = t ? t->data_fn(object) : NULL;
    if (!data) {
      row[i].text = "";
      continue;
    }
    if (!ft->report_fn(rh, &rh->mem, &row[i], data + ft->offset, rh->private_data)) {
      free(row);
      return 0;
    }
    if (!row[i].text)
      row[i].text = "";
    size_t w = strlen(row[i].text);
    if (w > rh->cols[i].width)
      rh->cols[i].width = (unsigned)w;
  }
  rh->rows[rh->nrows++] = row;
  return 1;
}

EXPORT int dm_report_object_is_selected(struct dm_report *rh, void *object, int do_output,
                                        int *selected)
{
  /* No selection is ever set (init refuses one): every object is selected. */
  if (selected)
    *selected = 1;
  return do_output ? dm_report_object(rh, object) : 1;
}

static int set_text(struct dm_report_field *f, const char *text, uint64_t num, bool is_num)
{
  f->text = text;
  f->num = num;
  f->is_num = is_num;
  f->sort = is_num ? (const void *)&f->num : text;
  return text != NULL;
}

EXPORT int dm_report_field_string(struct dm_report *rh, struct dm_report_field *f,
                                  const char *const *data)
{
  /* Copied: the program may free its object once it is reported (dmsetup does). */
  return set_text(f, dm_pool_strdup(&rh->mem, *data ? *data : ""), 0, false);
}

static int field_num(struct dm_report *rh, struct dm_report_field *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int field_num(struct dm_report *rh, struct dm_report_field *f, const char *fmt, ...)
{
  char buf[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return set_text(f, dm_pool_strdup(&rh->mem, buf), 0, true);
}

EXPORT int dm_report_field_int(struct dm_report *rh, struct dm_report_field *f, const int *data)
{
  int r = field_num(rh, f, "%d", *data);
  f->num = (uint64_t)(int64_t)*data;
  return r;
}
EXPORT int dm_report_field_int32(struct dm_report *rh, struct dm_report_field *f,
                                 const int32_t *data)
{
  int r = field_num(rh, f, "%" PRId32, *data);
  f->num = (uint64_t)(int64_t)*data;
  return r;
}
EXPORT int dm_report_field_uint32(struct dm_report *rh, struct dm_report_field *f,
                                  const uint32_t *data)
{
  int r = field_num(rh, f, "%" PRIu32, *data);
  f->num = *data;
  return r;
}
EXPORT int dm_report_field_uint64(struct dm_report *rh, struct dm_report_field *f,
                                  const uint64_t *data)
{
  int r = field_num(rh, f, "%" PRIu64, *data);
  f->num = *data;
  return r;
}
EXPORT int dm_report_field_percent(struct dm_report *rh, struct dm_report_field *f,
                                   const int32_t *data)
{
  (void)rh;
  (void)f;
  (void)data;
  return libdm_unsupported("dm_report_field_percent");
}

EXPORT void dm_report_field_set_value(struct dm_report_field *f, const void *value,
                                      const void *sortvalue)
{
  f->text = value;
  f->is_num = false;
  f->sort = sortvalue ? sortvalue : value;
}

static const struct dm_report *sort_rh;
static int compare_rows(const void *a, const void *b)
{
  const struct dm_report_field *ra = *(struct dm_report_field *const *)a;
  const struct dm_report_field *rb = *(struct dm_report_field *const *)b;
  for (unsigned k = 0; k < sort_rh->nkeys; k++) {
    const struct key *key = &sort_rh->keys[k];
    const struct dm_report_field *x = &ra[key->column], *y = &rb[key->column];
    bool num = sort_rh->fields[sort_rh->cols[key->column].field].flags & FIELD_TYPE_NUMBER;
    int c;
    if (num) {
      uint64_t u = x->sort ? *(const uint64_t *)x->sort : 0;
      uint64_t v = y->sort ? *(const uint64_t *)y->sort : 0;
      c = u < v ? -1 : u > v;
    } else {
      c = strcmp(x->sort ? x->sort : "", y->sort ? y->sort : "");
    }
    if (c)
      return key->descending ? -c : c;
  }
  return 0;
}

static void print_cell(const struct dm_report *rh, unsigned i, const char *text, bool heading)
{
  const struct dm_report_field_type *ft = &rh->fields[rh->cols[i].field];
  if (i)
    fputs(rh->separator, stdout);
  if (rh->flags & OUT_NAME_PREFIX) {
    const char *q = rh->flags & OUT_UNQUOTED ? "" : "'";
    printf("%s", rh->prefix ? rh->prefix : "");
    for (const char *c = ft->id; *c; c++)
      putchar(toupper((unsigned char)*c));
    printf("=%s%s%s", q, text, q);
  } else if (rh->flags & OUT_ALIGNED) {
    /* Numbers are right-aligned unless the field says otherwise; headings left. */
    bool right = !heading && ((ft->flags & FIELD_ALIGN_RIGHT) ||
                              (!(ft->flags & (FIELD_ALIGN_LEFT | FIELD_ALIGN_RIGHT)) &&
                               (ft->flags & FIELD_TYPE_NUMBER)));
    printf(right ? "%*s" : "%-*s", (int)rh->cols[i].width, text);
  } else {
    fputs(text, stdout);
  }
}

EXPORT int dm_report_column_headings(struct dm_report *rh)
{
  /* As rows (--rows), each row starts with its heading. */
  if (!(rh->flags & OUT_HEADINGS) || (rh->flags & (OUT_NAME_PREFIX | OUT_COLUMNS_AS_ROWS)))
    return 1;
  for (unsigned i = 0; i < rh->ncols; i++)
    print_cell(rh, i, rh->fields[rh->cols[i].field].heading, true);
  putchar('\n');
  rh->headings_done = true;
  return 1;
}

EXPORT int dm_report_output(struct dm_report *rh)
{
  if (rh->nkeys) {
    sort_rh = rh;
    qsort(rh->rows, rh->nrows, sizeof *rh->rows, compare_rows);
  }
  if (rh->flags & OUT_COLUMNS_AS_ROWS) {
    /* --rows: a line per field, its heading then every object's value, unaligned. */
    for (unsigned i = 0; rh->nrows && i < rh->ncols; i++) {
      if (rh->flags & OUT_HEADINGS)
        printf("%s%s", rh->fields[rh->cols[i].field].heading, rh->separator);
      for (size_t r = 0; r < rh->nrows; r++)
        printf("%s%s", r ? rh->separator : "", rh->rows[r][i].text);
      putchar('\n');
    }
    for (size_t r = 0; r < rh->nrows; r++)
      free(rh->rows[r]);
    rh->nrows = 0;
    fflush(stdout);
    return 1;
  }
  if (rh->nrows && !rh->headings_done)
    dm_report_column_headings(rh);
  for (size_t r = 0; r < rh->nrows; r++) {
    for (unsigned i = 0; i < rh->ncols; i++)
      print_cell(rh, i, rh->rows[r][i].text, false);
    putchar('\n');
    free(rh->rows[r]);
  }
  rh->nrows = 0;
  fflush(stdout);
  return 1;
}

EXPORT int dm_report_is_empty(struct dm_report *rh)
{
  return rh->nrows == 0;
}

EXPORT void dm_report_free(struct dm_report *rh)
{
  if (!rh)
    return;
  for (size_t r = 0; r < rh->nrows; r++)
    free(rh->rows[r]);
  free(rh->rows);
  free(rh->cols);
  free(rh->keys);
  free(rh->separator);
  free(rh->prefix);
  pool_clear(&rh->mem);
  free(rh);
}
