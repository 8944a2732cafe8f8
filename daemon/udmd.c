/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udmd: the daemon that holds udm's devices (the "kernel" of udm).
 *
 * It owns one udm_ctx and serves it on the runtime directory:
 *   control.sock  requests from udm (control.c, ops.c)
 *   nbd.sock      every device as an NBD export (nbd/), when compiled in
 *   udmd.lock     held while the daemon runs: one daemon per directory
 *   dev/          the FUSE export: every device as a file dev/NAME
 *   block/        block/NAME -> /dev/loopN for every attached device
 * Without -f it daemonises once the sockets accept connections, so that
 * whoever started it may connect as soon as it returns.  Under systemd
 * (udmd.socket) the control socket is inherited instead (activation.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <udm/udm.h>

#include "activation.h"
#include "attach.h"
#include "control.h"
#include "log.h"
#include "platform.h"
#include "runtime.h"
#ifdef UDM_HAVE_NBD
#include "nbd_server.h"
#endif

/* How long the shutdown after SIGTERM may take before udmd exits regardless. */
#define DEFAULT_STOP_TIMEOUT 30

struct options {
  bool foreground;
  const char *nbd_tcp; /* HOST:PORT, or NULL */
  unsigned stop_timeout; /* seconds */
  unsigned nbd_handshake_timeout; /* seconds, 0: the server's default */
  unsigned nbd_max_connections;   /* 0: the server's default */
  const char *tls;              /* off, on, require; NULL: off */
  const char *tls_certificates; /* DIR */
  const char *tls_psk;          /* FILE */
  bool tls_verify_peer;
};

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: udmd [-f|--foreground] [-v|--verbose] [--nbd-tcp HOST:PORT]\n"
          "            [--tls=on|require --tls-certificates DIR|--tls-psk FILE]\n"
          "       udmd --help | --version\n"
          "\n"
          "The udm daemon: holds udm's devices and serves them in the runtime\n"
          "directory ($UDM_RUNTIME_DIR, else /run/udm for root, else\n"
          "$XDG_RUNTIME_DIR/udm; on macOS /var/run/udm for root, else\n"
          "$XDG_RUNTIME_DIR/udm, else udm in the user's temporary folder).\n"
          "Usually started on demand by udm(8), or by systemd's udmd.socket\n"
          "(socket activation: LISTEN_FDS=1, the control socket as fd 3).\n"
          "\n"
          "  -f, --foreground     stay in the foreground, log to stderr\n"
          "  -v, --verbose        in the foreground, log devices made and removed\n"
          "      --nbd-tcp H:P    also serve NBD on TCP host H, port P\n"
          "      --tls=off|on|require\n"
          "                       NBD over TLS on the TCP listener: offered, or\n"
          "                       required (plain clients are refused)\n"
          "      --tls-certificates DIR\n"
          "                       X.509: DIR has server-cert.pem, server-key.pem,\n"
          "                       ca-cert.pem (certtool makes them)\n"
          "      --tls-psk FILE   pre-shared keys, as psktool writes them\n"
          "      --tls-verify-peer\n"
          "                       X.509: clients need a certificate ca-cert.pem signed\n"
          "      --nbd-handshake-timeout S\n"
          "                       close NBD clients that have not chosen an export\n"
          "                       S seconds after connecting (default 10)\n"
          "      --nbd-max-connections N\n"
          "                       NBD clients at once (default 1024, at most 65536)\n"
          "      --stop-timeout S after SIGTERM, exit after S seconds (default 30)\n"
          "                       even if a request is stuck\n"
          "  -h, --help           show this help\n"
          "  -V, --version        show the version\n");
}

