/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm's NBD server: every device of a udm_ctx is an export named after it.
 * Used by udmd; usable by any program that owns a udm_ctx.
 * Functions return 0 / a pointer, or -1 / NULL with udm_errmsg() set.
 */
#ifndef UDM_NBD_SERVER_H
#define UDM_NBD_SERVER_H

#include <stdbool.h>

#include <udm/udm.h>

struct udm_nbd_server;

/* TLS on the server's TCP listeners (NBD_OPT_STARTTLS). */
enum udm_nbd_tls {
  UDM_NBD_TLS_OFF,     /* STARTTLS refused (the default) */
  UDM_NBD_TLS_ON,      /* offered: each client chooses */
  UDM_NBD_TLS_REQUIRE, /* nothing but STARTTLS or ABORT before TLS is up */
};

struct udm_nbd_server *udm_nbd_server_new(struct udm_ctx *ctx);
/* Listen on a Unix socket at path (created mode 0600, replaced if stale). */
int udm_nbd_server_listen_unix(struct udm_nbd_server *srv, const char *path);
/*
 * Listen on TCP host:port (only when the user asks for it).  host NULL means
 * the loopback addresses (127.0.0.1 and ::1); every interface only when
 * asked by address ("0.0.0.0", "::").  port NULL is 10809.
 */
int udm_nbd_server_listen_tcp(struct udm_nbd_server *srv, const char *host,
                              const char *port);
/*
 * How long a client may take from connecting to choosing an export
 * (default 10 s): a connection still in the handshake after it is closed.
 * At most a quarter of the connection slots may be in the handshake at
 * once; a new connection beyond that (or beyond the total) takes the slot
 * of the one that has been in the handshake longest, so idle or slow
 * handshakes never lock out clients that complete theirs, and never take
 * the slot of an established client.  Affects connections accepted later.
 */
int udm_nbd_server_set_handshake_timeout(struct udm_nbd_server *srv, unsigned ms);
/*
 * At most n connections at once (default 1024; 1 to 65536), a quarter of
 * them (at least one) in the handshake.  A connection beyond the limit when
 * no handshake can make room is accepted and closed at once, before the
 * server's first bytes: the fixed newstyle handshake starts with the
 * server's greeting and has no message to refuse a client before its
 * options, so the client sees the connection end (libnbd: "recv: server
 * disconnected unexpectedly").  Set before udm_nbd_server_start (EBUSY
 * after).
 */
int udm_nbd_server_set_max_connections(struct udm_nbd_server *srv, unsigned n);
/*
 * Where the server says what a client cannot see: connections closed at the
 * limit and handshakes closed to make room, one line at most every 10 s
 * (counting what happened since the last).  Called with the server's lock
 * held: log must not call the server.  NULL (the default): nothing said.
 */
void udm_nbd_server_set_log(struct udm_nbd_server *srv,
                            void (*log)(void *opaque, const char *line), void *opaque);
/*
 * TLS, when built with GnuTLS (else these fail with ENOTSUP).  The mode
 * applies to the TCP listeners; Unix sockets, owner-only by their mode,
 * offer TLS whenever it is on but never require it.  Credentials are one of:
 *  - X.509: DIR holds server-cert.pem, server-key.pem and ca-cert.pem
 *    (ca-crl.pem if present), the layout of nbdkit's --tls-certificates;
 *    with verify_peer, clients must present a certificate the CA signed;
 *  - PSK: FILE as psktool writes it ("identity:hexkey" lines), re-read by
 *    udm at each handshake (into locked memory, wiped), so keys can be
 *    changed without a restart; the X.509 private key is read the same way.
 * Set the mode and credentials before udm_nbd_server_start(), which
 * refuses a mode other than OFF without credentials; afterwards they are
 * refused (EBUSY), since connections read them without a lock.
 */
bool udm_nbd_server_tls_available(void);
int udm_nbd_server_set_tls(struct udm_nbd_server *srv, enum udm_nbd_tls mode);
int udm_nbd_server_set_tls_certificates(struct udm_nbd_server *srv, const char *dir,
                                        bool verify_peer);
int udm_nbd_server_set_tls_psk(struct udm_nbd_server *srv, const char *file);
/*
 * Serve one socket that is already connected (inetd style, or one end of a
 * socketpair): the server owns fd from now on, whatever the result, and
 * treats it as an accepted connection (same limits, same timeouts).  Needs
 * no listener and no udm_nbd_server_start.
 */
int udm_nbd_server_serve_fd(struct udm_nbd_server *srv, int fd);
/* Start accepting on every listening socket, in background threads. */
int udm_nbd_server_start(struct udm_nbd_server *srv);
/* Stop accepting, close every connection (flushing first), join all threads. */
void udm_nbd_server_free(struct udm_nbd_server *srv);

#endif
