/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encoder and decoder of the control protocol (see protocol.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

void udm_msg_init(struct udm_msg *m)
{
  memset(m, 0, sizeof *m);
}

/* Not optimised away: values may be table text with keys. */
static void wipe(void *p, size_t n)
{
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

void udm_ctl_wipe_free(char *s)
{
  if (s) {
    wipe(s, strlen(s));
    free(s);
  }
}

void udm_msg_free(struct udm_msg *m)
{
  for (unsigned i = 0; i < m->count; i++) {
    free(m->fields[i].key);
    wipe(m->fields[i].value, strlen(m->fields[i].value));
    free(m->fields[i].value);
  }
  free(m->fields);
  udm_msg_init(m);
}

static bool valid_key(const char *key, size_t len)
{
  if (len == 0 || len > UDM_CTL_MAX_KEY)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

/* Take ownership of key and value (freed on failure). */
static int add_owned(struct udm_msg *m, char *key, char *value)
{
  if (m->count == UDM_CTL_MAX_FIELDS) {
    free(key);
    free(value);
    return -E2BIG;
  }
  if (m->count == m->cap) {
    unsigned cap = m->cap ? m->cap * 2 : 8;
    struct udm_field *f = realloc(m->fields, cap * sizeof *f);
    if (!f) {
      free(key);
      free(value);
      return -ENOMEM;
    }
    m->fields = f;
    m->cap = cap;
  }
  m->fields[m->count].key = key;
  m->fields[m->count].value = value;
  m->count++;
  return 0;
}

int udm_msg_add(struct udm_msg *m, const char *key, const char *value)
{
  if (!valid_key(key, strlen(key)) || !value)
    return -EINVAL;
  char *k = strdup(key), *v = strdup(value);
  if (!k || !v) {
    free(k);
    free(v);
    return -ENOMEM;
  }
  return add_owned(m, k, v);
}

int udm_msg_addf(struct udm_msg *m, const char *key, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -EINVAL;
  char *v = malloc((size_t)n + 1);
  if (!v)
    return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf(v, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int r = udm_msg_add(m, key, v);
  free(v);
  return r;
}

const char *udm_msg_get(const struct udm_msg *m, const char *key)
{
  for (unsigned i = 0; i < m->count; i++)
    if (strcmp(m->fields[i].key, key) == 0)
      return m->fields[i].value;
  return NULL;
}

static void put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int udm_msg_encode(const struct udm_msg *m, uint8_t **out, size_t *len)
{
  size_t body = 0;
  for (unsigned i = 0; i < m->count; i++) {
    size_t f = strlen(m->fields[i].key) + 1 + strlen(m->fields[i].value);
    body += 4 + f;
    if (body > UDM_CTL_MAX_FRAME)
      return -EMSGSIZE;
  }
  uint8_t *buf = malloc(4 + body), *p = buf;
  if (!buf)
    return -ENOMEM;
  put_be32(p, (uint32_t)body);
  p += 4;
  for (unsigned i = 0; i < m->count; i++) {
    size_t kl = strlen(m->fields[i].key), vl = strlen(m->fields[i].value);
    put_be32(p, (uint32_t)(kl + 1 + vl));
    p += 4;
    memcpy(p, m->fields[i].key, kl);
    p += kl;
    *p++ = '=';
    memcpy(p, m->fields[i].value, vl);
    p += vl;
  }
  *out = buf;
  *len = 4 + body;
  return 0;
}

int udm_msg_decode(const uint8_t *body, size_t len, struct udm_msg *m, const char **why)
{
  size_t pos = 0;
  int r;
  if (len > UDM_CTL_MAX_FRAME) {
    *why = "the message is too long";
    return -EBADMSG;
  }
  while (pos < len) {
    if (len - pos < 4) {
      *why = "a field length is cut short";
      goto bad;
    }
    uint32_t flen = get_be32(body + pos);
    pos += 4;
    if (flen > len - pos) {
      *why = "a field runs past the end of the message";
      goto bad;
    }
    const uint8_t *f = body + pos;
    pos += flen;
    if (memchr(f, '\0', flen)) {
      *why = "a field contains a NUL byte";
      goto bad;
    }
    const uint8_t *eq = memchr(f, '=', flen);
    if (!eq || !valid_key((const char *)f, (size_t)(eq - f))) {
      *why = "a field is not key=value with a key of [a-z0-9_]";
      goto bad;
    }
    size_t kl = (size_t)(eq - f), vl = flen - kl - 1;
    char *k = strndup((const char *)f, kl);
    char *v = malloc(vl + 1);
    if (!k || !v) {
      free(k);
      free(v);
      r = -ENOMEM;
      goto fail;
    }
    memcpy(v, eq + 1, vl);
    v[vl] = '\0';
    r = add_owned(m, k, v);
    if (r == -E2BIG) {
      *why = "too many fields";
      goto bad;
    }
    if (r < 0)
      goto fail;
  }
  return 0;
bad:
  r = -EBADMSG;
fail:
  udm_msg_free(m);
  return r;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
 * Read exactly n bytes: 0, 1 on EOF before the first byte, or -errno.
 * *done (if not NULL) gets the bytes read, also on failure.
 */
static int read_all(int fd, uint8_t *p, size_t n, size_t *done)
{
  size_t got = 0;
  int r = 0;
  while (got < n) {
    ssize_t k = read(fd, p + got, n - got);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      r = -errno;
      break;
    }
    if (k == 0) {
      r = got == 0 ? 1 : -ECONNRESET;
      break;
    }
    got += (size_t)k;
  }
  if (done)
    *done = got;
  return r;
}

int udm_msg_send(int fd, const struct udm_msg *m)
{
  uint8_t *buf;
  size_t len;
  int r = udm_msg_encode(m, &buf, &len);
  if (r < 0)
    return r;
  r = write_all(fd, buf, len);
  wipe(buf, len);
  free(buf);
  return r;
}

int udm_msg_recv(int fd, struct udm_msg *m, const char **why)
{
  uint8_t hdr[4];
  int r = read_all(fd, hdr, sizeof hdr, NULL);
  if (r != 0)
    return r;
  uint32_t len = get_be32(hdr);
  if (len > UDM_CTL_MAX_FRAME) {
    *why = "the message is longer than the 16 MiB limit";
    return -EBADMSG;
  }
  uint8_t *body = malloc(len ? len : 1);
  if (!body)
    return -ENOMEM;
  size_t got;
  r = read_all(fd, body, len, &got);
  if (r == 1)
    r = -ECONNRESET;
  if (r == 0)
    r = udm_msg_decode(body, len, m, why);
  wipe(body, got); /* what was read: a frame cut short leaves the rest untouched */
  free(body);
  return r;
}

static const struct {
  int err;
  const char *name;
} errnames[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {ENODEV, "ENODEV"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},
    {ERANGE, "ERANGE"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},
    {ELOOP, "ELOOP"},
    {EPROTO, "EPROTO"},
    {EBADMSG, "EBADMSG"},
    {EOVERFLOW, "EOVERFLOW"},
    {EMSGSIZE, "EMSGSIZE"},
    {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
    {ENOTSUP, "ENOTSUP"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECANCELED, "ECANCELED"},
    {ECONNRESET, "ECONNRESET"},
};

const char *udm_errno_name(int err, char *buf, size_t size)
{
  for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
    if (errnames[i].err == err)
      return errnames[i].name;
  snprintf(buf, size, "%d", err);
  return buf;
}

int udm_errno_from_name(const char *name)
{
  for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
    if (strcmp(errnames[i].name, name) == 0)
      return errnames[i].err;
  return EIO;
}
