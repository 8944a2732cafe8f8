/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm apply [--dry-run] [FILE]: bring udmd's devices to what a udmtab says
 * (udmtab(5), docs/service.md), the way crypttab and lvm bring the
 * kernel's back after a restart.  The whole file is read and checked first:
 * a bad line is refused as FILE:LINE and nothing changes.  Then udmd is asked
 * what it has, a plan made (create, reload, attach, or nothing), a conflict
 * that cannot be applied without removing a device refused (again nothing
 * changes), and the plan carried out in file order.  Devices the file does
 * not name are left alone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <udm/udm.h>

#include "cli.h"

#define UDMTAB_DEFAULT "/etc/udm/udmtab"

struct entry {
  unsigned line;
  char *name;
  char *table;       /* the table text to load */
  char *uuid;        /* NULL: not checked */
  bool readonly, attach;
  /* The plan. */
  bool exists, create, reload, do_attach;
};

struct tab {
  const char *file;
  struct entry *e;
  unsigned n;
};

static void tab_free(struct tab *t)
{
  for (unsigned i = 0; i < t->n; i++) {
    free(t->e[i].name);
    free(t->e[i].table);
    free(t->e[i].uuid);
  }
  free(t->e);
}

static void bad_line(const struct tab *t, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_line(const struct tab *t, unsigned line, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "udm: %s:%u: %s\n", t->file, line, msg);
}

/*
 * The table's lines as the daemon prints them (comparison and checks):
 * blank and comment lines dropped, blanks between words made one space.
 */
static char *normalise(const char *text)
{
  char *out = malloc(strlen(text) + 2), *o = out;
  if (!out)
    return NULL;
  for (const char *l = text; *l;) {
    const char *end = l + strcspn(l, "\n");
    const char *p = l + strspn(l, " \t\r");
    if (p < end && *p != '#') {
      bool word = false;
      for (; p < end; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r') {
          word = false;
          continue;
        }
        if (!word && o > out && o[-1] != '\n')
          *o++ = ' ';
        word = true;
        *o++ = *p;
      }
      *o++ = '\n';
    }
    l = *end ? end + 1 : end;
  }
  *o = '\0';
  return out;
}

/* Keys by reference only: a crypt segment's key is '-' or ':<size>:<type>:<desc>'. */
static int check_keys(const struct tab *t, unsigned line, const char *name, const char *norm)
{
  for (const char *l = norm; *l;) {
    const char *end = strchr(l, '\n');
    char words[5][256] = {{0}};
    const char *p = l;
    for (int w = 0; w < 5 && p < end; w++) {
      size_t len = strcspn(p, " \n");
      snprintf(words[w], sizeof words[w], "%.*s", (int)(len < 255 ? len : 255), p);
      p += len + (p[len] == ' ');
    }
    if (strcmp(words[2], "crypt") == 0 && strcmp(words[4], "-") != 0 && words[4][0] != ':') {
      bad_line(t, line, "device %s: a crypt key written in the table; a udmtab names "
                        "keys by reference only (:<size>:logon:<description>, a file in "
                        "udmd's key directory, UDM_KEYS_DIR)", name);
      return -1;
    }
    l = end + 1;
  }
  return 0;
}

