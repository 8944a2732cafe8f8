/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fence around operating-system specifics.  Everything outside
 * platform/ is POSIX C11; each function here has one implementation per
 * platform file (linux.c, darwin.c).  All return 0 or a negative errno.
 */
#ifndef UDM_PLATFORM_H
#define UDM_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Size in bytes of the block device open on fd. */
int udm_platform_blockdev_size(int fd, uint64_t *bytes);
/* Logical block size of the block device open on fd. */
int udm_platform_blockdev_logical_block_size(int fd, unsigned *bytes);
/* Deallocate [off, off+len) so that it reads back as zeros (file or block device). */
int udm_platform_punch_hole(int fd, bool blockdev, uint64_t off, uint64_t len);
/* Zero [off, off+len) keeping it allocated, without writing data buffers. */
int udm_platform_zero_range(int fd, bool blockdev, uint64_t off, uint64_t len);
/* Open a file with the cache bypassed (O_DIRECT or F_NOCACHE). */
int udm_platform_open_direct(const char *path, int flags);
/*
 * Next data and next hole at or after off (lseek SEEK_DATA/SEEK_HOLE).
 * -ENXIO when off is in a hole that runs to the end; -EOPNOTSUPP when the
 * system cannot tell.
 */
int udm_platform_seek_data(int fd, uint64_t off, uint64_t *data);
int udm_platform_seek_hole(int fd, uint64_t off, uint64_t *hole);
/* Absolute path of the running executable, into buf. */
int udm_platform_self_exe(char *buf, size_t size);

#endif
