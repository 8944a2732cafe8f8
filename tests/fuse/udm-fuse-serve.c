/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm-fuse-serve: a captive host for the FUSE export, for tests and
 * benchmarks (udmd does the same for real).
 *
 *   udm-fuse-serve --dir DIR --table NAME='TABLE' ... [--readonly]
 *                  [--attach NAME] [--threads N] --run 'COMMAND'
 *
 * makes the devices in a private context, exports them as DIR/NAME,
 * optionally attaches NAME as a kernel block device, runs COMMAND with sh
 * with $dir, $file (DIR/NAME of the attached device), $dev and $dio set,
 * then detaches, unmounts, removes the devices and exits with COMMAND's
 * status.  SIGINT, SIGTERM and SIGHUP are passed on to COMMAND.
 *
 * COMMAND may change devices while they are exported: it writes one line
 * per request to file descriptor $ctl_w and reads one reply line ("ok" or
 * "error: MESSAGE") from $ctl_r:
 *   create NAME TABLE   reload NAME TABLE   remove NAME
 * In TABLE, ';' separates lines.  A reload of the attached device updates
 * the block device's size.
 *
 *   udm-fuse-serve --cleanup --dir DIR
 *
 * detaches every block device left attached to a file under DIR and
 * unmounts DIR if its server died: what udmd does when it starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <udm/udm.h>

#include "platform.h"
#include "udm_fuse.h"

extern char **environ;

#define MAX_TABLES 16
#define PROG "udm-fuse-serve"

struct serve {
  const char *dir;
  const char *names[MAX_TABLES];
  const char *tables[MAX_TABLES];
  unsigned ntables;
  bool readonly;
  const char *attach;
  const char *run;
  unsigned threads;
  bool cleanup;
};

/* The child to pass signals on to; a signal handler can only reach a static. */
static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
  if (child_pid > 0)
    kill((pid_t)child_pid, sig);
}

static void usage(void)
{
  fprintf(stderr,
          "usage: %s --dir DIR --table NAME=TABLE ... [--readonly] [--attach NAME]\n"
          "          [--threads N] --run COMMAND\n"
          "       %s --cleanup --dir DIR\n",
          PROG, PROG);
  exit(2);
}

static int parse(int argc, char **argv, struct serve *s)
{
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, 'd'},   {"table", required_argument, NULL, 't'},
      {"readonly", no_argument, NULL, 'r'},    {"attach", required_argument, NULL, 'a'},
      {"run", required_argument, NULL, 'R'},   {"threads", required_argument, NULL, 'T'},
      {"cleanup", no_argument, NULL, 'c'},     {NULL, 0, NULL, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'd': s->dir = optarg; break;
    case 'r': s->readonly = true; break;
    case 'a': s->attach = optarg; break;
    case 'R': s->run = optarg; break;
    case 'T': s->threads = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'c': s->cleanup = true; break;
    case 't': {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg || s->ntables == MAX_TABLES)
        usage();
      *eq = '\0';
      s->names[s->ntables] = optarg;
      s->tables[s->ntables++] = eq + 1;
      break;
    }
    default: usage();
    }
  }
  if (optind != argc || !s->dir || (!s->cleanup && (!s->run || s->ntables == 0)))
    usage();
  return 0;
}

static int detach_one(void *opaque, const char *devpath, const char *backing)
{
  (void)opaque;
  int r = udm_platform_detach(devpath);
  fprintf(stderr, "%s: detach %s (%s): %s\n", PROG, devpath, backing,
          r == 0 ? "done" : r == -EBUSY ? "busy, detaches on last close" : strerror(-r));
  return 0;
}

static int cleanup(const char *dir)
{
  char under[4096];
  snprintf(under, sizeof under, "%s/", dir);
  int r = udm_platform_foreach_attached(under, detach_one, NULL);
  if (r < 0)
    fprintf(stderr, "%s: listing attached devices: %s\n", PROG, strerror(-r));
  struct stat st;
  if (stat(dir, &st) < 0 && errno == ENOTCONN) {
    r = udm_platform_unmount_stale(dir);
    fprintf(stderr, "%s: unmount %s: %s\n", PROG, dir, r ? strerror(-r) : "done");
  }
  return r < 0 ? 1 : 0;
}

