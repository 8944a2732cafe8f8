/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * scenario-io: the kernel side of the differential test.  Runs a .scn file
 * against the real Linux device-mapper: disks are loop devices over files,
 * dm commands go through dmsetup, I/O goes to /dev/mapper/NAME with O_DIRECT.
 * Linked statically so it runs in the test VM's bare initramfs.
 *
 *   scenario-io SCENARIO.scn [WORKDIR]
 */
#define _GNU_SOURCE
#include "scenario.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

struct kernel_disk {
  int loop_fd; /* held open so the autoclear loop lives as long as the scenario */
};

static int kernel_disk_attach(void *opaque, struct scn_disk *disk)
{
  (void)opaque;
  int ctl = open("/dev/loop-control", O_RDWR);
  if (ctl < 0)
    return errno;
  int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
  int err = nr < 0 ? errno : 0;
  close(ctl);
  if (err)
    return err;
  snprintf(disk->devpath, sizeof disk->devpath, "/dev/loop%d", nr);
  int lfd = -1;
  for (int tries = 0; tries < 100 && lfd < 0; tries++) {
    lfd = open(disk->devpath, O_RDWR);
    if (lfd < 0)
      usleep(10000);
  }
  if (lfd < 0)
    return errno;
  int ffd = open(disk->file, O_RDWR);
  if (ffd < 0 || ioctl(lfd, LOOP_SET_FD, ffd) < 0) {
    err = errno;
    if (ffd >= 0)
      close(ffd);
    close(lfd);
    return err;
  }
  close(ffd);
  struct loop_info64 info;
  memset(&info, 0, sizeof info);
  info.lo_flags = LO_FLAGS_AUTOCLEAR;
  if (ioctl(lfd, LOOP_SET_STATUS64, &info) < 0) {
    err = errno;
    ioctl(lfd, LOOP_CLR_FD, 0);
    close(lfd);
    return err;
  }
  struct kernel_disk *kd = calloc(1, sizeof *kd);
  kd->loop_fd = lfd;
  disk->priv = kd;
  return 0;
}

static void kernel_disk_detach(void *opaque, struct scn_disk *disk)
{
  (void)opaque;
  struct kernel_disk *kd = disk->priv;
  if (!kd)
    return;
  ioctl(kd->loop_fd, LOOP_CLR_FD, 0); /* fails while dm holds it; autoclear then does it */
  close(kd->loop_fd);
  free(kd);
  disk->priv = NULL;
}

static int tmpfile_fd(void)
{
  char path[] = "/tmp/scenario-io.XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0)
    unlink(path);
  return fd;
}

/* Run dmsetup with ARGV, INPUT on stdin; its stdout in *out.  0, errno, or -1. */
static int dmsetup(char *const argv[], const char *input, char **out)
{
  int in = tmpfile_fd(), so = tmpfile_fd(), se = tmpfile_fd();
  if (in < 0 || so < 0 || se < 0)
    return errno;
  if (input && write(in, input, strlen(input)) < 0)
    return errno;
  lseek(in, 0, SEEK_SET);
  pid_t pid = fork();
  if (pid < 0)
    return errno;
  if (pid == 0) {
    dup2(in, 0);
    dup2(so, 1);
    dup2(se, 2);
    execvp("dmsetup", argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  char *err_text = scn_read_all(se);
  if (out)
    *out = scn_read_all(so);
  close(in);
  close(so);
  close(se);
  int rc = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status)) {
    rc = scn_errno_from_text(err_text);
    /* "info" reports the DM_DEV_STATUS ioctl's ENXIO in words of its own. */
    if (!rc && strstr(err_text, "Device does not exist"))
      rc = ENXIO;
    if (!rc)
      rc = -1;
    fprintf(stderr, "dmsetup %s failed:\n%s", argv[1], err_text);
  }
  free(err_text);
  return rc;
}

