/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Linux implementations of platform.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <dirent.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h> /* after linux/fs.h, which it must not precede */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

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

bool udm_platform_fd_is_direct(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_DIRECT);
}

int udm_platform_self_exe(char *buf, size_t size)
{
  ssize_t n = readlink("/proc/self/exe", buf, size - 1);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  return 0;
}

int udm_platform_peer_uid(int fd, uid_t *uid)
{
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return -errno;
  *uid = cred.uid;
  return 0;
}

bool udm_platform_cpu_has_arm_crc32(void)
{
#if defined(__aarch64__)
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1ul << 7) /* <asm/hwcap.h>; older libcs lack the name */
#endif
  return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#else
  return false;
#endif
}

bool udm_platform_os_avx512_state(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE: XGETBV usable */
    return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  const unsigned state = 0x2u | 0x4u | 0x20u | 0x40u | 0x80u; /* SSE, AVX, opmask, ZMM */
  return (lo & state) == state;
#else
  return false;
#endif
}

int udm_platform_datasync(int fd)
{
  return fdatasync(fd) < 0 ? -errno : 0;
}

void udm_platform_stat_set_times(struct stat *st, struct timespec t)
{
  st->st_atim = st->st_mtim = st->st_ctim = t;
}

int udm_platform_runtime_dir(char *buf, size_t size, const char **why)
{
  const char *env;
  int n;
  if (geteuid() == 0)
    n = snprintf(buf, size, "/run/udm");
  else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
    n = snprintf(buf, size, "%s/udm", env);
  else {
    *why = "no runtime directory: set UDM_RUNTIME_DIR (or XDG_RUNTIME_DIR)";
    return -ENOENT;
  }
  if (n < 0 || (size_t)n >= size) {
    *why = "the runtime directory path is too long";
    return -ENAMETOOLONG;
  }
  return 0;
}

/* ---- block devices over files (docs/fuse.md) ---- */

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

int udm_platform_set_io_flusher(void)
{
  return prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

/* One line of a sysfs file, without its newline. */
static int read_sysfs(const char *path, char *buf, size_t n)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t got = read(fd, buf, n - 1);
  int e = errno;
  close(fd);
  if (got < 0)
    return -e;
  buf[got] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  return 0;
}

/* "/dev/loopN" -> "loopN", the name under /sys/block. */
static const char *block_name(const char *devpath)
{
  const char *s = strrchr(devpath, '/');
  return s ? s + 1 : devpath;
}

static bool loop_is_bound(const char *name)
{
  char p[PATH_MAX], v[16];
  snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", name);
  return read_sysfs(p, v, sizeof v) == 0;
}

/*
 * Open /dev/loopN.  Containers often have a static /dev with a few loop
 * nodes only: the node is made from the numbers sysfs gives.
 */
static int open_loop(int nr, bool readonly, char *devpath, size_t n)
{
  if (snprintf(devpath, n, "/dev/loop%d", nr) >= (int)n)
    return -ENAMETOOLONG;
  int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd = open(devpath, flags);
  if (fd >= 0 || errno != ENOENT)
    return fd >= 0 ? fd : -errno;
  char p[64], numbers[32];
  unsigned maj, min;
  snprintf(p, sizeof p, "/sys/block/loop%d/dev", nr);
  if (read_sysfs(p, numbers, sizeof numbers) < 0 || sscanf(numbers, "%u:%u", &maj, &min) != 2)
    return -ENOENT;
  if (mknod(devpath, S_IFBLK | 0660, makedev(maj, min)) < 0 && errno != EEXIST)
    return -errno;
  fd = open(devpath, flags);
  return fd >= 0 ? fd : -errno;
}

/* The loop ioctls of kernels before 5.8, which lack LOOP_CONFIGURE. */
static int configure_legacy(int lfd, const struct loop_config *c)
{
  if (ioctl(lfd, LOOP_SET_FD, c->fd) < 0)
    return -errno;
  struct loop_info64 info = c->info;
  info.lo_flags &= ~(unsigned)(LO_FLAGS_DIRECT_IO | LO_FLAGS_READ_ONLY);
  int r = 0;
  if (ioctl(lfd, LOOP_SET_STATUS64, &info) < 0)
    r = -errno;
  if (r == 0 && c->block_size != 512 && ioctl(lfd, LOOP_SET_BLOCK_SIZE, c->block_size) < 0)
    r = -errno;
  if (r < 0) {
    ioctl(lfd, LOOP_CLR_FD, 0);
    return r;
  }
  /* Best effort: the loop works without it, and the caller reads what it got. */
  if (c->info.lo_flags & LO_FLAGS_DIRECT_IO)
    (void)ioctl(lfd, LOOP_SET_DIRECT_IO, 1UL);
  return 0;
}

