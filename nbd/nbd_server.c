/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm's NBD server: listening sockets, one accept thread each, two threads
 * per connection (its reader and its sender, nbd_transmit.c).
 *
 * The server lock guards only the list of connections; it is never taken on
 * the I/O path.  A finished connection is reaped (joined and freed) by the
 * accept thread at its next wake-up, or by udm_nbd_server_free().
 * Stopping: a pipe wakes the accept threads; shutdown() on every connection
 * socket wakes its reader; each connection flushes its device and closes.
 *
 * The handshake is bounded in time and in number (udm_nbd_server_set_
 * handshake_timeout): the accept threads wake at the nearest deadline and
 * hang up on handshakes past it, so that idle or half-finished clients
 * cannot hold the connection slots that real clients need.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nbd_conn.h"
#include "nbd_server.h"
#ifdef UDM_NBD_TLS
#include "nbd_tls.h"
#endif

#define LISTEN_MAX 16
#define CONNECTIONS_DEFAULT 1024
#define CONNECTIONS_LIMIT 65536 /* the most udm_nbd_server_set_max_connections takes */
/* One line at most this often about connections turned away (the rest counted). */
#define REFUSAL_LOG_INTERVAL_S 10
#define HANDSHAKE_TIMEOUT_MS 10000
#define HANDSHAKE_TIMEOUT_MAX_MS (3600u * 1000)

struct listener {
  int fd;
  bool tcp;        /* the TLS mode applies */
  char *unix_path; /* unlinked at free */
  pthread_t thread;
  bool running;
  struct udm_nbd_server *srv;
};

struct udm_nbd_server {
  struct udm_ctx *ctx;
  struct listener listeners[LISTEN_MAX];
  unsigned nlisteners;
  int wake[2];                /* written once to stop the accept threads */
  atomic_bool stopping;
  unsigned handshake_ms;
  enum udm_nbd_tls tls_mode;
  struct nbd_tls_creds *tls;  /* NULL: no credentials */

  pthread_mutex_t lock;       /* conns and the counts */
  struct nbd_conn *conns;
  unsigned nconns;            /* in the list, finished and evicted included */
  unsigned nhandshaking;      /* in the handshake, not evicted */
  unsigned nlive;             /* neither finished nor evicted */
  unsigned max_conns;         /* nlive at most; a quarter of it in the handshake */
  void (*log)(void *opaque, const char *line);
  void *log_opaque;
  struct timespec next_log;   /* no line about refusals before this (monotonic) */
  unsigned refused, displaced; /* since the last line */
};

/* Connections in the handshake at once: the rest are kept for established ones. */
static unsigned handshakes_max(const struct udm_nbd_server *srv)
{
  return srv->max_conns / 4 ? srv->max_conns / 4 : 1;
}

bool nbd_server_stopping(const struct udm_nbd_server *srv)
{
  return atomic_load(&srv->stopping);
}

static int set_cloexec(int fd)
{
  int f = fcntl(fd, F_GETFD);
  return f < 0 || fcntl(fd, F_SETFD, f | FD_CLOEXEC) < 0 ? -errno : 0;
}

/*
 * A Unix socket's send buffer bounds what a reply can leave behind without
 * waiting for the client: with the usual 208 KiB, a 1 MiB read reply is
 * handed over in pieces, each a wake-up on both sides.  Ask for 4 MiB (the
 * kernel caps it at net.core.wmem_max).  TCP is left alone: setting the size
 * there turns off the kernel's autotuning, which knows the path better.
 */
#define UNIX_SEND_BUFFER (4 << 20)

static void widen_unix_send_buffer(int fd)
{
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.ss_family != AF_UNIX)
    return;
  int size = UNIX_SEND_BUFFER;
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size); /* a hint */
}

struct udm_nbd_server *udm_nbd_server_new(struct udm_ctx *ctx)
{
  if (!ctx)
    return udm_error_set(EINVAL, "nbd server: no context"), NULL;
  struct udm_nbd_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return udm_error_set(ENOMEM, "nbd server: out of memory"), NULL;
  srv->ctx = ctx;
  srv->handshake_ms = HANDSHAKE_TIMEOUT_MS;
  srv->max_conns = CONNECTIONS_DEFAULT;
  if (pipe(srv->wake) < 0) {
    int e = errno;
    free(srv);
    return udm_error_set(e, "nbd server: pipe: %s", strerror(e)), NULL;
  }
  set_cloexec(srv->wake[0]);
  set_cloexec(srv->wake[1]);
  pthread_mutex_init(&srv->lock, NULL);
  return srv;
}

