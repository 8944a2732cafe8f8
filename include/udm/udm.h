/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <udm/udm.h> — the public C API of libudm, a userspace device mapper.
 *
 * A udm_ctx is one "kernel": a namespace of devices and the registry of
 * target types.  The daemon udmd owns one; a program may own its own and
 * use devices in-process with no daemon at all.
 *
 * Devices hold a live table and an inactive table, exactly as Linux dm:
 * udm_table_load() builds the inactive table (every constructor runs,
 * every error is reported) without touching the live one; udm_device_resume()
 * swaps it in atomically; udm_device_suspend() drains in-flight I/O and
 * holds new I/O until resume.
 *
 * Error convention: functions return -1 (or NULL) on failure, set errno,
 * and leave a message naming the call and the cause in udm_errmsg(),
 * which is per-thread.
 */
#ifndef UDM_UDM_H
#define UDM_UDM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is libudm's ABI (docs/abi.md); the library is
 * built with -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define UDM_VERSION_MAJOR 0
#define UDM_VERSION_MINOR 1
#define UDM_VERSION_PATCH 0
#define UDM_SECTOR_SIZE 512u
#define UDM_NAME_MAX 127 /* like DM_NAME_LEN - 1 */
#define UDM_UUID_MAX 128

struct udm_ctx;
struct udm_device;

/* Per-thread message of the last failure, never NULL. */
const char *udm_errmsg(void);
/* errno of the last failure on this thread. */
int udm_errno(void);
/* Records a failure the way libudm's own calls do (message for udm_errmsg(),
 * errno = err), for code built on libudm that reports through the same
 * convention (the NBD server, drivers' helpers).  Returns -1. */
