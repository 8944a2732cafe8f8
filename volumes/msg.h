/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Messages of the volume parsers (malloc'd printf text, set once), and their header reads. */
#ifndef UDM_VOLUMES_MSG_H
#define UDM_VOLUMES_MSG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* printf into a malloc'd string (NULL when out of memory). */
char *vol_vformat(const char *fmt, va_list ap);
char *vol_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Set *errmsg (unless already set) and return err, for "return vol_fail(...)". */
int vol_fail(char **errmsg, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* pread exactly LEN bytes at OFF: 0, -ENODATA when the file ends first (truncated), -errno. */
int vol_read_at(int fd, uint64_t off, void *buf, size_t len);

#endif
