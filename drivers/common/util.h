/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the built-in drivers. */
#ifndef UDM_DRIVERS_UTIL_H
#define UDM_DRIVERS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* malloc'd printf, or NULL. */
char *udm_drv_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Split an image's "k=v&k=v" options (a table argument's ?...) in place:
 * keys[i], values[i] for each in order, "" for a key without '='.  KEYS and
 * VALUES hold strlen(opts) + 1 entries.  0, or -EINVAL with *errmsg
 * (malloc'd) for an empty key.  The core (lib/dev_image.c) and udm-image
 * split the same way.
 */
int udm_drv_split_options(char *opts, const char **keys, const char **values, unsigned *count,
                          char **errmsg);
/* pread until LEN bytes or the end of the file (EINTR retried): *got bytes read; 0 or -errno. */
int udm_drv_pread_upto(int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* pread all of LEN; bytes past the end of the file read as zeros. 0 or -errno. */
int udm_drv_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* pread exactly LEN bytes; -EIO if the file ends first. */
int udm_drv_pread_exact(int fd, void *buf, size_t len, uint64_t off);

#endif
