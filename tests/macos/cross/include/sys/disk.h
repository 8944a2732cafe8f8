/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For the macOS cross-build check only (tests/macos/cross-build): Zig's
 * macOS headers leave out <sys/disk.h>, so this gives what
 * platform/darwin.c uses of it, with the layouts and ioctl numbers of
 * Apple's header (xnu bsd/sys/disk.h).  A real Mac build never sees this
 * folder: it compiles against the SDK's own header.
 */
#ifndef UDM_CROSS_SYS_DISK_H
#define UDM_CROSS_SYS_DISK_H

#include <stdint.h>
#include <sys/ioctl.h>

typedef struct {
  uint64_t offset;
  uint64_t length;
} dk_extent_t;

typedef struct {
  dk_extent_t *extents;
  uint32_t extentsCount;
  uint32_t options;
#ifndef __LP64__
  uint8_t reserved0096[4];
#endif
} dk_unmap_t;

#define DKIOCGETBLOCKSIZE _IOR('d', 24, uint32_t)
#define DKIOCGETBLOCKCOUNT _IOR('d', 25, uint64_t)
#define DKIOCUNMAP _IOW('d', 31, dk_unmap_t)

#endif