/*
 * One step when possible.  EINVAL with direct I/O asked may be the kernel
 * refusing direct I/O for this file, so it is tried once more without;
 * EINVAL or ENOTTY then means no LOOP_CONFIGURE at all.
 */
static int configure_loop(int lfd, struct loop_config *c)
{
  if (ioctl(lfd, LOOP_CONFIGURE, c) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOTTY)
    return -errno;
  if (c->info.lo_flags & LO_FLAGS_DIRECT_IO) {
    c->info.lo_flags &= ~(unsigned)LO_FLAGS_DIRECT_IO;
    if (ioctl(lfd, LOOP_CONFIGURE, c) == 0)
      return 0;
    if (errno != EINVAL && errno != ENOTTY)
      return -errno;
    c->info.lo_flags |= LO_FLAGS_DIRECT_IO;
  }
  return configure_legacy(lfd, c);
}

int udm_platform_attach(const char *file, bool readonly, unsigned logical_block_size,
                        char *devpath, size_t n, bool *direct_io)
{
  int ffd = open(file, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (ffd < 0)
    return -errno;
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    int e = errno;
    close(ffd);
    return -e;
  }
  /*
   * No LO_FLAGS_AUTOCLEAR: it detaches the device when its last opener
   * closes it, which the first udev probe or a short-lived mkfs would do.
   * An attach lasts until udm_platform_detach.
   */
  struct loop_config c = {
      .fd = (unsigned)ffd,
      .block_size = logical_block_size ? logical_block_size : 512,
      .info.lo_flags = LO_FLAGS_DIRECT_IO | (readonly ? LO_FLAGS_READ_ONLY : 0),
  };
  snprintf((char *)c.info.lo_file_name, sizeof c.info.lo_file_name, "%s", file);
  int r = -EBUSY;
  /* GET_FREE then CONFIGURE races with other attachers: EBUSY means try the next. */
  for (int attempt = 0; attempt < 64 && r == -EBUSY; attempt++) {
    int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (nr < 0) {
      r = -errno;
      break;
    }
    int lfd = open_loop(nr, readonly, devpath, n);
    if (lfd < 0) {
      r = lfd;
      break;
    }
    r = configure_loop(lfd, &c);
    close(lfd);
  }
  close(ctl);
  close(ffd);
  if (r == 0 && direct_io) {
    char p[PATH_MAX], v[8] = "0";
    snprintf(p, sizeof p, "/sys/block/%s/loop/dio", block_name(devpath));
    (void)read_sysfs(p, v, sizeof v);
    *direct_io = v[0] == '1';
  }
  return r;
}

