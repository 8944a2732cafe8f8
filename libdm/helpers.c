/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdevmapper's helper calls: udev cookies (udm has no udev: "no udev
 * sync"), nodes, device names and numbers, strings and memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libdm.h"
#include "platform.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- udev: udm makes its nodes itself, so there is never anything to wait for ---- */
EXPORT int dm_task_set_cookie(void *t, uint32_t *cookie, uint16_t flags)
{
  (void)t;
  (void)flags;
  if (cookie)
    *cookie = 0;
  return 1;
}
EXPORT int dm_udev_create_cookie(uint32_t *cookie)
{
  if (cookie)
    *cookie = 0;
  return 1;
}
EXPORT int dm_udev_wait(uint32_t cookie)
{
  (void)cookie;
  return 1;
}
EXPORT int dm_udev_wait_immediate(uint32_t cookie, int *ready)
{
  (void)cookie;
  *ready = 1;
  return 1;
}
EXPORT int dm_udev_complete(uint32_t cookie)
{
  (void)cookie;
  return 1;
}
EXPORT void dm_udev_set_sync_support(int sync)
{
  (void)sync;
}
EXPORT int dm_udev_get_sync_support(void)
{
  return 0;
}
EXPORT void dm_udev_set_checking(int checking)
{
  (void)checking;
}
EXPORT int dm_udev_get_checking(void)
{
  return 0;
}
EXPORT int dm_cookie_supported(void)
{
  return 0;
}

/* ---- nodes ---- */
EXPORT int dm_mknodes(const char *name)
{
  return libdm_mknodes(name) == 0;
}
/* Nodes are made and removed as each task runs: nothing is pending. */
EXPORT void dm_task_update_nodes(void)
{
}
EXPORT void dm_lib_release(void)
{
}
EXPORT void dm_lib_exit(void)
{
}
EXPORT void dm_lib_init(void)
{
}
EXPORT void dm_hold_control_dev(int hold)
{
  (void)hold;
}

static int mangling_mode = 1; /* DM_STRING_MANGLING_AUTO, the default */
EXPORT int dm_set_name_mangling_mode(int mode)
{
  if (mode < 0 || mode > 2) {
    libdm_log(3, EINVAL, "dm_set_name_mangling_mode: unknown mode %d", mode);
    return 0;
  }
  mangling_mode = mode;
  return 1;
}
EXPORT int dm_get_name_mangling_mode(void)
{
  return mangling_mode;
}

/* ---- device numbers and names ---- */
struct found {
  char name[256];
  char blockdev[PATH_MAX];
  unsigned holders;
};

/* The udm device numbered major:minor (its attached block device's number, or 253:minor). */
static int find_by_number(uint32_t maj, uint32_t min, struct found *out)
{
  struct udm_msg req, resp;
  udm_msg_init(&req);
  udm_msg_init(&resp);
  int r = udm_msg_add(&req, "op", "info");
  if (r == 0)
    r = libdm_call(&req, &resp, false);
  udm_msg_free(&req);
  int found = 0;
  const char *name = NULL, *bd = NULL, *minor = NULL, *holders = NULL;
  for (unsigned i = 0; r == 0 && i <= resp.count && !found; i++) {
    if (i == resp.count || strcmp(resp.fields[i].key, "name") == 0) {
      if (name) {
        struct stat st;
        uint32_t a = LIBDM_MAJOR, b = minor ? (uint32_t)strtoul(minor, NULL, 10) : 0;
        if (bd && *bd && stat(bd, &st) == 0 && S_ISBLK(st.st_mode)) {
          a = udm_platform_dev_major(st.st_rdev);
          b = udm_platform_dev_minor(st.st_rdev);
        }
        if (a == maj && b == min) {
          snprintf(out->name, sizeof out->name, "%s", name);
          snprintf(out->blockdev, sizeof out->blockdev, "%s", bd ? bd : "");
          out->holders = holders ? (unsigned)strtoul(holders, NULL, 10) : 0;
          found = 1;
        }
      }
      if (i == resp.count)
        break;
      name = resp.fields[i].value;
      bd = minor = holders = NULL;
    } else if (strcmp(resp.fields[i].key, "block_device") == 0) {
      bd = resp.fields[i].value;
    } else if (strcmp(resp.fields[i].key, "minor") == 0) {
      minor = resp.fields[i].value;
    } else if (strcmp(resp.fields[i].key, "holders") == 0) {
      holders = resp.fields[i].value;
    }
  }
  udm_msg_free(&resp);
  return r < 0 ? r : found;
}

/*
 * The attached block devices of udm devices are loop devices to the system
 * (their major is the loop driver's, shared with every other loop device):
 * only udm's own major of devices that are not attached is a device-mapper
 * major.  dm_device_get_name still names attached devices by their number.
 */
EXPORT int dm_is_dm_major(uint32_t major)
{
  return major == LIBDM_MAJOR;
}

EXPORT int dm_device_get_name(uint32_t major, uint32_t minor, int prefer_kernel_name, char *buf,
                              uint32_t buf_size)
{
  struct found f;
  int r = find_by_number(major, minor, &f);
  if (r > 0) {
    const char *kname = strrchr(f.blockdev, '/');
    snprintf(buf, buf_size, "%s", prefer_kernel_name && kname ? kname + 1 : f.name);
    return 1;
  }
  char path[PATH_MAX], real[PATH_MAX];
  /* Other block devices: their kernel name, as libdevmapper answers for them. */
  if (r == 0 && udm_platform_devno_path(major, minor, path, sizeof path) == 0 &&
      realpath(path, real)) {
    snprintf(buf, buf_size, "%s", strrchr(real, '/') + 1);
    return 1;
  }
  libdm_log(7, ENXIO, "dm_device_get_name: no device %u:%u", major, minor);
  return 0;
}

