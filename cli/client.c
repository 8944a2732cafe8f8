/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of the control socket, and starting udmd on demand when
 * nobody answers there.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "platform.h"
#include "runtime.h"

#ifndef UDM_BINDIR
#define UDM_BINDIR "/usr/local/bin"
#endif

/* How long udm waits for a daemon it started to answer. */
#define START_TIMEOUT_MS 10000

void cli_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("udm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int cli_runtime_dir(struct cli *c)
{
  const char *why = "";
  if (udm_runtime_dir(c->dir, sizeof c->dir, &why) < 0) {
    cli_error("%s", why);
    return -1;
  }
  return 0;
}

int cli_connect_socket(const char *dir)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (udm_runtime_path(sa.sun_path, sizeof sa.sun_path, dir, UDM_CONTROL_SOCKET) < 0)
    return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return -errno;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static bool executable(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * Find a program udm runs (udmd, udm-image): $ENV when set, else beside this
 * udm (installed), else in the build tree (udm in cli/, the program in
 * BUILD_DIR/), else in the configured bindir.
 */
int cli_find_program(const char *prog, const char *env_name, const char *build_dir,
                     char *buf, size_t size)
{
  const char *env = getenv(env_name);
  if (env && *env) {
    snprintf(buf, size, "%s", env);
    return executable(buf) ? 0 : -ENOENT;
  }
  char self[PATH_MAX];
  if (udm_platform_self_exe(self, sizeof self) == 0) {
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      snprintf(buf, size, "%s/%s", self, prog);
      if (executable(buf))
        return 0;
      snprintf(buf, size, "%s/../%s/%s", self, build_dir, prog);
      if (executable(buf))
        return 0;
    }
  }
  snprintf(buf, size, "%s/%s", UDM_BINDIR, prog);
  return executable(buf) ? 0 : -ENOENT;
}

int cli_find_udmd(char *buf, size_t size)
{
  return cli_find_program("udmd", "UDMD", "daemon", buf, size);
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/*
 * Start udmd on c->dir and wait (bounded) until it has daemonised, which
 * it does once its sockets accept connections.
 */
static int start_daemon(struct cli *c)
{
  char udmd[PATH_MAX];
  if (cli_find_udmd(udmd, sizeof udmd) < 0) {
    cli_error("udmd is not running on %s and cannot be started: no udmd next to udm "
              "or in %s",
              c->dir, UDM_BINDIR);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    cli_error("fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
    }
    setenv("UDM_RUNTIME_DIR", c->dir, 1);
    execl(udmd, "udmd", (char *)NULL);
    fprintf(stderr, "udm: cannot run %s: %s\n", udmd, strerror(errno));
    _exit(127);
  }
  long long deadline = now_ms() + START_TIMEOUT_MS;
  int st;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno != EINTR) {
      cli_error("waitpid: %s", strerror(errno));
      return -1;
    }
    if (now_ms() > deadline) {
      kill(pid, SIGTERM);
      waitpid(pid, &st, 0);
      cli_error("%s did not get ready within %d seconds", udmd, START_TIMEOUT_MS / 1000);
      return -1;
    }
    sleep_ms(10);
  }
  /* Failure may mean another udm started a daemon first: the caller retries. */
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int cli_hello(int fd)
{
  struct udm_msg req, resp;
  udm_msg_init(&req);
  udm_msg_init(&resp);
  const char *why = "";
  int r = udm_msg_add(&req, "op", "hello");
  if (r == 0)
    r = udm_msg_addf(&req, "version", "%d", UDM_CTL_VERSION);
  if (r == 0)
    r = udm_msg_send(fd, &req);
  if (r == 0)
    r = udm_msg_recv(fd, &resp, &why);
  if (r != 0) {
    cli_error("no hello from udmd: %s", r == -EBADMSG ? why
                                        : r == 1      ? "connection closed"
                                                      : strerror(-r));
    r = -1;
  } else if (!udm_msg_get(&resp, "status") || strcmp(udm_msg_get(&resp, "status"), "0")) {
    const char *m = udm_msg_get(&resp, "message");
    cli_error("udmd refused the connection: %s", m ? m : "no reason given");
    r = -1;
  }
  udm_msg_free(&req);
  udm_msg_free(&resp);
  return r;
}

int cli_connect(struct cli *c)
{
  if (cli_runtime_dir(c) < 0)
    return -1;
  int fd = cli_connect_socket(c->dir);
  if (fd == -ENOENT || fd == -ECONNREFUSED) {
    int started = start_daemon(c);
    if (started < 0)
      return -1;
    /* Bounded: a daemon that lost the race to another is replaced by it. */
    long long deadline = now_ms() + (started ? 2000 : START_TIMEOUT_MS);
    while ((fd = cli_connect_socket(c->dir)) < 0 && now_ms() < deadline)
      sleep_ms(20);
    if (fd < 0 && started) {
      cli_error("udmd could not be started on %s (see the message above)", c->dir);
      return -1;
    }
  }
  if (fd < 0) {
    cli_error("cannot connect to udmd on %s/%s: %s", c->dir, UDM_CONTROL_SOCKET,
              strerror(-fd));
    return -1;
  }
  if (cli_hello(fd) < 0) {
    close(fd);
    return -1;
  }
  c->fd = fd;
  return 0;
}

void cli_disconnect(struct cli *c)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

int cli_call(struct cli *c, const struct udm_msg *req, struct udm_msg *resp)
{
  const char *why = "";
  int r = udm_msg_send(c->fd, req);
  if (r == 0)
    r = udm_msg_recv(c->fd, resp, &why);
  if (r != 0) {
    cli_error("lost the connection to udmd: %s", r == -EBADMSG ? why
                                                 : r == 1      ? "closed"
                                                               : strerror(-r));
    return -1;
  }
  const char *status = udm_msg_get(resp, "status");
  if (!status || strcmp(status, "0") != 0) {
    const char *m = udm_msg_get(resp, "message");
    cli_error("%s", m && *m ? m : "udmd reported a failure without a message");
    return -1;
  }
  return 0;
}
