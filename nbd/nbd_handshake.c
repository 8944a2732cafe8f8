/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fixed newstyle handshake: option haggling until the client picks an
 * export (NBD_OPT_GO or the old NBD_OPT_EXPORT_NAME) or leaves.
 *
 * Every option is read whole into a bounded buffer before it is looked at,
 * so a malformed option never desynchronises the stream: it gets an error
 * reply and the client may try again.  Only what the protocol says cannot
 * be answered (bad magic, unknown client flags, EXPORT_NAME of a missing
 * export, an option too large to be anything but an attack) closes the
 * connection.
 *
 * TLS (NBD_OPT_STARTTLS) as the protocol's FORCEDTLS mode when the listener
 * requires it: every option but STARTTLS and ABORT is refused with
 * NBD_REP_ERR_TLS_REQD until TLS is up, and EXPORT_NAME, which cannot be
 * refused, closes the connection.  With TLS merely offered, the client
 * chooses.  What was negotiated before STARTTLS (structured replies, meta
 * contexts) is forgotten: it travelled in clear and may have been altered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_server.h"

/* Longest option we read: names are at most 4096 bytes, plus a few queries. */
#define OPT_MAX (64u * 1024)
/* Options up to this size are skipped and refused; beyond it we hang up. */
#define OPT_DISCARD_MAX (1u << 20)
/* Meta context queries one option may carry. */
#define META_QUERIES_MAX 128u

static int send_reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                      uint32_t len)
{
  unsigned char h[20];
  nbd_put64(h, NBD_MAGIC_REPLY);
  nbd_put32(h + 8, opt);
  nbd_put32(h + 12, type);
  nbd_put32(h + 16, len);
  struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};
  return nbd_sendv(c, iov, len ? 2 : 1);
}

static int send_error(struct nbd_conn *c, uint32_t opt, uint32_t type, const char *msg)
{
  return send_reply(c, opt, type, msg, (uint32_t)strlen(msg));
}

/* The device behind an export name, or NULL.  The empty name is the
 * default export: the only device, when there is exactly one. */
struct one_device {
  unsigned count;
  char name[UDM_NAME_MAX + 1];
};

static int note_device(void *opaque, const char *name)
{
  struct one_device *o = opaque;
  if (o->count++ == 0)
    snprintf(o->name, sizeof o->name, "%s", name);
  return o->count > 1;
}

static struct udm_device *find_export(struct nbd_conn *c, const char *name, size_t len)
{
  char buf[UDM_NAME_MAX + 1];
  if (len > UDM_NAME_MAX || memchr(name, 0, len))
    return NULL;
  if (len == 0) {
    struct one_device o = {0};
    udm_ctx_foreach_device(c->ctx, note_device, &o);
    if (o.count != 1)
      return NULL;
    return udm_device_lookup(c->ctx, o.name);
  }
  memcpy(buf, name, len);
  buf[len] = 0;
  return udm_device_lookup(c->ctx, buf);
}

uint16_t nbd_export_flags(struct udm_device *dev, bool structured)
{
  unsigned caps = udm_device_caps(dev);
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
               NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN;
  if (structured)
    f |= NBD_FLAG_SEND_DF; /* a read is always one chunk */
  if (caps & UDM_CAP_READONLY)
    return f | NBD_FLAG_READ_ONLY;
  /* Write-zeroes always works: the core writes zero buffers when a target
   * cannot, and refuses with ENOTSUP when asked to be fast. */
  f |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  if (caps & UDM_CAP_DISCARD)
    f |= NBD_FLAG_SEND_TRIM;
  return f;
}

