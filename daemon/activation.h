/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket activation, systemd's protocol (sd_listen_fds(3)): the service
 * manager made the control socket and passes it as fd 3, with
 * LISTEN_PID=<our pid> and LISTEN_FDS=1 in the environment.  The protocol is
 * plain POSIX (environment and inherited descriptors), so it lives here and
 * not in platform/; launchd's own API is not used (docs/service.md).
 */
#ifndef UDMD_ACTIVATION_H
#define UDMD_ACTIVATION_H

#include <stddef.h>

/*
 * The inherited control socket: its fd (close-on-exec from now on), or -1
 * when udmd was not socket-activated, or -2 after printing why the inherited
 * sockets cannot be used: more or fewer than one, not a listening Unix
 * stream socket, or bound to another path than control_path.  Unsets the
 * LISTEN_* variables either way, so no child inherits them.
 */
int udmd_activation_socket(const char *control_path);

#endif