static int kernel_dm(void *opaque, enum scn_dm_verb verb, const char *name, uint64_t sector,
                     const char *text, char **out)
{
  (void)opaque;
  char *argv[64];
  int n = 0;
  char sector_text[32], *msgcopy = NULL;
  argv[n++] = "dmsetup";
  switch (verb) {
  case SCN_CREATE: argv[n++] = "create"; break;
  case SCN_LOAD: argv[n++] = "load"; break;
  case SCN_SUSPEND: argv[n++] = "suspend"; break;
  case SCN_RESUME: argv[n++] = "resume"; break;
  case SCN_REMOVE: argv[n++] = "remove"; break;
  case SCN_TABLE: argv[n++] = "table"; break;
  case SCN_STATUS: argv[n++] = "status"; break;
  case SCN_MESSAGE: argv[n++] = "message"; break;
  case SCN_WAIT: argv[n++] = "wait"; break;
  case SCN_INFO:
    argv[n++] = "info";
    argv[n++] = "-c";
    argv[n++] = "--noheadings";
    argv[n++] = "-o";
    argv[n++] = "attr";
    break;
  }
  /* No udev in the VM: libdevmapper makes the /dev/mapper nodes itself. */
  argv[n++] = "--noudevsync";
  argv[n++] = "--noudevrules";
  argv[n++] = (char *)name;
  if (verb == SCN_WAIT) {
    snprintf(sector_text, sizeof sector_text, "%llu", (unsigned long long)sector);
    argv[n++] = sector_text;
  }
  if (verb == SCN_MESSAGE) {
    snprintf(sector_text, sizeof sector_text, "%llu", (unsigned long long)sector);
    argv[n++] = sector_text;
    msgcopy = strdup(text);
    for (char *w = strtok(msgcopy, " "); w && n < 62; w = strtok(NULL, " "))
      argv[n++] = w;
  }
  argv[n] = NULL;
  char *o = NULL;
  int rc = dmsetup(argv, (verb == SCN_CREATE || verb == SCN_LOAD) ? text : NULL, &o);
  free(msgcopy);
  if (!rc && verb == SCN_CREATE) {
    /* Without udev the /dev/mapper node may not appear by itself; stacked tables need it. */
    char *mk[] = {"dmsetup", "mknodes", "--noudevsync", "--noudevrules", (char *)name, NULL};
    char *ignored = NULL;
    dmsetup(mk, NULL, &ignored);
    free(ignored);
  }
  if (!rc && verb == SCN_INFO) {
    /* attr is e.g. "L--w": (L)ive (I)nactive (s)uspended (r)ead-only/(w)ritable ... */
    char attr[16] = "";
    sscanf(o, "%15s", attr);
    char *canon = malloc(128);
    snprintf(canon, 128, "live=%d inactive=%d suspended=%d readonly=%d",
             attr[0] == 'L', attr[0] && attr[1] == 'I', attr[0] && attr[1] && attr[2] == 's',
             attr[0] && attr[1] && attr[2] && attr[3] == 'r');
    free(o);
    o = canon;
  }
  if (!rc && (verb == SCN_CREATE || verb == SCN_LOAD || verb == SCN_SUSPEND ||
              verb == SCN_RESUME || verb == SCN_REMOVE || verb == SCN_WAIT)) {
    free(o);
    o = NULL;
  }
  *out = o;
  return rc;
}

static int open_dev(const char *name, int flags)
{
  char path[256];
  snprintf(path, sizeof path, "/dev/mapper/%s", name);
  return open(path, flags);
}