static int send_info(struct nbd_conn *c, uint32_t opt, const void *data, uint32_t len)
{
  return send_reply(c, opt, NBD_REP_INFO, data, len);
}

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 when transmission starts. */
static int opt_info_go(struct nbd_conn *c, uint32_t opt, const unsigned char *d,
                       uint32_t len)
{
  if (len < 6)
    return send_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
  uint32_t namelen = nbd_get32(d);
  if (namelen > len - 6)
    return send_error(c, opt, NBD_REP_ERR_INVALID, "export name overruns the option");
  const char *name = (const char *)d + 4;
  uint16_t nreq = nbd_get16(d + 4 + namelen);
  if ((uint64_t)len != 6 + (uint64_t)namelen + 2u * nreq)
    return send_error(c, opt, NBD_REP_ERR_INVALID,
                      "information request count does not match the option length");
  bool want_name = false, want_desc = false;
  for (unsigned i = 0; i < nreq; i++) {
    uint16_t t = nbd_get16(d + 6 + namelen + 2 * i);
    want_name |= t == NBD_INFO_NAME;
    want_desc |= t == NBD_INFO_DESCRIPTION;
  }
  struct udm_device *dev = find_export(c, name, namelen);
  if (!dev)
    return send_error(c, opt, NBD_REP_ERR_UNKNOWN,
                      namelen ? "no udm device of that name"
                              : "no default export: name a udm device");
  struct udm_info info;
  if (udm_device_info(dev, &info) < 0 || !info.live_table) {
    udm_device_unref(dev);
    return send_error(c, opt, NBD_REP_ERR_UNKNOWN, "the device has no active table");
  }
  uint64_t size = udm_device_size(dev);
  uint16_t flags = nbd_export_flags(dev, c->structured);
  /*
   * Clients should send whole logical blocks; smaller requests are still
   * served (the core read-modify-writes them), which the protocol allows.
   */
  uint32_t block_min = udm_device_block_size(dev);
  uint32_t block_pref = block_min > NBD_BLOCK_PREFERRED ? block_min : NBD_BLOCK_PREFERRED;
  const char *devname = udm_device_name(dev);

  unsigned char b[18];
  nbd_put16(b, NBD_INFO_EXPORT);
  nbd_put64(b + 2, size);
  nbd_put16(b + 10, flags);
  int r = send_info(c, opt, b, 12);
  if (r == 0) {
    nbd_put16(b, NBD_INFO_BLOCK_SIZE);
    nbd_put32(b + 2, block_min);
    nbd_put32(b + 6, block_pref);
    nbd_put32(b + 10, NBD_PAYLOAD_MAX);
    r = send_info(c, opt, b, 14);
  }
  if (r == 0 && want_name) {
    unsigned char nb[2 + UDM_NAME_MAX];
    size_t n = strlen(devname);
    nbd_put16(nb, NBD_INFO_NAME);
    memcpy(nb + 2, devname, n);
    r = send_info(c, opt, nb, (uint32_t)(2 + n));
  }
  if (r == 0 && want_desc) {
    static const char desc[] = "udm device";
    unsigned char db[2 + sizeof desc];
    nbd_put16(db, NBD_INFO_DESCRIPTION);
    memcpy(db + 2, desc, sizeof desc - 1);
    r = send_info(c, opt, db, (uint32_t)(sizeof db - 1));
  }
  if (r == 0)
    r = send_reply(c, opt, NBD_REP_ACK, NULL, 0);
  if (r < 0 || opt == NBD_OPT_INFO) {
    udm_device_unref(dev);
    return r;
  }
  /* Block status applies only to the export the contexts were chosen for. */
  if (!c->meta_export || strcmp(c->meta_export, devname) != 0)
    c->meta_allocation = c->meta_bad = false;
  c->dev = dev;
  c->size = size;
  c->tflags = flags;
  return 1;
}

/* NBD_OPT_EXPORT_NAME: no way to report an error, so a missing export closes. */
static int opt_export_name(struct nbd_conn *c, const unsigned char *d, uint32_t len)
{
  struct udm_device *dev = find_export(c, (const char *)d, len);
  struct udm_info info;
  if (!dev)
    return -ENOENT;
  if (udm_device_info(dev, &info) < 0 || !info.live_table) {
    udm_device_unref(dev);
    return -ENOENT;
  }
  unsigned char b[10 + 124] = {0};
  c->size = udm_device_size(dev);
  c->tflags = nbd_export_flags(dev, c->structured);
  nbd_put64(b, c->size);
  nbd_put16(b + 8, c->tflags);
  int r = nbd_send(c, b, c->no_zeroes ? 10 : sizeof b);
  if (r < 0) {
    udm_device_unref(dev);
    return r;
  }
  if (!c->meta_export || strcmp(c->meta_export, udm_device_name(dev)) != 0)
    c->meta_allocation = c->meta_bad = false;
  c->dev = dev;
  return 1;
}

struct list_ctx {
  struct nbd_conn *c;
  int r;
};