static bool valid_name(const char *s)
{
  size_t n = strlen(s);
  return n > 0 && n <= UDM_NAME_MAX && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* The next blank-separated word of *p, or a "double-quoted" one; NULL at the end. */
static char *next_word(char **p, bool *unterminated)
{
  char *s = *p + strspn(*p, " \t");
  *unterminated = false;
  if (!*s)
    return NULL;
  if (*s == '"') {
    char *close = strchr(s + 1, '"');
    if (!close) {
      *unterminated = true;
      return NULL;
    }
    *close = '\0';
    *p = close + 1;
    if (**p && **p != ' ' && **p != '\t')
      *unterminated = true;
    return s; /* keeps the opening quote: the caller knows it was quoted */
  }
  char *e = s + strcspn(s, " \t");
  if (*e)
    *e++ = '\0';
  *p = e;
  return s;
}

static int parse_options(const struct tab *t, unsigned line, struct entry *e, char *opts)
{
  if (strcmp(opts, "-") == 0 || strcmp(opts, "defaults") == 0)
    return 0;
  char *save = NULL;
  for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    if (strcmp(o, "readonly") == 0 || strcmp(o, "ro") == 0) {
      e->readonly = true;
    } else if (strcmp(o, "attach") == 0) {
      e->attach = true;
    } else if (strncmp(o, "uuid=", 5) == 0 && o[5] && strlen(o + 5) <= UDM_UUID_MAX) {
      free(e->uuid);
      if (!(e->uuid = strdup(o + 5)))
        return -1;
    } else {
      bad_line(t, line, "unknown option '%s' (readonly, attach, uuid=UUID)", o);
      return -1;
    }
  }
  return 0;
}

/* The table of SOURCE: a table file (an absolute path), image=SPEC, or "TABLE". */
static char *source_table(const struct tab *t, unsigned line, const char *source)
{
  if (source[0] == '"')
    return strdup(source + 1);
  if (strncmp(source, "image=", 6) == 0) {
    const char *spec = source + 6;
    const char *path = strchr(spec, ':') ? strchr(spec, ':') + 1 : spec;
    if (path[0] != '/') {
      bad_line(t, line, "image=%s: the image path must be absolute", spec);
      return NULL;
    }
    char *table = cli_image_table(spec);
    if (!table)
      bad_line(t, line, "image=%s: cannot use the image (above)", spec);
    return table;
  }
  if (source[0] != '/') {
    bad_line(t, line, "'%s' is not a table: write an absolute table file path, "
                      "image=FORMAT:PATH, or a \"quoted table\"", source);
    return NULL;
  }
  FILE *f = fopen(source, "r");
  if (!f) {
    bad_line(t, line, "cannot open table file %s: %s", source, strerror(errno));
    return NULL;
  }
  char *table = cli_read_text(f, source);
  fclose(f);
  if (!table)
    bad_line(t, line, "cannot use table file %s (above)", source);
  return table;
}

static int parse_line(struct tab *t, unsigned line, char *text)
{
  char *p = text;
  bool unterminated;
  char *name = next_word(&p, &unterminated);
  if (!name)
    return 0; /* blank */
  if (name[0] == '#')
    return 0;
  char *source = next_word(&p, &unterminated);
  if (unterminated) {
    bad_line(t, line, "a quoted table is not closed (or not followed by a blank)");
    return -1;
  }
  char *opts = source ? next_word(&p, &unterminated) : NULL;
  char *extra = opts ? next_word(&p, &unterminated) : NULL;
  if (unterminated) {
    bad_line(t, line, "an unclosed quote after the table");
    return -1;
  }
  if (!valid_name(name) || name[0] == '"') {
    bad_line(t, line, "invalid device name '%s'", name);
    return -1;
  }
  if (!source) {
    bad_line(t, line, "device %s has no table (NAME TABLE [OPTIONS])", name);
    return -1;
  }
  if (extra || (opts && opts[0] == '"')) {
    bad_line(t, line, "unexpected '%s' after the options (NAME TABLE [OPTIONS])",
             extra ? extra : opts);
    return -1;
  }
  for (unsigned i = 0; i < t->n; i++)
    if (strcmp(t->e[i].name, name) == 0) {
      bad_line(t, line, "device %s is already named on line %u", name, t->e[i].line);
      return -1;
    }
  struct entry *n = realloc(t->e, (t->n + 1) * sizeof *n);
  if (!n)
    return -1;
  t->e = n;
  struct entry *e = &t->e[t->n];
  *e = (struct entry){.line = line};
  if (!(e->name = strdup(name)) || (opts && parse_options(t, line, e, opts) < 0)) {
    free(e->name);
    free(e->uuid);
    return -1;
  }
  char *raw = source_table(t, line, source);
  e->table = raw ? normalise(raw) : NULL;
  free(raw);
  if (!e->table || !*e->table || check_keys(t, line, name, e->table) < 0) {
    if (e->table && !*e->table)
      bad_line(t, line, "device %s: the table is empty", name);
    free(e->name);
    free(e->uuid);
    free(e->table);
    return -1;
  }
  t->n++;
  return 0;
}

