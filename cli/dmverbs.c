/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rest of dmsetup's verbs and options: rename, deps, remove_all, clear,
 * wipe_table, mknodes, splitname, udevcookies, target-version, info -c,
 * ls --tree, create/table --concise, and device selection by -u UUID or
 * -j MAJOR -m MINOR.  Output is dmsetup's, byte for byte, where dmsetup's
 * own has no kernel-specific content; docs/cli.md lists the differences.
 */
#include <errno.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sysmacros.h>
#endif

#include "cli.h"

/* ---- what udmd says about the devices ---- */

struct dep {
  char *path;   /* as written in the table */
  char *device; /* a udm device's name, or NULL */
  unsigned minor;
};

struct dev {
  char *name, *uuid, *blockdev;
  unsigned minor, open, holders, targets;
  unsigned long events;
  unsigned long long size;
  bool live, inactive, suspended, readonly;
  struct dep *deps;
  size_t ndeps;
};

struct devs {
  struct dev *v;
  size_t n;
  bool failed;
};

static char *xstrdup(const char *s)
{
  char *d = strdup(s ? s : "");
  if (!d) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  return d;
}

static void *xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  return p;
}

static void devs_free(struct devs *d)
{
  for (size_t i = 0; i < d->n; i++) {
    struct dev *v = &d->v[i];
    free(v->name);
    free(v->uuid);
    free(v->blockdev);
    for (size_t k = 0; k < v->ndeps; k++) {
      free(v->deps[k].path);
      free(v->deps[k].device);
    }
    free(v->deps);
  }
  free(d->v);
  memset(d, 0, sizeof *d);
}

static struct dev *devs_find(struct devs *d, const char *name)
{
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->v[i].name, name) == 0)
      return &d->v[i];
  return NULL;
}

static bool flag(const struct udm_msg *m, unsigned first, unsigned end, const char *key)
{
  return strcmp(cli_field(m, first, end, key), "1") == 0;
}

static void add_info_record(void *opaque, const struct udm_msg *m, unsigned first,
                            unsigned end)
{
  struct devs *d = opaque;
  struct dev *n = realloc(d->v, (d->n + 1) * sizeof *n);
  if (!n) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  d->v = n;
  struct dev *v = &d->v[d->n++];
  memset(v, 0, sizeof *v);
  v->name = xstrdup(cli_field(m, first, end, "name"));
  v->uuid = xstrdup(cli_field(m, first, end, "uuid"));
  v->blockdev = xstrdup(cli_field(m, first, end, "block_device"));
  v->minor = (unsigned)strtoul(cli_field(m, first, end, "minor"), NULL, 10);
  v->holders = (unsigned)strtoul(cli_field(m, first, end, "holders"), NULL, 10);
  /* As the kernel counts: a table that uses the device holds it open. */
  v->open = (unsigned)strtoul(cli_field(m, first, end, "open_count"), NULL, 10) + v->holders;
  v->targets = (unsigned)strtoul(cli_field(m, first, end, "target_count"), NULL, 10);
  v->events = strtoul(cli_field(m, first, end, "event_nr"), NULL, 10);
  v->size = strtoull(cli_field(m, first, end, "size"), NULL, 10);
  v->live = flag(m, first, end, "live_table");
  v->inactive = flag(m, first, end, "inactive_table");
  v->suspended = flag(m, first, end, "suspended");
  v->readonly = flag(m, first, end, "readonly");
}

/* The answer of OP for NAME (all devices when NULL); -1 with the error printed. */
static int ask(struct cli *c, const char *op, const char *name, bool inactive,
               struct udm_msg *resp)
{
  struct udm_msg req;
  if (cli_new_req(&req, op, name) < 0 ||
      (inactive && udm_msg_add(&req, "inactive", "1") < 0)) {
    udm_msg_free(&req);
    udm_msg_init(resp);
    return -1;
  }
  int r = cli_request(c, &req, resp);
  udm_msg_free(&req);
  return r;
}

