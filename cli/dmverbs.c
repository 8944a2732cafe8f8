/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rest of dmsetup's verbs and options: rename, deps, remove_all, clear,
 * wipe_table, mknodes, splitname, udevcookies, target-version, info -c and
 * create/table --concise (ls --tree is tree.c; device selection by -u UUID
 * or -j MAJOR -m MINOR is devices.c).  Output is dmsetup's, byte for byte,
 * where dmsetup's own has no kernel-specific content; docs/cli.md lists the
 * differences.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "devices.h"

/* ---- rename ---- */

int verb_rename(struct cli *c, struct cli_args *a)
{
  bool setuuid = cli_opt_set(a, "setuuid");
  if (a->npos != 2) {
    cli_error("rename: give the device and its new %s", setuuid ? "uuid" : "name");
    return EXIT_USAGE;
  }
  struct udm_msg req, resp;
  int r = cli_new_req(&req, "rename", a->pos[0]);
  if (r == 0)
    r = udm_msg_add(&req, setuuid ? "uuid" : "new_name", a->pos[1]);
  if (r < 0) {
    udm_msg_free(&req);
    return EXIT_FAIL;
  }
  r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- deps ---- */


static int name_type(const struct cli_args *a, const char *what, enum name_type *out)
{
  const char *o = cli_opt_val(a, "options");
  *out = NAME_DEVNO;
  if (!o || !strcmp(o, "devno"))
    return 0;
  if (!strcmp(o, "devname"))
    *out = NAME_DEVNAME;
  else if (!strcmp(o, "blkdevname"))
    *out = NAME_BLKDEVNAME;
  else {
    cli_error("%s: option -o %s: expected devno, devname or blkdevname", what, o);
    return -1;
  }
  return 0;
}

int verb_deps(struct cli *c, struct cli_args *a)
{
  enum name_type t;
  if (name_type(a, "deps", &t) < 0)
    return EXIT_USAGE;
  bool json = cli_opt_set(a, "json"), multiple = a->npos != 1;
  struct devs d = {0};
  devs_load_info(c, a->pos, a->npos, &d);
  if (d.n && devs_load_deps(c, &d, cli_opt_set(a, "inactive")) < 0) {
    devs_free(&d);
    return EXIT_FAIL;
  }
  /* Other devices' block devices, for -o blkdevname. */
  struct devs all = {0};
  if (a->npos && t == NAME_BLKDEVNAME)
    devs_load_info(c, NULL, 0, &all);
  const struct devs *ref = a->npos && t == NAME_BLKDEVNAME ? &all : &d;
  if (json)
    fputs("[", stdout);
  for (size_t i = 0; i < d.n; i++) {
    const struct dev *v = &d.v[i];
    if (json) {
      fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
      json_str(stdout, v->name);
      fputs(", \"deps\": [", stdout);
      for (size_t k = 0; k < v->ndeps; k++) {
        fputs(k ? ", " : "", stdout);
        devs_json_dep(&d, &v->deps[k]);
      }
      fputs("]}", stdout);
      continue;
    }
    if (multiple)
      printf("%s: ", v->name);
    printf("%zu dependencies\t:", v->ndeps);
    for (size_t k = 0; k < v->ndeps; k++) {
      char buf[PATH_MAX + 32];
      devs_dep_text(ref, &v->deps[k], t, false, buf, sizeof buf);
      printf(" (%s)", buf);
    }
    putchar('\n');
  }
  if (json)
    fputs("]\n", stdout);
  else if (!d.n && !a->npos && !d.failed)
    puts("No devices found");
  int status = d.failed ? EXIT_FAIL : EXIT_OK;
  devs_free(&d);
  devs_free(&all);
  return status;
}

/* ---- remove_all, clear, wipe_table, mknodes ---- */

/* Remove NAME; its refusal is kept in why rather than printed (remove_all reports). */
static int remove_one(struct cli *c, const char *name, bool force, char *why, size_t n)
{
  struct udm_msg req, resp;
  if (cli_new_req(&req, "remove", name) < 0 ||
      (force && udm_msg_add(&req, "force", "1") < 0)) {
    udm_msg_free(&req);
    return -1;
  }
  udm_msg_init(&resp);
  int r = udm_msg_send(c->fd, &req);
  const char *bad = "";
  if (r == 0)
    r = udm_msg_recv(c->fd, &resp, &bad);
  udm_msg_free(&req);
  if (r != 0) {
    udm_msg_free(&resp);
    cli_error("lost the connection to udmd");
    return -2;
  }
  const char *status = udm_msg_get(&resp, "status"), *m = udm_msg_get(&resp, "message");
  r = status && !strcmp(status, "0") ? 0 : -1;
  if (r < 0)
    snprintf(why, n, "%s", m ? m : "refused");
  udm_msg_free(&resp);
  return r;
}

/* Load an error table of the device's size and resume it (dmsetup's wipe_table). */
static int wipe_one(struct cli *c, const struct dev *v)
{
  if (!v->live) {
    cli_error("wipe_table %s: the device has no live table", v->name);
    return -1;
  }
  char table[64];
  snprintf(table, sizeof table, "0 %llu error", v->size / 512);
  struct udm_msg req, resp;
  int r = cli_new_req(&req, "load", v->name);
  if (r == 0)
    r = udm_msg_add(&req, "table", table);
  if (r == 0)
    r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  if (r == 0) {
    udm_msg_free(&resp);
    if ((r = cli_new_req(&req, "resume", v->name)) == 0)
      r = cli_request(c, &req, &resp);
    udm_msg_free(&req);
  }
  udm_msg_free(&resp);
  return r;
}

/*
 * Remove every device nothing holds: dependents first (a device used by
 * another's table waits until that one is gone), as the kernel's
 * remove_all does.  Returns how many are left.
 */
static size_t remove_rounds(struct cli *c, bool force, struct devs *left)
{
  for (;;) {
    devs_free(left);
    devs_load_info(c, NULL, 0, left);
    if (left->failed)
      return left->n;
    bool progress = false;
    for (size_t i = 0; i < left->n; i++) {
      if (left->v[i].holders)
        continue;
      char why[2048];
      if (remove_one(c, left->v[i].name, force, why, sizeof why) == 0)
        progress = true;
    }
    if (!progress)
      return left->n;
  }
}

int verb_remove_all(struct cli *c, struct cli_args *a)
{
  bool force = cli_opt_set(a, "force");
  if (c->fd < 0 && cli_connect(c) < 0)
    return EXIT_FAIL;
  struct devs left = {0};
  size_t n = remove_rounds(c, false, &left);
  if (n && force && !left.failed) {
    /* As dmsetup --force: every remaining table becomes error, then again. */
    for (size_t i = 0; i < left.n; i++)
      if (left.v[i].live)
        wipe_one(c, &left.v[i]);
    n = remove_rounds(c, true, &left);
  }
  if (left.failed) {
    devs_free(&left);
    return EXIT_FAIL;
  }
  /* What stays, and why (the kernel says nothing; dmsetup -f only counts). */
  for (size_t i = 0; i < left.n; i++) {
    const struct dev *v = &left.v[i];
    if (v->holders)
      cli_error("remove_all: %s is used by the table of another device that stays",
                v->name);
    else if (v->open)
      cli_error("remove_all: %s is open (open count %u)%s", v->name, v->open,
                force ? "" : "; --force replaces its table with error and removes it");
    else
      cli_error("remove_all: %s could not be removed", v->name);
  }
  if (n && force)
    fprintf(stderr, "Unable to remove %zu device(s).\n", n);
  devs_free(&left);
  return EXIT_OK;
}

int verb_clear(struct cli *c, struct cli_args *a)
{
  int status = EXIT_OK;
  for (int i = 0; i < a->npos; i++) {
    struct udm_msg req, resp;
    if (cli_new_req(&req, "clear", a->pos[i]) < 0)
      return EXIT_FAIL;
    if (cli_request(c, &req, &resp) < 0)
      status = EXIT_FAIL;
    udm_msg_free(&req);
    udm_msg_free(&resp);
  }
  return status;
}

int verb_wipe_table(struct cli *c, struct cli_args *a)
{
  struct devs d = {0};
  devs_load_info(c, a->pos, a->npos, &d);
  int status = d.failed ? EXIT_FAIL : EXIT_OK;
  for (size_t i = 0; i < d.n; i++)
    if (wipe_one(c, &d.v[i]) < 0)
      status = EXIT_FAIL;
  devs_free(&d);
  return status;
}

int verb_mknodes(struct cli *c, struct cli_args *a)
{
  struct udm_msg resp;
  int r = cli_ask(c, "mknodes", a->npos ? a->pos[0] : NULL, false, &resp);
  udm_msg_free(&resp);
  return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- info -c and splitname: dmsetup's report fields ---- */

enum {
  F_NAME, F_MANGLED_NAME, F_UNMANGLED_NAME, F_UUID, F_MANGLED_UUID, F_UNMANGLED_UUID,
  F_READ_AHEAD, F_BLKDEVNAME, F_ATTR, F_TABLES_LOADED, F_SUSPENDED, F_READONLY, F_DEVNO,
  F_MAJOR, F_MINOR, F_OPEN, F_SEGMENTS, F_EVENTS, F_DEVICE_COUNT, F_DEVS_USED,
  F_DEVNOS_USED, F_BLKDEVS_USED, F_DEVICE_REF_COUNT, F_NAMES_USING_DEV,
  F_DEVNOS_USING_DEV, F_SUBSYSTEM, F_VG_NAME, F_LV_NAME, F_LV_LAYER, F_COUNT
};

#define NO_STATS "udm keeps no I/O statistics (dmsetup stats)"
static const struct report_field info_fields[] = {
    [F_NAME] = {"name", "Name", 16, false, NULL},
    [F_MANGLED_NAME] = {"mangled_name", "MangledName", 16, false, NULL},
    [F_UNMANGLED_NAME] = {"unmangled_name", "UnmangledName", 16, false, NULL},
    [F_UUID] = {"uuid", "UUID", 32, false, NULL},
    [F_MANGLED_UUID] = {"mangled_uuid", "MangledUUID", 32, false, NULL},
    [F_UNMANGLED_UUID] = {"unmangled_uuid", "UnmangledUUID", 32, false, NULL},
    [F_READ_AHEAD] = {"read_ahead", "RAhead", 6, true, NULL},
    [F_BLKDEVNAME] = {"blkdevname", "BlkDevName", 16, false, NULL},
    [F_ATTR] = {"attr", "Stat", 4, false, NULL},
    [F_TABLES_LOADED] = {"tables_loaded", "Tables", 6, false, NULL},
    [F_SUSPENDED] = {"suspended", "Suspended", 9, false, NULL},
    [F_READONLY] = {"readonly", "Read-only", 9, false, NULL},
    [F_DEVNO] = {"devno", "DevNo", 5, false, NULL},
    [F_MAJOR] = {"major", "Maj", 3, true, NULL},
    [F_MINOR] = {"minor", "Min", 3, true, NULL},
    [F_OPEN] = {"open", "Open", 4, true, NULL},
    [F_SEGMENTS] = {"segments", "Targ", 4, true, NULL},
    [F_EVENTS] = {"events", "Event", 6, true, NULL},
    [F_DEVICE_COUNT] = {"device_count", "#Devs", 5, true, NULL},
    [F_DEVS_USED] = {"devs_used", "DevNamesUsed", 16, false, NULL},
    [F_DEVNOS_USED] = {"devnos_used", "DevNosUsed", 16, false, NULL},
    [F_BLKDEVS_USED] = {"blkdevs_used", "BlkDevNamesUsed", 16, false, NULL},
    [F_DEVICE_REF_COUNT] = {"device_ref_count", "#Refs", 5, true, NULL},
    [F_NAMES_USING_DEV] = {"names_using_dev", "RefNames", 8, false, NULL},
    [F_DEVNOS_USING_DEV] = {"devnos_using_dev", "RefDevNos", 9, false, NULL},
    [F_SUBSYSTEM] = {"subsystem", "Subsys", 6, false, NULL},
    [F_VG_NAME] = {"vg_name", "VG", 4, false, NULL},
    [F_LV_NAME] = {"lv_name", "LV", 4, false, NULL},
    [F_LV_LAYER] = {"lv_layer", "LVLayer", 7, false, NULL},
    [F_COUNT] = {"read_count", "#Reads", 6, true, NO_STATS},
    {"write_count", "#Writes", 7, true, NO_STATS},
    {"read_sector_count", "#RdSectors", 10, true, NO_STATS},
    {"write_sector_count", "#WrSectors", 10, true, NO_STATS},
    {"region_id", "RgID", 4, true, NO_STATS},
    {"stats_name", "Name", 16, false, NO_STATS},
    {NULL, NULL, 0, false, NULL},
};

static const char info_defaults[] = "name,major,minor,attr,open,segments,events,uuid";
static const char splitname_defaults[] = "vg_name,lv_name,lv_layer";

/*
 * LVM's name rule (dm_split_lvm_name): components separated by '-', a
 * literal '-' doubled.  Splits S in place; returns the next component.
 */
static char *split_component(char *s)
{
  char *r = s, *w = s;
  while (*r) {
    if (r[0] == '-' && r[1]) {
      if (r[1] != '-')
        break;
      r++; /* "--" is one '-' */
    }
    *w++ = *r++;
  }
  char *next = *r ? r + 1 : r;
  *w = '\0';
  return next;
}

/* subsystem, vg, lv, layer of NAME under SUBSYSTEM (only LVM names split). */
static void split_name(const char *subsystem, const char *name, char **v)
{
  v[F_SUBSYSTEM] = cli_xstrdup(subsystem);
  if (strcmp(subsystem, "LVM") != 0) {
    v[F_VG_NAME] = cli_xstrdup("");
    v[F_LV_NAME] = cli_xstrdup("");
    v[F_LV_LAYER] = cli_xstrdup("");
    return;
  }
  char *vg = cli_xstrdup(name);
  char *lv = split_component(vg);
  char *layer = split_component(lv);
  split_component(layer);
  v[F_VG_NAME] = cli_xstrdup(vg);
  v[F_LV_NAME] = cli_xstrdup(lv);
  v[F_LV_LAYER] = cli_xstrdup(layer);
  free(vg);
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!s) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* A comma-separated list, appended to. */
static void list_add(char **list, const char *item)
{
  char *n = strf("%s%s%s", *list, **list ? "," : "", item);
  free(*list);
  *list = n;
}

static char **info_row(const struct devs *d, const struct dev *v)
{
  char **f = cli_xcalloc((sizeof info_fields / sizeof info_fields[0]), sizeof *f);
  f[F_NAME] = cli_xstrdup(v->name);
  f[F_MANGLED_NAME] = cli_xstrdup(v->name);
  f[F_UNMANGLED_NAME] = cli_xstrdup(v->name);
  f[F_UUID] = cli_xstrdup(v->uuid);
  f[F_MANGLED_UUID] = cli_xstrdup(v->uuid);
  f[F_UNMANGLED_UUID] = cli_xstrdup(v->uuid);
  f[F_READ_AHEAD] = strf("%d", UDM_CLI_READ_AHEAD);
  const char *base = strrchr(v->blockdev, '/');
  f[F_BLKDEVNAME] = cli_xstrdup(base ? base + 1 : v->blockdev);
  f[F_ATTR] = strf("%c%c%c%c", v->live ? 'L' : '-', v->inactive ? 'I' : '-',
                   v->suspended ? 's' : '-', v->readonly ? 'r' : 'w');
  f[F_TABLES_LOADED] = cli_xstrdup(v->live && v->inactive ? "Both"
                               : v->live             ? "Live"
                               : v->inactive         ? "Inactive"
                                                     : "None");
  f[F_SUSPENDED] = cli_xstrdup(v->suspended ? "Suspended" : "Active");
  f[F_READONLY] = cli_xstrdup(v->readonly ? "Read-only" : "Writeable");
  f[F_DEVNO] = strf("%d:%u", UDM_CLI_MAJOR, v->minor);
  f[F_MAJOR] = strf("%d", UDM_CLI_MAJOR);
  f[F_MINOR] = strf("%u", v->minor);
  f[F_OPEN] = strf("%u", v->open);
  f[F_SEGMENTS] = strf("%u", v->targets);
  f[F_EVENTS] = strf("%lu", v->events);
  f[F_DEVICE_COUNT] = strf("%zu", v->ndeps);
  f[F_DEVS_USED] = cli_xstrdup("");
  f[F_DEVNOS_USED] = cli_xstrdup("");
  f[F_BLKDEVS_USED] = cli_xstrdup("");
  for (size_t k = 0; k < v->ndeps; k++) {
    char buf[PATH_MAX + 32];
    if (v->deps[k].device)
      list_add(&f[F_DEVS_USED], v->deps[k].device);
    devs_dep_text(d, &v->deps[k], NAME_DEVNO, true, buf, sizeof buf);
    list_add(&f[F_DEVNOS_USED], buf);
    devs_dep_text(d, &v->deps[k], NAME_BLKDEVNAME, true, buf, sizeof buf);
    list_add(&f[F_BLKDEVS_USED], buf);
  }
  unsigned refs = 0;
  f[F_NAMES_USING_DEV] = cli_xstrdup("");
  f[F_DEVNOS_USING_DEV] = cli_xstrdup("");
  for (size_t i = 0; i < d->n; i++)
    for (size_t k = 0; k < d->v[i].ndeps; k++)
      if (d->v[i].deps[k].device && !strcmp(d->v[i].deps[k].device, v->name)) {
        refs++;
        list_add(&f[F_NAMES_USING_DEV], d->v[i].name);
        char *no = strf("%d:%u", UDM_CLI_MAJOR, d->v[i].minor);
        list_add(&f[F_DEVNOS_USING_DEV], no);
        free(no);
      }
  f[F_DEVICE_REF_COUNT] = strf("%u", refs);
  /* The subsystem is the uuid's prefix before '-' (LVM-..., CRYPT-...). */
  size_t pre = strcspn(v->uuid, "-");
  char *subsystem = v->uuid[pre] ? strf("%.*s", (int)pre, v->uuid) : cli_xstrdup("");
  split_name(subsystem, v->name, f);
  free(subsystem);
  for (size_t i = 0; info_fields[i].id; i++)
    if (!f[i])
      f[i] = cli_xstrdup("");
  return f;
}

int verb_info_columns(struct cli *c, struct cli_args *a)
{
  struct report r;
  if (report_init(&r, info_fields, info_defaults, a, "info") < 0)
    return EXIT_USAGE;
  struct devs d = {0};
  devs_load_info(c, a->pos, a->npos, &d);
  /* The deps of every device: the fields of devices using this one need them. */
  if (d.n && devs_load_deps(c, &d, false) < 0) {
    devs_free(&d);
    return EXIT_FAIL;
  }
  struct devs all = {0};
  bool need_all = a->npos > 0;
  if (need_all) {
    devs_load_info(c, NULL, 0, &all);
    if (all.failed || devs_load_deps(c, &all, false) < 0) {
      devs_free(&d);
      devs_free(&all);
      return EXIT_FAIL;
    }
  }
  for (size_t i = 0; i < d.n; i++)
    if (report_add(&r, info_row(need_all ? &all : &d, &d.v[i])) < 0)
      break;
  if (!d.n && !a->npos && !d.failed && !r.json)
    puts("No devices found");
  else
    report_print(&r);
  report_free(&r);
  int status = d.failed ? EXIT_FAIL : EXIT_OK;
  devs_free(&d);
  devs_free(&all);
  return status;
}

int verb_splitname(struct cli *c, struct cli_args *a)
{
  (void)c;
  struct report r;
  if (report_init(&r, info_fields, splitname_defaults, a, "splitname") < 0)
    return EXIT_USAGE;
  for (unsigned k = 0; k < r.ncols; k++)
    if (r.cols[k] < F_SUBSYSTEM || r.cols[k] > F_LV_LAYER) {
      cli_error("splitname: field %s describes a device; splitname has only subsystem, "
                "vg_name, lv_name and lv_layer",
                info_fields[r.cols[k]].id);
      return EXIT_USAGE;
    }
  char **f = cli_xcalloc((sizeof info_fields / sizeof info_fields[0]), sizeof *f);
  split_name(a->npos > 1 ? a->pos[1] : "LVM", a->pos[0], f);
  for (size_t i = 0; info_fields[i].id; i++)
    if (!f[i])
      f[i] = cli_xstrdup("");
  report_add(&r, f);
  report_print(&r);
  report_free(&r);
  return EXIT_OK;
}

void cli_print_fields(void)
{
  printf("Device-mapper info fields (udm info -c -o FIELD,...):\n");
  for (size_t i = 0; info_fields[i].id; i++)
    if (!info_fields[i].unsupported)
      printf("  %-18s %s\n", info_fields[i].id, info_fields[i].heading);
}

/* ---- udevcookies, target-version ---- */

int verb_udevcookies(struct cli *c, struct cli_args *a)
{
  (void)c;
  /* udm creates no udev cookies (there is no udev in it): the list is empty. */
  if (cli_opt_set(a, "json"))
    puts("[]");
  else
    printf("Cookie       Semid      Value      Last semop time           Last change time\n");
  return EXIT_OK;
}

int verb_target_version(struct cli *c, struct cli_args *a)
{
  struct udm_msg resp;
  if (cli_targets(c, &resp) < 0)
    return EXIT_FAIL;
  bool json = cli_opt_set(a, "json");
  int status = EXIT_OK, shown = 0;
  if (json)
    fputs("[", stdout);
  for (int i = 0; i < a->npos; i++) {
    const char *version = NULL;
    for (unsigned k = 0; k + 1 < resp.count && !version; k++)
      if (!strcmp(resp.fields[k].key, "target") && !strcmp(resp.fields[k].value, a->pos[i]) &&
          !strcmp(resp.fields[k + 1].key, "version"))
        version = resp.fields[k + 1].value;
    if (!version) {
      cli_error("target-version: unknown target type '%s' (see 'udm targets')", a->pos[i]);
      status = EXIT_FAIL;
      continue;
    }
    cli_print_target(a->pos[i], version, json, shown == 0);
    shown++;
  }
  if (json)
    fputs("]\n", stdout);
  udm_msg_free(&resp);
  return status;
}

/* ---- --concise: name,uuid,minor,flags,table[,table...][;next device] ---- */

/* dmsetup's quoting: a backslash before ',', ';' and '\'. */
static void concise_quoted(const char *s, size_t n)
{
  for (size_t i = 0; i < n && s[i]; i++) {
    if (strchr(",;\\", s[i]))
      putchar('\\');
    putchar(s[i]);
  }
}

struct concise_out {
  struct devs *d;
  bool any;
  const char *target;
};

static void concise_record(void *opaque, const struct udm_msg *m, unsigned first, unsigned end)
{
  struct concise_out *o = opaque;
  const char *name = cli_field(m, first, end, "name"), *text = cli_field(m, first, end, "table");
  const struct dev *v = devs_find(o->d, name);
  if (!v)
    return;
  bool started = false;
  for (const char *p = text;;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    /* The target type is the third word. */
    char type[64] = "";
    sscanf(p, "%*s %*s %63s", type);
    bool line = len > 0 && (!o->target || !strcmp(type, o->target));
    bool empty_device = !*text && !o->target;
    if ((line || empty_device) && !started) {
      if (o->any)
        putchar(';');
      o->any = true;
      concise_quoted(v->name, strlen(v->name));
      putchar(',');
      concise_quoted(v->uuid, strlen(v->uuid));
      printf(",%u,%s", v->minor, v->readonly ? "ro" : "rw");
      started = true;
    }
    if (line) {
      putchar(',');
      concise_quoted(p, len);
      if (cli_line_needs_blank(p, len))
        putchar(' ');
    }
    if (!nl || !nl[1])
      break;
    p = nl + 1;
  }
}

int verb_table_concise(struct cli *c, struct cli_args *a)
{
  struct devs d = {0};
  devs_load_info(c, a->pos, a->npos, &d);
  struct concise_out o = {.d = &d, .target = cli_opt_val(a, "target")};
  int status = d.failed ? EXIT_FAIL : EXIT_OK;
  for (int i = 0; i < (a->npos ? a->npos : 1); i++) {
    if (a->npos && !devs_find(&d, a->pos[i]))
      continue;
    struct udm_msg req, resp;
    if (cli_new_req(&req, "table", a->npos ? a->pos[i] : NULL) < 0 ||
        (cli_opt_set(a, "showkeys") && udm_msg_add(&req, "showkeys", "1") < 0) ||
        (cli_opt_set(a, "inactive") && udm_msg_add(&req, "inactive", "1") < 0)) {
      udm_msg_free(&req);
      devs_free(&d);
      return EXIT_FAIL;
    }
    if (cli_request(c, &req, &resp) < 0)
      status = EXIT_FAIL;
    else
      cli_records(&resp, concise_record, &o);
    udm_msg_free(&req);
    udm_msg_free(&resp);
  }
  if (o.any)
    putchar('\n');
  else if (!d.n && !a->npos && !d.failed)
    puts("No devices found");
  devs_free(&d);
  return status;
}

/* Create one device of a concise list; on failure the earlier ones stay, as in dmsetup. */
static int concise_create(struct cli *c, char **f)
{
  if (*f[2]) {
    cli_error("create --concise: device %s: udm chooses minor numbers itself (minor %s "
              "asked for)", f[0], f[2]);
    return -1;
  }
  if (*f[3] && strcmp(f[3], "ro") && strcmp(f[3], "rw")) {
    cli_error("create --concise: device %s: invalid flags '%s' (ro, rw or empty)", f[0],
              f[3]);
    return -1;
  }
  struct udm_msg req, resp;
  int r = cli_new_req(&req, "create", f[0]);
  if (r == 0 && *f[1])
    r = udm_msg_add(&req, "uuid", f[1]);
  if (r == 0 && !strcmp(f[3], "ro"))
    r = udm_msg_add(&req, "readonly", "1");
  if (r == 0 && *f[4])
    r = udm_msg_add(&req, "table", f[4]);
  if (r == 0)
    r = cli_request(c, &req, &resp);
  else
    udm_msg_init(&resp);
  udm_msg_free(&req);
  udm_msg_free(&resp);
  return r;
}

int verb_create_concise(struct cli *c, struct cli_args *a)
{
  if (a->npos > 1) {
    cli_error("create --concise takes at most one argument");
    return EXIT_USAGE;
  }
  if (cli_opt_set(a, "table") || cli_opt_set(a, "notable") || cli_opt_set(a, "uuid") ||
      cli_opt_set(a, "image")) {
    cli_error("create: --concise excludes --table, --notable, --uuid and --image");
    return EXIT_USAGE;
  }
  char *spec = NULL;
  if (a->npos) {
    spec = cli_xstrdup(a->pos[0]);
  } else {
    size_t cap = 0;
    FILE *mem = open_memstream(&spec, &cap);
    int ch;
    while (mem && (ch = getchar()) != EOF)
      fputc(ch, mem);
    if (!mem || fclose(mem) != 0) {
      cli_error("create --concise: cannot read standard input");
      return EXIT_FAIL;
    }
  }
  /* Trailing line breaks of a here-document or a file are not part of the last table. */
  size_t len = strlen(spec);
  while (len && (spec[len - 1] == '\n' || spec[len - 1] == '\r'))
    spec[--len] = '\0';
  /* Unquote in place into fields: ',' ends the first four, then a table line; ';' a device. */
  char *f[5] = {spec, NULL, NULL, NULL, NULL};
  int nf = 0, status = EXIT_OK;
  char *r = spec, *w = spec;
  for (;;) {
    if (*r == '\\') {
      if (!r[1]) {
        cli_error("create --concise: a backslash must be followed by another character");
        status = EXIT_USAGE;
        break;
      }
      *w++ = r[1];
      r += 2;
      continue;
    }
    if (*r == ',' && nf < 4) {
      *w++ = '\0';
      r++;
      f[++nf] = w;
      while (*r == ' ' || *r == '\t' || *r == '\n')
        r++;
      continue;
    }
    if (*r == ',') {
      *w++ = '\n';
      r++;
      continue;
    }
    if (*r == ';' || !*r) {
      bool end = !*r;
      *w++ = '\0';
      if (end && f[0] == w - 1 && nf == 0)
        break; /* nothing after the last ';' */
      if (nf != 4) {
        cli_error("create --concise: five comma-separated fields are required for each "
                  "device (name,uuid,minor,flags,table): '%s' has %d",
                  f[0], nf + 1);
        status = EXIT_USAGE;
        break;
      }
      if (concise_create(c, f) < 0) {
        status = EXIT_FAIL;
        break;
      }
      if (end)
        break;
      r++;
      while (*r == ' ' || *r == '\t' || *r == '\n')
        r++;
      f[0] = w;
      nf = 0;
      continue;
    }
    *w++ = *r++;
  }
  free(spec);
  return status;
}