int udm_nbd_server_set_handshake_timeout(struct udm_nbd_server *srv, unsigned ms)
{
  if (ms < 1 || ms > HANDSHAKE_TIMEOUT_MAX_MS)
    return udm_error_set(EINVAL, "nbd server: handshake timeout of %u ms (1 ms to %u s)", ms,
                     HANDSHAKE_TIMEOUT_MAX_MS / 1000);
  srv->handshake_ms = ms;
  return 0;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* TLS settings and the limits are read without a lock: fixed once started. */
static bool started(const struct udm_nbd_server *srv)
{
  for (unsigned i = 0; i < srv->nlisteners; i++)
    if (srv->listeners[i].running)
      return true;
  return false;
}

int udm_nbd_server_set_max_connections(struct udm_nbd_server *srv, unsigned n)
{
  if (n < 1 || n > CONNECTIONS_LIMIT)
    return udm_error_set(EINVAL, "nbd server: %u connections at most (1 to %u)", n,
                         CONNECTIONS_LIMIT);
  if (started(srv))
    return udm_error_set(EBUSY, "nbd server: the connection limit is set before "
                                "udm_nbd_server_start");
  srv->max_conns = n;
  return 0;
}

void udm_nbd_server_set_log(struct udm_nbd_server *srv,
                            void (*log)(void *opaque, const char *line), void *opaque)
{
  srv->log = log;
  srv->log_opaque = opaque;
}

/*
 * A connection turned away (refused) or a handshake hung up on to make room
 * for it (displaced), server lock held: one line at most every
 * REFUSAL_LOG_INTERVAL_S seconds, with what happened since the last one.
 */
static void note_turned_away(struct udm_nbd_server *srv, bool refused)
{
  if (refused)
    srv->refused++;
  else
    srv->displaced++;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!srv->log || before(&now, &srv->next_log))
    return;
  char line[400];
  if (srv->refused && srv->displaced)
    snprintf(line, sizeof line,
             "NBD: %u new connection(s) closed unanswered: %u connections at once is the "
             "limit (and %u handshake(s) closed to make room)",
             srv->refused, srv->max_conns, srv->displaced);
  else if (srv->refused)
    snprintf(line, sizeof line,
             "NBD: %u new connection(s) closed unanswered: %u connections at once is the limit",
             srv->refused, srv->max_conns);
  else
    snprintf(line, sizeof line,
             "NBD: %u handshake(s) closed to make room for new connections: %u clients "
             "may be in the handshake at once (a quarter of the limit of %u connections)",
             srv->displaced, handshakes_max(srv), srv->max_conns);
  srv->log(srv->log_opaque, line);
  srv->refused = srv->displaced = 0;
  srv->next_log = now;
  srv->next_log.tv_sec += REFUSAL_LOG_INTERVAL_S;
}

static int add_listener(struct udm_nbd_server *srv, int fd, char *unix_path, bool tcp)
{
  if (srv->nlisteners == LISTEN_MAX) {
    close(fd);
    free(unix_path);
    return udm_error_set(EMFILE, "nbd server: more than %d listening sockets", LISTEN_MAX);
  }
  struct listener *l = &srv->listeners[srv->nlisteners++];
  l->fd = fd;
  l->unix_path = unix_path;
  l->tcp = tcp;
  l->srv = srv;
  return 0;
}

/* A socket file nobody answers on is stale: remove it.  A live one is not ours. */
static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode))
    return -EEXIST;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return -errno;
  int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
  close(fd);
  if (r == 0)
    return -EADDRINUSE;
  return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int udm_nbd_server_listen_unix(struct udm_nbd_server *srv, const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return udm_error_set(ENAMETOOLONG, "nbd server: socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int r = remove_stale(path, &sa);
  if (r < 0)
    return udm_error_set(-r, "nbd server: %s: %s", path,
                     r == -EEXIST ? "exists and is not a socket"
                     : r == -EADDRINUSE ? "another server is listening there"
                                        : strerror(-r));
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return udm_error_set(errno, "nbd server: socket: %s", strerror(errno));
  set_cloexec(fd);
  /*
   * Mode 0600: the socket gives full access to every device.  chmod after
   * bind rather than umask, which is process-wide and would race with other
   * threads; connecting needs write permission, which the usual umask
   * already denies to others in between.
   */
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 ||
      listen(fd, 128) < 0) {
    int e = errno;
    close(fd);
    return udm_error_set(e, "nbd server: cannot listen on %s: %s", path, strerror(e));
  }
  char *copy = strdup(path);
  if (!copy) {
    close(fd);
    unlink(path);
    return udm_error_set(ENOMEM, "nbd server: out of memory");
  }
  return add_listener(srv, fd, copy, false);
}

