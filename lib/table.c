/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tables: text in dmsetup syntax ("<start> <length> <target> <args...>" per
 * line) turned into constructed targets.  All parsing, device opening and
 * validation happens here, before a table can become live, so that a bad
 * table is refused without touching a working device.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_ARGS 1024

/* Words of a line from which an unescaped '#' starts a comment. */
#define COMMENT_FROM_WORD 3

/*
 * Split LINE in place into words on blanks; a backslash makes the next
 * character literal (as dm_split_args does), so "a\ b" is one word.  After
 * the target name, an unescaped '#' ends the line, even inside a word: what
 * dmsetup strips before the kernel sees the line ("\#" keeps one).
 */
static int split_words(char *line, char **argv, unsigned max, unsigned *argc)
{
  unsigned n = 0;
  char *r = line, *w = line;
  for (;;) {
    while (*r == ' ' || *r == '\t' || *r == '\r')
      r++;
    if (!*r || (n >= COMMENT_FROM_WORD && *r == '#'))
      break;
    if (n == max)
      return -E2BIG;
    argv[n++] = w;
    bool end = false;
    while (*r && *r != ' ' && *r != '\t' && *r != '\r') {
      if (*r == '#' && n > COMMENT_FROM_WORD) {
        end = true;
        break;
      }
      if (*r == '\\' && r[1])
        r++;
      *w++ = *r++;
    }
    if (!*r)
      end = true;
    else if (!end)
      r++;
    *w++ = '\0';
    if (end)
      break;
  }
  *argc = n;
  return 0;
}

static bool needs_escape(char c)
{
  return c == ' ' || c == '\t' || c == '\\' || c == '#';
}

char *udm_table_escape(const char *name)
{
  size_t n = 0;
  for (const char *p = name; *p; p++) {
    if (*p == '\n' || *p == '\r') { /* ends a line whatever precedes it */
      udm__fail(EINVAL, "'%s' cannot be written in a table: it contains a line break",
                name);
      return NULL;
    }
    n += needs_escape(*p) ? 2 : 1;
  }
  char *out = malloc(n + 1), *o = out;
  if (!out) {
    udm__fail(ENOMEM, "udm_table_escape: out of memory");
    return NULL;
  }
  for (const char *p = name; *p; p++) {
    if (needs_escape(*p))
      *o++ = '\\';
    *o++ = *p;
  }
  *o = '\0';
  return out;
}

static void dev_close(struct udm_dev *d)
{
  free(d->display);
  d->display = NULL;
  while (d->retired) {
    struct udm_retired_name *r = d->retired;
    d->retired = r->next;
    free(r->text);
    free(r);
  }
  d->ops->close(d);
}

static void target_destroy(struct udm_target *ti)
{
  if (ti->type && ti->type->dtr)
    ti->type->dtr(ti);
  free(ti->error);
  ti->error = NULL;
}

void udm__table_destroy(udm_table *t)
{
  if (!t)
    return;
  for (unsigned i = 0; i < t->num_targets; i++)
    target_destroy(&t->targets[i]);
  /* Devices left behind by a target that did not put them. */
  while (t->devs) {
    struct udm_dev *d = t->devs;
    t->devs = d->next;
    dev_close(d);
  }
  free(t->targets);
  free(t);
}

