/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Where udmd lives: the runtime directory and the names inside it.
 * Shared by udmd and udm so that both always agree.
 */
#ifndef UDM_RUNTIME_H
#define UDM_RUNTIME_H

#include <stddef.h>

#define UDM_CONTROL_SOCKET "control.sock"
#define UDM_NBD_SOCKET "nbd.sock"
#define UDM_LOCK_FILE "udmd.lock"
#define UDM_DEV_DIR "dev"

/*
 * $UDM_RUNTIME_DIR, else the platform's default (udm_platform_runtime_dir:
 * on Linux /run/udm for root, else $XDG_RUNTIME_DIR/udm; macOS adds its own).
 * Returns 0, or -errno with *why saying what to set.
 */
int udm_runtime_dir(char *buf, size_t size, const char **why);
/*
 * DIR/LEAF into buf.  -ENAMETOOLONG when it does not fit buf or a Unix
 * socket address (every name in the directory is held to that limit).
 */
int udm_runtime_path(char *buf, size_t size, const char *dir, const char *leaf);
/* Longest path a Unix socket address can hold on this system. */
size_t udm_socket_path_max(void);

#endif