static ssize_t kernel_pread(void *opaque, const char *name, void *buf, size_t len, uint64_t off)
{
  (void)opaque;
  int fd = open_dev(name, O_RDONLY | O_DIRECT);
  if (fd < 0)
    return -errno;
  size_t done = 0;
  ssize_t rc = 0;
  while (done < len) {
    ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  close(fd);
  return rc ? rc : (ssize_t)done;
}

static ssize_t kernel_pwrite(void *opaque, const char *name, const void *buf, size_t len,
                             uint64_t off)
{
  (void)opaque;
  int fd = open_dev(name, O_RDWR | O_DIRECT);
  if (fd < 0)
    return -errno;
  size_t done = 0;
  ssize_t rc = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  close(fd);
  return rc ? rc : (ssize_t)done;
}

static int kernel_range_ioctl(const char *name, unsigned long req, uint64_t off, uint64_t len)
{
  int fd = open_dev(name, O_RDWR);
  if (fd < 0)
    return errno;
  uint64_t range[2] = {off, len};
  int rc = ioctl(fd, req, range) < 0 ? errno : 0;
  close(fd);
  return rc;
}

static int kernel_discard(void *opaque, const char *name, uint64_t off, uint64_t len)
{
  (void)opaque;
  return kernel_range_ioctl(name, BLKDISCARD, off, len);
}

static int kernel_zeroout(void *opaque, const char *name, uint64_t off, uint64_t len)
{
  (void)opaque;
  return kernel_range_ioctl(name, BLKZEROOUT, off, len);
}

static int kernel_flush(void *opaque, const char *name)
{
  (void)opaque;
  int fd = open_dev(name, O_RDWR);
  if (fd < 0)
    return errno;
  int rc = fsync(fd) < 0 ? errno : 0;
  close(fd);
  return rc;
}

static int kernel_size(void *opaque, const char *name, uint64_t *size)
{
  (void)opaque;
  int fd = open_dev(name, O_RDONLY);
  if (fd < 0)
    return errno;
  int rc = ioctl(fd, BLKGETSIZE64, size) < 0 ? errno : 0;
  close(fd);
  return rc;
}

static int kernel_block_size(void *opaque, const char *name, unsigned *bytes)
{
  (void)opaque;
  int fd = open_dev(name, O_RDONLY);
  if (fd < 0)
    return errno;
  int v = 0;
  int rc = ioctl(fd, BLKSSZGET, &v) < 0 ? errno : 0;
  close(fd);
  *bytes = (unsigned)v;
  return rc;
}

/* "major:minor" of a scenario disk becomes $role, of a mapped device /dev/mapper/NAME. */
static const char *kernel_canon_token(void *opaque, const char *token, char *buf, size_t size)
{
  struct scn_run *run = opaque;
  unsigned maj, min;
  char tail;
  if (sscanf(token, "%u:%u%c", &maj, &min, &tail) != 2)
    return NULL;
  dev_t want = makedev(maj, min);
  struct stat st;
  for (unsigned i = 0; i < run->ndisks; i++)
    if (!stat(run->disks[i].devpath, &st) && S_ISBLK(st.st_mode) && st.st_rdev == want) {
      snprintf(buf, size, "$%s", run->disks[i].role);
      return buf;
    }
  DIR *dir = opendir("/dev/mapper");
  if (!dir)
    return NULL;
  const char *found = NULL;
  for (struct dirent *e; (e = readdir(dir));) {
    char path[512];
    snprintf(path, sizeof path, "/dev/mapper/%s", e->d_name);
    if (!stat(path, &st) && S_ISBLK(st.st_mode) && st.st_rdev == want) {
      snprintf(buf, size, "/dev/mapper/%s", e->d_name);
      found = buf;
      break;
    }
  }
  closedir(dir);
  return found;
}

static const char *const exec_env[] = {"DM_DISABLE_UDEV=1", NULL};

int main(int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s SCENARIO.scn [WORKDIR]\n", argv[0]);
    return 2;
  }
  const char *workdir = argc == 3 ? argv[2] : "/tmp/udm-scenario";
  mkdir(workdir, 0700);
  static struct scn_run run;
  struct scn_backend be = {
    .opaque = &run,
    .disk_attach = kernel_disk_attach,
    .disk_detach = kernel_disk_detach,
    .dm = kernel_dm,
    .dev_pread = kernel_pread,
    .dev_pwrite = kernel_pwrite,
    .dev_discard = kernel_discard,
    .dev_zeroout = kernel_zeroout,
    .dev_flush = kernel_flush,
    .dev_size = kernel_size,
    .dev_block_size = kernel_block_size,
    .canon_token = kernel_canon_token,
    .disk_open_flags = O_DIRECT,
    .side = "kernel",
    /* No udev in the VM: libdevmapper in cryptsetup, tcplay... makes the nodes itself. */
    .exec_env = exec_env,
    .dmsetup_program = "dmsetup",
    .scripts_dir = "/in/scripts",
    .images_dir = "/in/images",
  };
  return scn_run_file(argv[1], workdir, &be, &run);
}