/* Information on NAMES (every device when n is 0); failures are printed and counted. */
static void load_info(struct cli *c, char **names, int n, struct devs *d)
{
  for (int i = 0; i < (n ? n : 1); i++) {
    struct udm_msg resp;
    if (ask(c, "info", n ? names[i] : NULL, false, &resp) < 0)
      d->failed = true;
    else
      cli_records(&resp, add_info_record, d);
    udm_msg_free(&resp);
  }
}

static void add_deps_record(void *opaque, const struct udm_msg *m, unsigned first,
                            unsigned end)
{
  struct devs *d = opaque;
  struct dev *v = devs_find(d, cli_field(m, first, end, "name"));
  if (!v)
    return; /* created meanwhile */
  for (unsigned k = first; k < end; k++) {
    if (strcmp(m->fields[k].key, "dep_path") != 0)
      continue;
    struct dep *n = realloc(v->deps, (v->ndeps + 1) * sizeof *n);
    if (!n) {
      cli_error("out of memory");
      exit(EXIT_FAIL);
    }
    v->deps = n;
    struct dep *dep = &v->deps[v->ndeps++];
    dep->path = xstrdup(m->fields[k].value);
    const char *dev = k + 1 < end && !strcmp(m->fields[k + 1].key, "dep_device")
                          ? m->fields[k + 1].value
                          : "";
    dep->device = *dev ? xstrdup(dev) : NULL;
    dep->minor = k + 2 < end && !strcmp(m->fields[k + 2].key, "dep_minor")
                     ? (unsigned)strtoul(m->fields[k + 2].value, NULL, 10)
                     : 0;
  }
}

/* The dependencies of every device in d (of the inactive tables when asked). */
static int load_deps(struct cli *c, struct devs *d, bool inactive)
{
  struct udm_msg resp;
  int r = ask(c, "deps", NULL, inactive, &resp);
  if (r == 0)
    cli_records(&resp, add_deps_record, d);
  udm_msg_free(&resp);
  return r;
}

/* ---- device selection: -u UUID, -j MAJOR -m MINOR ---- */

int cli_select_device(struct cli *c, struct cli_args *a, char *name, size_t n, bool *selected)
{
  const char *uuid = cli_opt_val(a, "uuid"), *major = cli_opt_val(a, "major");
  const char *minor = cli_opt_val(a, "minor");
  *selected = false;
  if (!uuid && !major && !minor)
    return 0;
  if (!uuid && (!major || !minor)) {
    cli_error("-j MAJOR and -m MINOR select a device together");
    return -1;
  }
  if (uuid && (major || minor)) {
    cli_error("select a device by -u UUID or by -j MAJOR -m MINOR, not both");
    return -1;
  }
  char *end;
  unsigned long maj = 0, min = 0;
  if (!uuid) {
    maj = strtoul(major, &end, 10);
    if (!*major || *end) {
      cli_error("invalid major number '%s'", major);
      return -1;
    }
    min = strtoul(minor, &end, 10);
    if (!*minor || *end) {
      cli_error("invalid minor number '%s'", minor);
      return -1;
    }
  }
  struct devs d = {0};
  load_info(c, NULL, 0, &d);
  if (d.failed) {
    devs_free(&d);
    return -1;
  }
  const struct dev *hit = NULL;
  for (size_t i = 0; i < d.n && !hit; i++)
    if (uuid ? strcmp(d.v[i].uuid, uuid) == 0
             : maj == UDM_CLI_MAJOR && d.v[i].minor == min)
      hit = &d.v[i];
  if (!hit) {
    if (uuid)
      cli_error("no device has uuid %s", uuid);
    else
      cli_error("no device has number %lu:%lu", maj, min);
    devs_free(&d);
    return -1;
  }
  snprintf(name, n, "%s", hit->name);
  *selected = true;
  devs_free(&d);
  return 0;
}

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

enum name_type { NAME_DEVNO, NAME_DEVNAME, NAME_BLKDEVNAME };

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