/* A whole number of seconds from 1 to 86400 for option NAME. */
static int parse_seconds(const char *name, const char *v, unsigned *out)
{
  char *end;
  unsigned long n = (*v >= '0' && *v <= '9') ? strtoul(v, &end, 10) : 0;
  if (n < 1 || n > 86400 || *end) {
    fprintf(stderr, "udmd: %s: '%s' is not a number of seconds from 1 to 86400\n", name,
            v);
    return 2;
  }
  *out = (unsigned)n;
  return 0;
}

/* The value of option NAME: "--NAME V" or "--NAME=V"; NULL when A is not it. */
static const char *option_value(int argc, char **argv, int *i, const char *name,
                                bool *missing)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  *missing = false;
  if (strncmp(a, name, n) != 0)
    return NULL;
  if (a[n] == '=')
    return a + n + 1;
  if (a[n] != '\0')
    return NULL;
  if (++*i == argc) {
    fprintf(stderr, "udmd: %s needs a value\n", name);
    *missing = true;
    return NULL;
  }
  return argv[*i];
}

/* The TLS options agree with each other (the files are checked at start). */
static int check_tls_options(const struct options *o)
{
  bool tls = o->tls && strcmp(o->tls, "off") != 0;
  bool creds = o->tls_certificates || o->tls_psk;
  if (o->tls_certificates && o->tls_psk) {
    fprintf(stderr, "udmd: --tls-certificates and --tls-psk: choose one\n");
    return 2;
  }
  if (o->tls_verify_peer && !o->tls_certificates) {
    fprintf(stderr, "udmd: --tls-verify-peer needs --tls-certificates\n");
    return 2;
  }
  if (tls && !creds) {
    fprintf(stderr, "udmd: --tls=%s needs --tls-certificates DIR or --tls-psk FILE\n",
            o->tls);
    return 2;
  }
  if (creds && !tls) {
    fprintf(stderr, "udmd: --tls-certificates/--tls-psk given, but not --tls=on|require\n");
    return 2;
  }
  if (tls && !o->nbd_tcp) {
    fprintf(stderr, "udmd: --tls=%s applies to the TCP listener: give --nbd-tcp too\n",
            o->tls);
    return 2;
  }
  return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
  o->stop_timeout = DEFAULT_STOP_TIMEOUT;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    bool missing;
    if ((v = option_value(argc, argv, &i, "--stop-timeout", &missing))) {
      if (parse_seconds("--stop-timeout", v, &o->stop_timeout))
        return 2;
    } else if (missing) {
      return 2;
    } else if ((v = option_value(argc, argv, &i, "--nbd-handshake-timeout", &missing))) {
      if (parse_seconds("--nbd-handshake-timeout", v, &o->nbd_handshake_timeout))
        return 2;
    } else if (missing) {
      return 2;
    } else if ((v = option_value(argc, argv, &i, "--nbd-max-connections", &missing))) {
      char *end;
      unsigned long n = (*v >= '0' && *v <= '9') ? strtoul(v, &end, 10) : 0;
      if (n < 1 || n > 65536 || *end) {
        fprintf(stderr, "udmd: --nbd-max-connections: '%s' is not a number from 1 to 65536\n",
                v);
        return 2;
      }
      o->nbd_max_connections = (unsigned)n;
    } else if (missing) {
      return 2;
    } else if ((v = option_value(argc, argv, &i, "--tls-certificates", &missing))) {
      o->tls_certificates = v;
    } else if (missing) {
      return 2;
    } else if ((v = option_value(argc, argv, &i, "--tls-psk", &missing))) {
      o->tls_psk = v;
    } else if (missing) {
      return 2;
    } else if (strcmp(a, "--tls-verify-peer") == 0) {
      o->tls_verify_peer = true;
    } else if ((v = option_value(argc, argv, &i, "--tls", &missing))) {
      if (strcmp(v, "off") != 0 && strcmp(v, "on") != 0 && strcmp(v, "require") != 0) {
        fprintf(stderr, "udmd: --tls: '%s' is not off, on or require\n", v);
        return 2;
      }
      o->tls = v;
    } else if (missing) {
      return 2;
    } else if (strcmp(a, "-f") == 0 || strcmp(a, "--foreground") == 0) {
      o->foreground = true;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      udmd_log_set_verbose();
    } else if (strcmp(a, "--nbd-tcp") == 0) {
      if (++i == argc) {
        fprintf(stderr, "udmd: --nbd-tcp needs HOST:PORT\n");
        return 2;
      }
      o->nbd_tcp = argv[i];
    } else if (strncmp(a, "--nbd-tcp=", 10) == 0) {
      o->nbd_tcp = a + 10;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      printf("udmd %s\n", udm_version_string());
      exit(0);
    } else {
      fprintf(stderr, "udmd: unknown argument '%s' (see udmd --help)\n", a);
      return 2;
    }
  }
  return check_tls_options(o);
}