static int parse_file(struct tab *t)
{
  FILE *f = fopen(t->file, "r");
  if (!f) {
    cli_error("apply: cannot open %s: %s", t->file, strerror(errno));
    return -1;
  }
  char *all = cli_read_text(f, t->file);
  fclose(f);
  if (!all)
    return -1;
  int r = 0;
  unsigned line = 0;
  for (char *l = all; *l && r == 0;) {
    char *end = l + strcspn(l, "\n");
    bool last = !*end;
    *end = '\0';
    line++;
    r = parse_line(t, line, l);
    l = last ? end : end + 1;
  }
  free(all);
  return r;
}

/* ---- what udmd has ---- */

struct have {
  struct tab *t;
  const char *key; /* "info" or "table" records */
  int err;
};

static struct entry *find(struct tab *t, const char *name)
{
  for (unsigned i = 0; name && i < t->n; i++)
    if (strcmp(t->e[i].name, name) == 0)
      return &t->e[i];
  return NULL;
}

static void plan_info(void *opaque, const struct udm_msg *m, unsigned first, unsigned end)
{
  struct have *h = opaque;
  struct entry *e = find(h->t, cli_field(m, first, end, "name"));
  if (!e)
    return;
  e->exists = true;
  bool ro = strcmp(cli_field(m, first, end, "readonly"), "1") == 0;
  const char *uuid = cli_field(m, first, end, "uuid");
  if (ro != e->readonly) {
    bad_line(h->t, e->line, "device %s exists %s, the file says %s: remove it first", e->name,
             ro ? "read-only" : "read-write", e->readonly ? "readonly" : "read-write");
    h->err = -1;
  }
  if (e->uuid && strcmp(uuid, e->uuid) != 0) {
    bad_line(h->t, e->line, "device %s exists with uuid '%s', the file says '%s': "
                            "remove it first", e->name, uuid, e->uuid);
    h->err = -1;
  }
  e->do_attach = e->attach && !*cli_field(m, first, end, "block_device");
}

static void plan_table(void *opaque, const struct udm_msg *m, unsigned first, unsigned end)
{
  struct have *h = opaque;
  struct entry *e = find(h->t, cli_field(m, first, end, "name"));
  if (!e)
    return;
  char *live = normalise(cli_field(m, first, end, "table"));
  if (!live) {
    h->err = -1;
    return;
  }
  e->reload = strcmp(live, e->table) != 0;
  free(live);
}

static int ask(struct cli *c, const char *op, struct have *h,
               void (*fn)(void *, const struct udm_msg *, unsigned, unsigned))
{
  struct udm_msg req, resp;
  if (cli_new_req(&req, op, NULL) < 0)
    return -1;
  int r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  if (r == 0)
    cli_records(&resp, fn, h);
  udm_msg_free(&resp);
  return r;
}

/* ---- carrying it out ---- */

static int call(struct cli *c, struct udm_msg *req, struct udm_msg *resp)
{
  int r = cli_request(c, req, resp);
  udm_msg_free(req);
  return r;
}

static int simple_call(struct cli *c, struct udm_msg *req)
{
  struct udm_msg resp;
  int r = call(c, req, &resp);
  udm_msg_free(&resp);
  return r;
}

static int table_of(struct cli *c, const char *name, bool inactive, char **out)
{
  struct udm_msg req, resp;
  if (cli_new_req(&req, "table", name) < 0 ||
      (inactive && udm_msg_add(&req, "inactive", "1") < 0))
    return -1;
  int r = call(c, &req, &resp);
  *out = r == 0 ? normalise(udm_msg_get(&resp, "table") ? udm_msg_get(&resp, "table") : "")
                : NULL;
  udm_msg_free(&resp);
  return r == 0 && *out ? 0 : -1;
}