/* The file behind a table's device word: raw:PATH?opts gives PATH. */
static char *dep_file(const char *path)
{
  const char *p = strncmp(path, "raw:", 4) == 0 ? path + 4 : path;
  size_t n = strcspn(p, "?");
  char *s = xstrdup(p);
  s[n] = '\0';
  return s;
}

/* The kernel's name of block device MAJ:MIN (sda, loop3), from sysfs. */
static bool kernel_name(unsigned maj, unsigned min, char *buf, size_t n)
{
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/sys/dev/block/%u:%u", maj, min);
  ssize_t len = readlink(link, target, sizeof target - 1);
  if (len <= 0)
    return false;
  target[len] = '\0';
  const char *base = strrchr(target, '/');
  snprintf(buf, n, "%s", base ? base + 1 : target);
  return true;
}

/*
 * How dmsetup names a dependency: "253, 1" (devno), or a name.  udm
 * devices have major 253 and their minor; their kernel name is that of
 * the block device they are attached at.  A regular file has no device
 * number: it is shown by its path.
 */
static void dep_text(const struct devs *d, const struct dep *dep, enum name_type t,
                     bool colon, char *buf, size_t n)
{
  if (dep->device) {
    const struct dev *u = NULL;
    for (size_t i = 0; i < d->n && !u; i++)
      if (!strcmp(d->v[i].name, dep->device))
        u = &d->v[i];
    if (t == NAME_DEVNAME) {
      snprintf(buf, n, "%s", dep->device);
      return;
    }
    if (t == NAME_BLKDEVNAME && u && *u->blockdev) {
      const char *base = strrchr(u->blockdev, '/');
      snprintf(buf, n, "%s", base ? base + 1 : u->blockdev);
      return;
    }
    snprintf(buf, n, colon ? "%d:%u" : "%d, %u", UDM_CLI_MAJOR, dep->minor);
    return;
  }
  char *file = dep_file(dep->path);
  struct stat st;
  if (stat(file, &st) == 0 && S_ISBLK(st.st_mode)) {
    unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
    if (t == NAME_DEVNO || !kernel_name(maj, min, buf, n))
      snprintf(buf, n, colon ? "%u:%u" : "%u, %u", maj, min);
  } else {
    snprintf(buf, n, "%s", dep->path);
  }
  free(file);
}

static void deps_json_dep(const struct devs *d, const struct dep *dep)
{
  fputs("{\"path\": ", stdout);
  json_str(stdout, dep->path);
  fputs(", \"device\": ", stdout);
  if (dep->device)
    json_str(stdout, dep->device);
  else
    fputs("null", stdout);
  char *file = dep_file(dep->path);
  struct stat st;
  if (dep->device)
    printf(", \"major\": %d, \"minor\": %u", UDM_CLI_MAJOR, dep->minor);
  else if (stat(file, &st) == 0 && S_ISBLK(st.st_mode))
    printf(", \"major\": %u, \"minor\": %u", (unsigned)major(st.st_rdev),
           (unsigned)minor(st.st_rdev));
  else
    fputs(", \"major\": null, \"minor\": null", stdout);
  free(file);
  (void)d;
  fputs("}", stdout);
}

