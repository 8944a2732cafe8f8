/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control protocol spoken on control.sock between udm and udmd; the
 * wire format is documented in docs/control-protocol.md.
 *
 * A message is a frame: a 4-byte big-endian body length, then the body, a
 * sequence of fields, each a 4-byte big-endian length and "key=value".
 * Keys are short lowercase words; values are any bytes but NUL (so table
 * text with newlines travels as it is).  Requests start with op=VERB,
 * responses with status=, errno= and message=.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef UDM_CTL_PROTOCOL_H
#define UDM_CTL_PROTOCOL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define UDM_CTL_VERSION 1
#define UDM_CTL_MAX_FRAME (16u << 20) /* body bytes */
#define UDM_CTL_MAX_FIELDS 65536u
#define UDM_CTL_MAX_KEY 32u

struct udm_field {
  char *key;
  char *value; /* NUL-terminated; contains no NUL */
};

struct udm_msg {
  struct udm_field *fields;
  unsigned count;
  unsigned cap;
};

void udm_msg_init(struct udm_msg *m);
/* Frees the fields, wiping every value first (values may be tables with keys). */
void udm_msg_free(struct udm_msg *m);
/* Append a field; the key must be a valid key, the value must not be NULL. */
int udm_msg_add(struct udm_msg *m, const char *key, const char *value);
int udm_msg_addf(struct udm_msg *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Value of the first field named key, or NULL. */
const char *udm_msg_get(const struct udm_msg *m, const char *key);

/* Whole frame (length header included), malloc'd into *out. */
int udm_msg_encode(const struct udm_msg *m, uint8_t **out, size_t *len);
/*
 * Parse a frame body of len bytes into m (which must be empty).  On
 * -EBADMSG, *why names what is wrong.
 */
int udm_msg_decode(const uint8_t *body, size_t len, struct udm_msg *m, const char **why);

/* Wipe, then free, a string that may hold keys (table text); NULL is fine. */
void udm_ctl_wipe_free(char *s);

/* Write one message to fd (the encoded frame is wiped once sent). */
int udm_msg_send(int fd, const struct udm_msg *m);
/*
 * Read one message from fd into m (which must be empty).  Returns 0, 1 when
 * the peer closed the connection cleanly between messages, -EBADMSG with
 * *why set for a malformed frame, or another negative errno.
 */
int udm_msg_recv(int fd, struct udm_msg *m, const char **why);

/* Portable errno names for the wire ("EBUSY"); unknown values as decimal. */
const char *udm_errno_name(int err, char *buf, size_t size);
/* The errno for a wire name, or EIO for names this system does not know. */
int udm_errno_from_name(const char *name);

#endif