int udm_error_set(int err, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* The library version as "MAJOR.MINOR.PATCH". */
const char *udm_version_string(void);

/* ---- context ---------------------------------------------------------- */
struct udm_ctx *udm_ctx_new(void);
/* Removes (forcibly) every device and frees the context. */
void udm_ctx_free(struct udm_ctx *ctx);

/* Calls fn for each device name, in creation order.  fn returns non-zero to stop. */
int udm_ctx_foreach_device(struct udm_ctx *ctx,
                           int (*fn)(void *opaque, const char *name), void *opaque);

/* Target types known to ctx: fn(opaque, name, version[3]). */
int udm_ctx_foreach_target(struct udm_ctx *ctx,
                           int (*fn)(void *opaque, const char *name,
                                     const unsigned version[3]),
                           void *opaque);

/*
 * Export directories: DIR is where a frontend of ctx serves every device
 * NAME as the file DIR/NAME (udm_fuse_new registers udmd's FUSE export).
 * A table argument that leads to such a file -- a path into DIR, through
 * symlinks or '..', relative or absolute, raw:PATH, or a loop device
 * attached over the file -- then stands for the device NAME itself, with
 * the checks of udm:NAME (stacking; cycles refused), instead of I/O that
 * would go out through the frontend and back into ctx, waiting on the very
 * table being built.  An image path (FORMAT:PATH) leading there is refused.
 * Paths are decided without opening or looking inside DIR.  Register once
 * DIR is mounted, unregister before it is unmounted.
 */
int udm_ctx_add_export_dir(struct udm_ctx *ctx, const char *dir);
int udm_ctx_remove_export_dir(struct udm_ctx *ctx, const char *dir);

/*
 * Settings of one context.  udm_ctx_new takes each from the environment
 * variable named; set one to make a context differ from the environment
 * (two contexts of one program may differ).  NAME is one of:
 *   "keys-dir"      UDM_KEYS_DIR: the directory of raw key files that crypt
 *                   key references (:<size>:logon:<description>) name; NULL:
 *                   none, references are refused (an empty variable: none).
 *   "driver-path"   UDM_DRIVER_PATH: colon-separated directories of image
 *                   driver plugins; NULL: the installed directory.
 *   "crypt-accel"   UDM_CRYPT_ACCEL: "1" (default) lets crypt use the CPU's
 *                   VAES AES-XTS where it has one, "0" leaves all to
 *                   libgcrypt (the variable: "0" is off, anything else on).
 *   "crc32c-accel"  UDM_CRC32C_ACCEL: the same for CRC-32C (SSE4.2, ARMv8
 *                   crc) in metadata and udmz checksums.
 * A setting applies to tables loaded and images opened after it is set;
 * live tables keep what they were built with.  Results never differ, only
 * the speed (accelerators) or what is found (directories).  An unknown NAME
 * or a bad VALUE: -1 with EINVAL, nothing changed.
 */
int udm_ctx_set_option(struct udm_ctx *ctx, const char *name, const char *value);
/* The current value of NAME as a malloc'd string in *value (NULL: unset). */
int udm_ctx_get_option(struct udm_ctx *ctx, const char *name, char **value);

/*
 * Progress of long work the library does for ctx (an image driver's check
 * for "udm image verify"; later a target's resync): FN(OPAQUE, WHAT, DONE,
 * TOTAL) is called on the thread doing the work, as often as the work likes
 * (a display throttles), with WHAT naming the job ("verify").  FN NULL: none
 * (the default).  FN must not call back into ctx.
 */
typedef void udm_progress_fn(void *opaque, const char *what, uint64_t done, uint64_t total);
int udm_ctx_set_progress(struct udm_ctx *ctx, udm_progress_fn *fn, void *opaque);
/* For drivers and targets: report DONE of TOTAL of job WHAT to ctx's FN (ctx may be NULL). */
void udm_ctx_progress(struct udm_ctx *ctx, const char *what, uint64_t done, uint64_t total);

/* ---- device lifecycle ------------------------------------------------- */
#define UDM_DEVICE_READONLY 0x1u

/*
 * Create a device with no table (like "dmsetup create --notable").
 * Returns a referenced handle; drop it with udm_device_unref().
 */
struct udm_device *udm_device_create(struct udm_ctx *ctx, const char *name,
                                     const char *uuid, unsigned flags);
/* Look a device up by name; referenced handle, or NULL with errno ENXIO. */
struct udm_device *udm_device_lookup(struct udm_ctx *ctx, const char *name);
void udm_device_ref(struct udm_device *dev);
void udm_device_unref(struct udm_device *dev);

/* Mark the device open (an export, an attached client); counted in info. */
void udm_device_open(struct udm_device *dev);
void udm_device_close(struct udm_device *dev);

#define UDM_REMOVE_FORCE 0x1u
/*
 * Remove the device from its context.  Refused with EBUSY while it is open
 * or used by another device's table.  With UDM_REMOVE_FORCE an open device
 * first gets a table that fails all I/O (as "dmsetup remove --force"),
 * then is removed; holders of references see EIO until they let go.
 * A device used by another device's table is never removed.
 */
int udm_device_remove(struct udm_device *dev, unsigned flags);

/* ---- tables ----------------------------------------------------------- */
/*
 * Load TEXT (dmsetup table syntax, one segment per line; blank lines and
 * lines starting with '#' ignored) as the inactive table.  Any previous
 * inactive table is replaced.  On failure nothing changes and the message
 * names the line and token at fault.
 */
int udm_table_load(struct udm_device *dev, const char *text);
/* Targets (segments) one table may have, as in Linux (DM_MAX_TARGETS); more: E2BIG. */
#define UDM_TABLE_MAX_TARGETS 1048576u
/*
 * WORD as it must be written in a table to be read back as one word: blanks
 * and backslashes get a backslash (dm_split_args' rule), and so does '#',
 * which after the target name starts a comment.  malloc'd; NULL with
 * udm_errmsg() when out of memory, or (EINVAL) when WORD holds a line break,
 * which no table can hold.  Use it for paths when composing tables.
 */
char *udm_table_escape(const char *word);
/* Drop the inactive table ("dmsetup clear"). */
int udm_table_clear(struct udm_device *dev);

/*
 * Wait for in-flight I/O, then hold new I/O until resume.  Idempotent.
 * flags must be 0 (reserved).  Requests targets asked the core to hold
 * (multipath's queue_if_no_path) are not in flight: a suspend does not wait
 * for them and they stay held, as through dm's noflush suspend.
 */
int udm_device_suspend(struct udm_device *dev, unsigned flags);
/*
 * Swap in the inactive table if there is one (suspending first if needed),
 * then let held I/O go.  A device with no live table cannot be resumed.
 */
int udm_device_resume(struct udm_device *dev);

#define UDM_TABLE_SHOWKEYS 0x1u
#define UDM_TABLE_INACTIVE 0x2u
#define UDM_TABLE_MEASURE  0x4u /* udm_device_status: IMA text, "dmsetup measure" */
/* "dmsetup table": malloc'd text, one line per segment, in *out. */
int udm_device_table(struct udm_device *dev, unsigned flags, char **out);
/* "dmsetup status": malloc'd text in *out. */
int udm_device_status(struct udm_device *dev, unsigned flags, char **out);
/* "dmsetup message NAME SECTOR MSG": reply (maybe empty) malloc'd in *reply. */
int udm_device_message(struct udm_device *dev, uint64_t sector,
                       const char *message, char **reply);

/* Device names this device's live and inactive tables use (udm stacking). */
int udm_device_foreach_dep(struct udm_device *dev,
                           int (*fn)(void *opaque, const char *path),
                           void *opaque);

/* One device a table uses ("dmsetup deps"). */
struct udm_dep {
  const char *path;   /* as written in the table (escapes removed) */
  const char *device; /* a udm device: its name now; NULL for files and block devices */
  unsigned minor;     /* the udm device's minor (udm_info.minor); 0 otherwise */
};
/*
 * Calls fn once for each device the live table (UDM_TABLE_INACTIVE: the
 * inactive one) uses, most recently opened first, as the kernel lists
 * them; nothing without such a table.  fn runs under the context's lock:
 * it must copy what it needs and call nothing of libudm.  fn returns
 * non-zero to stop, which is returned.
 */
int udm_device_foreach_used(struct udm_device *dev, unsigned flags,
                            int (*fn)(void *opaque, const struct udm_dep *dep),
                            void *opaque);

/*
 * "dmsetup rename": give the device a new name, which no other device may
 * have (EBUSY).  Tables stacked on the device keep using it (they hold the
 * device, not its name) and print its new name from then on: udm:NEW, or
 * /dev/mapper/NEW where they were written that way.  Handles stay valid.
 * A frontend that names devices (the FUSE export) must follow itself.
 */
int udm_device_rename(struct udm_device *dev, const char *new_name);
/*
 * "dmsetup rename --setuuid": set the uuid of a device that has none.  As
 * in the kernel, a uuid once set cannot change (EINVAL; setting the same
 * one again is no change); one used by another device gives EBUSY.
 */
int udm_device_set_uuid(struct udm_device *dev, const char *uuid);

struct udm_info {
  char name[UDM_NAME_MAX + 1];
  char uuid[UDM_UUID_MAX + 1];
  int suspended;          /* 1 when suspended */
  int live_table;         /* a live table is present */
  int inactive_table;     /* an inactive table is present */
  int readonly;
  unsigned open_count;    /* frontends and clients holding it open */
  unsigned holders;       /* tables of other devices using it */
  uint32_t event_nr;
  unsigned target_count;  /* segments of the live table */
  uint64_t size;          /* bytes of the live table (0 without one) */
  unsigned minor;         /* udm's stable device number, for "Major, minor" */
  /* Reads that touched a range an image marks bad (UDM_EXTENT_BAD), summed
   * over the image devices of the live table (see <udm/driver.h>). */
  uint64_t bad_block_hits;
};
int udm_device_info(struct udm_device *dev, struct udm_info *info);
/*
 * Wait for an event on the device ("dmsetup wait"): return 0 as soon as its
 * event number (udm_info.event_nr, raised by targets through
 * udm_target_event) differs from EVENT_NR, which may already be the case.
 * Give the number read from udm_device_info to wait for the next event.
 * Fails with ENXIO when the device is or gets removed, with ETIMEDOUT after
 * TIMEOUT_MS milliseconds (-1: no limit; 0: only check).  Blocks the
 * calling thread; any number of threads may wait on one device.
 */
int udm_device_wait_event(struct udm_device *dev, uint32_t event_nr, int timeout_ms);
/*
 * The device's name.  It changes with udm_device_rename: a caller that may
 * run while another thread renames the device copies it from
 * udm_device_info instead.
 */
const char *udm_device_name(const struct udm_device *dev);
/* Live table size in bytes (0 when no live table). */
uint64_t udm_device_size(struct udm_device *dev);
/*
 * Logical block size of the live table in bytes (512 without one): the
 * largest of 512, what its targets ask for (crypt's sector_size) and the
 * logical block sizes of its backing devices.  Frontends advertise it; the
 * byte-addressed calls below read-modify-write at this granularity.
 */
unsigned udm_device_block_size(struct udm_device *dev);

/* What the live table can do, for frontends to advertise. */
#define UDM_CAP_DISCARD      0x1u  /* every segment accepts discard */
#define UDM_CAP_WRITE_ZEROES 0x2u  /* every segment accepts write-zeroes */
#define UDM_CAP_FUA          0x4u
#define UDM_CAP_READONLY     0x8u
#define UDM_CAP_FLUSH        0x10u
unsigned udm_device_caps(struct udm_device *dev);

/* ---- I/O (thread-safe; many threads may call at once) -------------- */
#define UDM_IO_FUA         0x1u /* write through to stable storage */
#define UDM_IO_MAY_UNMAP   0x2u /* write-zeroes may deallocate */
#define UDM_IO_NO_FALLBACK 0x4u /* write-zeroes must be fast or fail ENOTSUP */

/*
 * Byte-addressed I/O on the live table.  Offsets and lengths that are not
 * multiples of the logical block size (udm_device_block_size) are handled
 * by read-modify-write of the edge blocks; discard covers only the whole
 * blocks inside its range.
 * Return 0, or -1 with errno (EIO from an error target, ENOSPC, ...).
 */
int udm_device_pread(struct udm_device *dev, void *buf, size_t len, uint64_t off);
int udm_device_pwrite(struct udm_device *dev, const void *buf, size_t len,
                      uint64_t off, unsigned flags);
int udm_device_flush(struct udm_device *dev);
int udm_device_discard(struct udm_device *dev, uint64_t len, uint64_t off,
                       unsigned flags);
int udm_device_write_zeroes(struct udm_device *dev, uint64_t len, uint64_t off,
                            unsigned flags);

/*
 * Asynchronous I/O: the same operations, without a thread per request.
 * Each call either returns -1 (with udm_errmsg) having started nothing, or
 * returns 0 and later calls done(opaque, err) exactly once, err being 0 or
 * a negative errno.  done may run before the call returns, on the calling
 * thread, or on one of libudm's I/O threads; it must not block for long
 * (hand a slow job, such as a send to a slow network client, to a thread of
 * your own) and must not wait for another asynchronous request.  BUF must
 * stay valid until done.  While the device is suspended, requests are
 * queued and start at resume.  Unaligned ranges are handled as by the
 * blocking calls (the edge blocks are read first).
 */
typedef void (*udm_io_done_fn)(void *opaque, int err);
int udm_device_aio_pread(struct udm_device *dev, void *buf, size_t len, uint64_t off,
                         udm_io_done_fn done, void *opaque);
int udm_device_aio_pwrite(struct udm_device *dev, const void *buf, size_t len,
                          uint64_t off, unsigned flags, udm_io_done_fn done,
                          void *opaque);
int udm_device_aio_flush(struct udm_device *dev, udm_io_done_fn done, void *opaque);
int udm_device_aio_discard(struct udm_device *dev, uint64_t len, uint64_t off,
                           unsigned flags, udm_io_done_fn done, void *opaque);
int udm_device_aio_write_zeroes(struct udm_device *dev, uint64_t len, uint64_t off,
                                unsigned flags, udm_io_done_fn done, void *opaque);

/*
 * A hint for a frontend thread that would only wait for its next client
 * request anyway (its client has nothing more in flight): while ON is
 * non-zero on the calling thread, a file read, write or flush that an aio
 * call starts on an idle I/O engine is done on this thread, before the
 * call returns, instead of being handed to the engine's thread and back.
 * That saves two thread wake-ups per request at queue depth 1; with other
 * operations in flight, or with ON zero (the default), nothing changes.
 */
void udm_io_inline(int on);

/* Allocation status of a byte range (NBD's base:allocation). */
#define UDM_EXTENT_HOLE 0x1u /* not allocated */
#define UDM_EXTENT_ZERO 0x2u /* reads as zeros */
#define UDM_EXTENT_BAD  0x4u /* reads fail (bad blocks) */
/*
 * Calls fn for consecutive extents from OFF covering at least one byte and at
 * most LEN bytes; fn returns non-zero to stop early.  Unknown ranges are
 * reported as data (flags 0).
 */
int udm_device_extents(struct udm_device *dev, uint64_t len, uint64_t off,
                       int (*fn)(void *opaque, uint64_t off, uint64_t len,
                                 unsigned flags),
                       void *opaque);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
