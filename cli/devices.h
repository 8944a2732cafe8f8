/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The devices as udmd describes them, for the dmsetup verbs (devices.c). */
#ifndef UDM_CLI_DEVICES_H
#define UDM_CLI_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

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

/* How dmsetup names a device a table uses (deps -o, info -c fields). */
enum name_type { NAME_DEVNO, NAME_DEVNAME, NAME_BLKDEVNAME };

/* Allocation that cannot fail: out of memory ends udm with a message. */
char *cli_xstrdup(const char *s);
void *cli_xcalloc(size_t n, size_t size);

void devs_free(struct devs *d);
struct dev *devs_find(struct devs *d, const char *name);
/* The answer of OP for NAME (all devices when NULL); -1 with the error printed. */
int cli_ask(struct cli *c, const char *op, const char *name, bool inactive,
            struct udm_msg *resp);
/* Information on NAMES (every device when n is 0); failures are printed and counted. */
void devs_load_info(struct cli *c, char **names, int n, struct devs *d);
/* The dependencies of every device in d (of the inactive tables when asked). */
int devs_load_deps(struct cli *c, struct devs *d, bool inactive);
/*
 * DEP as dmsetup shows it: "253, 1" (devno; "253:1" with colon), or a
 * name; d gives the block devices udm devices are attached at.
 */
void devs_dep_text(const struct devs *d, const struct dep *dep, enum name_type t, bool colon,
                   char *buf, size_t n);
/* DEP as a JSON object on stdout. */
void devs_json_dep(const struct devs *d, const struct dep *dep);

#endif
