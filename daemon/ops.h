/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The requests of the control protocol, answered on a udm_ctx.  Each
 * request is independent: the transport (control.c) feeds them in.
 */
#ifndef UDMD_OPS_H
#define UDMD_OPS_H

#include <udm/udm.h>

#include "attach.h"
#include "protocol.h"

/*
 * Answer the first request of a connection, which must be a hello.
 * Returns 0 when the connection may go on, -1 when it must be closed.
 */
int udmd_ops_hello(const struct udm_msg *req, struct udm_msg *resp);
/*
 * Answer one request into resp (status, errno, message, then the payload);
 * attach, block devices and the FUSE export.  A request may block its
 * thread for as long as it asks (wait); it ends early when client_fd (the
 * connection, or -1) is closed or shut down.
 */
void udmd_ops_handle(struct udm_ctx *ctx, struct udmd_attach *attach, int client_fd,
                     const struct udm_msg *req, struct udm_msg *resp);
/* Fill resp as a failure (for the transport's own errors). */
void udmd_ops_error(struct udm_msg *resp, int err, const char *message);

#endif
