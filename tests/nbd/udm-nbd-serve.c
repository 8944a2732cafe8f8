/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm-nbd-serve: a minimal host for udm's NBD server, so that the NBD tests
 * and the benchmark need no daemon.
 *
 *   udm-nbd-serve --socket PATH [--readonly] [--handshake-timeout MS]
 *                 [--max-connections N]
 *                 [--tcp HOST:PORT] [--tls off|on|require]
 *                 [--tls-certificates DIR [--tls-verify-peer] | --tls-psk FILE]
 *                 --table NAME='TABLE' ... [--run 'shell command']
 *
 * --tcp also listens on TCP (the TLS mode applies there; the Unix socket
 * only offers TLS).
 * Makes the devices in a private udm_ctx and serves them on PATH.  With
 * --run, runs the command through /bin/sh with $uri (the first device's
 * nbd+unix URI) and $sock set, tears everything down and exits with the
 * command's status (captive mode).  Without --run, serves until SIGTERM or
 * SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <udm/udm.h>

#include "nbd_server.h"

#define TABLES_MAX 32

static void usage(const char *prog)
{
  fprintf(stderr,
          "usage: %s --socket PATH [--readonly] [--handshake-timeout MS] "
          "[--max-connections N] "
          "[--tcp HOST:PORT] [--tls off|on|require] [--tls-certificates DIR "
          "[--tls-verify-peer] | --tls-psk FILE] "
          "--table NAME='TABLE' ... [--run 'COMMAND']\n",
          prog);
}

static void log_line(void *prog, const char *line)
{
  fprintf(stderr, "%s: %s\n", (const char *)prog, line);
}

static int run_command(const char *cmd, const char *uri, const char *sock,
                       const sigset_t *old_mask)
{
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    signal(SIGPIPE, SIG_DFL);
    setenv("uri", uri, 1);
    setenv("sock", sock, 1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    perror("/bin/sh");
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      perror("waitpid");
      return 1;
    }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* HOST:PORT (HOST may be empty: every address). */
static int listen_tcp(struct udm_nbd_server *srv, const char *hostport)
{
  char host[256];
  const char *colon = strrchr(hostport, ':');
  size_t n = colon ? (size_t)(colon - hostport) : 0;
  if (!colon || n >= sizeof host) {
    fprintf(stderr, "--tcp %s: expected HOST:PORT\n", hostport);
    return -1;
  }
  memcpy(host, hostport, n);
  host[n] = '\0';
  return udm_nbd_server_listen_tcp(srv, n ? host : NULL, colon + 1);
}

int main(int argc, char **argv)
{
  const char *sock = NULL, *cmd = NULL;
  const char *names[TABLES_MAX];
  char *tables[TABLES_MAX];
  unsigned ntables = 0, handshake_ms = 0, max_conns = 0;
  unsigned flags = 0;
  const char *tcp = NULL, *tls_certs = NULL, *tls_psk = NULL;
  enum udm_nbd_tls tls = UDM_NBD_TLS_OFF;
  bool verify_peer = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--readonly") == 0) {
      flags |= UDM_DEVICE_READONLY;
    } else if (strcmp(a, "--tls-verify-peer") == 0) {
      verify_peer = true;
    } else if (i + 1 < argc && strcmp(a, "--tcp") == 0) {
      tcp = argv[++i];
    } else if (i + 1 < argc && strcmp(a, "--tls-certificates") == 0) {
      tls_certs = argv[++i];
    } else if (i + 1 < argc && strcmp(a, "--tls-psk") == 0) {
      tls_psk = argv[++i];
    } else if (i + 1 < argc && strcmp(a, "--tls") == 0) {
      const char *m = argv[++i];
      if (strcmp(m, "off") == 0) {
        tls = UDM_NBD_TLS_OFF;
      } else if (strcmp(m, "on") == 0) {
        tls = UDM_NBD_TLS_ON;
      } else if (strcmp(m, "require") == 0) {
        tls = UDM_NBD_TLS_REQUIRE;
      } else {
        fprintf(stderr, "%s: --tls %s: not off, on or require\n", argv[0], m);
        return 2;
      }
    } else if (i + 1 < argc && strcmp(a, "--socket") == 0) {
      sock = argv[++i];
    } else if (i + 1 < argc && strcmp(a, "--run") == 0) {
      cmd = argv[++i];
    } else if (i + 1 < argc && strcmp(a, "--handshake-timeout") == 0) {
      handshake_ms = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (i + 1 < argc && strcmp(a, "--max-connections") == 0) {
      max_conns = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (i + 1 < argc && strcmp(a, "--table") == 0) {
      char *eq = strchr(argv[++i], '=');
      if (!eq || eq == argv[i] || ntables == TABLES_MAX) {
        fprintf(stderr, "%s: --table wants NAME='TABLE' (at most %d)\n", argv[0],
                TABLES_MAX);
        return 2;
      }
      *eq = 0;
      names[ntables] = argv[i];
      tables[ntables++] = eq + 1;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (!sock || ntables == 0) {
    usage(argv[0]);
    return 2;
  }

  /* Replies to a vanished client must fail with EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  /* Server threads inherit this mask, so only sigwait() sees the signals. */
  sigset_t stop, old_mask;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, &old_mask);

  int status = 1;
  struct udm_nbd_server *srv = NULL;
  struct udm_device *devs[TABLES_MAX] = {0};
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx)
    goto fail;
  for (unsigned i = 0; i < ntables; i++) {
    devs[i] = udm_device_create(ctx, names[i], NULL, flags);
    if (!devs[i] || udm_table_load(devs[i], tables[i]) < 0 ||
        udm_device_resume(devs[i]) < 0)
      goto fail;
  }
  srv = udm_nbd_server_new(ctx);
  if (srv)
    udm_nbd_server_set_log(srv, log_line, argv[0]);
  if (!srv ||
      (handshake_ms && udm_nbd_server_set_handshake_timeout(srv, handshake_ms) < 0) ||
      (max_conns && udm_nbd_server_set_max_connections(srv, max_conns) < 0) ||
      udm_nbd_server_set_tls(srv, tls) < 0 ||
      (tls_certs && udm_nbd_server_set_tls_certificates(srv, tls_certs, verify_peer) < 0) ||
      (tls_psk && udm_nbd_server_set_tls_psk(srv, tls_psk) < 0) ||
      udm_nbd_server_listen_unix(srv, sock) < 0 || (tcp && listen_tcp(srv, tcp) < 0) ||
      udm_nbd_server_start(srv) < 0)
    goto fail;

  if (cmd) {
    size_t n = strlen(names[0]) + strlen(sock) + 32;
    char *uri = malloc(n);
    if (!uri)
      goto fail;
    snprintf(uri, n, "nbd+unix:///%s?socket=%s", names[0], sock);
    status = run_command(cmd, uri, sock, &old_mask);
    free(uri);
  } else {
    int sig;
    sigwait(&stop, &sig);
    status = 0;
  }
  udm_nbd_server_free(srv);
  for (unsigned i = 0; i < ntables; i++)
    udm_device_unref(devs[i]);
  udm_ctx_free(ctx);
  return status;

fail:
  fprintf(stderr, "%s: %s\n", argv[0], udm_errmsg());
  udm_nbd_server_free(srv);
  for (unsigned i = 0; i < ntables; i++)
    udm_device_unref(devs[i]);
  udm_ctx_free(ctx);
  return 1;
}