/* Create the runtime directory (0700), or check that ours is there. */
static int make_runtime_dir(const char *dir)
{
  if (mkdir(dir, 0700) == 0)
    return 0;
  if (errno != EEXIST) {
    fprintf(stderr, "udmd: cannot create the runtime directory %s: %s\n", dir,
            strerror(errno));
    return -1;
  }
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "udmd: the runtime directory %s is not a directory\n", dir);
    return -1;
  }
  if (st.st_uid != geteuid()) {
    fprintf(stderr, "udmd: the runtime directory %s belongs to uid %lu, not to us\n", dir,
            (unsigned long)st.st_uid);
    return -1;
  }
  /* Ours but open to others (made by hand, or by an older udmd): close it. */
  if ((st.st_mode & 077) && chmod(dir, 0700) < 0) {
    fprintf(stderr, "udmd: the runtime directory %s has mode %03o and cannot be made 0700: "
            "%s\n", dir, (unsigned)(st.st_mode & 0777), strerror(errno));
    return -1;
  }
  return 0;
}

/* Take the directory's lock: one daemon per runtime directory.  Returns the fd. */
static int take_lock(const char *dir)
{
  char path[4096];
  if (udm_runtime_path(path, sizeof path, dir, UDM_LOCK_FILE) < 0) {
    fprintf(stderr, "udmd: the runtime directory path %s is too long\n", dir);
    return -1;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "udmd: cannot open the lock file %s: %s\n", path, strerror(errno));
    return -1;
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_SETLK, &fl) < 0) {
    int e = errno;
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if ((e == EAGAIN || e == EACCES) && fcntl(fd, F_GETLK, &who) == 0 &&
        who.l_type != F_UNLCK)
      fprintf(stderr, "udmd: another udmd (pid %ld) is already running on %s\n",
              (long)who.l_pid, dir);
    else if (e == EAGAIN || e == EACCES)
      fprintf(stderr, "udmd: another udmd is already running on %s\n", dir);
    else
      fprintf(stderr, "udmd: cannot lock %s: %s\n", path, strerror(e));
    close(fd);
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
    udmd_log(LOG_WARNING, "cannot write the pid to %s", path);
  return fd;
}

/*
 * Fork; the parent waits until the child says it is ready (one byte on the
 * pipe) and exits 0, or exits with the child's status when it fails.
 * Returns the write end of the pipe in the child.
 */
static int daemonise(void)
{
  int p[2];
  if (pipe(p) < 0) {
    fprintf(stderr, "udmd: pipe: %s\n", strerror(errno));
    exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "udmd: fork: %s\n", strerror(errno));
    exit(1);
  }
  if (pid > 0) {
    close(p[1]);
    char b;
    ssize_t n;
    while ((n = read(p[0], &b, 1)) < 0 && errno == EINTR)
      ;
    if (n == 1)
      _exit(0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    _exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
  }
  close(p[0]);
  fcntl(p[1], F_SETFD, FD_CLOEXEC);
  setsid();
  return p[1];
}

