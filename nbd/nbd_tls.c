/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD over TLS with GnuTLS.
 *
 * The server loads its credentials once (X.509 certificates or a PSK file)
 * and shares them read-only between sessions, which GnuTLS allows.  A
 * session is made when a client sends NBD_OPT_STARTTLS; from then on every
 * byte of the connection goes through it.
 *
 * Threads: in the transmission phase a connection has a reader (receives)
 * and a sender (sends; nbd_transmit.c lets no other thread send on a TLS
 * connection).  GnuTLS allows one thread receiving and one sending on a
 * session, provided nobody re-handshakes: udm never asks for one, a TLS 1.2
 * client's renegotiation attempt ends the connection (GNUTLS_E_REHANDSHAKE
 * is an error here), and TLS 1.3 key updates asked by the client are
 * answered by GnuTLS on the next send, from the sender.  The handshake and
 * the final close_notify run while the connection has a single thread.
 *
 * Secrets: the server's private key and the PSK file are read by udm into
 * locked memory excluded from core dumps (volumes/secure.c), handed to
 * GnuTLS from there and wiped.  What GnuTLS keeps is its own (ordinary
 * heap, neither locked nor excluded from dumps): the private key, parsed
 * into the credentials by gnutls_certificate_set_x509_key_mem2, until
 * nbd_tls_creds_free; a client's PSK, which the lookup callback hands over
 * in memory from gnutls_malloc, as its manual asks, for the handshake; and
 * each session's keys until gnutls_deinit.  (GnuTLS offers no allocator
 * hook since 3.3.0: gnutls_global_set_mem_functions is deprecated and
 * replaces nothing.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "nbd_conn.h"
#include "nbd_tls.h"
#include "secure.h"

/* TLS 1.2 and 1.3 only, as the NBD protocol asks of a default. */
#define PRIORITY_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* PSK with (EC)DHE only: a stolen key must not decrypt recorded sessions. */
#define PRIORITY_PSK PRIORITY_X509 ":+ECDHE-PSK:+DHE-PSK"
/* Largest plaintext record: what one send coalesces small pieces into. */
#define RECORD_MAX 16384u
/* A PSK file larger than this is not a key file. */
#define PSK_FILE_MAX (1u << 20)
/* Nor is a certificate or key file larger than this. */
#define PEM_FILE_MAX (1u << 20)

struct nbd_tls_creds {
  gnutls_certificate_credentials_t x509;
  gnutls_psk_server_credentials_t psk;
  char *psk_file;
  gnutls_priority_t priority;
  bool verify_peer;
};

void nbd_tls_creds_free(struct nbd_tls_creds *cr)
{
  if (!cr)
    return;
  if (cr->x509)
    gnutls_certificate_free_credentials(cr->x509);
  if (cr->psk)
    gnutls_psk_free_server_credentials(cr->psk);
  if (cr->priority)
    gnutls_priority_deinit(cr->priority);
  free(cr->psk_file);
  free(cr);
}

/*
 * FILE (a regular file of at most max bytes) into *out, NUL-terminated, in
 * locked memory when secret (udm_secure_free it), else malloc's; its
 * length in *len.  0, or a negative errno with msg naming the file (what
 * says what it is).
 */