int verb_deps(struct cli *c, struct cli_args *a)
{
  enum name_type t;
  if (name_type(a, "deps", &t) < 0)
    return EXIT_USAGE;
  bool json = cli_opt_set(a, "json"), multiple = a->npos != 1;
  struct devs d = {0};
  load_info(c, a->pos, a->npos, &d);
  if (d.n && load_deps(c, &d, cli_opt_set(a, "inactive")) < 0) {
    devs_free(&d);
    return EXIT_FAIL;
  }
  /* Other devices' block devices, for -o blkdevname. */
  struct devs all = {0};
  if (a->npos && t == NAME_BLKDEVNAME)
    load_info(c, NULL, 0, &all);
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
        deps_json_dep(&d, &v->deps[k]);
      }
      fputs("]}", stdout);
      continue;
    }
    if (multiple)
      printf("%s: ", v->name);
    printf("%zu dependencies\t:", v->ndeps);
    for (size_t k = 0; k < v->ndeps; k++) {
      char buf[PATH_MAX + 32];
      dep_text(ref, &v->deps[k], t, false, buf, sizeof buf);
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
    load_info(c, NULL, 0, left);
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
  load_info(c, a->pos, a->npos, &d);
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
  int r = ask(c, "mknodes", a->npos ? a->pos[0] : NULL, false, &resp);
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
  v[F_SUBSYSTEM] = xstrdup(subsystem);
  if (strcmp(subsystem, "LVM") != 0) {
    v[F_VG_NAME] = xstrdup("");
    v[F_LV_NAME] = xstrdup("");
    v[F_LV_LAYER] = xstrdup("");
    return;
  }
  char *vg = xstrdup(name);
  char *lv = split_component(vg);
  char *layer = split_component(lv);
  split_component(layer);
  v[F_VG_NAME] = xstrdup(vg);
  v[F_LV_NAME] = xstrdup(lv);
  v[F_LV_LAYER] = xstrdup(layer);
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
  char **f = xcalloc((sizeof info_fields / sizeof info_fields[0]), sizeof *f);
  f[F_NAME] = xstrdup(v->name);
  f[F_MANGLED_NAME] = xstrdup(v->name);
  f[F_UNMANGLED_NAME] = xstrdup(v->name);
  f[F_UUID] = xstrdup(v->uuid);
  f[F_MANGLED_UUID] = xstrdup(v->uuid);
  f[F_UNMANGLED_UUID] = xstrdup(v->uuid);
  f[F_READ_AHEAD] = strf("%d", UDM_CLI_READ_AHEAD);
  const char *base = strrchr(v->blockdev, '/');
  f[F_BLKDEVNAME] = xstrdup(base ? base + 1 : v->blockdev);
  f[F_ATTR] = strf("%c%c%c%c", v->live ? 'L' : '-', v->inactive ? 'I' : '-',
                   v->suspended ? 's' : '-', v->readonly ? 'r' : 'w');
  f[F_TABLES_LOADED] = xstrdup(v->live && v->inactive ? "Both"
                               : v->live             ? "Live"
                               : v->inactive         ? "Inactive"
                                                     : "None");
  f[F_SUSPENDED] = xstrdup(v->suspended ? "Suspended" : "Active");
  f[F_READONLY] = xstrdup(v->readonly ? "Read-only" : "Writeable");
  f[F_DEVNO] = strf("%d:%u", UDM_CLI_MAJOR, v->minor);
  f[F_MAJOR] = strf("%d", UDM_CLI_MAJOR);
  f[F_MINOR] = strf("%u", v->minor);
  f[F_OPEN] = strf("%u", v->open);
  f[F_SEGMENTS] = strf("%u", v->targets);
  f[F_EVENTS] = strf("%lu", v->events);
  f[F_DEVICE_COUNT] = strf("%zu", v->ndeps);
  f[F_DEVS_USED] = xstrdup("");
  f[F_DEVNOS_USED] = xstrdup("");
  f[F_BLKDEVS_USED] = xstrdup("");
  for (size_t k = 0; k < v->ndeps; k++) {
    char buf[PATH_MAX + 32];
    if (v->deps[k].device)
      list_add(&f[F_DEVS_USED], v->deps[k].device);
    dep_text(d, &v->deps[k], NAME_DEVNO, true, buf, sizeof buf);
    list_add(&f[F_DEVNOS_USED], buf);
    dep_text(d, &v->deps[k], NAME_BLKDEVNAME, true, buf, sizeof buf);
    list_add(&f[F_BLKDEVS_USED], buf);
  }
  unsigned refs = 0;
  f[F_NAMES_USING_DEV] = xstrdup("");
  f[F_DEVNOS_USING_DEV] = xstrdup("");
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
  char *subsystem = v->uuid[pre] ? strf("%.*s", (int)pre, v->uuid) : xstrdup("");
  split_name(subsystem, v->name, f);
  free(subsystem);
  for (size_t i = 0; info_fields[i].id; i++)
    if (!f[i])
      f[i] = xstrdup("");
  return f;
}

