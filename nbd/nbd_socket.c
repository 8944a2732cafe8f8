/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Moving bytes on a connection's socket.  Reads go through a per-connection
 * buffer so that a burst of queued requests costs one recv(), not one per
 * 28-byte header; large payloads bypass the buffer.  Sends never raise
 * SIGPIPE: MSG_NOSIGNAL where it exists, SO_NOSIGPIPE (set at accept) on
 * the BSDs and macOS.  After STARTTLS the bytes go through the connection's
 * TLS session instead (nbd_tls.c).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd_conn.h"
#ifdef UDM_NBD_TLS
#include "nbd_tls.h"
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static ssize_t recv_some(struct nbd_conn *c, void *buf, size_t len)
{
#ifdef UDM_NBD_TLS
  if (c->tls)
    return nbd_tls_recv(c, buf, len);
#endif
  for (;;) {
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0)
      return n;
    if (n == 0)
      return -EPIPE;
    if (errno != EINTR)
      return -errno;
  }
}

int nbd_recv(struct nbd_conn *c, void *buf, size_t len)
{
  if (len == 0)
    return 0; /* a zero-length write has no payload, and buf may be NULL */
  unsigned char *p = buf;
  size_t have = c->rlen - c->rpos;
  size_t n = have < len ? have : len;
  memcpy(p, c->rbuf + c->rpos, n);
  c->rpos += n;
  p += n;
  len -= n;
  while (len > 0) {
    ssize_t got;
    if (len >= NBD_RBUF_SIZE / 2) {
      /* A payload: straight into place, no copy. */
      got = recv_some(c, p, len);
      if (got < 0)
        return (int)got;
      p += got;
      len -= (size_t)got;
      continue;
    }
    got = recv_some(c, c->rbuf, NBD_RBUF_SIZE);
    if (got < 0)
      return (int)got;
    c->rpos = 0;
    c->rlen = (size_t)got;
    n = c->rlen < len ? c->rlen : len;
    memcpy(p, c->rbuf, n);
    c->rpos = n;
    p += n;
    len -= n;
  }
  return 0;
}

int nbd_discard(struct nbd_conn *c, uint64_t len)
{
  unsigned char sink[4096];
  while (len > 0) {
    size_t n = len < sizeof sink ? (size_t)len : sizeof sink;
    int r = nbd_recv(c, sink, n);
    if (r < 0)
      return r;
    len -= n;
  }
  return 0;
}

int nbd_sendv(struct nbd_conn *c, struct iovec *iov, int iovcnt)
{
#ifdef UDM_NBD_TLS
  if (c->tls)
    return nbd_tls_sendv(c, iov, iovcnt);
#endif
  while (iovcnt > 0) {
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = iovcnt};
    ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

ssize_t nbd_sendv_nowait(int fd, const struct iovec *iov, int iovcnt)
{
  struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt};
  for (;;) {
    ssize_t n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
      return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

bool nbd_readable(struct nbd_conn *c)
{
#ifdef UDM_NBD_TLS
  if (c->tls && nbd_tls_pending(c))
    return true; /* decrypted bytes wait inside GnuTLS, not in the socket */
#endif
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
    ;
  return n != 0; /* an error counts as readable: the next receive reports it */
}

int nbd_send(struct nbd_conn *c, const void *buf, size_t len)
{
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  return nbd_sendv(c, &iov, 1);
}