/* Once ready: tell the parent, let go of the terminal and log to syslog. */
static void detach(int ready_fd)
{
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
      close(null);
  }
  udmd_log_use_syslog();
  if (chdir("/") < 0)
    udmd_log(LOG_WARNING, "chdir /: %s", strerror(errno));
  while (write(ready_fd, "R", 1) < 0 && errno == EINTR)
    ;
  close(ready_fd);
}

#ifdef UDM_HAVE_NBD
/* TLS for the TCP listener, as the options ask; 0 or -1 with a message. */
static int setup_tls(struct udm_nbd_server *srv, const struct options *o)
{
  if (!o->tls || strcmp(o->tls, "off") == 0)
    return 0;
  enum udm_nbd_tls mode = strcmp(o->tls, "require") == 0 ? UDM_NBD_TLS_REQUIRE
                                                         : UDM_NBD_TLS_ON;
  if (udm_nbd_server_set_tls(srv, mode) < 0 ||
      (o->tls_certificates &&
       udm_nbd_server_set_tls_certificates(srv, o->tls_certificates, o->tls_verify_peer) <
           0) ||
      (o->tls_psk && udm_nbd_server_set_tls_psk(srv, o->tls_psk) < 0)) {
    fprintf(stderr, "udmd: --tls=%s: %s\n", o->tls, udm_errmsg());
    return -1;
  }
  return 0;
}

/* What the NBD server cannot tell its clients (connections over the limit). */
static void log_nbd(void *opaque, const char *line)
{
  (void)opaque;
  udmd_log(LOG_WARNING, "%s", line);
}

static struct udm_nbd_server *start_nbd(struct udm_ctx *ctx, const char *dir,
                                        const struct options *o)
{
  const char *tcp = o->nbd_tcp;
  unsigned handshake_timeout = o->nbd_handshake_timeout;
  char path[4096];
  struct udm_nbd_server *srv = udm_nbd_server_new(ctx);
  if (!srv) {
    fprintf(stderr, "udmd: NBD server: %s\n", udm_errmsg());
    return NULL;
  }
  if (setup_tls(srv, o) < 0)
    goto fail;
  if (handshake_timeout &&
      udm_nbd_server_set_handshake_timeout(srv, handshake_timeout * 1000) < 0) {
    fprintf(stderr, "udmd: --nbd-handshake-timeout: %s\n", udm_errmsg());
    goto fail;
  }
  if (o->nbd_max_connections &&
      udm_nbd_server_set_max_connections(srv, o->nbd_max_connections) < 0) {
    fprintf(stderr, "udmd: --nbd-max-connections: %s\n", udm_errmsg());
    goto fail;
  }
  udm_nbd_server_set_log(srv, log_nbd, NULL);
  if (udm_runtime_path(path, sizeof path, dir, UDM_NBD_SOCKET) < 0) {
    fprintf(stderr, "udmd: %s/%s is too long for a socket address\n", dir,
            UDM_NBD_SOCKET);
    goto fail;
  }
  if (udm_nbd_server_listen_unix(srv, path) < 0) {
    fprintf(stderr, "udmd: NBD on %s: %s\n", path, udm_errmsg());
    goto fail;
  }
  if (tcp) {
    char host[256];
    const char *colon = strrchr(tcp, ':');
    const char *h = tcp;
    size_t hl = colon ? (size_t)(colon - tcp) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1]:10809 */
      h++;
      hl -= 2;
    }
    if (!colon || !colon[1] || hl >= sizeof host) {
      fprintf(stderr, "udmd: --nbd-tcp '%s': expected HOST:PORT\n", tcp);
      goto fail;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (udm_nbd_server_listen_tcp(srv, hl ? host : NULL, colon + 1) < 0) {
      fprintf(stderr, "udmd: NBD on TCP %s: %s\n", tcp, udm_errmsg());
      goto fail;
    }
  }
  if (udm_nbd_server_start(srv) < 0) {
    fprintf(stderr, "udmd: NBD server: %s\n", udm_errmsg());
    goto fail;
  }
  return srv;