static int list_one(void *opaque, const char *name)
{
  struct list_ctx *l = opaque;
  unsigned char b[4 + UDM_NAME_MAX];
  size_t n = strlen(name);
  if (n > UDM_NAME_MAX)
    return 0;
  nbd_put32(b, (uint32_t)n);
  memcpy(b + 4, name, n);
  l->r = send_reply(l->c, NBD_OPT_LIST, NBD_REP_SERVER, b, (uint32_t)(4 + n));
  return l->r < 0;
}

static int opt_list(struct nbd_conn *c, uint32_t len)
{
  if (len != 0)
    return send_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "LIST takes no data");
  struct list_ctx l = {c, 0};
  udm_ctx_foreach_device(c->ctx, list_one, &l);
  if (l.r < 0)
    return l.r;
  return send_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int send_context(struct nbd_conn *c, uint32_t opt, uint32_t id, const char *name)
{
  unsigned char b[4 + 64];
  size_t n = strlen(name);
  nbd_put32(b, id);
  memcpy(b + 4, name, n);
  return send_reply(c, opt, NBD_REP_META_CONTEXT, b, (uint32_t)(4 + n));
}

static bool query_is(const unsigned char *q, uint32_t qlen, const char *s)
{
  return qlen == strlen(s) && memcmp(q, s, qlen) == 0;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: base:allocation, udm:bad. */
static int opt_meta(struct nbd_conn *c, uint32_t opt, const unsigned char *d,
                    uint32_t len)
{
  bool set = opt == NBD_OPT_SET_META_CONTEXT;
  if (set) { /* a SET replaces the selection even when it fails */
    c->meta_allocation = c->meta_bad = false;
    free(c->meta_export);
    c->meta_export = NULL;
  }
  if (!c->structured)
    return send_error(c, opt, NBD_REP_ERR_INVALID,
                      "negotiate structured replies first");
  if (len < 8)
    return send_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
  uint32_t namelen = nbd_get32(d);
  if (namelen > len - 8)
    return send_error(c, opt, NBD_REP_ERR_INVALID, "export name overruns the option");
  uint32_t nq = nbd_get32(d + 4 + namelen);
  if (nq > META_QUERIES_MAX)
    return send_error(c, opt, NBD_REP_ERR_TOO_BIG, "too many queries");
  /* Check the whole option before answering anything. */
  uint64_t pos = 8 + (uint64_t)namelen;
  /* LIST with no query lists every context; "base:" and "udm:" list a namespace. */
  bool alloc = nq == 0 && !set, bad = nq == 0 && !set;
  for (uint32_t i = 0; i < nq; i++) {
    if (pos + 4 > len)
      return send_error(c, opt, NBD_REP_ERR_INVALID, "query overruns the option");
    uint32_t ql = nbd_get32(d + pos);
    if (ql > len - pos - 4)
      return send_error(c, opt, NBD_REP_ERR_INVALID, "query overruns the option");
    const unsigned char *q = d + pos + 4;
    if (query_is(q, ql, NBD_META_BASE_ALLOCATION) || (!set && query_is(q, ql, "base:")))
      alloc = true;
    if (query_is(q, ql, NBD_META_UDM_BAD) || (!set && query_is(q, ql, "udm:")))
      bad = true;
    pos += 4 + (uint64_t)ql;
  }
  if (pos != len)
    return send_error(c, opt, NBD_REP_ERR_INVALID, "trailing bytes after the queries");
  struct udm_device *dev = find_export(c, (const char *)d + 4, namelen);
  if (!dev)
    return send_error(c, opt, NBD_REP_ERR_UNKNOWN, "no udm device of that name");
  char *export_name = strdup(udm_device_name(dev));
  udm_device_unref(dev);
  if (!export_name)
    return -ENOMEM;
  int r = 0;
  if (alloc)
    r = send_context(c, opt, set ? NBD_META_ID_ALLOCATION : 0, NBD_META_BASE_ALLOCATION);
  if (bad && r == 0)
    r = send_context(c, opt, set ? NBD_META_ID_BAD : 0, NBD_META_UDM_BAD);
  if (r == 0)
    r = send_reply(c, opt, NBD_REP_ACK, NULL, 0);
  if (set && (alloc || bad) && r == 0) {
    c->meta_allocation = alloc;
    c->meta_bad = bad;
    c->meta_export = export_name;
  } else {
    free(export_name);
  }
  return r;
}

/* NBD_OPT_STARTTLS: ACK, then the TLS handshake; a failed one closes. */
static int opt_starttls(struct nbd_conn *c, uint32_t len)
{
  if (len != 0)
    return send_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "STARTTLS takes no data");
  if (c->tls)
    return send_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already on");
  if (c->tls_mode == UDM_NBD_TLS_OFF)
#ifdef UDM_NBD_TLS
    return send_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                      "TLS is not enabled on this server");
