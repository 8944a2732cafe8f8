/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * macOS implementations of platform.h.  Not built or run on Linux CI; kept
 * small and reviewed by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <mach-o/dyld.h>
#include <stdint.h>
#include <sys/disk.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "platform.h"

int udm_platform_blockdev_size(int fd, uint64_t *bytes)
{
  uint32_t bs;
  uint64_t count;
  if (ioctl(fd, DKIOCGETBLOCKSIZE, &bs) < 0 || ioctl(fd, DKIOCGETBLOCKCOUNT, &count) < 0)
    return -errno;
  *bytes = (uint64_t)bs * count;
  return 0;
}

int udm_platform_blockdev_logical_block_size(int fd, unsigned *bytes)
{
  uint32_t bs;
  if (ioctl(fd, DKIOCGETBLOCKSIZE, &bs) < 0)
    return -errno;
  *bytes = bs;
  return 0;
}

int udm_platform_punch_hole(int fd, bool blockdev, uint64_t off, uint64_t len)
{
  if (blockdev) {
    dk_extent_t ext = {.offset = off, .length = len};
    dk_unmap_t unmap = {.extents = &ext, .extentsCount = 1};
    return ioctl(fd, DKIOCUNMAP, &unmap) < 0 ? -errno : 0;
  }
  struct fpunchhole ph = {.fp_flags = 0, .fp_offset = (off_t)off, .fp_length = (off_t)len};
  return fcntl(fd, F_PUNCHHOLE, &ph) < 0 ? -errno : 0;
}

int udm_platform_zero_range(int fd, bool blockdev, uint64_t off, uint64_t len)
{
  (void)fd, (void)blockdev, (void)off, (void)len;
  return -EOPNOTSUPP; /* the caller falls back to writing zeros */
}

int udm_platform_open_direct(const char *path, int flags)
{
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fcntl(fd, F_NOCACHE, 1) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

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

int udm_platform_self_exe(char *buf, size_t size)
{
  uint32_t n = (uint32_t)size;
  return _NSGetExecutablePath(buf, &n) < 0 ? -ENAMETOOLONG : 0;
}

int udm_platform_peer_uid(int fd, uid_t *uid)
{
  gid_t gid;
  return getpeereid(fd, uid, &gid) < 0 ? -errno : 0;
}
