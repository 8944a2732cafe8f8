/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Socket activation (activation.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"

#define LISTEN_FDS_START 3

static int parse_count(const char *name, const char *v, long *out)
{
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < 0) {
    fprintf(stderr, "udmd: %s=%s is not a number\n", name, v);
    return -1;
  }
  *out = n;
  return 0;
}

static int check_socket(int fd, const char *control_path)
{
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
    fprintf(stderr, "udmd: the inherited fd %d is not a socket: %s\n", fd, strerror(errno));
    return -1;
  }
  len = sizeof listening;
#ifdef SO_ACCEPTCONN
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
    listening = 0;
#else
  listening = 1; /* accept() will say so */
#endif
  struct sockaddr_un sa;
  len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
      type != SOCK_STREAM || !listening) {
    fprintf(stderr, "udmd: the inherited fd %d is not a listening Unix stream socket "
                    "(the socket unit needs ListenStream=%s)\n",
            fd, control_path);
    return -1;
  }
  if (strncmp(sa.sun_path, control_path, sizeof sa.sun_path) != 0) {
    fprintf(stderr, "udmd: the inherited socket is %.*s, but udm looks for %s "
                    "(set UDM_RUNTIME_DIR in the service, or ListenStream= in the socket)\n",
            (int)sizeof sa.sun_path, sa.sun_path, control_path);
    return -1;
  }
  return 0;
}

int udmd_activation_socket(const char *control_path)
{
  const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
  int r = -1;
  long pid, n;
  if (!pid_s || !fds_s)
    goto out;
  if (parse_count("LISTEN_PID", pid_s, &pid) < 0 || parse_count("LISTEN_FDS", fds_s, &n) < 0) {
    r = -2;
    goto out;
  }
  if (pid != (long)getpid())
    goto out; /* meant for another process (our parent) */
  if (n != 1) {
    fprintf(stderr, "udmd: socket activation passed %ld sockets; udmd takes exactly one, "
                    "the control socket\n", n);
    r = -2;
    goto out;
  }
  if (check_socket(LISTEN_FDS_START, control_path) < 0) {
    r = -2;
    goto out;
  }
  fcntl(LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
  r = LISTEN_FDS_START;
out:
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return r;
}
