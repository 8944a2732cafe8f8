/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm ls --tree: dmsetup's drawing of which device uses which, built as
 * libdevmapper's dependency tree is (a device joins the top level unless
 * something already uses it; a device used by several appears under each),
 * with dmsetup's options and its cut at the terminal's width.
 */
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "devices.h"

/* Drawing characters: ascii, utf, vt100 (dmsetup's pstree-like symbols). */
struct tree_symbols {
  const char *empty, *branch, *vert, *last, *single, *first;
};
static const struct tree_symbols sym_ascii = {"  ", "|-", "| ", "`-", "---", "-+-"};
static const struct tree_symbols sym_utf = {"  ",
                                            "\342\224\234\342\224\200",
                                            "\342\224\202 ",
                                            "\342\224\224\342\224\200",
                                            "\342\224\200\342\224\200\342\224\200",
                                            "\342\224\200\342\224\254\342\224\200"};
static const struct tree_symbols sym_vt100 = {"  ",
                                              "\033(0\017tq\033(B",
                                              "\033(0\017x\033(B ",
                                              "\033(0\017mq\033(B",
                                              "\033(0\017qqq\033(B",
                                              "\033(0\017qwq\033(B"};

#define TREE_MAX_DEPTH 100

/* A node: a udm device, or something a table uses that is not one. */
struct tnode {
  const struct dev *dev; /* NULL: a leaf */
  const struct dep *leaf;
  size_t *children;
  size_t nchildren;
  size_t *parents;
  size_t nparents;
};

struct tree {
  const struct devs *d;
  struct tnode *v;
  size_t n;
  size_t *top; /* the root's children */
  size_t ntop;
  const struct tree_symbols *sym;
  bool device, blkdevname, active, rw, open, uuid, compact, truncate, inverted;
  /* dmsetup's table and status: they print nothing yet, but end compact drawing. */
  bool targets;
  int width[TREE_MAX_DEPTH];
  bool more[TREE_MAX_DEPTH];
  int termwidth, x;
  int held; /* a character held at the last column, or 0 */
};

static void push(size_t **list, size_t *n, size_t item)
{
  for (size_t i = 0; i < *n; i++)
    if ((*list)[i] == item)
      return;
  size_t *l = realloc(*list, (*n + 1) * sizeof *l);
  if (!l) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  l[(*n)++] = item;
  *list = l;
}

static void unlist(size_t *list, size_t *n, size_t item)
{
  for (size_t i = 0; i < *n; i++)
    if (list[i] == item) {
      memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
      (*n)--;
      return;
    }
}

/* A new, empty node at the end of t->v: its index. */
static size_t tree_new_node(struct tree *t)
{
  struct tnode *v = realloc(t->v, (t->n + 1) * sizeof *v);
  if (!v) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  t->v = v;
  memset(&t->v[t->n], 0, sizeof t->v[t->n]);
  return t->n++;
}

static size_t tree_node_for_dep(struct tree *t, const struct dep *dep)
{
  for (size_t i = 0; i < t->n; i++) {
    if (dep->device && t->v[i].dev && !strcmp(t->v[i].dev->name, dep->device))
      return i;
    if (!dep->device && t->v[i].leaf && !strcmp(t->v[i].leaf->path, dep->path))
      return i;
  }
  size_t me = tree_new_node(t);
  t->v[me].leaf = dep;
  return me;
}

static size_t tree_add(struct tree *t, const struct dev *dev, bool at_top);

/* As dm_tree: a device joins the top unless something already uses it. */
static size_t tree_add(struct tree *t, const struct dev *dev, bool at_top)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].dev == dev) {
      if (at_top && !t->v[i].nparents)
        push(&t->top, &t->ntop, i);
      return i;
    }
  size_t me = tree_new_node(t);
  t->v[me].dev = dev;
  if (at_top)
    push(&t->top, &t->ntop, me);
  for (size_t k = 0; k < dev->ndeps; k++) {
    const struct dep *dep = &dev->deps[k];
    size_t child = SIZE_MAX;
    if (dep->device) {
      for (size_t i = 0; i < t->d->n && child == SIZE_MAX; i++)
        if (!strcmp(t->d->v[i].name, dep->device))
          child = tree_add(t, &t->d->v[i], false);
    }
    if (child == SIZE_MAX)
      child = tree_node_for_dep(t, dep);
    unlist(t->top, &t->ntop, child);
    push(&t->v[me].children, &t->v[me].nchildren, child);
    push(&t->v[child].parents, &t->v[child].nparents, me);
  }
  return me;
}