struct control {
  struct udm_ctx *ctx;
  int in, out;           /* requests from COMMAND, replies to it */
  bool readonly;
  const char *attach;    /* name of the attached device, or NULL */
  const char *dev, *file;
};

static int control_request(struct control *c, char *line, char *reply, size_t n)
{
  char *verb = strtok(line, " "), *name = strtok(NULL, " "), *table = strtok(NULL, "");
  if (!verb || !name || (strcmp(verb, "remove") != 0 && !table)) {
    snprintf(reply, n, "error: bad request");
    return -1;
  }
  for (char *p = table; p && *p; p++)
    if (*p == ';')
      *p = '\n';
  struct udm_device *dev;
  int r = -1;
  if (strcmp(verb, "create") == 0) {
    dev = udm_device_create(c->ctx, name, NULL, c->readonly ? UDM_DEVICE_READONLY : 0);
    if (dev && udm_table_load(dev, table) == 0 && udm_device_resume(dev) == 0)
      r = 0;
    else if (dev)
      udm_device_remove(dev, UDM_REMOVE_FORCE);
  } else if ((dev = udm_device_lookup(c->ctx, name)) == NULL) {
  } else if (strcmp(verb, "reload") == 0) {
    r = udm_table_load(dev, table) == 0 && udm_device_resume(dev) == 0 ? 0 : -1;
  } else if (strcmp(verb, "remove") == 0) {
    r = udm_device_remove(dev, 0);
  } else {
    snprintf(reply, n, "error: unknown request %s", verb);
    udm_device_unref(dev);
    return -1;
  }
  if (r < 0)
    snprintf(reply, n, "error: %s", udm_errmsg());
  if (dev)
    udm_device_unref(dev);
  if (r == 0 && strcmp(verb, "reload") == 0 && c->attach && strcmp(name, c->attach) == 0) {
    int e = udm_platform_attach_update_size(c->dev, c->file);
    if (e < 0) {
      snprintf(reply, n, "error: resizing %s: %s", c->dev, strerror(-e));
      return -1;
    }
  }
  if (r == 0)
    snprintf(reply, n, "ok");
  return r;
}

static void *control_thread(void *opaque)
{
  struct control *c = opaque;
  char buf[8192];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(c->in, buf + have, sizeof buf - 1 - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    char *nl;
    /* A request runs to the end even if COMMAND exits meanwhile. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      *nl = '\0';
      char reply[1024];
      control_request(c, buf, reply, sizeof reply);
      dprintf(c->out, "%s\n", reply);
      have -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, have);
    }
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    if (have == sizeof buf - 1)
      have = 0; /* a line too long: dropped */
  }
  return NULL;
}

static int make_devices(struct udm_ctx *ctx, const struct serve *s)
{
  for (unsigned i = 0; i < s->ntables; i++) {
    struct udm_device *dev = udm_device_create(ctx, s->names[i], NULL,
                                               s->readonly ? UDM_DEVICE_READONLY : 0);
    if (!dev || udm_table_load(dev, s->tables[i]) < 0 || udm_device_resume(dev) < 0) {
      fprintf(stderr, "%s: %s: %s\n", PROG, s->names[i], udm_errmsg());
      if (dev)
        udm_device_unref(dev);
      return -1;
    }
    udm_device_unref(dev);
  }
  return 0;
}

static void remove_devices(struct udm_ctx *ctx, const struct serve *s)
{
  for (unsigned i = s->ntables; i-- > 0;) {
    struct udm_device *dev = udm_device_lookup(ctx, s->names[i]);
    if (!dev)
      continue;
    if (udm_device_remove(dev, 0) < 0)
      fprintf(stderr, "%s: remove %s: %s\n", PROG, s->names[i], udm_errmsg());
    udm_device_unref(dev);
  }
}

