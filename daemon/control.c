/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transport of the control protocol: a listening Unix socket, a thread that
 * accepts, and one thread per connection reading requests and writing
 * answers (ops.c answers them).  A connection that sends a malformed frame
 * gets one error answer and is closed: framing cannot be trusted after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "ops.h"
#include "platform.h"
#include "protocol.h"

/* More simultaneous clients than this are turned away (each costs a thread). */
#define MAX_CONNECTIONS 128

struct conn {
  struct udmd_control *c;
  int fd;
  pthread_t thread;
  bool done; /* under c->lock */
  struct conn *next;
};

struct udmd_control {
  struct udm_ctx *ctx;
  struct udmd_attach *attach;
  char *path;
  int listen_fd;
  int wake[2]; /* written to stop the accepting thread */
  pthread_t acceptor;
  bool started;
  pthread_mutex_t lock;
  struct conn *conns;
  unsigned nconns;
};

static void *serve(void *opaque)
{
  struct conn *k = opaque;
  struct udm_msg req, resp;
  bool hello = false;
  udm_msg_init(&req);
  udm_msg_init(&resp);
  for (;;) {
    const char *why = "?";
    int r = udm_msg_recv(k->fd, &req, &why);
    if (r == 1)
      break;
    if (r == -EBADMSG) {
      char msg[128];
      snprintf(msg, sizeof msg, "malformed message: %s", why);
      udmd_log(LOG_WARNING, "control connection closed: %s", msg);
      udmd_ops_error(&resp, EBADMSG, msg);
      udm_msg_send(k->fd, &resp);
      break;
    }
    if (r < 0)
      break;
    bool close_after = false;
    if (!hello) {
      close_after = udmd_ops_hello(&req, &resp) < 0;
      hello = !close_after;
    } else {
      udmd_ops_handle(k->c->ctx, k->c->attach, k->fd, &req, &resp);
    }
    udm_msg_free(&req);
    r = udm_msg_send(k->fd, &resp);
    udm_msg_free(&resp);
    if (r < 0 || close_after)
      break;
  }
  udm_msg_free(&req);
  udm_msg_free(&resp);
  shutdown(k->fd, SHUT_RDWR);
  pthread_mutex_lock(&k->c->lock);
  k->done = true;
  pthread_mutex_unlock(&k->c->lock);
  return NULL;
}

/* Join and free the connections whose thread has finished. */
static void reap(struct udmd_control *c, bool all)
{
  for (;;) {
    struct conn *victim = NULL;
    pthread_mutex_lock(&c->lock);
    for (struct conn **p = &c->conns; *p; p = &(*p)->next)
      if ((*p)->done || all) {
        victim = *p;
        *p = victim->next;
        c->nconns--;
        break;
      }
    pthread_mutex_unlock(&c->lock);
    if (!victim)
      return;
    pthread_join(victim->thread, NULL);
    close(victim->fd);
    free(victim);
  }
}

static void turn_away(int fd, int err, const char *why)
{
  struct udm_msg resp;
  udm_msg_init(&resp);
  udmd_ops_error(&resp, err, why);
  udm_msg_send(fd, &resp);
  udm_msg_free(&resp);
  close(fd);
}

static void accept_one(struct udmd_control *c)
{
  int fd = accept(c->listen_fd, NULL, NULL);
  if (fd < 0)
    return; /* EINTR, ECONNABORTED, EMFILE: try again at the next poll */
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  uid_t uid;
  int r = udm_platform_peer_uid(fd, &uid);
  if (r == 0 && uid != geteuid()) {
    udmd_log(LOG_WARNING, "refused a control connection from uid %lu",
             (unsigned long)uid);
    turn_away(fd, EACCES, "udmd: only the daemon's own user may connect");
    return;
  }
  /* A system that cannot tell the peer still has the socket's mode 0600. */
  struct conn *k = calloc(1, sizeof *k);
  if (!k) {
    turn_away(fd, ENOMEM, "udmd: out of memory");
    return;
  }
  k->c = c;
  k->fd = fd;
  pthread_mutex_lock(&c->lock);
  if (c->nconns >= MAX_CONNECTIONS) {
    pthread_mutex_unlock(&c->lock);
    free(k);
    turn_away(fd, EAGAIN, "udmd: too many control connections, try again");
    return;
  }
  r = pthread_create(&k->thread, NULL, serve, k);
  if (r != 0) {
    pthread_mutex_unlock(&c->lock);
    free(k);
    turn_away(fd, r, "udmd: cannot start a thread for the connection");
    return;
  }
  k->next = c->conns;
  c->conns = k;
  c->nconns++;
  pthread_mutex_unlock(&c->lock);
}

