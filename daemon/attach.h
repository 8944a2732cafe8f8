/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel block devices for udmd: the FUSE export of every device as
 * RUNTIME/dev/NAME, and the block devices attached over those files
 * (udm_platform_attach: a loop device on Linux, hdiutil on macOS), with a
 * stable symlink RUNTIME/block/NAME -> /dev/loopN for each.  See
 * docs/fuse.md.
 *
 * All functions return 0 or a negative errno; those that take msg put one
 * line there on failure, naming the device and the cause.  They may be
 * called from any control thread: attaches, detaches and removes of
 * attached devices are serialised by the module.
 */
#ifndef UDMD_ATTACH_H
#define UDMD_ATTACH_H

#include <stdbool.h>
#include <stddef.h>

#include <udm/udm.h>

#define UDM_BLOCK_DIR "block" /* RUNTIME/block/NAME -> the attached block device */

struct udmd_attach;

/*
 * Detach what a dead daemon left attached to RUNTIME/dev/, clear its dead
 * mount and stale symlinks, mark the calling thread an I/O flusher, and
 * mount the FUSE export.  Call with the runtime directory's lock held.
 * When the export cannot be mounted (or udmd is built without libfuse3),
 * the handle still works and attach says why it cannot; the reason is
 * logged once here.  NULL only when out of memory.
 */
struct udmd_attach *udmd_attach_new(struct udm_ctx *ctx, const char *runtime_dir);
/* Detach every block device (bounded waits), unmount the export, free. */
void udmd_attach_free(struct udmd_attach *a);
/*
 * From the shutdown watchdog, with requests stuck: abort the FUSE export
 * and join its session thread (waiting at most timeout_ms for its loop to
 * end), so that the _exit that follows leaves no thread finished but
 * unjoined.  Never while udmd_attach_free runs or after it.
 */
void udmd_attach_abort(struct udmd_attach *a, unsigned timeout_ms);

/* Attach device NAME; its block device path goes into devpath. */
int udmd_attach_device(struct udmd_attach *a, const char *name, char *devpath, size_t n,
                       bool *direct_io, char *msg, size_t msgn);
/*
 * Detach device NAME.  -EBUSY when the block device is in use (mounted,
 * open): the kernel then detaches it when its last user closes it, and the
 * attachment is kept until then.
 */
int udmd_attach_detach(struct udmd_attach *a, const char *name, char *msg, size_t msgn);
/*
 * Remove dev (udm_device_remove).  An attached device is refused unless
 * force, which detaches it first.
 */
int udmd_attach_remove(struct udmd_attach *a, struct udm_device *dev, bool force, char *msg,
                       size_t msgn);
/* The block device NAME is attached at, if any. */
bool udmd_attach_lookup(struct udmd_attach *a, const char *name, char *devpath, size_t n,
                        bool *direct_io);
/*
 * After a table swap of NAME: an attached block device follows its new size
 * (when resized) and its new logical block size (when block_size is not 0).
 */
int udmd_attach_follow(struct udmd_attach *a, const char *name, bool resized,
                       unsigned block_size, char *msg, size_t msgn);
/*
 * Rename device NAME to NEW_NAME: through the FUSE export when there is
 * one (udm_fuse_rename, so that the kernel's names of the file follow),
 * else udm_device_rename; an attachment follows, its symlink
 * RUNTIME/block/NAME becoming RUNTIME/block/NEW_NAME.
 */
int udmd_attach_rename(struct udmd_attach *a, const char *name, const char *new_name,
                       char *msg, size_t msgn);
/*
 * "dmsetup mknodes" for RUNTIME/block: make or correct the symlink of each
 * attached device (NAME only, when not NULL) and remove symlinks of
 * devices not attached.  Counts what it made and removed.
 */
int udmd_attach_mknodes(struct udmd_attach *a, const char *name, unsigned *made,
                        unsigned *removed);

#endif
