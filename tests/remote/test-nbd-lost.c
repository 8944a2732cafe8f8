/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nbd: backing devices whose server dies: every request ends, with EIO
 * once the (zero) retries are used up, none is lost and none waits forever.
 *
 *  1. Death found by a send: a request is in flight, its completion holds
 *     the poll thread while the server is killed and more requests arrive;
 *     the poll thread then sends them on the dead connection before it
 *     polls again.  libnbd ends every command of that connection inside the
 *     first nbd_aio_* call; they must come back too (they once stayed on
 *     the dead connection's done list and never completed), and the
 *     requests queued again with no connection left must fail then, not
 *     wait in poll() for a wake-up nobody sends.  libnbd 1.14 frees such a
 *     command inside that call when its callback asks to retire it, and
 *     returns the cookie read from the freed command; meson.build has the
 *     allocator fill freed memory, so that it reads -1 here every time.  A
 *     part whose callback retired it then looked refused, was taken back
 *     twice and ended twice (a crash here; through multipath and udmd, a
 *     second reply that made fio's libnbd drop its connection: ENOTCONN).
 *  2. The one more attempt a request makes when all connections are gone
 *     ends without an answer (TCP: the port takes the connection, no NBD
 *     greeting comes within connect-timeout): the request fails with EIO,
 *     so that multipath can fail the path over.
 *
 * Needs nbdkit (the remote suite's server); runs it with its memory plugin.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/check.h"
#include "internal.h"

#define NREQ 8
#define WAIT_S 20

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool blocker_entered, blocker_release;
static unsigned completed;
static int errs[NREQ + 1];

/* Start nbdkit in the foreground with ARGS; its pid. */
static pid_t nbdkit(char *const args[])
{
  pid_t pid = fork();
  if (pid == 0) {
    execvp("nbdkit", args);
    _exit(127);
  }
  return pid;
}

static void kill_wait(pid_t pid)
{
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static bool wait_for(const char *path)
{
  struct stat st;
  for (int i = 0; i < 200; i++) {
    if (stat(path, &st) == 0)
      return true;
    usleep(50000);
  }
  return false;
}

static struct timespec deadline(unsigned s)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += s;
  return ts;
}

/* Completion of the first request: holds the poll thread until released. */
static void blocker_end(struct udm_io *io, int err)
{
  (void)io;
  pthread_mutex_lock(&lock);
  errs[NREQ] = err;
  blocker_entered = true;
  pthread_cond_broadcast(&cond);
  while (!blocker_release)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

static void counted_end(struct udm_io *io, int err)
{
  pthread_mutex_lock(&lock);
  errs[(int)(intptr_t)io->end_private] = err;
  completed++;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
}

/* Wait for n completions; false when they did not all come. */
static bool wait_completed(unsigned n)
{
  struct timespec ts = deadline(WAIT_S);
  pthread_mutex_lock(&lock);
  int r = 0;
  while (completed < n && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&cond, &lock, &ts);
  bool ok = completed >= n;
  pthread_mutex_unlock(&lock);
  return ok;
}

static void death_found_by_write(const char *dir)
{
  char sock[512], uri[640];
  snprintf(sock, sizeof sock, "%s/s.sock", dir);
  char *args[] = {"nbdkit", "-f", "-U", sock, "memory", "1M", NULL};
  pid_t pid = nbdkit(args);
  CHECK(wait_for(sock));
  snprintf(uri, sizeof uri, "nbd:nbd+unix:///?socket=%s&retries=0&connections=1", sock);
  struct udm_dev *d = NULL;
  char *msg = NULL;
  int r = udm__dev_open(NULL, NULL, uri, UDM_DEV_READ | UDM_DEV_WRITE, false, &d, &msg);
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", uri, msg ? msg : strerror(-r));
    free(msg);
    check_failures++;
    kill_wait(pid);
    return;
  }
  static char bufs[NREQ + 1][4096];
  struct udm_io ios[NREQ + 1];
  ios[NREQ] = (struct udm_io){.op = UDM_OP_READ, .nr_sectors = 8, .buf = bufs[NREQ],
                              .end_io = blocker_end};
  udm_dev_submit_async(d, &ios[NREQ]);
  pthread_mutex_lock(&lock);
  while (!blocker_entered)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  CHECK(errs[NREQ] == 0);
  /* The poll thread is held: the server dies unseen, requests queue up. */
  kill_wait(pid);
  for (int i = 0; i < NREQ; i++) {
    ios[i] = (struct udm_io){.op = i % 2 ? UDM_OP_WRITE : UDM_OP_READ,
                             .sector = (udm_sector_t)i * 8, .nr_sectors = 8,
                             .buf = bufs[i], .end_io = counted_end,
                             .end_private = (void *)(intptr_t)i};
    udm_dev_submit_async(d, &ios[i]);
  }
  pthread_mutex_lock(&lock);
  blocker_release = true;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  bool all = wait_completed(NREQ);
  if (!all) {
    fprintf(stderr, "death found by a write: %u of %d requests completed in %d s\n",
            completed, NREQ, WAIT_S);
    check_failures++;
    _exit(1); /* the lost ones keep the device from closing */
  }
  for (int i = 0; i < NREQ; i++)
    if (errs[i] != -EIO) {
      fprintf(stderr, "request %d: %s, not EIO\n", i, strerror(-errs[i]));
      check_failures++;
    }
  d->ops->close(d);
}

/* A listening socket on 127.0.0.1:port that never accepts: connects succeed, no greeting comes. */
static int silent_listener(int port)
{
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
      (port == 0 && getsockname(s, (struct sockaddr *)&a, &len) < 0)) {
    if (s >= 0)
      close(s);
    return -1;
  }
  return s;
}

static int free_port(void)
{
  int s = silent_listener(0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int port = s >= 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
  if (s >= 0)
    close(s);
  return port;
}

/*
 * The server is killed and its address then accepts connections that never
 * answer (as a host that is gone but whose port still takes the SYN, or a
 * hung server): the one more attempt ends at connect-timeout, and the
 * request with EIO.
 */
static void tcp_last_try_times_out(const char *dir)
{
  char port[16], pidfile[512], uri[256];
  int p = free_port();
  CHECK(p > 0);
  snprintf(port, sizeof port, "%d", p);
  snprintf(pidfile, sizeof pidfile, "%s/t.pid", dir);
  char *args[] = {"nbdkit", "-f", "-P", pidfile, "-i", "127.0.0.1", "-p", port,
                  "memory", "1M", NULL};
  pid_t pid = nbdkit(args);
  CHECK(wait_for(pidfile));
  snprintf(uri, sizeof uri,
           "nbd:nbd://127.0.0.1:%s/?retries=0&connections=1&connect-timeout=1", port);
  struct udm_dev *d = NULL;
  char *msg = NULL;
  int r = -1;
  for (int i = 0; i < 100 && r < 0; i++) { /* the pidfile may come before listen */
    free(msg);
    msg = NULL;
    if ((r = udm__dev_open(NULL, NULL, uri, UDM_DEV_READ, false, &d, &msg)) < 0)
      usleep(50000);
  }
  if (r < 0) {
    fprintf(stderr, "open %s: %s\n", uri, msg ? msg : strerror(-r));
    free(msg);
    check_failures++;
    kill_wait(pid);
    return;
  }
  kill_wait(pid);
  int ls = silent_listener(p);
  CHECK(ls >= 0);
  static char buf[4096];
  pthread_mutex_lock(&lock);
  completed = 0;
  pthread_mutex_unlock(&lock);
  struct udm_io io = {.op = UDM_OP_READ, .nr_sectors = 8, .buf = buf, .end_io = counted_end,
                      .end_private = (void *)(intptr_t)0};
  udm_dev_submit_async(d, &io);
  if (!wait_completed(1)) {
    fprintf(stderr, "TCP, server silent: the request did not complete in %d s\n", WAIT_S);
    check_failures++;
    _exit(1);
  }
  if (errs[0] != -EIO) {
    fprintf(stderr, "TCP, server silent: %s, not EIO\n", strerror(-errs[0]));
    check_failures++;
  }
  d->ops->close(d);
  if (ls >= 0)
    close(ls);
}

int main(void)
{
  if (system("nbdkit --version >/dev/null 2>&1") != 0) {
    printf("SKIP: nbdkit is not installed\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  char dir[] = "/tmp/udm-nbd-lost.XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  death_found_by_write(dir);
  tcp_last_try_times_out(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    check_failures++;
  if (check_failures)
    fprintf(stderr, "%d check(s) failed\n", check_failures);
  return check_failures ? 1 : 0;
}
