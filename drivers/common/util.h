/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the built-in drivers. */
#ifndef UDM_DRIVERS_UTIL_H
#define UDM_DRIVERS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* malloc'd printf, or NULL. */
char *udm_drv_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* pread all of LEN; bytes past the end of the file read as zeros. 0 or -errno. */
int udm_drv_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* pread exactly LEN bytes; -EIO if the file ends first. */
int udm_drv_pread_exact(int fd, void *buf, size_t len, uint64_t off);

#endif