unsigned udm__table_find(const udm_table *t, udm_sector_t sector)
{
  unsigned lo = 0, hi = t->num_targets;
  while (hi - lo > 1) {
    unsigned mid = lo + (hi - lo) / 2;
    if (t->targets[mid].begin <= sector)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* ---- device handling for constructors ---- */

int udm_get_device(struct udm_target *ti, const char *path, unsigned mode,
                   struct udm_dev **out)
{
  udm_table *t = ti->table;
  if (!path || !*path) {
    udm_target_error(ti, "device path missing");
    return -EINVAL;
  }
  if (t->readonly || t->backing_readonly)
    mode &= ~UDM_DEV_WRITE;
  for (struct udm_dev *d = t->devs; d; d = d->next) {
    if (strcmp(d->name, path) == 0 && (d->mode & mode) == mode) {
      d->users++;
      *out = d;
      return 0;
    }
  }
  char *msg = NULL;
  struct udm_dev *d;
  int r = udm__dev_open(t->ctx, t->owner, path, mode, t->readonly, &d, &msg);
  if (r < 0) {
    udm_target_error(ti, "%s", msg ? msg : "cannot open device");
    free(msg);
    return r;
  }
  if ((mode & UDM_DEV_WRITE) && !(d->mode & UDM_DEV_WRITE))
    t->backing_readonly = true; /* an image whose driver cannot write */
  if (strpbrk(d->name, " \t\\#")) {
    /* A plain store: clang takes no '!' of an atomic assignment. */
    char *shown = udm_table_escape(d->name);
    if (!shown) {
      dev_close(d);
      return -ENOMEM;
    }
    atomic_store(&d->display, shown);
  }
  d->users = 1;
  d->next = t->devs;
  t->devs = d;
  *out = d;
  return 0;
}

void udm_put_device(struct udm_target *ti, struct udm_dev *dev)
{
  udm_table *t = ti->table;
  for (struct udm_dev **p = &t->devs; *p; p = &(*p)->next) {
    if (*p == dev) {
      if (--dev->users == 0) {
        *p = dev->next;
        dev_close(dev);
      }
      return;
    }
  }
}

int udm_target_check_file(struct udm_target *ti, const char *path)
{
  char *devname = NULL, *why = NULL;
  int r = udm__export_resolve(ti->table->ctx, path, &devname, &why);
  if (r > 0) {
    udm_target_error(ti, "%s leads to udm's own export (device '%s'), which a target "
                         "cannot read as a file",
                     path, devname);
    r = -EINVAL;
  } else if (r < 0) {
    udm_target_error(ti, "%s", why ? why : strerror(-r));
  }
  free(devname);
  free(why);
  return r;
}

const char *udm_dev_name(const struct udm_dev *dev)
{
  char *display = atomic_load(&dev->display);
  return display ? display : dev->name;
}


udm_sector_t udm_dev_size(const struct udm_dev *dev)
{
  return dev->size;
}

unsigned udm_dev_logical_block_size(const struct udm_dev *dev)
{
  return dev->logical_block_size ? dev->logical_block_size : UDM_SECTOR_SIZE;
}

int udm_dev_extents(struct udm_dev *dev, udm_sector_t sector, uint64_t nr,
                    udm_extent_fn fn, void *opaque)
{
  if (!dev->ops->extents)
    return fn(opaque, sector, nr, 0);
  return dev->ops->extents(dev, sector, nr, fn, opaque);
}

/* ---- device areas and limits (dm's device_area_is_invalid, io_hints) ---- */

static bool valid_block_size(unsigned bytes)
{
  return bytes >= UDM_SECTOR_SIZE && bytes <= UDM_LOGICAL_BLOCK_SIZE_MAX &&
         (bytes & (bytes - 1)) == 0;
}

/* What one segment's backing devices say, gathered through iterate_devices. */
struct segment_check {
  struct udm_limits limits;
  char *msg;
};

/*
 * LEN sectors from START for messages: "sectors FIRST..LAST (LEN sectors)",
 * both ends included, or what it is when it has no last sector.
 */
static void describe_range(char *buf, size_t n, udm_sector_t start, udm_sector_t len)
{
  if (len == 0)
    snprintf(buf, n, "no sectors (at sector %llu)", (unsigned long long)start);
  else if (start > UINT64_MAX - (len - 1))
    snprintf(buf, n, "%llu sector%s from sector %llu (past the largest sector number)",
             (unsigned long long)len, len == 1 ? "" : "s", (unsigned long long)start);
  else
    snprintf(buf, n, "sectors %llu..%llu (%llu sector%s)", (unsigned long long)start,
             (unsigned long long)(start + len - 1), (unsigned long long)len,
             len == 1 ? "" : "s");
}

static int check_area(struct udm_target *ti, struct udm_dev *dev, udm_sector_t start,
                      udm_sector_t len, void *data)
{
  struct segment_check *c = data;
  char range[128];
  (void)ti;
  if (start > dev->size || len > dev->size - start) {
    describe_range(range, sizeof range, start, len);
    c->msg = udm__strf("device %s is too small: the table needs %s but it has %llu "
                       "sectors",
                       dev->name, range, (unsigned long long)dev->size);
    return -EINVAL;
  }
  unsigned bs = dev->logical_block_size;
  if ((start * UDM_SECTOR_SIZE) % bs || (len * UDM_SECTOR_SIZE) % bs) {
    describe_range(range, sizeof range, start, len);
    c->msg = udm__strf("the table maps %s of %s, which has a logical block size of %u "
                       "bytes: start and length must be multiples of %u sectors",
                       range, dev->name, bs, bs / UDM_SECTOR_SIZE);
    return -EINVAL;
  }
  if (bs > c->limits.logical_block_size)
    c->limits.logical_block_size = bs;
  return 0;
}

/*
 * The limits of segment ti: its devices' (checked on the way) raised by the
 * target's io_hints.
 */
static int segment_limits(struct udm_target *ti, unsigned lineno, struct udm_limits *out,
                          char **errmsg)
{
  const struct udm_target_type *type = ti->type;
  struct segment_check c = {.limits = {.logical_block_size = UDM_SECTOR_SIZE}};
  int r = 0;
  if (type->iterate_devices)
    r = type->iterate_devices(ti, check_area, &c);
  else if (ti->remap_dev) /* the default of a remap target: its one device */
    r = check_area(ti, ti->remap_dev, ti->remap_start, ti->len, &c);
  {
    if (r < 0) {
      *errmsg = udm__strf("line %u: %s: %s", lineno, type->name,
                          c.msg ? c.msg : strerror(-r));
      free(c.msg);
      return r;
    }
  }
  struct udm_limits hinted = c.limits;
  if (type->io_hints)
    type->io_hints(ti, &hinted);
  if (!valid_block_size(hinted.logical_block_size)) {
    *errmsg = udm__strf("line %u: %s: the target asks for a logical block size of %u "
                        "bytes (a power of two from %u to %u is needed)",
                        lineno, type->name, hinted.logical_block_size, UDM_SECTOR_SIZE,
                        UDM_LOGICAL_BLOCK_SIZE_MAX);
    return -EINVAL;
  }
  if (hinted.logical_block_size > c.limits.logical_block_size)
    c.limits.logical_block_size = hinted.logical_block_size;
  unsigned g = hinted.discard_granularity;
  if (g && (g < UDM_SECTOR_SIZE || (g & (g - 1)))) {
    *errmsg = udm__strf("line %u: %s: the target asks for a discard granularity of %u "
                        "bytes (a power of two of at least %u is needed)",
                        lineno, type->name, g, UDM_SECTOR_SIZE);
    return -EINVAL;
  }
  c.limits.max_discard_sectors = hinted.max_discard_sectors;
  c.limits.discard_granularity = g;
  *out = c.limits;
  return 0;
}

/*
 * Every segment must start and end on a logical block of the whole table,
 * and a target that splits requests must split them on blocks, so that no
 * request smaller than a block can reach a target or device that needs
 * blocks.  (The kernel accepts a run of small segments that only together
 * fill whole blocks; udm asks each segment to be whole.)
 */
static int check_alignment(const udm_table *t, const unsigned *lines, unsigned source_line,
                           char **errmsg)
{
  const unsigned bs = t->limits.logical_block_size;
  const uint64_t spb = bs / UDM_SECTOR_SIZE; /* sectors per block */
  for (unsigned i = 0; i < t->num_targets; i++) {
    const struct udm_target *ti = &t->targets[i];
    if (ti->begin % spb || ti->len % spb) {
      *errmsg = udm__strf("line %u: segment (start %llu, length %llu sectors) is not "
                          "aligned to the device's logical block size of %u bytes "
                          "(%llu sectors), which line %u sets",
                          lines[i], (unsigned long long)ti->begin,
                          (unsigned long long)ti->len, bs, (unsigned long long)spb,
                          source_line);
      return -EINVAL;
    }
    if (t->limits.max_discard_sectors % spb) {
      *errmsg = udm__strf("line %u: %s: discards are limited to %llu sectors, which is "
                          "not a multiple of the device's logical block size of %u "
                          "bytes (%llu sectors), which line %u sets",
                          lines[i], ti->type->name,
                          (unsigned long long)t->limits.max_discard_sectors, bs,
                          (unsigned long long)spb, source_line);
      return -EINVAL;
    }
    if (ti->max_io_len % spb) {
      *errmsg = udm__strf("line %u: %s: requests are split every %llu sectors, which is "
                          "not a multiple of the device's logical block size of %u "
                          "bytes (%llu sectors), which line %u sets",
                          lines[i], ti->type->name,
                          (unsigned long long)ti->max_io_len, bs,
                          (unsigned long long)spb, source_line);
      return -EINVAL;
    }
  }
  return 0;
}

/* ---- building ---- */

/* Add one segment; *limits gets its limits (untouched for a blank line). */
static int add_line(udm_table *t, unsigned lineno, char *line, struct udm_limits *limits,
                    char **errmsg)
{
  char **argv = malloc(MAX_ARGS * sizeof *argv);
  unsigned argc;
  int r;
  if (!argv)
    return -ENOMEM;
  r = split_words(line, argv, MAX_ARGS, &argc);
  if (r < 0) {
    *errmsg = udm__strf("line %u: more than %d words", lineno, MAX_ARGS);
    goto out;
  }
  if (argc == 0)
    goto out;
  r = -EINVAL;
  if (argc < 3) {
    *errmsg = udm__strf("line %u: expected '<start> <length> <target> [args]', got %u "
                        "word%s",
                        lineno, argc, argc == 1 ? "" : "s");
    goto out;
  }
  uint64_t start, len;
  if (udm_parse_u64(argv[0], &start) < 0) {
    *errmsg = udm__strf("line %u: invalid start sector '%s'", lineno, argv[0]);
    goto out;
  }
  if (udm_parse_u64(argv[1], &len) < 0 || len == 0) {
    *errmsg = udm__strf("line %u: invalid length '%s' (a positive number of sectors)",
                        lineno, argv[1]);
    goto out;
  }
  if (start != t->size) {
    *errmsg = udm__strf(
        start < t->size
            ? "line %u: start sector %llu overlaps the previous segment, which ends at %llu"
            : "line %u: start sector %llu leaves a gap: the previous segment ends at %llu",
        lineno, (unsigned long long)start, (unsigned long long)t->size);
    goto out;
  }
  if (len > UINT64_MAX / UDM_SECTOR_SIZE - start) {
    *errmsg = udm__strf("line %u: length '%s' is too large", lineno, argv[1]);
    goto out;
  }
  pthread_mutex_lock(&t->ctx->lock); /* types are never unregistered */
  const struct udm_target_type *type = udm__ctx_find_type(t->ctx, argv[2]);
  pthread_mutex_unlock(&t->ctx->lock);
  if (!type) {
    *errmsg = udm__strf("line %u: unknown target type '%s' (see 'udm targets')",
                        lineno, argv[2]);
    goto out;
  }
  /* The array was sized for every line before any ctr ran: ti stays put. */
  struct udm_target *ti = &t->targets[t->num_targets];
  memset(ti, 0, sizeof *ti);
  ti->begin = start;
  ti->len = len;
  ti->type = type;
  ti->table = t;
  ti->num_flush_ios = 1;
  ti->num_discard_ios = 1;
  ti->num_write_zeroes_ios = 1;
  r = type->ctr(ti, argc - 3, argv + 3);
  if (r == 0 && !type->map && !ti->remap_dev) {
    udm_target_error(ti, "the target has no map() and its ctr set no remap device");
    r = -EINVAL;
  }
  if (r < 0) {
    *errmsg = udm__strf("line %u: %s: %s", lineno, type->name,
                        ti->error ? ti->error : strerror(-r));
    target_destroy(ti);
    goto out;
  }
  t->num_targets++;
  t->size = start + len;
  r = segment_limits(ti, lineno, limits, errmsg);
out:
  free(argv);
  return r;
}

static unsigned compute_caps(const udm_table *t)
{
  unsigned caps = UDM_CAP_DISCARD | UDM_CAP_WRITE_ZEROES | UDM_CAP_FUA | UDM_CAP_FLUSH;
  for (unsigned i = 0; i < t->num_targets; i++) {
    if (!t->targets[i].num_discard_ios)
      caps &= ~UDM_CAP_DISCARD;
    if (!t->targets[i].num_write_zeroes_ios)
      caps &= ~UDM_CAP_WRITE_ZEROES;
  }
  /*
   * A table over a device that can only be read cannot take writes there:
   * frontends must not offer them (NBD's READ_ONLY flag, a 0400 FUSE file).
   */
  if (t->readonly || t->backing_readonly)
    caps = (caps & ~(UDM_CAP_DISCARD | UDM_CAP_WRITE_ZEROES)) | UDM_CAP_READONLY;
  return caps;
}

int udm__table_create(struct udm_ctx *ctx, struct udm_device *owner, const char *text,
                      bool readonly, udm_table **out, char **errmsg)
{
  *errmsg = NULL;
  udm_table *t = calloc(1, sizeof *t);
  char *copy = strdup(text ? text : "");
  unsigned *lines = NULL; /* the line of each segment, for messages */
  int r = -ENOMEM;
  if (!t || !copy)
    goto fail;
  t->ctx = ctx;
  t->owner = owner;
  t->readonly = readonly;
  t->limits.logical_block_size = UDM_SECTOR_SIZE;
  /*
   * One slot per line, so that a ctr may keep its ti (timers, workers).
   * Segments are counted first: a table over the limit is refused before
   * any ctr runs.
   */
  size_t nlines = 1, nsegments = 0;
  unsigned over_line = 0;
  for (const char *c = copy, *bol = copy;; c++) {
    if (*c == '\n' || *c == '\0') {
      const char *p = bol + strspn(bol, " \t");
      if (p < c && *p != '#' && *p != '\r' && ++nsegments == UDM_TABLE_MAX_TARGETS + 1)
        over_line = (unsigned)nlines;
      if (*c == '\0')
        break;
      nlines++;
      bol = c + 1;
    }
  }
  if (over_line) {
    *errmsg = udm__strf("line %u: more than %u targets in one table (the kernel's limit)",
                        over_line, UDM_TABLE_MAX_TARGETS);
    r = -E2BIG;
    goto fail;
  }
  if (!(t->targets = calloc(nlines, sizeof *t->targets)))
    goto fail;

  unsigned lineno = 0, source_line = 0;
  char *save = NULL;
  for (char *line = copy;; line = NULL) {
    /* strtok_r would merge empty lines and break line numbers; walk by hand. */
    char *nl;
    if (line == NULL)
      line = save;
    if (!line)
      break;
    nl = strchr(line, '\n');
    if (nl) {
      *nl = '\0';
      save = nl + 1;
    } else {
      save = NULL;
    }
    lineno++;
    const char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '#' || *p == '\0' || *p == '\r')
      continue;
    unsigned *grown = realloc(lines, (t->num_targets + 1) * sizeof *lines);
    if (!grown) {
      r = -ENOMEM;
      goto fail;
    }
    lines = grown;
    unsigned before = t->num_targets;
    struct udm_limits seg;
    r = add_line(t, lineno, line, &seg, errmsg);
    if (r < 0)
      goto fail;
    if (t->num_targets == before)
      continue; /* nothing but blanks */
    lines[before] = lineno;
    uint64_t md = seg.max_discard_sectors, tmd = t->limits.max_discard_sectors;
    if (md && (!tmd || md < tmd))
      t->limits.max_discard_sectors = md;
    if (seg.discard_granularity > t->limits.discard_granularity)
      t->limits.discard_granularity = seg.discard_granularity;
    if (seg.logical_block_size > t->limits.logical_block_size || !source_line) {
      if (seg.logical_block_size > t->limits.logical_block_size)
        t->limits.logical_block_size = seg.logical_block_size;
      source_line = lineno;
    }
  }
  if (t->num_targets == 0) {
    r = -EINVAL;
    *errmsg = udm__strf("the table is empty: at least one segment is needed");
    goto fail;
  }
  r = check_alignment(t, lines, source_line, errmsg);
  if (r < 0)
    goto fail;
  t->caps = compute_caps(t);
  free(lines);
  udm__wipe(copy, strlen(text ? text : "")); /* the words hold keys */
  free(copy);
  *out = t;
  return 0;
fail:
  if (!*errmsg)
    *errmsg = udm__strf("%s", strerror(-r));
  free(lines);
  if (copy)
    udm__wipe(copy, strlen(text ? text : ""));
  free(copy);
  udm__table_destroy(t);
  return r;
}

int udm__table_text(udm_table *t, enum udm_status_type type, unsigned flags, char **out)
{
  struct udm_buf b;
  udm_buf_init(&b);
  for (unsigned i = 0; i < t->num_targets; i++) {
    struct udm_target *ti = &t->targets[i];
    udm_buf_printf(&b, "%llu %llu %s ", (unsigned long long)ti->begin,
                   (unsigned long long)ti->len, ti->type->name);
    size_t mark = b.len;
    /* Only API 3 knows IMA; an older target's answer is empty, like a
     * kernel target without STATUSTYPE_IMA. */
    if (ti->type->status && (type != UDM_STATUS_IMA || ti->type->api_version >= 3))
      ti->type->status(ti, type, flags, &b);
    /* dmsetup prints "... linear 8:0 0" for tables: no dangling blank there. */
    if (type == UDM_STATUS_TABLE && b.len == mark && !b.failed)
      b.data[--b.len] = '\0';
    udm_buf_puts(&b, "\n");
  }
  *out = udm_buf_steal(&b);
  return *out ? 0 : -ENOMEM;
}

void udm__table_presuspend(udm_table *t)
{
  for (unsigned i = 0; i < t->num_targets; i++)
    if (t->targets[i].type->presuspend)
      t->targets[i].type->presuspend(&t->targets[i]);
}

void udm__table_postsuspend(udm_table *t)
{
  for (unsigned i = 0; i < t->num_targets; i++)
    if (t->targets[i].type->postsuspend)
      t->targets[i].type->postsuspend(&t->targets[i]);
}

int udm__table_preresume(udm_table *t, char **errmsg)
{
  for (unsigned i = 0; i < t->num_targets; i++) {
    struct udm_target *ti = &t->targets[i];
    if (!ti->type->preresume)
      continue;
    int r = ti->type->preresume(ti);
    if (r < 0) {
      *errmsg = udm__strf("%s: %s", ti->type->name, ti->error ? ti->error : strerror(-r));
      return r;
    }
  }
  return 0;
}

void udm__table_resume(udm_table *t)
{
  for (unsigned i = 0; i < t->num_targets; i++)
    if (t->targets[i].type->resume)
      t->targets[i].type->resume(&t->targets[i]);
}