#else
    return send_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP,
                      "this server is built without TLS");
#endif
  /*
   * Bytes the client sent after STARTTLS in clear would be taken as
   * protected ones (the STARTTLS injection attack): hang up.
   */
  if (c->rpos != c->rlen)
    return -EPROTO;
  int r = send_reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);
  if (r == 0)
    r = nbd_server_start_tls(c);
  if (r < 0)
    return r;
  c->structured = false;
  c->meta_allocation = c->meta_bad = false;
  free(c->meta_export);
  c->meta_export = NULL;
  return 0;
}

static int handle_option(struct nbd_conn *c, uint32_t opt, const unsigned char *d,
                         uint32_t len)
{
  if (nbd_server_stopping(c->srv) && opt != NBD_OPT_ABORT)
    return send_error(c, opt, NBD_REP_ERR_SHUTDOWN, "the server is shutting down");
  if (c->tls_mode == UDM_NBD_TLS_REQUIRE && !c->tls && opt != NBD_OPT_STARTTLS &&
      opt != NBD_OPT_ABORT) {
    if (opt == NBD_OPT_EXPORT_NAME)
      return -EACCES; /* cannot be refused: the protocol says hang up */
    return send_error(c, opt, NBD_REP_ERR_TLS_REQD,
                      "this server requires TLS: send NBD_OPT_STARTTLS first");
  }
  switch (opt) {
  case NBD_OPT_STARTTLS:
    return opt_starttls(c, len);
  case NBD_OPT_EXPORT_NAME:
    return opt_export_name(c, d, len);
  case NBD_OPT_ABORT:
    send_reply(c, opt, NBD_REP_ACK, NULL, 0);
    return -ECONNABORTED;
  case NBD_OPT_LIST:
    return opt_list(c, len);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return opt_info_go(c, opt, d, len);
  case NBD_OPT_STRUCTURED_REPLY:
    if (len != 0)
      return send_error(c, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
    c->structured = true;
    return send_reply(c, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    return opt_meta(c, opt, d, len);
  default:
    return send_error(c, opt, NBD_REP_ERR_UNSUP, "option not supported by udm");
  }
}

int nbd_handshake(struct nbd_conn *c)
{
  unsigned char b[18];
  nbd_put64(b, NBD_MAGIC_INIT);
  nbd_put64(b + 8, NBD_MAGIC_OPT);
  nbd_put16(b + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  int r = nbd_send(c, b, 18);
  if (r == 0)
    r = nbd_recv(c, b, 4);
  if (r < 0)
    return r;
  uint32_t cflags = nbd_get32(b);
  if (cflags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
    return -EPROTO; /* the protocol says: close on client flags we do not know */
  c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

  unsigned char *data = malloc(OPT_MAX);
  if (!data)
    return -ENOMEM;
  for (;;) {
    unsigned char h[16];
    r = nbd_recv(c, h, sizeof h);
    if (r < 0)
      break;
    if (nbd_get64(h) != NBD_MAGIC_OPT) {
      r = -EPROTO;
      break;
    }
    uint32_t opt = nbd_get32(h + 8), len = nbd_get32(h + 12);
    if (len > OPT_MAX) {
      /* Too big to be honest; skip a modest excess, refuse a flood. */
      if (len > OPT_DISCARD_MAX || opt == NBD_OPT_EXPORT_NAME) {
        r = -EMSGSIZE;
        break;
      }
      r = nbd_discard(c, len);
      if (r == 0)
        r = send_error(c, opt, NBD_REP_ERR_TOO_BIG, "option too long");
      if (r < 0)
        break;
      continue;
    }
    r = nbd_recv(c, data, len);
    if (r == 0)
      r = handle_option(c, opt, data, len);
    if (r != 0)
      break;
  }
  free(data);
  return r > 0 ? 0 : r;
}
