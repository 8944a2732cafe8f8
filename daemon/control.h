/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket: accepts connections from udm (only from the daemon's
 * own user) and answers each connection on its own thread, so a slow or
 * hostile client never holds up another.
 */
#ifndef UDMD_CONTROL_H
#define UDMD_CONTROL_H

#include <udm/udm.h>

#include "attach.h"

struct udmd_control;

/*
 * Listen on path (mode 0600; a stale socket there is replaced).  The ops
 * reach block devices through attach.
 */
int udmd_control_new(struct udm_ctx *ctx, struct udmd_attach *attach, const char *path,
                     struct udmd_control **out);
/*
 * Serve an inherited listening socket (socket activation, activation.h)
 * instead; it is closed by udmd_control_free but never unlinked, since its
 * path belongs to whoever made it (systemd's udmd.socket).
 */
int udmd_control_adopt(struct udm_ctx *ctx, struct udmd_attach *attach, int listen_fd,
                       struct udmd_control **out);
/* Start the accepting thread. */
int udmd_control_start(struct udmd_control *c);
/*
 * Stop accepting, end every connection (a request being answered is
 * finished first), join the threads, remove the socket and free.
 */
void udmd_control_free(struct udmd_control *c);

#endif