static int read_file(const char *file, size_t max, bool secret, const char *what,
                     char **out, size_t *len, char *msg, size_t msglen)
{
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(msg, msglen, "%s %s: %s", what, file, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uintmax_t)st.st_size > max) {
    close(fd);
    snprintf(msg, msglen, "%s %s: not a regular file of at most %zu bytes", what, file, max);
    return -EINVAL;
  }
  size_t size = (size_t)st.st_size;
  char *text = secret ? udm_secure_alloc(size + 1) : malloc(size + 1);
  if (!text) {
    close(fd);
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  size_t got = 0;
  int e = 0;
  while (got < size) {
    ssize_t n = read(fd, text + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      e = errno;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (e) {
    secret ? udm_secure_free(text) : free(text);
    snprintf(msg, msglen, "%s %s: %s", what, file, strerror(e));
    return -e;
  }
  text[got] = '\0';
  *out = text;
  *len = got;
  return 0;
}

static int creds_new(struct nbd_tls_creds **out, const char *priority, char *msg,
                     size_t msglen)
{
  struct nbd_tls_creds *cr = calloc(1, sizeof *cr);
  if (!cr) {
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  int r = gnutls_priority_init(&cr->priority, priority, NULL);
  if (r < 0) {
    snprintf(msg, msglen, "TLS priority %s: %s", priority, gnutls_strerror(r));
    free(cr);
    return -EINVAL;
  }
  *out = cr;
  return 0;
}

/* DIR/NAME into path; false when it does not fit. */
static bool join(char *path, size_t len, const char *dir, const char *name)
{
  int n = snprintf(path, len, "%s/%s", dir, name);
  return n > 0 && (size_t)n < len;
}

/* A certificate (chain) and its private key: the key read into locked memory, wiped after. */
static int set_key(gnutls_certificate_credentials_t x509, const char *cert, const char *key,
                   char *msg, size_t msglen)
{
  char *cert_text, *key_text;
  size_t cert_len, key_len;
  int r = read_file(cert, PEM_FILE_MAX, false, "TLS certificate", &cert_text, &cert_len, msg,
                    msglen);
  if (r < 0)
    return r;
  r = read_file(key, PEM_FILE_MAX, true, "TLS private key", &key_text, &key_len, msg, msglen);
  if (r < 0) {
    free(cert_text);
    return r;
  }
  gnutls_datum_t c = {(unsigned char *)cert_text, (unsigned)cert_len};
  gnutls_datum_t k = {(unsigned char *)key_text, (unsigned)key_len};
  r = gnutls_certificate_set_x509_key_mem2(x509, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
  udm_secure_free(key_text);
  free(cert_text);
  if (r < 0) {
    snprintf(msg, msglen, "TLS certificates: %s with server-key.pem: %s", cert,
             gnutls_strerror(r));
    return -EINVAL;
  }
  return 0;
}

int nbd_tls_creds_x509(struct nbd_tls_creds **out, const char *dir, bool verify_peer,
                       char *msg, size_t msglen)
{
  char ca[4096], crl[4096], cert[4096], key[4096];
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    snprintf(msg, msglen, "TLS certificates: %s is not a directory", dir);
    return -ENOTDIR;
  }
  if (!join(ca, sizeof ca, dir, "ca-cert.pem") || !join(crl, sizeof crl, dir, "ca-crl.pem") ||
      !join(cert, sizeof cert, dir, "server-cert.pem") ||
      !join(key, sizeof key, dir, "server-key.pem")) {
    snprintf(msg, msglen, "TLS certificates: the path %s is too long", dir);
    return -ENAMETOOLONG;
  }
  struct nbd_tls_creds *cr;
  int r = creds_new(&cr, PRIORITY_X509, msg, msglen);
  if (r < 0)
    return r;
  cr->verify_peer = verify_peer;
  r = gnutls_certificate_allocate_credentials(&cr->x509);
  if (r < 0) {
    snprintf(msg, msglen, "TLS certificates: %s", gnutls_strerror(r));
    nbd_tls_creds_free(cr);
    return -ENOMEM;
  }
  const char *bad = NULL;
  if (access(ca, R_OK) == 0) {
    r = gnutls_certificate_set_x509_trust_file(cr->x509, ca, GNUTLS_X509_FMT_PEM);
    if (r == 0) /* the count of certificates read: none is an error too */
      r = GNUTLS_E_NO_CERTIFICATE_FOUND;
    if (r < 0)
      bad = ca;
  } else if (verify_peer) {
    snprintf(msg, msglen,
             "TLS certificates: verifying clients needs the CA certificate %s: %s", ca,
             strerror(errno));
    nbd_tls_creds_free(cr);
    return -ENOENT;
  }
  if (!bad && access(crl, R_OK) == 0) {
    r = gnutls_certificate_set_x509_crl_file(cr->x509, crl, GNUTLS_X509_FMT_PEM);
    if (r < 0)
      bad = crl;
  }
  if (!bad) {
    for (const char *f = cert; f; f = f == cert ? key : NULL)
      if (access(f, R_OK) < 0) {
        snprintf(msg, msglen, "TLS certificates: %s: %s", f, strerror(errno));
        nbd_tls_creds_free(cr);
        return -ENOENT;
      }
    r = set_key(cr->x509, cert, key, msg, msglen);
    if (r < 0) {
      nbd_tls_creds_free(cr);
      return r;
    }
  }
  if (bad) {
    snprintf(msg, msglen, "TLS certificates: %s: %s", bad, gnutls_strerror(r));
    nbd_tls_creds_free(cr);
    return -EINVAL;
  }
  *out = cr;
  return 0;
}

static bool is_hex(int ch)
{
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/*
 * Walk a psktool file's text: "identity:hexkey" lines (empty lines allowed).
 * With identity NULL, check every line (at least one key); else find that
 * identity and decode its key into *key (gnutls_malloc'ed, as GnuTLS wants
 * it).  0 (found, or all good), 1 (no such identity), or a negative errno
 * with msg naming the line.
 */
static int walk_psk(const char *file, char *text, const char *identity, gnutls_datum_t *key,
                    char *msg, size_t msglen)
{
  unsigned line = 0, keys = 0;
  for (char *p = text; *p;) {
    char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    size_t next = end ? len + 1 : len; /* taken before a '\r' is cut off */
    line++;
    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len > 0) {
      char *colon = memchr(p, ':', len);
      size_t hex = colon ? len - (size_t)(colon + 1 - p) : 0;
      bool ok = colon && colon > p && hex > 0 && hex % 2 == 0;
      for (size_t i = 0; ok && i < hex; i++)
        ok = is_hex((unsigned char)colon[1 + i]);
      if (!ok) {
        snprintf(msg, msglen,
                 "TLS PSK file %s, line %u: expected IDENTITY:HEXKEY (as psktool writes)",
                 file, line);
        return -EINVAL;
      }
      keys++;
      if (identity && strlen(identity) == (size_t)(colon - p) &&
          memcmp(identity, p, (size_t)(colon - p)) == 0) {
        key->size = (unsigned)(hex / 2);
        key->data = gnutls_malloc(key->size);
        if (!key->data)
          return -ENOMEM;
        for (size_t i = 0; i < key->size; i++) {
          char two[3] = {colon[1 + 2 * i], colon[2 + 2 * i], 0};
          key->data[i] = (unsigned char)strtoul(two, NULL, 16);
          udm_wipe(two, sizeof two);
        }
        return 0;
      }
    }
    p += next;
  }
  if (identity)
    return 1;
  if (keys == 0) {
    snprintf(msg, msglen, "TLS PSK file %s holds no key", file);
    return -EINVAL;
  }
  return 0;
}

/*
 * The PSK of a client's identity, for GnuTLS, at each handshake: the file is
 * read again (keys can change without a restart) into locked memory and
 * wiped.  0 with *key set; 1 for an unknown identity (GnuTLS then goes on
 * with a random key, so the client learns only that the handshake failed);
 * -1 on an error.
 */
static int psk_lookup(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
  const struct nbd_tls_creds *cr = gnutls_session_get_ptr(s);
  char msg[512], *text;
  size_t len;
  if (!cr || read_file(cr->psk_file, PSK_FILE_MAX, true, "TLS PSK file", &text, &len, msg,
                       sizeof msg) < 0)
    return -1;
  int r = walk_psk(cr->psk_file, text, identity, key, msg, sizeof msg);
  udm_secure_free(text);
  return r < 0 ? -1 : r;
}

int nbd_tls_creds_psk(struct nbd_tls_creds **out, const char *file, char *msg,
                      size_t msglen)
{
  /* A broken file is an error at start rather than a refused client later. */
  char *text;
  size_t len;
  int r = read_file(file, PSK_FILE_MAX, true, "TLS PSK file", &text, &len, msg, msglen);
  if (r < 0)
    return r;
  r = walk_psk(file, text, NULL, NULL, msg, msglen);
  udm_secure_free(text);
  if (r < 0)
    return r;
  struct nbd_tls_creds *cr;
  r = creds_new(&cr, PRIORITY_PSK, msg, msglen);
  if (r < 0)
    return r;
  cr->psk_file = strdup(file);
  if (!cr->psk_file) {
    snprintf(msg, msglen, "out of memory");
    nbd_tls_creds_free(cr);
    return -ENOMEM;
  }
  r = gnutls_psk_allocate_server_credentials(&cr->psk);
  if (r < 0) {
    snprintf(msg, msglen, "TLS PSK file %s: %s", file, gnutls_strerror(r));
    nbd_tls_creds_free(cr);
    return -ENOMEM;
  }
  gnutls_psk_set_server_credentials_function(cr->psk, psk_lookup);
  *out = cr;
  return 0;
}

static gnutls_session_t session_of(struct nbd_conn *c)
{
  return (gnutls_session_t)c->tls;
}

int nbd_tls_start(struct nbd_conn *c, const struct nbd_tls_creds *cr)
{
  gnutls_session_t s;
  int r = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
  if (r < 0)
    return -ENOMEM;
  r = gnutls_priority_set(s, cr->priority);
  if (r == 0 && cr->x509)
    r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cr->x509);
  if (r == 0 && cr->psk)
    r = gnutls_credentials_set(s, GNUTLS_CRD_PSK, cr->psk);
  gnutls_session_set_ptr(s, (void *)cr); /* for psk_lookup, which only reads it */
  if (r < 0) {
    gnutls_deinit(s);
    return -EINVAL;
  }
  if (cr->x509 && cr->verify_peer) {
    /* A client without a certificate our CA signed fails the handshake. */
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(s, NULL, 0);
  }
  gnutls_transport_set_int(s, c->fd);
  /* The handshake deadline (nbd_server.c) shuts the socket down: no timer here. */
  do
    r = gnutls_handshake(s);
  while (r < 0 && !gnutls_error_is_fatal(r));
  if (r < 0) {
    /* Tell the client why (a bad certificate, an unknown PSK identity...). */
    gnutls_alert_send_appropriate(s, r);
    gnutls_deinit(s);
    return -EPROTO;
  }
  c->tls = s;
  return 0;
}

ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len)
{
  for (;;) {
    ssize_t n = gnutls_record_recv(session_of(c), buf, len);
    if (n > 0)
      return n;
    if (n == 0)
      return -EPIPE; /* close_notify */
    if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
      continue;
    /* Anything else (a re-handshake request, a bad record, a cut): the end. */
    return n == GNUTLS_E_PREMATURE_TERMINATION ? -EPIPE : -EPROTO;
  }
}

bool nbd_tls_pending(struct nbd_conn *c)
{
  return gnutls_record_check_pending(session_of(c)) > 0;
}

static int send_all(gnutls_session_t s, const unsigned char *p, size_t len)
{
  while (len > 0) {
    ssize_t n = gnutls_record_send(s, p, len);
    /* GnuTLS keeps a record it could not finish: resume it with no new data. */
    while (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
      n = gnutls_record_send(s, NULL, 0);
    if (n <= 0)
      return -EPIPE;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/*
 * Small pieces (reply headers, short payloads) are gathered into one record
 * so that a reply does not cost a record (29 bytes of overhead and a
 * cipher call) per piece; a large payload goes out directly once the
 * gathered part is full.
 */
int nbd_tls_sendv(struct nbd_conn *c, const struct iovec *iov, int iovcnt)
{
  gnutls_session_t s = session_of(c);
  unsigned char stage[RECORD_MAX];
  size_t used = 0;
  int r = 0;
  for (int i = 0; i < iovcnt && r == 0; i++) {
    const unsigned char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    while (len > 0 && r == 0) {
      if (used == 0 && len >= RECORD_MAX) {
        r = send_all(s, p, len);
        break;
      }
      size_t n = RECORD_MAX - used < len ? RECORD_MAX - used : len;
      memcpy(stage + used, p, n);
      used += n;
      p += n;
      len -= n;
      if (used == RECORD_MAX) {
        r = send_all(s, stage, used);
        used = 0;
      }
    }
  }
  if (r == 0 && used)
    r = send_all(s, stage, used);
  return r;
}

void nbd_tls_bye(struct nbd_conn *c)
{
  if (!c->tls)
    return;
  /* Best effort: a client that does not read must not hold us here. */
  int fl = fcntl(c->fd, F_GETFL);
  if (fl >= 0 && fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) == 0)
    gnutls_bye(session_of(c), GNUTLS_SHUT_WR);
}

void nbd_tls_free(struct nbd_conn *c)
{
  if (c->tls)
    gnutls_deinit(session_of(c));
  c->tls = NULL;
}