static int do_create(struct cli *c, const struct entry *e)
{
  struct udm_msg req;
  int r = cli_new_req(&req, "create", e->name);
  if (r == 0 && e->uuid)
    r = udm_msg_add(&req, "uuid", e->uuid);
  if (r == 0 && e->readonly)
    r = udm_msg_add(&req, "readonly", "1");
  if (r == 0)
    r = udm_msg_add(&req, "table", e->table);
  return r < 0 ? -1 : simple_call(c, &req);
}

/*
 * Load the file's table as the inactive one and compare what udmd made of
 * it with the live table: the same table written differently (a path
 * spelled otherwise) changes nothing and is cleared again.  1: reloaded,
 * 0: the same, -1: failed.
 */
static int do_reload(struct cli *c, const struct entry *e)
{
  struct udm_msg req;
  if (cli_new_req(&req, "load", e->name) < 0 || udm_msg_add(&req, "table", e->table) < 0 ||
      simple_call(c, &req) < 0)
    return -1;
  char *inactive = NULL, *live = NULL;
  if (table_of(c, e->name, true, &inactive) < 0 || table_of(c, e->name, false, &live) < 0) {
    free(inactive);
    return -1;
  }
  bool same = strcmp(inactive, live) == 0;
  free(inactive);
  free(live);
  if (cli_new_req(&req, same ? "clear" : "resume", e->name) < 0 || simple_call(c, &req) < 0)
    return -1;
  return same ? 0 : 1;
}

int verb_apply(struct cli *c, struct cli_args *a)
{
  struct tab t = {.file = a->npos > 0 ? a->pos[0] : UDMTAB_DEFAULT};
  bool dry = cli_opt_set(a, "dry-run");
  if (parse_file(&t) < 0) {
    fprintf(stderr, "udm: apply: nothing changed\n");
    tab_free(&t);
    return EXIT_FAIL;
  }
  struct have h = {.t = &t};
  if (ask(c, "info", &h, plan_info) < 0 || ask(c, "table", &h, plan_table) < 0 || h.err) {
    if (h.err)
      fprintf(stderr, "udm: apply: nothing changed\n");
    tab_free(&t);
    return EXIT_FAIL;
  }
  unsigned changes = 0, failed = 0, stop_line = 0;
  const char *would = dry ? "would " : "";
  for (unsigned i = 0; i < t.n && !failed; i++) {
    struct entry *e = &t.e[i];
    e->create = !e->exists;
    if (e->create) {
      changes++;
      printf("%screate %s\n", would, e->name);
      if (!dry && do_create(c, e) < 0) {
        failed++, stop_line = e->line;
        break;
      }
      e->do_attach = e->attach;
    } else if (e->reload) {
      int r = dry ? 1 : do_reload(c, e);
      if (r < 0) {
        failed++, stop_line = e->line;
        break;
      }
      if (r > 0) {
        changes++;
        printf("%sreload %s%s\n", would, e->name, dry ? " (its table differs)" : "");
      } else {
        printf("unchanged %s (the same table, written differently)\n", e->name);
      }
    } else if (!e->do_attach) {
      printf("unchanged %s\n", e->name);
    }
    if (e->do_attach) {
      changes++;
      char devpath[256];
      if (dry) {
        printf("would attach %s\n", e->name);
      } else if (cli_attach(c, e->name, devpath, sizeof devpath) < 0) {
        failed++, stop_line = e->line;
      } else {
        printf("attach %s: %s\n", e->name, devpath);
      }
    }
  }
  fflush(stdout);
  if (failed) {
    fprintf(stderr, "udm: apply: stopped at %s:%u; the devices above it are applied, "
                    "the rest not\n", t.file, stop_line);
  } else if (changes == 0) {
    printf("nothing to do: the %u device%s of %s %s as it says\n", t.n, t.n == 1 ? "" : "s",
           t.file, t.n == 1 ? "is" : "are");
  }
  tab_free(&t);
  return failed ? EXIT_FAIL : EXIT_OK;
}
