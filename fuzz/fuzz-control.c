// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The control protocol decoder (control/protocol.c) on hostile bytes: the
 * input is what a client writes on control.sock.  It is read as a stream
 * of frames with udm_msg_recv, as udmd reads it, and decoded as one frame
 * body with udm_msg_decode.  A body that decodes must encode back to a
 * frame that decodes to the same fields; a refusal must say why.
 */
#include <errno.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "protocol.h"

static void same_or_die(const struct udm_msg *a, const struct udm_msg *b)
{
  if (a->count != b->count)
    abort();
  for (unsigned i = 0; i < a->count; i++)
    if (strcmp(a->fields[i].key, b->fields[i].key) ||
        strcmp(a->fields[i].value, b->fields[i].value))
      abort();
}

static void decode_body(const uint8_t *data, size_t size)
{
  struct udm_msg m;
  udm_msg_init(&m);
  const char *why = NULL;
  int r = udm_msg_decode(data, size, &m, &why);
  if (r == -EBADMSG && !why)
    abort(); /* a refusal that does not say why */
  if (r == 0) {
    uint8_t *frame;
    size_t len;
    if (udm_msg_encode(&m, &frame, &len) == 0) {
      struct udm_msg again;
      udm_msg_init(&again);
      if (len < 4 || udm_msg_decode(frame + 4, len - 4, &again, &why) != 0)
        abort();
      same_or_die(&m, &again);
      udm_msg_free(&again);
      free(frame);
    }
  }
  udm_msg_free(&m);
}

/* The daemon's side: frames from a stream socket until EOF or a bad one. */
static void receive_stream(const uint8_t *data, size_t size)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    fuzz_die("socketpair");
  size_t done = 0;
  while (done < size) {
    ssize_t n = send(sv[0], data + done, size - done, MSG_NOSIGNAL);
    if (n <= 0)
      fuzz_die("send");
    done += (size_t)n;
  }
  shutdown(sv[0], SHUT_WR);
  for (;;) {
    struct udm_msg m;
    udm_msg_init(&m);
    const char *why = NULL;
    int r = udm_msg_recv(sv[1], &m, &why);
    udm_msg_free(&m);
    if (r == -EBADMSG && !why)
      abort();
    if (r != 0)
      break;
  }
  close(sv[0]);
  close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  decode_body(data, size);
  if (size <= 65536) /* fits a socket buffer: no writer thread needed */
    receive_stream(data, size);
  return 0;
}