static void tree_char(struct tree *t, unsigned char ch)
{
  /* Only the first byte of a UTF-8 character takes a column. */
  t->x += (ch & 0xc0) != 0x80;
  if (!t->truncate) {
    putchar(ch);
    return;
  }
  if (t->x <= t->termwidth)
    putchar(ch);
  if (t->x == t->termwidth + 1 && (ch & 0xc0) != 0x80) {
    if (t->held || (ch & 0x80)) {
      fputs("...", stdout);
    } else {
      t->held = ch;
      t->x--;
    }
  }
}

static void tree_str(struct tree *t, const char *s)
{
  while (*s)
    tree_char(t, (unsigned char)*s++);
}

static void tree_newline(struct tree *t)
{
  if (t->held && t->x == t->termwidth)
    putchar(t->held);
  t->held = 0;
  putchar('\n');
  t->x = 1;
}

static void tree_prefix(struct tree *t, unsigned depth)
{
  for (unsigned d = 0; d < depth; d++) {
    for (int x = t->width[d] + 1; x > 0; x--)
      tree_char(t, ' ');
    tree_str(t, d == depth - 1 ? (t->more[depth] ? t->sym->branch : t->sym->last)
                               : (t->more[d + 1] ? t->sym->vert : t->sym->empty));
  }
}

static size_t tree_nchildren(const struct tree *t, size_t i)
{
  return t->inverted ? t->v[i].nparents : t->v[i].nchildren;
}

static void tree_node(struct tree *t, size_t i, unsigned depth, bool last, bool has_children)
{
  const struct tnode *n = &t->v[i];
  if (depth + 2 > TREE_MAX_DEPTH)
    return;
  /* A nameless node (not a udm device) shows only by its number or kernel name. */
  if (!n->dev && !t->device && !t->blkdevname)
    return;
  bool attrs = t->active || t->rw || t->open || t->uuid;
  bool compact = t->compact && !attrs && !t->targets;
  t->more[depth] = !last;
  t->width[depth] = 0;
  bool first_on_line = t->x == 1;
  if (!compact || first_on_line)
    tree_prefix(t, depth);
  int offset = t->x;
  if (compact && !first_on_line)
    tree_str(t, t->more[depth] ? t->sym->first : t->sym->single);
  /* A udm device by name; anything else has none ("" in dmsetup). */
  const char *name = n->dev ? n->dev->name : "";
  tree_str(t, name);
  char buf[PATH_MAX + 32];
  if (t->blkdevname) {
    const char *kname = NULL;
    if (n->dev && *n->dev->blockdev) {
      const char *base = strrchr(n->dev->blockdev, '/');
      kname = base ? base + 1 : n->dev->blockdev;
    } else if (!n->dev) {
      devs_dep_text(t->d, n->leaf, NAME_BLKDEVNAME, true, buf, sizeof buf);
      if (strchr(buf, '/') == NULL && strchr(buf, ':') == NULL)
        kname = buf;
    }
    if (kname) {
      tree_str(t, " <");
      tree_str(t, kname);
      tree_char(t, '>');
    }
  }
  if (t->device) {
    tree_str(t, " (");
    if (n->dev) {
      char no[32];
      snprintf(no, sizeof no, "%d:%u", UDM_CLI_MAJOR, n->dev->minor);
      tree_str(t, no);
    } else {
      devs_dep_text(t->d, n->leaf, NAME_DEVNO, true, buf, sizeof buf);
      tree_str(t, buf);
    }
    tree_char(t, ')');
  }
  if (attrs && n->dev) {
    int k = 0;
    if (t->active) {
      tree_str(t, k++ ? ", " : " [");
      tree_str(t, n->dev->suspended ? "SUSPENDED" : "ACTIVE");
    }
    if (t->rw) {
      tree_str(t, k++ ? ", " : " [");
      tree_str(t, n->dev->readonly ? "RO" : "RW");
    }
    if (t->open) {
      char no[16];
      snprintf(no, sizeof no, "%u", n->dev->open);
      tree_str(t, k++ ? ", " : " [");
      tree_str(t, no);
    }
    if (t->uuid) {
      tree_str(t, k++ ? ", " : " [");
      tree_str(t, n->dev->uuid);
    }
    tree_char(t, ']');
  }
  if (compact)
    t->width[depth] = t->x - offset;
  if (!compact || !has_children)
    tree_newline(t);
}

