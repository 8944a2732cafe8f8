/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * macOS implementations of platform.h.  Not built or run on Linux CI; kept
 * small and reviewed by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mach-o/dyld.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/sysctl.h>
#include <sys/wait.h>
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

bool udm_platform_fd_is_direct(int fd)
{
  (void)fd; /* F_NOCACHE cannot be read back */
  return false;
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

bool udm_platform_cpu_has_arm_crc32(void)
{
#if defined(__aarch64__) || defined(__arm64__)
  return true; /* every Apple Silicon CPU has them */
#else
  return false;
#endif
}

bool udm_platform_os_avx512_state(void)
{
#if defined(__x86_64__)
  int avx512f = 0;
  size_t len = sizeof avx512f;
  if (sysctlbyname("hw.optional.avx512f", &avx512f, &len, NULL, 0) < 0 || !avx512f)
    return false;
  char release[64];
  len = sizeof release;
  if (sysctlbyname("kern.osrelease", release, &len, NULL, 0) < 0)
    return false;
  unsigned major = 0, minor = 0;
  if (sscanf(release, "%u.%u", &major, &minor) != 2)
    return false;
  return major > 21 || (major == 21 && minor >= 3);
#else
  return false;
#endif
}

int udm_platform_datasync(int fd)
{
  if (fcntl(fd, F_FULLFSYNC) == 0)
    return 0;
  /* Some file systems (FUSE, network, some external disks) refuse it. */
  return fsync(fd) < 0 ? -errno : 0;
}

void udm_platform_stat_set_times(struct stat *st, struct timespec t)
{
  st->st_atimespec = st->st_mtimespec = st->st_ctimespec = t;
}

int udm_platform_runtime_dir(char *buf, size_t size, const char **why)
{
  const char *env;
  int n;
  if (geteuid() == 0) {
    n = snprintf(buf, size, "/var/run/udm");
  } else if ((env = getenv("XDG_RUNTIME_DIR")) && *env) {
    n = snprintf(buf, size, "%s/udm", env);
  } else {
    char tmp[PATH_MAX];
    size_t len = confstr(_CS_DARWIN_USER_TEMP_DIR, tmp, sizeof tmp);
    if (len == 0 || len > sizeof tmp) {
      *why = "no runtime directory: the user's temporary folder is unknown; set UDM_RUNTIME_DIR";
      return len == 0 ? -ENOENT : -ENAMETOOLONG;
    }
    n = snprintf(buf, size, "%s%sudm", tmp, tmp[len - 2] == '/' ? "" : "/");
  }
  if (n < 0 || (size_t)n >= size) {
    *why = "the runtime directory path is too long";
    return -ENAMETOOLONG;
  }
  return 0;
}

/* ---- block devices over files (docs/fuse.md; the macOS workflow tests them) ---- */

int udm_platform_set_io_flusher(void)
{
  return 0; /* no such notion: hdiutil's helper process does the I/O */
}

/*
 * Run hdiutil with ARGV, its standard output into out (NUL-terminated,
 * truncated to n - 1 bytes).  Returns its exit status, or a negative errno.
 */
static int hdiutil(char *const argv[], char *out, size_t n)
{
  extern char **environ;
  int p[2];
  if (pipe(p) < 0)
    return -errno;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  posix_spawn_file_actions_addclose(&fa, p[1]);
  pid_t pid;
  int r = posix_spawn(&pid, "/usr/bin/hdiutil", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (r) {
    close(p[0]);
    return -r;
  }
  size_t got = 0;
  for (;;) {
    char sink[512];
    char *dst = got < n - 1 ? out + got : sink;
    size_t room = got < n - 1 ? n - 1 - got : sizeof sink;
    ssize_t k = read(p[0], dst, room);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    if (dst != sink)
      got += (size_t)k;
  }
  out[got] = '\0';
  close(p[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

/* The first "/dev/diskN" (a whole disk: no "sM" slice suffix) in text. */
static int first_whole_disk(const char *text, char *devpath, size_t n)
{
  for (const char *p = strstr(text, "/dev/disk"); p; p = strstr(p + 1, "/dev/disk")) {
    size_t len = strlen("/dev/disk");
    while (p[len] >= '0' && p[len] <= '9')
      len++;
    if (len == strlen("/dev/disk") || p[len] == 's')
      continue;
    if (len >= n)
      return -ENAMETOOLONG;
    memcpy(devpath, p, len);
    devpath[len] = '\0';
    return 0;
  }
  return -ENOENT;
}

/*
 * "hdiutil attach -nomount -imagekey diskimage-class=CRawDiskImage FILE":
 * the raw image class takes any file as a disk (no UDIF header needed),
 * and -nomount keeps the system from mounting what it finds there.  The
 * block size is the raw class's own (512); hdiutil attach has no option to
 * set it, so logical_block_size is not used: smaller requests reach the
 * FUSE file, where udm read-modify-writes whole blocks.  No host-side
 * direct I/O either.
 */
int udm_platform_attach(const char *file, bool readonly, unsigned logical_block_size,
                        char *devpath, size_t n, bool *direct_io)
{
  (void)logical_block_size;
  char *argv[] = {"hdiutil", "attach", "-nomount", "-imagekey",
                  "diskimage-class=CRawDiskImage", readonly ? "-readonly" : "-readwrite",
                  (char *)file, NULL};
  char out[4096];
  int r = hdiutil(argv, out, sizeof out);
  if (r != 0)
    return r < 0 ? r : -EIO;
  if (direct_io)
    *direct_io = false;
  return first_whole_disk(out, devpath, n);
}

int udm_platform_detach(const char *devpath)
{
  /* Without -force: a disk in use stays, and hdiutil says so (exit 16: busy). */
  char *argv[] = {"hdiutil", "detach", (char *)devpath, NULL};
  char out[1024];
  int r = hdiutil(argv, out, sizeof out);
  if (r == 0)
    return 0;
  return r < 0 ? r : r == 16 ? -EBUSY : -EIO;
}

int udm_platform_attach_update_size(const char *devpath, const char *file)
{
  (void)devpath, (void)file;
  return -EOPNOTSUPP; /* an attached disk image keeps its size: detach and attach */
}

int udm_platform_attach_update_block_size(const char *devpath, unsigned logical_block_size)
{
  (void)devpath, (void)logical_block_size;
  return -EOPNOTSUPP; /* the raw image class keeps 512-byte blocks (see attach) */
}

/*
 * "hdiutil info" lists images as blocks separated by "=====" lines; each
 * has "image-path : PATH" and then its devices, the whole disk first.
 */
int udm_platform_foreach_attached(const char *path,
                                  int (*fn)(void *opaque, const char *devpath,
                                            const char *backing_file),
                                  void *opaque)
{
  struct udm_platform_attached_pattern pat;
  int r = udm_platform_attached_pattern_init(&pat, path);
  if (r < 0)
    return r;
  char *argv[] = {"hdiutil", "info", NULL};
  size_t cap = 1u << 16;
  char *out = malloc(cap);
  if (!out)
    return -ENOMEM;
  r = hdiutil(argv, out, cap);
  if (r != 0) {
    free(out);
    return r < 0 ? r : -EIO;
  }
  r = 0;
  char *save = NULL;
  for (char *block = strtok_r(out, "=", &save); block && r == 0;
       block = strtok_r(NULL, "=", &save)) {
    char *ip = strstr(block, "image-path");
    char *colon = ip ? strchr(ip, ':') : NULL;
    if (!colon)
      continue;
    char image[PATH_MAX];
    const char *s = colon + 1;
    while (*s == ' ' || *s == '\t')
      s++;
    size_t len = strcspn(s, "\n");
    if (len >= sizeof image)
      continue;
    memcpy(image, s, len);
    image[len] = '\0';
    if (!udm_platform_attached_pattern_match(&pat, image))
      continue;
    char dev[64];
    if (first_whole_disk(s + len, dev, sizeof dev) == 0)
      r = fn(opaque, dev, image);
  }
  free(out);
  return r;
}

int udm_platform_unmount_stale(const char *dir)
{
  return unmount(dir, MNT_FORCE) < 0 ? -errno : 0;
}

int udm_platform_abort_mount(const char *dir)
{
  return unmount(dir, MNT_FORCE) < 0 ? -errno : 0;
}

int udm_platform_lstat_cached(const char *path, struct stat *st)
{
  return lstat(path, st) < 0 ? -errno : 0;
}

int udm_platform_loop_backing_file(dev_t rdev, char *buf, size_t n)
{
  /* hdiutil's attached images are not resolved (docs/architecture.md). */
  (void)rdev;
  (void)buf;
  (void)n;
  return -ENOENT;
}

uint32_t udm_platform_dev_major(dev_t d)
{
  return (uint32_t)major(d);
}

uint32_t udm_platform_dev_minor(dev_t d)
{
  return (uint32_t)minor(d);
}

/* /dev has no by-number directory here: look for the node. */
int udm_platform_devno_path(uint32_t maj, uint32_t min, char *buf, size_t n)
{
  DIR *dir = opendir("/dev");
  if (!dir)
    return -ENOENT;
  struct dirent *e;
  int r = -ENOENT;
  while ((e = readdir(dir))) {
    struct stat st;
    snprintf(buf, n, "/dev/%s", e->d_name);
    if (stat(buf, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == makedev(maj, min)) {
      r = 0;
      break;
    }
  }
  closedir(dir);
  return r;
}

int udm_platform_dev_mounted(uint32_t maj, uint32_t min)
{
  struct statfs *mnt;
  int n = getmntinfo(&mnt, MNT_NOWAIT);
  if (n <= 0)
    return -errno;
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(mnt[i].f_mntfromname, &st) == 0 && S_ISBLK(st.st_mode) &&
        st.st_rdev == makedev(maj, min))
      return 1;
  }
  return 0;
}

int udm_platform_blockdev_users(uint32_t maj, uint32_t min)
{
  /* Only a mounted filesystem is seen: macOS tells no holders or swap of a disk. */
  return udm_platform_dev_mounted(maj, min);
}