EXPORT int dm_device_has_holders(uint32_t major, uint32_t minor)
{
  struct found f;
  /* Tables stacked on a udm device are its holders; udm knows no others. */
  return find_by_number(major, minor, &f) > 0 && f.holders > 0;
}

EXPORT int dm_device_has_mounted_fs(uint32_t major, uint32_t minor)
{
  return udm_platform_dev_mounted(major, minor) > 0;
}

EXPORT int dm_format_dev(char *buf, int bufsize, uint32_t major, uint32_t minor)
{
  int n = snprintf(buf, (size_t)bufsize, "%u:%u", major, minor);
  return n >= 0 && n < bufsize;
}

/* ---- strings and memory ---- */
EXPORT const char *dm_basename(const char *path)
{
  const char *p = strrchr(path, '/');
  return p ? p + 1 : path;
}

EXPORT int dm_strncpy(char *dest, const char *src, size_t n)
{
  size_t len = strlen(src);
  if (n == 0)
    return 0;
  if (len < n) {
    memcpy(dest, src, len + 1);
    return 1;
  }
  memcpy(dest, src, n - 1);
  dest[n - 1] = '\0';
  return 0;
}

EXPORT int dm_snprintf(char *buf, size_t bufsize, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(buf, bufsize, format, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= bufsize ? -1 : n;
}

/*
 * LVM's device names: VG-LV-LAYER, a '-' inside a component written "--".
 * Ends the component that starts at S (undoubling its "--" in place) and
 * returns where the next one starts (the terminating '\0' when none).  A
 * '-' that ends the name is kept, as it cannot separate anything.
 */
static char *lvm_component(char *s)
{
  char *r = s, *w = s;
  for (; *r; r++, w++) {
    if (r[0] == '-' && r[1] == '-')
      r++;
    else if (r[0] == '-' && r[1])
      break;
    *w = *r;
  }
  char *next = *r ? r + 1 : r;
  *w = '\0';
  return next;
}

/*
 * dmname split into *vgname, *lvname and *layer, all in one copy made from
 * mem; without mem, *vgname already holds the name and is split in place.
 */
EXPORT int dm_split_lvm_name(struct dm_pool *mem, const char *dmname, char **vgname,
                             char **lvname, char **layer)
{
  if (!vgname || !lvname || !layer) {
    libdm_log(3, EINVAL, "dm_split_lvm_name: vgname, lvname and layer must not be NULL");
    return 0;
  }
  if (mem) {
    if (!dmname || !(*vgname = dm_pool_strdup(mem, dmname))) {
      libdm_log(3, ENOMEM, "dm_split_lvm_name: cannot copy the name %s", dmname ? dmname : "(null)");
      return 0;
    }
  } else if (!*vgname) {
    libdm_log(3, EINVAL, "dm_split_lvm_name: no name to split");
    return 0;
  }
  *lvname = lvm_component(*vgname);
  *layer = lvm_component(*lvname);
  lvm_component(*layer);
  return 1;
}

/*
 * The factor of a units argument (dmsetup --units): an optional count
 * then one letter: h/H and r/R (human-readable: factor 1), b/B bytes,
 * s/S sectors, k m g t p e powers of 1024, K M G T P E powers of 1000.
 * *unit_type is the letter, or 'U' when a count other than 1 came with
 * it.  strict: nothing may follow the letter.  0 for anything else.
 */
EXPORT uint64_t dm_units_to_factor(const char *units, char *unit_type, int strict,
                                   const char **endptr)
{
  if (endptr)
    *endptr = units;
  double count = 1;
  const char *p = units;
  if (*p >= '0' && *p <= '9') {
    char *e;
    count = strtod(p, &e);
    if (e == p || count <= 0)
      return 0;
    p = e;
  }
  if (!*p || (strict && p[1]))
    return 0;
  static const char letters[] = "bskmgtpe";
  uint64_t factor;
  char c = *p;
  if (c == 'h' || c == 'H' || c == 'r' || c == 'R') {
    factor = 1;
    count = 1;
  } else if (c == 'b' || c == 'B') {
    factor = 1;
  } else if (c == 's' || c == 'S') {
    factor = 512;
  } else {
    const char *l = strchr(letters, c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (!l || l < letters + 2)
      return 0;
    uint64_t base = c >= 'A' && c <= 'Z' ? 1000 : 1024;
    factor = 1;
    for (const char *k = letters + 2; k <= l; k++)
      factor *= base;
  }
  *unit_type = count == 1 ? c : 'U';
  if (endptr)
    *endptr = p + 1;
  return (uint64_t)(count * (double)factor);
}

EXPORT void *dm_malloc_wrapper(size_t s, const char *file, int line)
{
  (void)file;
  (void)line;
  return malloc(s);
}
EXPORT void *dm_zalloc_wrapper(size_t s, const char *file, int line)
{
  (void)file;
  (void)line;
  return calloc(1, s);
}
EXPORT void *dm_realloc_wrapper(void *p, unsigned int s, const char *file, int line)
{
  (void)file;
  (void)line;
  return realloc(p, s);
}
EXPORT char *dm_strdup_wrapper(const char *s, const char *file, int line)
{
  (void)file;
  (void)line;
  return strdup(s);
}
EXPORT void dm_free_wrapper(void *p)
{
  free(p);
}