static void tree_walk(struct tree *t, const size_t *list, size_t n, unsigned depth)
{
  for (size_t k = 0; k < n; k++) {
    size_t i = list[k];
    bool has = tree_nchildren(t, i) > 0;
    tree_node(t, i, depth, k + 1 == n, has);
    if (has)
      tree_walk(t, t->inverted ? t->v[i].parents : t->v[i].children, tree_nchildren(t, i),
                depth + 1);
  }
}

/* dmsetup's -o for ls --tree, checked before anything is printed. */
static int tree_options(struct tree *t, const char *opts)
{
  setlocale(LC_CTYPE, "");
  t->sym = strcmp(nl_langinfo(CODESET), "UTF-8") == 0 ? &sym_utf : &sym_ascii;
  t->device = true;
  t->truncate = true;
  for (const char *p = opts ? opts : ""; *p;) {
    size_t len = strcspn(p, ",");
    struct {
      const char *name;
      bool *flag;
      bool value;
      const struct tree_symbols *sym;
    } known[] = {
        {"active", &t->active, true, NULL},     {"ascii", NULL, false, &sym_ascii},
        {"blkdevname", &t->blkdevname, true, NULL}, {"compact", &t->compact, true, NULL},
        {"device", &t->device, true, NULL},     {"inverted", &t->inverted, true, NULL},
        {"nodevice", &t->device, false, NULL},  {"notrunc", &t->truncate, false, NULL},
        {"open", &t->open, true, NULL},         {"rw", &t->rw, true, NULL},
        {"status", &t->targets, true, NULL},    {"table", &t->targets, true, NULL},
        {"utf", NULL, false, &sym_utf},         {"uuid", &t->uuid, true, NULL},
        {"vt100", NULL, false, &sym_vt100},
    };
    bool found = false;
    for (size_t k = 0; k < sizeof known / sizeof known[0] && !found; k++) {
      if (strlen(known[k].name) != len || strncmp(known[k].name, p, len))
        continue;
      found = true;
      if (known[k].sym)
        t->sym = known[k].sym;
      else
        *known[k].flag = known[k].value;
    }
    if (!found && len) {
      cli_error("Tree option not recognised: %.*s.", (int)len, p);
      return -1;
    }
    p += len + (p[len] == ',');
  }
  t->termwidth = 80;
  struct winsize ws = {0};
  if (t->sym != &sym_vt100 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 3)
    t->termwidth = ws.ws_col - 3;
  t->x = 1;
  return 0;
}

int verb_ls_tree(struct cli *c, struct cli_args *a)
{
  struct tree t = {0};
  if (tree_options(&t, cli_opt_val(a, "options")) < 0)
    return EXIT_USAGE;
  struct devs d = {0};
  devs_load_info(c, NULL, 0, &d);
  if (d.failed || (d.n && devs_load_deps(c, &d, false) < 0)) {
    devs_free(&d);
    return EXIT_FAIL;
  }
  t.d = &d;
  if (!d.n) {
    puts("No devices found");
    devs_free(&d);
    return EXIT_OK;
  }
  for (size_t i = 0; i < d.n; i++)
    tree_add(&t, &d.v[i], true);
  bool json = cli_opt_set(a, "json");
  if (json) {
    /* The same graph for programs: each device with what it uses. */
    fputs("[", stdout);
    for (size_t i = 0; i < d.n; i++) {
      fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
      json_str(stdout, d.v[i].name);
      printf(", \"major\": %d, \"minor\": %u, \"top\": %s, \"uses\": [", UDM_CLI_MAJOR,
             d.v[i].minor, d.v[i].holders ? "false" : "true");
      for (size_t k = 0; k < d.v[i].ndeps; k++) {
        fputs(k ? ", " : "", stdout);
        devs_json_dep(&d, &d.v[i].deps[k]);
      }
      fputs("]}", stdout);
    }
    fputs("]\n", stdout);
  } else if (t.inverted) {
    /* Bottom up: from what nothing below it uses. */
    size_t *bottom = NULL, nb = 0;
    for (size_t i = 0; i < t.n; i++)
      if (!t.v[i].nchildren)
        push(&bottom, &nb, i);
    tree_walk(&t, bottom, nb, 0);
    free(bottom);
  } else {
    tree_walk(&t, t.top, t.ntop, 0);
  }
  for (size_t i = 0; i < t.n; i++) {
    free(t.v[i].children);
    free(t.v[i].parents);
  }
  free(t.v);
  free(t.top);
  devs_free(&d);
  return EXIT_OK;
}
