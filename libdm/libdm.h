/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal declarations of udm's libdevmapper (docs/libdevmapper.md). */
#ifndef UDM_LIBDM_H
#define UDM_LIBDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

/* The device-mapper ioctl interface version udm's answers follow. */
#define LIBDM_DRIVER_VERSION "4.48.0"
/* The libdevmapper release whose ABI this library has, and udm's version. */
#define LIBDM_LIBRARY_VERSION "1.02.196 (udm " UDM_VERSION_STRING ")"
/* Number of a udm device that is not attached (udm's CLI shows the same). */
#define LIBDM_MAJOR 253u
/* The kernel's default read-ahead of a device-mapper device, in sectors. */
#define LIBDM_READ_AHEAD 256u

/* Log through the program's callback (level: 3 error, 4 warning, 7 debug). */
void libdm_log(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Log that call is not supported; returns 0 (libdevmapper's failure). */
int libdm_unsupported(const char *call);
/*
 * Send req to udmd and read its answer into resp (initialised by the
 * caller).  A failure answer is logged unless quiet, and returns -errno.
 */
int libdm_call(struct udm_msg *req, struct udm_msg *resp, bool quiet);
/* The kernel's 64-bit encoding of a device number (dm_names, dm_deps). */
uint64_t libdm_encode_dev(uint32_t major, uint32_t minor);
/* libdevmapper's memory pool (report.c); a copy of str from it, or NULL. */
struct dm_pool;
char *dm_pool_strdup(struct dm_pool *p, const char *str);
/* Remake the nodes of attached devices (of name only, when not NULL). */
int libdm_mknodes(const char *name);

#endif
