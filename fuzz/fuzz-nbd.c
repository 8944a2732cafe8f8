// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * udm's NBD server (handshake and transmission) against hostile client
 * bytes.  The input is everything a client sends, written into one end of
 * a socketpair whose other end the server serves (udm_nbd_server_serve_fd);
 * the harness reads every reply until the server hangs up.  Two exports:
 * "a", 1 MiB linear over a scratch file, and "e", 64 KiB of the error
 * target.  What must hold: no crash, no leak, no hang (the server ends the
 * connection once the client's bytes run out).
 */
#include <pthread.h>
#include <sys/socket.h>

#include <udm/udm.h>

#include "fuzz.h"
#include "nbd_server.h"

static struct udm_ctx *ctx;
static struct udm_nbd_server *srv;

static void export(const char *name, const char *table)
{
  struct udm_device *dev = udm_device_create(ctx, name, NULL, 0);
  if (!dev || udm_table_load(dev, table) < 0 || udm_device_resume(dev) < 0)
    fuzz_die(udm_errmsg());
  udm_device_unref(dev);
}

static void setup(void)
{
  char path[300], table[400];
  fuzz_file(fuzz_path("a", path, sizeof path), NULL, 0, 1u << 20);
  ctx = udm_ctx_new();
  if (!ctx)
    fuzz_die("udm_ctx_new");
  snprintf(table, sizeof table, "0 2048 linear %s 0", path);
  export("a", table);
  export("e", "0 128 error");
  srv = udm_nbd_server_new(ctx);
  if (!srv)
    fuzz_die(udm_errmsg());
}

struct client {
  int fd;
  const uint8_t *data;
  size_t size;
};

static void *client_send(void *arg)
{
  struct client *c = arg;
  size_t done = 0;
  while (done < c->size) {
    ssize_t n = send(c->fd, c->data + done, c->size - done, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the server hung up early: fine */
    done += (size_t)n;
  }
  shutdown(c->fd, SHUT_WR);
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!ctx)
    setup();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    fuzz_die("socketpair");
  if (udm_nbd_server_serve_fd(srv, sv[1]) < 0)
    fuzz_die(udm_errmsg());
  struct client c = {sv[0], data, size};
  pthread_t t;
  if (pthread_create(&t, NULL, client_send, &c) != 0)
    fuzz_die("pthread_create");
  static uint8_t sink[1u << 16];
  while (recv(sv[0], sink, sizeof sink, 0) > 0) {
  }
  pthread_join(t, NULL);
  close(sv[0]);
  return 0;
}