int verb_info_columns(struct cli *c, struct cli_args *a)
{
  struct report r;
  if (report_init(&r, info_fields, info_defaults, a, "info") < 0)
    return EXIT_USAGE;
  struct devs d = {0};
  load_info(c, a->pos, a->npos, &d);
  /* The deps of every device: the fields of devices using this one need them. */
  if (d.n && load_deps(c, &d, false) < 0) {
    devs_free(&d);
    return EXIT_FAIL;
  }
  struct devs all = {0};
  bool need_all = a->npos > 0;
  if (need_all) {
    load_info(c, NULL, 0, &all);
    if (all.failed || load_deps(c, &all, false) < 0) {
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
  char **f = xcalloc((sizeof info_fields / sizeof info_fields[0]), sizeof *f);
  split_name(a->npos > 1 ? a->pos[1] : "LVM", a->pos[0], f);
  for (size_t i = 0; info_fields[i].id; i++)
    if (!f[i])
      f[i] = xstrdup("");
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
  struct udm_msg req, resp;
  if (cli_new_req(&req, "targets", NULL) < 0)
    return EXIT_FAIL;
  int r = cli_request(c, &req, &resp);
  udm_msg_free(&req);
  if (r < 0) {
    udm_msg_free(&resp);
    return EXIT_FAIL;
  }
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
    if (json) {
      unsigned v[3] = {0, 0, 0};
      sscanf(version, "%u.%u.%u", &v[0], &v[1], &v[2]);
      fputs(shown ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
      json_str(stdout, a->pos[i]);
      printf(", \"version\": [%u, %u, %u]}", v[0], v[1], v[2]);
    } else {
      printf("%-16s v%s\n", a->pos[i], version);
    }
    shown++;
  }
  if (json)
    fputs("]\n", stdout);
  udm_msg_free(&resp);
  return status;
}

/* ---- ls --tree ---- */

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

static size_t tree_node_for_dep(struct tree *t, const struct dep *dep)
{
  for (size_t i = 0; i < t->n; i++) {
    if (dep->device && t->v[i].dev && !strcmp(t->v[i].dev->name, dep->device))
      return i;
    if (!dep->device && t->v[i].leaf && !strcmp(t->v[i].leaf->path, dep->path))
      return i;
  }
  struct tnode *v = realloc(t->v, (t->n + 1) * sizeof *v);
  if (!v) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  t->v = v;
  memset(&t->v[t->n], 0, sizeof t->v[t->n]);
  t->v[t->n].leaf = dep;
  return t->n++;
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
  struct tnode *v = realloc(t->v, (t->n + 1) * sizeof *v);
  if (!v) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  t->v = v;
  size_t me = t->n++;
  memset(&t->v[me], 0, sizeof t->v[me]);
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
  bool compact = t->compact && !attrs;
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
      dep_text(t->d, n->leaf, NAME_BLKDEVNAME, true, buf, sizeof buf);
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
      dep_text(t->d, n->leaf, NAME_DEVNO, true, buf, sizeof buf);
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
      if ((len == 5 && !strncmp(p, "table", 5)) || (len == 6 && !strncmp(p, "status", 6)))
        cli_error("ls --tree: option %.*s is not offered (dmsetup accepts it and prints "
                  "nothing for it)", (int)len, p);
      else
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
  load_info(c, NULL, 0, &d);
  if (d.failed || (d.n && load_deps(c, &d, false) < 0)) {
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
        deps_json_dep(&d, &d.v[i].deps[k]);
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
  load_info(c, a->pos, a->npos, &d);
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
    spec = xstrdup(a->pos[0]);
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
