/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE export: every device of a udm_ctx is a regular file DIR/NAME,
 * the analogue of /dev/mapper/NAME.  The operating system's own loop
 * facility (losetup, hdiutil) turns such a file into a kernel block device;
 * see udm_platform_attach() in platform/platform.h and docs/fuse.md.
 *
 *   file op            device call
 *   open / release     udm_device_open / udm_device_close (counted in info)
 *   read / write       udm_device_pread / udm_device_pwrite
 *                      (UDM_IO_FUA when the file was opened O_SYNC or O_DSYNC)
 *   fsync / flush      udm_device_flush (flush only for files open for writing)
 *   fallocate
 *     PUNCH_HOLE       udm_device_write_zeroes(UDM_IO_MAY_UNMAP|UDM_IO_NO_FALLBACK)
 *     ZERO_RANGE       udm_device_write_zeroes (KEEP_SIZE required past the end)
 *     0 / KEEP_SIZE    success when inside the device: its storage exists
 *
 * PUNCH_HOLE must read back as zeros, and the Linux loop driver sends both
 * discard and write-zeroes as PUNCH_HOLE, so it is a write-zeroes that may
 * unmap, never a bare discard (which, for some targets, leaves old or
 * undefined data behind).  Targets that cannot zero without writing answer
 * EOPNOTSUPP, and the kernel falls back to writing zero pages itself.
 *
 * The file's size is udm_device_size(), read again on every getattr (the
 * attribute and entry timeouts are 0), so a reload that resizes is seen at
 * once.  Devices appear and disappear with create and remove, without a
 * remount.  Read-only devices are mode 0400 files and refuse opens for
 * writing with EROFS; others are 0600.  Files belong to the user running
 * the export.  Reads past the end are short; writes starting at the end
 * fail with ENOSPC, as on a block device; truncation to another size fails
 * with EINVAL and O_TRUNC is ignored.
 *
 * The mount point is registered in ctx as an export directory
 * (udm_ctx_add_export_dir): a table of ctx that names one of the files, or
 * a loop device over one, gets the udm device itself (stacking) and never
 * opens the file, which would make the export wait on itself.
 *
 * Open files use direct I/O (no second copy in the page cache) and requests
 * of up to UDM_FUSE_MAX_IO bytes; a pool of worker threads reads them and
 * submits them asynchronously (no worker waits for a request).
 *
 * Link: udm_fuse_dep brings libfuse3 and this module, not libudm itself,
 * so that the program picks libudm_dep or libudm_internal_dep once.
 */
#ifndef UDM_FUSE_H
#define UDM_FUSE_H

#include <stdbool.h>

#include <udm/udm.h>

#define UDM_FUSE_MAX_IO (1u << 20) /* largest read or write request */

struct udm_fuse;

struct udm_fuse_opts {
  unsigned max_threads; /* worker threads at most; 0: the default (32) */
  bool debug;           /* libfuse traces every request on stderr */
};

/*
 * Mount the export at DIR (created if missing; a stale mount left by a dead
 * exporter is lazily unmounted first) and start serving it on threads of
 * its own.  opts may be NULL.  Returns 0 and the handle in *out, or a
 * negative errno (libfuse says why on its log, stderr by default).
 *
 * The creating thread's signal mask is not changed; the export's threads
 * block every signal, so signals reach the caller's threads.  They are
 * marked as I/O flushers (udm_platform_set_io_flusher) when the system
 * allows it; the caller should mark itself too.
 */
int udm_fuse_new(struct udm_ctx *ctx, const char *dir, const struct udm_fuse_opts *opts,
                 struct udm_fuse **out);

/* The mount point, as given. */
const char *udm_fuse_dir(const struct udm_fuse *f);

/*
 * Wait until no file of device NAME is open through the export, at most
 * timeout_ms: 0, or -ETIMEDOUT.  The kernel closes a file asynchronously
 * (a detached loop device lets go of it a moment after LOOP_CLR_FD
 * returns), so call this between detaching and udm_device_remove().
 */
int udm_fuse_wait_closed(struct udm_fuse *f, const char *name, unsigned timeout_ms);

/*
 * Rename device NAME to NEW_NAME (udm_device_rename) by renaming its file
 * in the export through the kernel, so that the kernel's names follow:
 * a file open under the old name, such as the backing file of a loop
 * device, is then known by the new path.  The export refuses every other
 * rename (EPERM).  0, or a negative errno and one line in msg.
 */
int udm_fuse_rename(struct udm_fuse *f, const char *name, const char *new_name, char *msg,
                    size_t msgn);

/*
 * Unmount and stop.  Block devices still attached to the files are
 * detached first (udm_platform_foreach_attached; one in use goes when its
 * last user closes it).  Lazily when the mount is still busy: the files
 * still open then fail every request with ENOTCONN or EIO.  Waits for requests in progress and joins every
 * thread, so ctx may be freed after it returns.  NULL is accepted.
 */
void udm_fuse_free(struct udm_fuse *f);
/*
 * An emergency stop, from a thread other than the one that will call
 * udm_fuse_free, and never while udm_fuse_free runs: abort the connection
 * (the files fail every request from now on) and join the session thread
 * once its loop has ended, waiting at most timeout_ms for that.  For a
 * process about to _exit with requests stuck; udm_fuse_free still frees.
 */
void udm_fuse_abort(struct udm_fuse *f, unsigned timeout_ms);

#endif