int udm_platform_detach(const char *devpath)
{
  int fd = open(devpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = ioctl(fd, LOOP_CLR_FD, 0) < 0 ? -errno : 0;
  close(fd);
  /*
   * A busy loop device is not detached: the kernel marks it autoclear and
   * answers 0.  The release that follows our close() is what detaches an
   * idle one, and it first drains the device's queue, whose last writes (a
   * file system's, just unmounted) come back to us through FUSE; another
   * program may also hold it open for a moment (one that scans loop
   * devices).  On a loaded machine both took seconds (fuse-fs-*,
   * cli-attach-* failed with EBUSY after 200 ms, then after 3 s).  So a
   * device that nothing has mounted gets up to 20 s, looked at often at
   * first; a mounted one, which stays autoclear and goes when it is
   * unmounted, is called busy after a moment.
   */
  struct stat st;
  bool mounted = stat(devpath, &st) == 0 &&
                 udm_platform_dev_mounted(major(st.st_rdev), minor(st.st_rdev)) == 1;
  unsigned waited_ms = 0, step_ms = 5, limit_ms = mounted ? 200 : 20000;
  while (r == 0 && loop_is_bound(block_name(devpath))) {
    if (waited_ms >= limit_ms)
      return -EBUSY;
    usleep(step_ms * 1000);
    waited_ms += step_ms;
    if (step_ms < 100)
      step_ms *= 2;
  }
  return r;
}

int udm_platform_attach_update_size(const char *devpath, const char *file)
{
  /* The loop driver reads the size the kernel caches for FILE: refresh it first. */
  struct statx stx;
  if (statx(AT_FDCWD, file, AT_STATX_FORCE_SYNC, STATX_SIZE, &stx) < 0)
    return -errno;
  int fd = open(devpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = ioctl(fd, LOOP_SET_CAPACITY, 0) < 0 ? -errno : 0;
  close(fd);
  return r;
}

int udm_platform_attach_update_block_size(const char *devpath, unsigned logical_block_size)
{
  int fd = open(devpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = ioctl(fd, LOOP_SET_BLOCK_SIZE, (unsigned long)logical_block_size) < 0 ? -errno : 0;
  close(fd);
  return r;
}

int udm_platform_foreach_attached(const char *path,
                                  int (*fn)(void *opaque, const char *devpath,
                                            const char *backing_file),
                                  void *opaque)
{
  struct udm_platform_attached_pattern pat;
  int r = udm_platform_attached_pattern_init(&pat, path);
  if (r < 0)
    return r;
  DIR *d = opendir("/sys/block");
  if (!d)
    return -errno;
  struct dirent *e;
  r = 0;
  while (r == 0 && (e = readdir(d))) {
    if (strncmp(e->d_name, "loop", 4) != 0)
      continue;
    char p[PATH_MAX], backing[PATH_MAX];
    snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", e->d_name);
    if (read_sysfs(p, backing, sizeof backing) < 0)
      continue; /* not bound */
    size_t blen = strlen(backing);
    static const char deleted[] = " (deleted)";
    if (blen >= sizeof deleted - 1 && !strcmp(backing + blen - (sizeof deleted - 1), deleted))
      backing[blen - (sizeof deleted - 1)] = '\0';
    if (!udm_platform_attached_pattern_match(&pat, backing))
      continue;
    char dev[sizeof "/dev/" + 256];
    snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
    r = fn(opaque, dev, backing);
  }
  closedir(d);
  return r;
}

int udm_platform_unmount_stale(const char *dir)
{
  if (umount2(dir, MNT_DETACH) == 0)
    return 0;
  if (errno != EPERM)
    return -errno;
  /* Not root: the setuid helper of FUSE unmounts what the user mounted. */
  char *argv[] = {"fusermount3", "-u", "-q", "-z", "--", (char *)dir, NULL};
  pid_t pid;
  int r = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
  if (r)
    return -r;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

int udm_platform_abort_mount(const char *dir)
{
  int r = umount2(dir, MNT_FORCE) == 0 ? 0 : -errno;
  if (r == -EBUSY) /* aborted all the same: now let it go when its users do */
    r = umount2(dir, MNT_DETACH) == 0 ? 0 : -errno;
  return r;
}

int udm_platform_lstat_cached(const char *path, struct stat *st)
{
  struct statx stx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
            STATX_TYPE | STATX_INO, &stx) < 0)
    return -errno;
  memset(st, 0, sizeof *st);
  st->st_mode = stx.stx_mode;
  st->st_ino = (ino_t)stx.stx_ino;
  st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st->st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
  return 0;
}

int udm_platform_loop_backing_file(dev_t rdev, char *buf, size_t n)
{
  char p[96];
  snprintf(p, sizeof p, "/sys/dev/block/%u:%u/loop/backing_file", major(rdev),
           minor(rdev));
  int r = read_sysfs(p, buf, n);
  if (r < 0)
    return r == -ENOENT || r == -ENOTDIR ? -ENOENT : r;
  size_t len = strlen(buf);
  static const char deleted[] = " (deleted)";
  if (len >= sizeof deleted - 1 && !strcmp(buf + len - (sizeof deleted - 1), deleted))
    buf[len - (sizeof deleted - 1)] = '\0';
  return buf[0] ? 0 : -ENOENT;
}

uint32_t udm_platform_dev_major(dev_t d)
{
  return (uint32_t)major(d);
}

uint32_t udm_platform_dev_minor(dev_t d)
{
  return (uint32_t)minor(d);
}

int udm_platform_devno_path(uint32_t maj, uint32_t min, char *buf, size_t n)
{
  struct stat st;
  snprintf(buf, n, "/dev/block/%u:%u", maj, min);
  if (stat(buf, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == makedev(maj, min))
    return 0;
  /* Without udev's /dev/block: the kernel's name of the device, from sysfs. */
  char uevent[64], line[256];
  snprintf(uevent, sizeof uevent, "/sys/dev/block/%u:%u/uevent", maj, min);
  FILE *f = fopen(uevent, "re");
  if (!f)
    return -ENOENT;
  int r = -ENOENT;
  while (r < 0 && fgets(line, sizeof line, f)) {
    if (strncmp(line, "DEVNAME=", 8) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(buf, n, "/dev/%s", line + 8);
      if (stat(buf, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == makedev(maj, min))
        r = 0;
    }
  }
  fclose(f);
  return r;
}

int udm_platform_dev_mounted(uint32_t maj, uint32_t min)
{
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f)
    return -errno;
  char line[4096], want[32];
  snprintf(want, sizeof want, "%u:%u", maj, min);
  int found = 0;
  /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..." */
  while (!found && fgets(line, sizeof line, f)) {
    char dev[32];
    if (sscanf(line, "%*s %*s %31s", dev) == 1 && strcmp(dev, want) == 0)
      found = 1;
  }
  fclose(f);
  return found;
}

/* Whether the mountinfo at PATH has a mount of the device WANT ("MAJ:MIN"). */
static int mountinfo_has(const char *path, const char *want)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return 0; /* the process is gone, or its table is not ours to read */
  char line[4096];
  int found = 0;
  bool line_start = true;
  /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."; a long line's tail is not a line. */
  while (!found && fgets(line, sizeof line, f)) {
    char dev[32];
    if (line_start && sscanf(line, "%*s %*s %31s", dev) == 1 && strcmp(dev, want) == 0)
      found = 1;
    line_start = strchr(line, '\n') != NULL;
  }
  fclose(f);
  return found;
}

/* 1 when MAJ:MIN is mounted in any mount namespace of a process in /proc. */
static int mounted_anywhere(uint32_t maj, uint32_t min)
{
  char want[32];
  snprintf(want, sizeof want, "%u:%u", maj, min);
  int found = mountinfo_has("/proc/self/mountinfo", want);
  DIR *d = found ? NULL : opendir("/proc");
  if (!d)
    return found;
  struct stat self;
  ino_t *seen = NULL;
  size_t nseen = 0, cap = 0;
  if (stat("/proc/self/ns/mnt", &self) == 0 && (seen = malloc(16 * sizeof *seen))) {
    cap = 16;
    seen[nseen++] = self.st_ino;
  }
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    char p[300];
    struct stat ns;
    snprintf(p, sizeof p, "/proc/%s/ns/mnt", e->d_name);
    if (stat(p, &ns) < 0)
      continue;
    size_t i = 0;
    while (i < nseen && seen[i] != ns.st_ino)
      i++;
    if (i < nseen)
      continue; /* a namespace already read */
    if (nseen == cap) {
      ino_t *n = realloc(seen, (cap ? cap * 2 : 16) * sizeof *n);
      if (n) {
        seen = n;
        cap = cap ? cap * 2 : 16;
      }
    }
    if (nseen < cap)
      seen[nseen++] = ns.st_ino;
    snprintf(p, sizeof p, "/proc/%s/mountinfo", e->d_name);
    found = mountinfo_has(p, want);
  }
  closedir(d);
  free(seen);
  return found;
}

int udm_platform_blockdev_users(uint32_t maj, uint32_t min)
{
  char p[PATH_MAX];
  int users = 0;
  snprintf(p, sizeof p, "/sys/dev/block/%u:%u/holders", maj, min);
  DIR *d = opendir(p);
  if (!d)
    return -errno;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      users++;
  closedir(d);
  users += mounted_anywhere(maj, min);
  /* /proc/swaps: "Filename Type Size Used Priority", the device by path. */
  FILE *f = fopen("/proc/swaps", "re");
  char line[PATH_MAX + 128];
  while (f && fgets(line, sizeof line, f)) {
    char path[PATH_MAX];
    struct stat st;
    if (sscanf(line, "%4095s", path) == 1 && path[0] == '/' && stat(path, &st) == 0 &&
        S_ISBLK(st.st_mode) && st.st_rdev == makedev(maj, min))
      users++;
  }
  if (f)
    fclose(f);
  return users;
}