static void *acceptor(void *opaque)
{
  struct udmd_control *c = opaque;
  for (;;) {
    struct pollfd p[2] = {{.fd = c->listen_fd, .events = POLLIN},
                          {.fd = c->wake[0], .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      udmd_log(LOG_ERR, "control socket: poll: %s", strerror(errno));
      return NULL;
    }
    if (p[1].revents)
      return NULL;
    if (p[0].revents)
      accept_one(c);
    reap(c, false);
  }
}

int udmd_control_new(struct udm_ctx *ctx, struct udmd_attach *attach, const char *path,
                     struct udmd_control **out)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return -ENAMETOOLONG;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  struct udmd_control *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->ctx = ctx;
  c->attach = attach;
  c->listen_fd = c->wake[0] = c->wake[1] = -1;
  pthread_mutex_init(&c->lock, NULL);
  int r = -ENOMEM;
  if (!(c->path = strdup(path)))
    goto fail;
  if (pipe(c->wake) < 0) {
    r = -errno;
    goto fail;
  }
  fcntl(c->wake[0], F_SETFD, FD_CLOEXEC);
  fcntl(c->wake[1], F_SETFD, FD_CLOEXEC);
  c->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (c->listen_fd < 0) {
    r = -errno;
    goto fail;
  }
  fcntl(c->listen_fd, F_SETFD, FD_CLOEXEC);
  /* The caller holds the runtime directory's lock: a socket here is stale. */
  unlink(path);
  mode_t old = umask(077); /* the socket is born 0600: no window for others */
  r = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
  umask(old);
  if (r == 0 && chmod(path, 0600) < 0)
    r = -errno;
  if (r == 0 && listen(c->listen_fd, 64) < 0)
    r = -errno;
  if (r < 0)
    goto fail;
  *out = c;
  return 0;
fail:
  if (c->listen_fd >= 0) {
    close(c->listen_fd);
    c->listen_fd = -1;
  }
  udmd_control_free(c);
  return r;
}

int udmd_control_adopt(struct udm_ctx *ctx, struct udmd_attach *attach, int listen_fd,
                       struct udmd_control **out)
{
  struct udmd_control *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->ctx = ctx;
  c->attach = attach;
  c->wake[0] = c->wake[1] = -1;
  c->listen_fd = -1; /* until it is ours: a failure leaves it to the caller */
  pthread_mutex_init(&c->lock, NULL);
  if (pipe(c->wake) < 0) {
    int r = -errno;
    udmd_control_free(c);
    return r;
  }
  fcntl(c->wake[0], F_SETFD, FD_CLOEXEC);
  fcntl(c->wake[1], F_SETFD, FD_CLOEXEC);
  fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
  c->listen_fd = listen_fd; /* c->path stays NULL: the socket is not ours to remove */
  *out = c;
  return 0;
}

int udmd_control_start(struct udmd_control *c)
{
  int r = pthread_create(&c->acceptor, NULL, acceptor, c);
  if (r != 0)
    return -r;
  c->started = true;
  return 0;
}

void udmd_control_free(struct udmd_control *c)
{
  if (!c)
    return;
  if (c->started) {
    char b = 1;
    while (write(c->wake[1], &b, 1) < 0 && errno == EINTR)
      ;
    pthread_join(c->acceptor, NULL);
  }
  if (c->listen_fd >= 0)
    close(c->listen_fd);
  if (c->path)
    unlink(c->path);
  /*
   * Wake every reader; a request being answered finishes first (a wait
   * notices the shutdown at its next look, within 200 ms).
   */
  pthread_mutex_lock(&c->lock);
  for (struct conn *k = c->conns; k; k = k->next)
    shutdown(k->fd, SHUT_RDWR);
  pthread_mutex_unlock(&c->lock);
  reap(c, true);
  if (c->wake[0] >= 0)
    close(c->wake[0]);
  if (c->wake[1] >= 0)
    close(c->wake[1]);
  pthread_mutex_destroy(&c->lock);
  free(c->path);
  free(c);
}