static int run_command(const char *command, struct control *ctl)
{
  /* Our ends are close-on-exec; COMMAND inherits the other two. */
  int req[2], rep[2];
  if (pipe(req) < 0 || pipe(rep) < 0) {
    perror(PROG ": pipe");
    return 127;
  }
  fcntl(req[0], F_SETFD, FD_CLOEXEC);
  fcntl(rep[1], F_SETFD, FD_CLOEXEC);
  char num[16];
  snprintf(num, sizeof num, "%d", req[1]);
  setenv("ctl_w", num, 1);
  snprintf(num, sizeof num, "%d", rep[0]);
  setenv("ctl_r", num, 1);
  ctl->in = req[0];
  ctl->out = rep[1];
  pthread_t thread;
  bool have_thread = pthread_create(&thread, NULL, control_thread, ctl) == 0;

  struct sigaction sa = {.sa_handler = forward_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  char *argv[] = {"sh", "-c", (char *)command, NULL};
  pid_t pid;
  int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
  close(req[1]);
  close(rep[0]);
  int status = 127 << 8;
  if (r) {
    fprintf(stderr, "%s: /bin/sh: %s\n", PROG, strerror(r));
  } else {
    child_pid = pid;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    child_pid = 0;
  }
  /* Children COMMAND left behind may hold $ctl_w open: stop reading regardless. */
  if (have_thread) {
    pthread_cancel(thread);
    pthread_join(thread, NULL);
  }
  close(req[0]);
  close(rep[1]);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
  struct serve s = {0};
  parse(argc, argv, &s);
  if (s.cleanup)
    return cleanup(s.dir);

  int r = udm_platform_set_io_flusher();
  if (r < 0)
    fprintf(stderr, "%s: not an I/O flusher: %s\n", PROG, strerror(-r));
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx) {
    fprintf(stderr, "%s: %s\n", PROG, udm_errmsg());
    return 1;
  }
  int status = 1;
  struct udm_fuse *fuse = NULL;
  char dev[256] = "", file[4096] = "";
  bool attached = false;
  if (make_devices(ctx, &s) < 0)
    goto out;
  struct udm_fuse_opts opts = {.max_threads = s.threads};
  r = udm_fuse_new(ctx, s.dir, &opts, &fuse);
  if (r < 0) {
    fprintf(stderr, "%s: export at %s: %s\n", PROG, s.dir, strerror(-r));
    goto out;
  }
  setenv("dir", s.dir, 1);
  if (s.attach) {
    snprintf(file, sizeof file, "%s/%s", s.dir, s.attach);
    struct udm_device *d = udm_device_lookup(ctx, s.attach);
    bool ro = d && (udm_device_caps(d) & UDM_CAP_READONLY);
    unsigned bs = d ? udm_device_block_size(d) : 512;
    if (d)
      udm_device_unref(d);
    bool dio = false;
    r = udm_platform_attach(file, ro, bs, dev, sizeof dev, &dio);
    if (r < 0) {
      fprintf(stderr, "%s: attach %s: %s\n", PROG, file, strerror(-r));
      goto out;
    }
    attached = true;
    fprintf(stderr, "%s: %s attached at %s (direct I/O %s%s)\n", PROG, s.attach, dev,
            dio ? "on" : "off", ro ? ", read-only" : "");
    setenv("file", file, 1);
    setenv("dev", dev, 1);
    setenv("dio", dio ? "1" : "0", 1);
  }
  struct control ctl = {.ctx = ctx, .readonly = s.readonly, .attach = attached ? s.attach : NULL,
                        .dev = dev, .file = file};
  status = run_command(s.run, &ctl);
out:
  if (attached) {
    r = udm_platform_detach(dev);
    if (r == 0)
      r = udm_fuse_wait_closed(fuse, s.attach, 10000);
    if (r < 0) {
      fprintf(stderr, "%s: detach %s: %s\n", PROG, dev, strerror(-r));
      if (status == 0)
        status = 1;
    }
  }
  udm_fuse_free(fuse);
  remove_devices(ctx, &s);
  udm_ctx_free(ctx);
  return status;
}
