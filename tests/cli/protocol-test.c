/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control protocol's encoder and decoder: round trips keep every byte
 * of a value (newlines, '=', high bytes), and malformed frames are refused
 * with the reason, never read past their end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol.h"

static int failures;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
      failures++;                                                                      \
    }                                                                                  \
  } while (0)

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void round_trip_keeps_values(void)
{
  struct udm_msg m, back;
  udm_msg_init(&m);
  udm_msg_init(&back);
  const char *table = "0 8 zero\n8 8 linear /a=b\\ c 0\n\xc3\xa9\n";
  CHECK(udm_msg_add(&m, "op", "load") == 0);
  CHECK(udm_msg_add(&m, "name", "d") == 0);
  CHECK(udm_msg_add(&m, "table", table) == 0);
  CHECK(udm_msg_add(&m, "empty", "") == 0);
  CHECK(udm_msg_addf(&m, "sector", "%d", 42) == 0);
  uint8_t *buf;
  size_t len;
  CHECK(udm_msg_encode(&m, &buf, &len) == 0);
  const char *why = NULL;
  CHECK(udm_msg_decode(buf + 4, len - 4, &back, &why) == 0);
  CHECK(back.count == 5);
  CHECK(strcmp(udm_msg_get(&back, "table"), table) == 0);
  CHECK(strcmp(udm_msg_get(&back, "empty"), "") == 0);
  CHECK(strcmp(udm_msg_get(&back, "sector"), "42") == 0);
  CHECK(strcmp(back.fields[0].key, "op") == 0);
  CHECK(udm_msg_get(&back, "missing") == NULL);
  free(buf);
  udm_msg_free(&m);
  udm_msg_free(&back);
}

static void bad_keys_are_refused_when_adding(void)
{
  struct udm_msg m;
  udm_msg_init(&m);
  CHECK(udm_msg_add(&m, "", "x") == -EINVAL);
  CHECK(udm_msg_add(&m, "Op", "x") == -EINVAL);
  CHECK(udm_msg_add(&m, "a=b", "x") == -EINVAL);
  CHECK(udm_msg_add(&m, "a_very_long_key_of_more_than_32_chars", "x") == -EINVAL);
  CHECK(m.count == 0);
  udm_msg_free(&m);
}

/* Decode len bytes, expecting -EBADMSG with a reason containing want. */
static void expect_bad(const uint8_t *body, size_t len, const char *want)
{
  struct udm_msg m;
  udm_msg_init(&m);
  const char *why = NULL;
  /* A copy of exactly len bytes, so a read past the end shows under ASan/valgrind. */
  uint8_t *copy = malloc(len ? len : 1);
  memcpy(copy, body, len);
  int r = udm_msg_decode(copy, len, &m, &why);
  CHECK(r == -EBADMSG);
  CHECK(why && strstr(why, want));
  if (r != -EBADMSG || !why || !strstr(why, want))
    fprintf(stderr, "  expected '%s', got %d '%s'\n", want, r, why ? why : "(null)");
  CHECK(m.count == 0 && m.fields == NULL);
  free(copy);
}

static void malformed_frames_are_refused(void)
{
  uint8_t b[64];
  expect_bad((const uint8_t *)"\0\0", 2, "cut short");
  put32(b, 100);
  memcpy(b + 4, "op=x", 4);
  expect_bad(b, 8, "past the end");
  put32(b, 2);
  memcpy(b + 4, "op", 2);
  expect_bad(b, 6, "key=value");
  put32(b, 4);
  memcpy(b + 4, "=abc", 4);
  expect_bad(b, 8, "key=value");
  put32(b, 4);
  memcpy(b + 4, "o\0=x", 4);
  expect_bad(b, 8, "NUL");
  put32(b, 4);
  memcpy(b + 4, "OP=x", 4);
  expect_bad(b, 8, "key=value");
  /* Second field broken after a good first one: nothing is kept. */
  put32(b, 4);
  memcpy(b + 4, "op=x", 4);
  put32(b + 8, 0xffffffffu);
  expect_bad(b, 12, "past the end");
}

static void empty_fields_and_bodies(void)
{
  struct udm_msg m;
  udm_msg_init(&m);
  const char *why = NULL;
  CHECK(udm_msg_decode((const uint8_t *)"", 0, &m, &why) == 0 && m.count == 0);
  uint8_t b[8];
  put32(b, 2);
  memcpy(b + 4, "a=", 2);
  CHECK(udm_msg_decode(b, 6, &m, &why) == 0 && m.count == 1 &&
        strcmp(udm_msg_get(&m, "a"), "") == 0);
  udm_msg_free(&m);
}

static void socket_framing(void)
{
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  struct udm_msg m, back;
  udm_msg_init(&m);
  udm_msg_init(&back);
  udm_msg_add(&m, "op", "hello");
  udm_msg_add(&m, "version", "1");
  CHECK(udm_msg_send(sv[0], &m) == 0);
  CHECK(udm_msg_send(sv[0], &m) == 0);
  const char *why = NULL;
  CHECK(udm_msg_recv(sv[1], &back, &why) == 0 && back.count == 2);
  udm_msg_free(&back);
  CHECK(udm_msg_recv(sv[1], &back, &why) == 0 && back.count == 2);
  udm_msg_free(&back);
  /* A length over the limit is refused before any allocation of it. */
  uint8_t hdr[4];
  put32(hdr, UDM_CTL_MAX_FRAME + 1);
  CHECK(write(sv[0], hdr, 4) == 4);
  CHECK(udm_msg_recv(sv[1], &back, &why) == -EBADMSG);
  /* A clean close between messages is 1; mid-message it is an error. */
  put32(hdr, 10);
  CHECK(write(sv[0], hdr, 4) == 4);
  close(sv[0]);
  CHECK(udm_msg_recv(sv[1], &back, &why) == -ECONNRESET);
  CHECK(udm_msg_recv(sv[1], &back, &why) == 1);
  close(sv[1]);
  udm_msg_free(&m);
}

static void errno_names_round_trip(void)
{
  char buf[16];
  int errs[] = {EBUSY, ENXIO, EINVAL, EEXIST, ELOOP, EROFS, EBADMSG, EPROTO};
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
    CHECK(udm_errno_from_name(udm_errno_name(errs[i], buf, sizeof buf)) == errs[i]);
  CHECK(strcmp(udm_errno_name(EBUSY, buf, sizeof buf), "EBUSY") == 0);
  CHECK(strcmp(udm_errno_name(9999, buf, sizeof buf), "9999") == 0);
  CHECK(udm_errno_from_name("ENOTANERRNO") == EIO);
}

int main(void)
{
  round_trip_keeps_values();
  bad_keys_are_refused_when_adding();
  malformed_frames_are_refused();
  empty_fields_and_bodies();
  socket_framing();
  errno_names_round_trip();
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
