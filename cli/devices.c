/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What udmd says about the devices, gathered for the dmsetup verbs that
 * look at several at once (deps, info -c, ls --tree, remove_all), device
 * selection by -u UUID or -j MAJOR -m MINOR, and how dmsetup names a
 * device a table uses.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sysmacros.h>
#endif

#include "cli.h"
#include "devices.h"

/* ---- what udmd says about the devices ---- */


char *cli_xstrdup(const char *s)
{
  char *d = strdup(s ? s : "");
  if (!d) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  return d;
}

void *cli_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    cli_error("out of memory");
    exit(EXIT_FAIL);
  }
  return p;
}

void devs_free(struct devs *d)
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

struct dev *devs_find(struct devs *d, const char *name)
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
  v->name = cli_xstrdup(cli_field(m, first, end, "name"));
  v->uuid = cli_xstrdup(cli_field(m, first, end, "uuid"));
  v->blockdev = cli_xstrdup(cli_field(m, first, end, "block_device"));
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
int cli_ask(struct cli *c, const char *op, const char *name, bool inactive,
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
void devs_load_info(struct cli *c, char **names, int n, struct devs *d)
{
  for (int i = 0; i < (n ? n : 1); i++) {
    struct udm_msg resp;
    if (cli_ask(c, "info", n ? names[i] : NULL, false, &resp) < 0)
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
    dep->path = cli_xstrdup(m->fields[k].value);
    const char *dev = k + 1 < end && !strcmp(m->fields[k + 1].key, "dep_device")
                          ? m->fields[k + 1].value
                          : "";
    dep->device = *dev ? cli_xstrdup(dev) : NULL;
    dep->minor = k + 2 < end && !strcmp(m->fields[k + 2].key, "dep_minor")
                     ? (unsigned)strtoul(m->fields[k + 2].value, NULL, 10)
                     : 0;
  }
}

/* The dependencies of every device in d (of the inactive tables when asked). */
int devs_load_deps(struct cli *c, struct devs *d, bool inactive)
{
  struct udm_msg resp;
  int r = cli_ask(c, "deps", NULL, inactive, &resp);
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
  devs_load_info(c, NULL, 0, &d);
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

/* The file behind a table's device word: raw:PATH?opts gives PATH. */
static char *dep_file(const char *path)
{
  const char *p = strncmp(path, "raw:", 4) == 0 ? path + 4 : path;
  size_t n = strcspn(p, "?");
  char *s = cli_xstrdup(p);
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
void devs_dep_text(const struct devs *d, const struct dep *dep, enum name_type t,
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

void devs_json_dep(const struct devs *d, const struct dep *dep)
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
