/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One client connection of udm's NBD server, shared by the files of nbd/:
 * nbd_server.c accepts and reaps, nbd_handshake.c negotiates,
 * nbd_transmit.c serves requests, nbd_socket.c moves bytes.
 * Internal convention: functions return 0 or a negative errno.
 */
#ifndef UDM_NBD_CONN_H
#define UDM_NBD_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <udm/udm.h>

struct udm_nbd_server;

/* Received bytes not yet consumed: requests are read in bulk, not 28 bytes a call. */
#define NBD_RBUF_SIZE (64u * 1024)

struct nbd_conn {
  struct udm_nbd_server *srv;
  struct udm_ctx *ctx;
  int fd;
  pthread_t thread;
  bool finished;           /* the thread has returned; under the server's lock */
  /*
   * Under the server's lock: still in the handshake, which must end by
   * handshake_deadline (CLOCK_MONOTONIC); evicted: hung up by the server
   * (deadline passed, or its slot taken by a newer connection).
   */
  bool handshaking;
  bool evicted;
  struct timespec handshake_deadline;
  struct nbd_conn *next;   /* the server's list, under its lock */

  /* Negotiated in the handshake. */
  bool no_zeroes;
  bool structured;
  bool meta_allocation;    /* base:allocation selected */
  bool meta_bad;           /* udm:bad selected */
  char *meta_export;       /* the export that selection was made for */

  /* The export, held open for the life of the connection. */
  struct udm_device *dev;
  uint64_t size;
  uint16_t tflags;         /* NBD_FLAG_* sent to the client */

  /*
   * Received bytes: the handshake's, then the transmission reader's (one
   * thread at a time; nbd_transmit.c has the rest of the transmission state).
   */
  unsigned char *rbuf;
  size_t rpos, rlen;
};

/* nbd_socket.c */
/* Read exactly len bytes through the connection's buffer; -EPIPE at EOF. */
int nbd_recv(struct nbd_conn *c, void *buf, size_t len);
/* Read and throw away len bytes (an option or payload we refuse). */
int nbd_discard(struct nbd_conn *c, uint64_t len);
/* Send all of iov (which is modified); never raises SIGPIPE. */
int nbd_sendv(int fd, struct iovec *iov, int iovcnt);
int nbd_send(int fd, const void *buf, size_t len);
/* What of iov one sendmsg() takes without waiting: bytes (0 if none), or -errno. */
ssize_t nbd_sendv_nowait(int fd, const struct iovec *iov, int iovcnt);
/* Has the client sent more (or hung up)?  Never waits. */
bool nbd_readable(int fd);

/* nbd_handshake.c: 0 when the client chose an export (c->dev set), else < 0. */
int nbd_handshake(struct nbd_conn *c);
/* Transmission flags and block sizes for an export. */
uint16_t nbd_export_flags(struct udm_device *dev, bool structured);

/*
 * nbd_transmit.c: serve requests until the client leaves or the server
 * stops, on this thread (the reader) and one sender thread; returns when
 * every request has been answered or dropped.
 */
void nbd_transmit(struct nbd_conn *c);

/* nbd_server.c: the server is stopping (refuse options with ERR_SHUTDOWN). */
bool nbd_server_stopping(const struct udm_nbd_server *srv);

#endif