int udm_nbd_server_listen_tcp(struct udm_nbd_server *srv, const char *host,
                              const char *port)
{
  /* No AI_PASSIVE: without a host, getaddrinfo gives the loopback addresses. */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res;
  int r = getaddrinfo(host, port ? port : "10809", &hints, &res);
  if (r != 0)
    return udm_error_set(EINVAL, "nbd server: %s:%s: %s", host ? host : "loopback",
                     port ? port : "10809", gai_strerror(r));
  int bound = 0, e = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    set_cloexec(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 128) < 0) {
      e = errno;
      close(fd);
      continue;
    }
    if (add_listener(srv, fd, NULL, true) < 0) {
      freeaddrinfo(res);
      return -1;
    }
    bound++;
  }
  freeaddrinfo(res);
  if (!bound)
    return udm_error_set(e ? e : EADDRNOTAVAIL, "nbd server: cannot listen on %s:%s: %s",
                         host ? host : "loopback", port ? port : "10809", strerror(e));
  return 0;
}

static void conn_free(struct nbd_conn *c)
{
#ifdef UDM_NBD_TLS
  nbd_tls_free(c);
#endif
  if (c->fd >= 0)
    close(c->fd);
  free(c->meta_export);
  free(c->rbuf);
  free(c);
}

/*
 * Hang up on c, still in the handshake (server lock held): its thread's
 * next read or write fails, and it finishes.  Its slot is free at once.
 */
static void evict(struct udm_nbd_server *srv, struct nbd_conn *c)
{
  c->evicted = true;
  c->handshaking = false;
  srv->nhandshaking--;
  srv->nlive--;
  shutdown(c->fd, SHUT_RDWR);
}

/* Leave the handshake; false when the server hung up on us meanwhile. */
static bool handshake_done(struct nbd_conn *c)
{
  struct udm_nbd_server *srv = c->srv;
  pthread_mutex_lock(&srv->lock);
  bool ok = !c->evicted;
  if (ok) {
    c->handshaking = false;
    srv->nhandshaking--;
  }
  pthread_mutex_unlock(&srv->lock);
  return ok;
}

static void *conn_main(void *arg)
{
  struct nbd_conn *c = arg;
  int r = nbd_handshake(c);
  bool ok = handshake_done(c) && r == 0;
  if (ok) {
    udm_device_open(c->dev);
    nbd_transmit(c);
  } else if (c->dev) { /* chosen, but hung up on before it was opened */
    udm_device_unref(c->dev);
    c->dev = NULL;
  }
  /* Hang up and let the device go now (so that it can be removed); the
   * memory goes when the connection is reaped. */
#ifdef UDM_NBD_TLS
  nbd_tls_bye(c); /* one thread left: the close_notify is safe to send */
#endif
  shutdown(c->fd, SHUT_RDWR);
  if (c->dev) {
    udm_device_close(c->dev);
    udm_device_unref(c->dev);
    c->dev = NULL;
  }
  pthread_mutex_lock(&c->srv->lock);
  c->finished = true;
  if (!c->evicted)
    c->srv->nlive--;
  pthread_mutex_unlock(&c->srv->lock);
  return NULL;
}

/*
 * Hang up on handshakes past their deadline (server lock held).  Returns
 * the milliseconds until the next deadline, or -1 when none is pending.
 */
static int expire_handshakes(struct udm_nbd_server *srv)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const struct timespec *next = NULL;
  for (struct nbd_conn *c = srv->conns; c; c = c->next) {
    if (!c->handshaking)
      continue;
    if (!before(&now, &c->handshake_deadline))
      evict(srv, c);
    else if (!next || before(&c->handshake_deadline, next))
      next = &c->handshake_deadline;
  }
  if (!next)
    return -1;
  int64_t ms = (int64_t)(next->tv_sec - now.tv_sec) * 1000 +
               (next->tv_nsec - now.tv_nsec) / 1000000 + 1;
  return ms < 1 ? 1 : ms > 60000 ? 60000 : (int)ms;
}

/* The connection longest in the handshake (server lock held), or NULL. */
static struct nbd_conn *oldest_handshake(struct udm_nbd_server *srv)
{
  struct nbd_conn *oldest = NULL;
  for (struct nbd_conn *c = srv->conns; c; c = c->next)
    if (c->handshaking && (!oldest || before(&c->handshake_deadline,
                                             &oldest->handshake_deadline)))
      oldest = c;
  return oldest;
}

