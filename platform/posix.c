/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parts of platform.h that are the same on every POSIX system: hole
 * seeking, and the path matching around each system's list of attached
 * block devices (linux.c reads sysfs, darwin.c asks hdiutil).
 */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE on glibc */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "platform.h"

static int seek(int fd, uint64_t off, int whence, uint64_t *out)
{
  off_t r = lseek(fd, (off_t)off, whence);
  if (r < 0)
    return errno == EINVAL ? -EOPNOTSUPP : -errno;
  *out = (uint64_t)r;
  return 0;
}

int udm_platform_seek_data(int fd, uint64_t off, uint64_t *data)
{
  return seek(fd, off, SEEK_DATA, data);
}

int udm_platform_seek_hole(int fd, uint64_t off, uint64_t *hole)
{
  return seek(fd, off, SEEK_HOLE, hole);
}

/*
 * PATH made absolute with its longest existing prefix resolved: the mount
 * point of a FUSE server that died cannot be resolved (ENOTCONN), but the
 * directories above it can, which is enough to compare with what the loop
 * driver (or hdiutil) recorded.
 */
static int canonical_path(const char *path, char *out, size_t n)
{
  char abs[PATH_MAX];
  if (path[0] != '/') {
    if (!getcwd(abs, sizeof abs))
      return -errno;
    if (strlen(abs) + 1 + strlen(path) >= sizeof abs)
      return -ENAMETOOLONG;
    strcat(strcat(abs, "/"), path);
  } else if (snprintf(abs, sizeof abs, "%s", path) >= (int)sizeof abs) {
    return -ENAMETOOLONG;
  }
  size_t len = strlen(abs);
  while (len > 1 && abs[len - 1] == '/')
    abs[--len] = '\0';
  char resolved[PATH_MAX];
  if (realpath(abs, resolved))
    return snprintf(out, n, "%s", resolved) >= (int)n ? -ENAMETOOLONG : 0;
  char *slash = strrchr(abs, '/');
  if (slash == abs) /* "/x" with x unresolvable: keep it as written */
    return snprintf(out, n, "%s", abs) >= (int)n ? -ENAMETOOLONG : 0;
  *slash = '\0';
  int r = canonical_path(abs, out, n);
  if (r < 0)
    return r;
  size_t used = strlen(out);
  if (snprintf(out + used, n - used, "%s%s", strcmp(out, "/") ? "/" : "", slash + 1) >=
      (int)(n - used))
    return -ENAMETOOLONG;
  return 0;
}

int udm_platform_attached_pattern_init(struct udm_platform_attached_pattern *p,
                                       const char *path)
{
  int r = canonical_path(path, p->want, sizeof p->want - 1);
  if (r < 0)
    return r;
  p->len = strlen(p->want);
  p->under = path[0] && path[strlen(path) - 1] == '/';
  if (p->under && strcmp(p->want, "/") != 0) {
    p->want[p->len++] = '/';
    p->want[p->len] = '\0';
  }
  return 0;
}

bool udm_platform_attached_pattern_match(const struct udm_platform_attached_pattern *p,
                                         const char *backing_file)
{
  return p->under ? strncmp(backing_file, p->want, p->len) == 0
                  : strcmp(backing_file, p->want) == 0;
}

struct find_first {
  char *devpath;
  size_t n;
  int r;
};

static int take_first(void *opaque, const char *devpath, const char *backing_file)
{
  (void)backing_file;
  struct find_first *ff = opaque;
  ff->r = snprintf(ff->devpath, ff->n, "%s", devpath) >= (int)ff->n ? -ENAMETOOLONG : 0;
  return 1;
}

int udm_platform_find_attached(const char *file, char *devpath, size_t n)
{
  struct find_first ff = {devpath, n, -ENOENT};
  int r = udm_platform_foreach_attached(file, take_first, &ff);
  return r < 0 ? r : ff.r;
}

int udm_platform_no_core(void *p, size_t len)
{
#if defined(MADV_DONTDUMP)
  return madvise(p, len, MADV_DONTDUMP) < 0 ? -errno : 0;
#elif defined(MADV_NOCORE)
  return madvise(p, len, MADV_NOCORE) < 0 ? -errno : 0;
#else
  (void)p;
  (void)len;
  return -EOPNOTSUPP;
#endif
}
