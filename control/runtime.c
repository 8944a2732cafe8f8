/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The runtime directory of udmd (see runtime.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform.h"
#include "runtime.h"

size_t udm_socket_path_max(void)
{
  struct sockaddr_un sa;
  return sizeof sa.sun_path - 1;
}

int udm_runtime_dir(char *buf, size_t size, const char **why)
{
  const char *env = getenv("UDM_RUNTIME_DIR");
  int n;
  if (env && *env) {
    n = snprintf(buf, size, "%s", env);
    if (n < 0 || (size_t)n >= size) {
      *why = "the runtime directory path is too long";
      return -ENAMETOOLONG;
    }
  } else {
    int r = udm_platform_runtime_dir(buf, size, why);
    if (r < 0)
      return r;
    n = (int)strlen(buf);
  }
  /* Trailing slashes would only make the socket paths longer. */
  while (n > 1 && buf[n - 1] == '/')
    buf[--n] = '\0';
  if (buf[0] != '/') {
    *why = "the runtime directory must be an absolute path";
    return -EINVAL;
  }
  if ((size_t)n + 1 + sizeof UDM_CONTROL_SOCKET > udm_socket_path_max()) {
    *why = "the runtime directory path is too long for a Unix socket address";
    return -ENAMETOOLONG;
  }
  return 0;
}

int udm_runtime_path(char *buf, size_t size, const char *dir, const char *leaf)
{
  int n = snprintf(buf, size, "%s/%s", dir, leaf);
  if (n < 0 || (size_t)n >= size || (size_t)n > udm_socket_path_max())
    return -ENAMETOOLONG;
  return 0;
}