/* Join and free finished connections (all of them when `all`). */
static void reap(struct udm_nbd_server *srv, bool all)
{
  for (;;) {
    struct nbd_conn *victim = NULL;
    pthread_mutex_lock(&srv->lock);
    for (struct nbd_conn **p = &srv->conns; *p; p = &(*p)->next) {
      if (all || (*p)->finished) {
        victim = *p;
        *p = victim->next;
        srv->nconns--;
        break;
      }
    }
    pthread_mutex_unlock(&srv->lock);
    if (!victim)
      return;
    pthread_join(victim->thread, NULL);
    conn_free(victim);
  }
}

/* Serve fd on a new connection thread: 0, or -errno when it was refused (fd closed). */
static int start_conn(struct udm_nbd_server *srv, int fd, bool tcp)
{
  struct nbd_conn *c = calloc(1, sizeof *c);
  if (!c || !(c->rbuf = malloc(NBD_RBUF_SIZE))) {
    free(c);
    close(fd);
    return -ENOMEM;
  }
  c->srv = srv;
  c->ctx = srv->ctx;
  c->fd = fd;
  c->tls_mode = tcp || srv->tls_mode == UDM_NBD_TLS_OFF ? (int)srv->tls_mode
                                                        : (int)UDM_NBD_TLS_ON;
  c->handshaking = true;
  clock_gettime(CLOCK_MONOTONIC, &c->handshake_deadline);
  c->handshake_deadline.tv_sec += (time_t)(srv->handshake_ms / 1000);
  c->handshake_deadline.tv_nsec += (long)(srv->handshake_ms % 1000) * 1000000L;
  if (c->handshake_deadline.tv_nsec >= 1000000000L) {
    c->handshake_deadline.tv_sec++;
    c->handshake_deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&srv->lock);
  /*
   * Handshakes only ever displace handshakes: the one in it longest makes
   * room for the newcomer.  Established connections are never displaced.
   */
  if (srv->nhandshaking >= handshakes_max(srv) || srv->nlive >= srv->max_conns) {
    struct nbd_conn *old = oldest_handshake(srv);
    if (old) {
      evict(srv, old);
      note_turned_away(srv, false);
    }
  }
  /* Evicted ones leave the list when their thread is joined: bound it too. */
  int r = srv->nlive >= srv->max_conns || srv->nconns >= 2 * srv->max_conns ? -EMFILE
          : atomic_load(&srv->stopping)                                      ? -ESHUTDOWN
                                                                             : 0;
  if (r == -EMFILE)
    note_turned_away(srv, true);
  if (r == 0)
    r = -pthread_create(&c->thread, NULL, conn_main, c);
  if (r < 0) {
    pthread_mutex_unlock(&srv->lock);
    conn_free(c);
    return r;
  }
  c->next = srv->conns;
  srv->conns = c;
  srv->nconns++;
  srv->nlive++;
  srv->nhandshaking++;
  pthread_mutex_unlock(&srv->lock);
  return 0;
}

static void *accept_main(void *arg)
{
  struct listener *l = arg;
  struct udm_nbd_server *srv = l->srv;
  while (!atomic_load(&srv->stopping)) {
    struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN},
                          {.fd = srv->wake[0], .events = POLLIN}};
    pthread_mutex_lock(&srv->lock);
    int timeout = expire_handshakes(srv);
    pthread_mutex_unlock(&srv->lock);
    if (poll(p, 2, timeout) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p[1].revents)
      break;
    reap(srv, false);
    if (!(p[0].revents & POLLIN))
      continue;
    int fd = accept(l->fd, NULL, NULL);
    if (fd < 0)
      continue; /* ECONNABORTED, EMFILE...: the listener itself is fine */
    set_cloexec(fd);
    widen_unix_send_buffer(fd);
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    start_conn(srv, fd, l->tcp);
  }
  return NULL;
}

bool udm_nbd_server_tls_available(void)
{
#ifdef UDM_NBD_TLS
  return true;
#else
  return false;
#endif
}

int udm_nbd_server_set_tls(struct udm_nbd_server *srv, enum udm_nbd_tls mode)
{
  if (mode != UDM_NBD_TLS_OFF && mode != UDM_NBD_TLS_ON && mode != UDM_NBD_TLS_REQUIRE)
    return udm_error_set(EINVAL, "nbd server: TLS mode %d (off, on or require)", (int)mode);
  if (mode != UDM_NBD_TLS_OFF && !udm_nbd_server_tls_available())
    return udm_error_set(ENOTSUP, "nbd server: TLS: udm is built without GnuTLS");
  if (started(srv))
    return udm_error_set(EBUSY, "nbd server: TLS: set before udm_nbd_server_start");
  srv->tls_mode = mode;
  return 0;
}

