/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD over TLS (GnuTLS): the server's credentials, and a connection's TLS
 * session once the client has sent NBD_OPT_STARTTLS.  Compiled only with
 * GnuTLS (meson option tls); without it nbd_server.c refuses the TLS calls.
 * Functions return 0 or a negative errno; msg gets a reason for a human.
 */
#ifndef UDM_NBD_TLS_H
#define UDM_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct nbd_conn;
struct nbd_tls_creds;

/*
 * X.509: DIR holds server-cert.pem and server-key.pem, and ca-cert.pem
 * (needed to verify client certificates), ca-crl.pem if present: the layout
 * of nbdkit's --tls-certificates and qemu's tls-creds-x509.
 */
int nbd_tls_creds_x509(struct nbd_tls_creds **out, const char *dir, bool verify_peer,
                       char *msg, size_t msglen);
/* PSK: FILE in psktool's format, "identity:hex-key" a line. */
int nbd_tls_creds_psk(struct nbd_tls_creds **out, const char *file, char *msg,
                      size_t msglen);
void nbd_tls_creds_free(struct nbd_tls_creds *creds);

/*
 * The TLS handshake on c's socket (after the NBD_REP_ACK of STARTTLS);
 * c->tls is set only when it succeeded.
 */
int nbd_tls_start(struct nbd_conn *c, const struct nbd_tls_creds *creds);
/* Some bytes (1..len), -EPIPE at the end of the stream, or -errno. */
ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len);
/* Received and decrypted bytes GnuTLS holds, not yet read: true if any. */
bool nbd_tls_pending(struct nbd_conn *c);
/* All of iov, as few records as the pieces allow. */
int nbd_tls_sendv(struct nbd_conn *c, const struct iovec *iov, int iovcnt);
/* Tell the client we are done (close_notify), without waiting; no-op without TLS. */
void nbd_tls_bye(struct nbd_conn *c);
void nbd_tls_free(struct nbd_conn *c);

#endif