fail:
  udm_nbd_server_free(srv);
  return NULL;
}
#endif

/*
 * At shutdown, requests held by a suspended device would wait forever:
 * fail them, as "dmsetup remove --force" does, with an error table.
 */
static int release_held_io(void *opaque, const char *name)
{
  struct udm_ctx *ctx = opaque;
  struct udm_device *dev = udm_device_lookup(ctx, name);
  struct udm_info info;
  if (!dev)
    return 0;
  if (udm_device_info(dev, &info) == 0 && info.suspended && info.live_table) {
    char table[64];
    snprintf(table, sizeof table, "0 %llu error",
             (unsigned long long)(info.size / UDM_SECTOR_SIZE));
    if (udm_table_load(dev, table) < 0)
      udm_table_clear(dev);
    udm_device_resume(dev);
  }
  udm_device_unref(dev);
  return 0;
}

/* Before the devices go: what they hold in caches reaches the backing store. */
static int flush_device(void *opaque, const char *name)
{
  struct udm_ctx *ctx = opaque;
  struct udm_device *dev = udm_device_lookup(ctx, name);
  if (!dev)
    return 0;
  if (udm_device_size(dev) > 0 && udm_device_flush(dev) < 0)
    udmd_log(LOG_WARNING, "flush %s at shutdown: %s", name, udm_errmsg());
  udm_device_unref(dev);
  return 0;
}

/*
 * The shutdown is bounded: a request stuck for good (a backing file on a
 * hung FUSE or NFS server, say) holds a control thread that shutdown would
 * join forever.  After the stop timeout the watchdog removes the sockets,
 * aborts the export (so that no thread of ours waits on it), and exits.
 */
struct watchdog {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  unsigned seconds;
  const char *dir;
  /* Until udmd_attach_free begins (under lock): the export to abort. */
  struct udmd_attach *attach;
};

static void *watchdog_thread(void *opaque)
{
  struct watchdog *w = opaque;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)w->seconds;
  pthread_mutex_lock(&w->lock);
  int r = 0;
  while (!w->done && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
  bool done = w->done;
  pthread_mutex_unlock(&w->lock);
  if (done)
    return NULL;
  udmd_log(LOG_ERR, "the shutdown did not finish within %u s (a request is stuck): "
           "exiting without it", w->seconds);
  static const char *const leaves[] = {UDM_CONTROL_SOCKET, UDM_NBD_SOCKET};
  char path[4096];
  for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
    if (udm_runtime_path(path, sizeof path, w->dir, leaves[i]) == 0)
      unlink(path);
  /*
   * Abort the export (its session thread then ends: joined, so that no
   * thread is left finished but unjoined), or only its mount once
   * udmd_attach_free has it.  The lock stays held: the main thread must
   * not free the export meanwhile.
   */
  pthread_mutex_lock(&w->lock);
  if (w->attach)
    udmd_attach_abort(w->attach, 2000);
  else if (udm_runtime_path(path, sizeof path, w->dir, UDM_DEV_DIR) == 0)
    udm_platform_abort_mount(path);
  _exit(1);
}