#ifdef UDM_NBD_TLS
static int set_creds(struct udm_nbd_server *srv, struct nbd_tls_creds *creds)
{
  nbd_tls_creds_free(srv->tls);
  srv->tls = creds;
  return 0;
}
#endif

int udm_nbd_server_set_tls_certificates(struct udm_nbd_server *srv, const char *dir,
                                        bool verify_peer)
{
#ifdef UDM_NBD_TLS
  if (started(srv))
    return udm_error_set(EBUSY, "nbd server: TLS: set before udm_nbd_server_start");
  char msg[512];
  struct nbd_tls_creds *creds;
  int r = nbd_tls_creds_x509(&creds, dir, verify_peer, msg, sizeof msg);
  if (r < 0)
    return udm_error_set(-r, "nbd server: %s", msg);
  return set_creds(srv, creds);
#else
  (void)srv;
  (void)dir;
  (void)verify_peer;
  return udm_error_set(ENOTSUP, "nbd server: TLS: udm is built without GnuTLS");
#endif
}

int udm_nbd_server_set_tls_psk(struct udm_nbd_server *srv, const char *file)
{
#ifdef UDM_NBD_TLS
  if (started(srv))
    return udm_error_set(EBUSY, "nbd server: TLS: set before udm_nbd_server_start");
  char msg[512];
  struct nbd_tls_creds *creds;
  int r = nbd_tls_creds_psk(&creds, file, msg, sizeof msg);
  if (r < 0)
    return udm_error_set(-r, "nbd server: %s", msg);
  return set_creds(srv, creds);
#else
  (void)srv;
  (void)file;
  return udm_error_set(ENOTSUP, "nbd server: TLS: udm is built without GnuTLS");
#endif
}

int nbd_server_start_tls(struct nbd_conn *c)
{
#ifdef UDM_NBD_TLS
  return c->srv->tls ? nbd_tls_start(c, c->srv->tls) : -ENOTSUP;
#else
  (void)c;
  return -ENOTSUP;
#endif
}

int udm_nbd_server_serve_fd(struct udm_nbd_server *srv, int fd)
{
  reap(srv, false);
  set_cloexec(fd);
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  int r = start_conn(srv, fd, false); /* as a Unix socket: TLS offered, never required */
  if (r < 0)
    return udm_error_set(-r, "nbd server: cannot serve the connection: %s",
                     r == -EMFILE ? "too many connections" : strerror(-r));
  return 0;
}

int udm_nbd_server_start(struct udm_nbd_server *srv)
{
  if (srv->nlisteners == 0)
    return udm_error_set(EINVAL, "nbd server: start: no listening socket");
  if (srv->tls_mode != UDM_NBD_TLS_OFF && !srv->tls)
    return udm_error_set(EINVAL, "nbd server: TLS %s needs certificates or a PSK file",
                     srv->tls_mode == UDM_NBD_TLS_ON ? "on" : "require");
  for (unsigned i = 0; i < srv->nlisteners; i++) {
    struct listener *l = &srv->listeners[i];
    if (l->running)
      continue;
    int r = pthread_create(&l->thread, NULL, accept_main, l);
    if (r != 0)
      return udm_error_set(r, "nbd server: cannot start a thread: %s", strerror(r));
    l->running = true;
  }
  return 0;
}

void udm_nbd_server_free(struct udm_nbd_server *srv)
{
  if (!srv)
    return;
  atomic_store(&srv->stopping, true);
  if (write(srv->wake[1], "x", 1) < 0) {
    /* A full pipe already wakes everyone. */
  }
  for (unsigned i = 0; i < srv->nlisteners; i++) {
    struct listener *l = &srv->listeners[i];
    if (l->running)
      pthread_join(l->thread, NULL);
    close(l->fd);
    if (l->unix_path) {
      unlink(l->unix_path);
      free(l->unix_path);
    }
  }
  /* Wake every reader; in-flight requests complete, devices are flushed. */
  pthread_mutex_lock(&srv->lock);
  for (struct nbd_conn *c = srv->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&srv->lock);
  reap(srv, true);
  close(srv->wake[0]);
  close(srv->wake[1]);
  pthread_mutex_destroy(&srv->lock);
#ifdef UDM_NBD_TLS
  nbd_tls_creds_free(srv->tls);
#endif
  free(srv);
}
