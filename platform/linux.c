/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Linux implementations of platform.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "platform.h"

int udm_platform_blockdev_size(int fd, uint64_t *bytes)
{
  return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -errno : 0;
}

int udm_platform_blockdev_logical_block_size(int fd, unsigned *bytes)
{
  int v;
  if (ioctl(fd, BLKSSZGET, &v) < 0)
    return -errno;
  *bytes = (unsigned)v;
  return 0;
}

int udm_platform_punch_hole(int fd, bool blockdev, uint64_t off, uint64_t len)
{
  if (blockdev) {
    uint64_t range[2] = {off, len};
    return ioctl(fd, BLKDISCARD, range) < 0 ? -errno : 0;
  }
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                (off_t)len) < 0)
    return -errno;
  return 0;
}

int udm_platform_zero_range(int fd, bool blockdev, uint64_t off, uint64_t len)
{
  if (blockdev) {
    uint64_t range[2] = {off, len};
    return ioctl(fd, BLKZEROOUT, range) < 0 ? -errno : 0;
  }
  if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                (off_t)len) < 0)
    return -errno;
  return 0;
}

int udm_platform_open_direct(const char *path, int flags)
{
  int fd = open(path, flags | O_DIRECT | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
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
  ssize_t n = readlink("/proc/self/exe", buf, size - 1);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  return 0;
}
