/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm's NBD server: every device of a udm_ctx is an export named after it.
 * Used by udmd; usable by any program that owns a udm_ctx.
 * Functions return 0 / a pointer, or -1 / NULL with udm_errmsg() set.
 */
#ifndef UDM_NBD_SERVER_H
#define UDM_NBD_SERVER_H

#include <udm/udm.h>

struct udm_nbd_server;

struct udm_nbd_server *udm_nbd_server_new(struct udm_ctx *ctx);
/* Listen on a Unix socket at path (created mode 0600, replaced if stale). */
int udm_nbd_server_listen_unix(struct udm_nbd_server *srv, const char *path);
/* Listen on TCP host:port (only when the user asks for it). */
int udm_nbd_server_listen_tcp(struct udm_nbd_server *srv, const char *host,
                              const char *port);
/* Start accepting on every listening socket, in background threads. */
int udm_nbd_server_start(struct udm_nbd_server *srv);
/* Stop accepting, close every connection (flushing first), join all threads. */
void udm_nbd_server_free(struct udm_nbd_server *srv);

#endif