int main(int argc, char **argv)
{
  struct options o = {0};
  int r = parse_options(argc, argv, &o);
  if (r)
    return r;
#ifndef UDM_HAVE_NBD
  if (o.nbd_tcp || o.tls) {
    fprintf(stderr, "udmd: %s: NBD is not compiled into this udmd\n",
            o.nbd_tcp ? "--nbd-tcp" : "--tls");
    return 1;
  }
#endif
  char dir[4096], path[4096];
  const char *why = "";
  if (udm_runtime_dir(dir, sizeof dir, &why) < 0) {
    fprintf(stderr, "udmd: %s\n", why);
    return 1;
  }
  /* Before daemonise(): LISTEN_PID names this process, not a child. */
  udm_runtime_path(path, sizeof path, dir, UDM_CONTROL_SOCKET);
  int inherited = udmd_activation_socket(path);
  if (inherited == -2)
    return 1;
  int ready_fd = o.foreground ? -1 : daemonise();

  signal(SIGPIPE, SIG_IGN);
  /* Every thread inherits this mask; only the main thread takes the signals. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  if (make_runtime_dir(dir) < 0)
    return 1;
  int lock_fd = take_lock(dir);
  if (lock_fd < 0)
    return 1;
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx) {
    fprintf(stderr, "udmd: %s\n", udm_errmsg());
    return 1;
  }
  /*
   * The FUSE export first: it marks this thread an I/O flusher before any
   * other thread exists, and it must answer before a client can attach.
   */
  struct udmd_attach *attach = udmd_attach_new(ctx, dir);
  if (!attach) {
    fprintf(stderr, "udmd: out of memory\n");
    udm_ctx_free(ctx);
    return 1;
  }
  struct udmd_control *control = NULL;
  udm_runtime_path(path, sizeof path, dir, UDM_CONTROL_SOCKET);
  r = inherited >= 0 ? udmd_control_adopt(ctx, attach, inherited, &control)
                     : udmd_control_new(ctx, attach, path, &control);
  if (r < 0) {
    fprintf(stderr, "udmd: cannot listen on %s: %s\n", path, strerror(-r));
    udmd_attach_free(attach);
    udm_ctx_free(ctx);
    return 1;
  }
#ifdef UDM_HAVE_NBD
  struct udm_nbd_server *nbd = start_nbd(ctx, dir, &o);
  if (!nbd) {
    udmd_control_free(control);
    udmd_attach_free(attach);
    udm_ctx_free(ctx);
    return 1;
  }
#else
  fprintf(stderr, "udmd: NBD is not compiled in: devices have no NBD export\n");
#endif
  r = udmd_control_start(control);
  if (r < 0) {
    fprintf(stderr, "udmd: cannot start the control thread: %s\n", strerror(-r));
    return 1;
  }
  if (ready_fd >= 0)
    detach(ready_fd);
  udmd_log(LOG_INFO, "udmd %s serving %s%s", udm_version_string(), dir,
           inherited >= 0 ? " (control socket from socket activation)" : "");

  int sig = 0;
  for (;;) {
    if (sigwait(&stop, &sig) != 0 || sig != SIGHUP)
      break;
  }
  udmd_log(LOG_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  struct watchdog wd = {.seconds = o.stop_timeout, .dir = dir, .attach = attach};
  pthread_t wd_thread;
  pthread_mutex_init(&wd.lock, NULL);
  pthread_cond_init(&wd.cond, NULL);
  bool have_wd = pthread_create(&wd_thread, NULL, watchdog_thread, &wd) == 0;
  if (!have_wd)
    udmd_log(LOG_WARNING, "no shutdown watchdog: a stuck request would keep udmd");
  udmd_control_free(control);
  udm_ctx_foreach_device(ctx, release_held_io, ctx);
  /* Block devices go before the export, so that none is left over a dead file. */
  pthread_mutex_lock(&wd.lock);
  wd.attach = NULL;
  pthread_mutex_unlock(&wd.lock);
  udmd_attach_free(attach);
#ifdef UDM_HAVE_NBD
  udm_nbd_server_free(nbd);
  udm_runtime_path(path, sizeof path, dir, UDM_NBD_SOCKET);
  unlink(path);
#endif
  udm_ctx_foreach_device(ctx, flush_device, ctx);
  udm_ctx_free(ctx);
  if (have_wd) {
    pthread_mutex_lock(&wd.lock);
    wd.done = true;
    pthread_cond_signal(&wd.cond);
    pthread_mutex_unlock(&wd.lock);
    pthread_join(wd_thread, NULL);
  }
  close(lock_fd);
  return 0;
}
