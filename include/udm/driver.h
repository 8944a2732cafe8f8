/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <udm/driver.h> — userspace drivers for disk-image formats.
 *
 * A driver turns an image file (qcow2, a compressed archive with a bad-block
 * map, your own format) into a flat array of bytes that tables can use as a
 * backing device, written `FORMAT:PATH[?key=value&key=value]` in a table
 * (e.g. `0 2048 linear qcow2:/imgs/a.qcow2 0`).  The format is never guessed
 * for a table: a raw path stays raw.
 *
 * A driver is one struct udm_image_driver with designated initialisers,
 * stamped with UDM_IMAGE_DRIVER_INIT.  Unset optional callbacks mean
 * "unsupported" (writes then fail with EROFS, discards with EOPNOTSUPP).
 * Callbacks return 0 or a negative errno and may be called from many threads
 * at once with the same handle: a driver with shared mutable state locks it.
 *
 * Table options: `bad=eio|zero|fill:0xNN` is the core's (the bad-block
 * policy) and never reaches the driver; every other key goes to open().
 *
 * A driver built as a shared object exports one symbol,
 *   const struct udm_image_driver *udm_image_driver_entry(void);
 * and is loaded with udm_image_driver_load() (by path) or from the plugin
 * directory.
 */
#ifndef UDM_DRIVER_H
#define UDM_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/udm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is libudm's ABI (docs/abi.md); the library is
 * built with -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define UDM_IMAGE_DRIVER_API_VERSION 1

/* The `?key=value&...` options of a table argument, in order. */
struct udm_image_options {
  unsigned count;
  const char *const *keys;
  const char *const *values;
  struct udm_ctx *ctx; /* the core's, for udm_image_check_file; may be NULL */
};

/*
 * For open(): may the driver open FILE, a file other than PATH that the
 * image names (a backing file)?  0, or -errno with *errmsg (malloc'd) when
 * FILE leads into an export directory of the context (udm's own device
 * files, see udm_ctx_add_export_dir in <udm/udm.h>), which must never be
 * opened from inside the context.  Decided without opening FILE.  Call it
 * before anything that touches FILE (realpath, stat, open).
 */
int udm_image_check_file(const struct udm_image_options *opts, const char *file,
                         char **errmsg);

/* Report one extent: off/len in bytes, flags UDM_EXTENT_HOLE|ZERO|BAD. */
typedef int (*udm_image_extent_fn)(void *opaque, uint64_t off, uint64_t len,
                                   unsigned flags);

struct udm_image_driver {
  size_t struct_size;    /* set by UDM_IMAGE_DRIVER_INIT */
  unsigned api_version;

  const char *name;        /* required: the FORMAT word, [a-z0-9_-]+ */
  const char *description; /* one line for "udm image formats" */

  /*
   * probe (optional): how sure the driver is that HEADER (the first LEN bytes
   * of a file) is its format, 0 (not) to 100 (certain).  Used only by
   * "udm image info", never for tables.
   */
  int (*probe)(const void *header, size_t len);
  /*
   * open (required): open PATH.  Unknown option keys must be refused.  On
   * failure return -errno and set *errmsg to a malloc'd message naming the
   * problem (e.g. "a.qcow2: L1 table entry 3 points past the end of the file").
   */
  int (*open)(const char *path, const struct udm_image_options *opts, bool writable,
              void **handle, char **errmsg);
  void (*close)(void *handle);                      /* required */
  uint64_t (*size)(void *handle);                   /* required: bytes */
  /*
   * block_size (optional): the image's logical block size in bytes, a power
   * of two from 512 to 65536 (default 512).  A device over the image gets at
   * least this block size, tables must map the image in whole blocks, and
   * requests then come in whole blocks.
   */
  unsigned (*block_size)(void *handle);
  /*
   * pread (required): LEN bytes at OFF (both multiples of 512, and of
   * block_size() when the driver has one).  Ranges the image marks bad
   * return -EIO here; the core applies the user's bad-block policy from
   * extents() (see below).
   */
  int (*pread)(void *handle, void *buf, size_t len, uint64_t off);
  int (*pwrite)(void *handle, const void *buf, size_t len, uint64_t off,
                unsigned flags /* UDM_IO_FUA */);     /* optional */
  int (*flush)(void *handle);                        /* optional */
  int (*discard)(void *handle, uint64_t len, uint64_t off); /* optional */
  /*
   * extents (optional): describe [off, off+len) from OFF, in order, at least
   * one byte.  UDM_EXTENT_BAD marks unreadable ranges (bad blocks).
   */
  int (*extents)(void *handle, uint64_t len, uint64_t off, udm_image_extent_fn fn,
                 void *opaque);
  /*
   * info (optional): "Key: value" lines for "udm image info", into a
   * malloc'd string.  The first line should be "Format: NAME".
   */
  int (*info)(void *handle, char **text);
  /*
   * check (optional): verify the whole image (every checksum, every table
   * entry, every compressed block decompresses) for "udm image verify".
   * Return 0 when sound; on damage -EIO (or another -errno) with *report a
   * malloc'd text naming each problem found.  *report may also be set on
   * success (a summary).
   */
  int (*check)(void *handle, char **report);
};

#define UDM_IMAGE_DRIVER_INIT \
  .struct_size = sizeof(struct udm_image_driver), \
  .api_version = UDM_IMAGE_DRIVER_API_VERSION

/*
 * Size in bytes of what a table would see through DEVICE (any table device
 * argument: a path, FORMAT:PATH[?options], raw:..., udm:NAME), opened
 * read-only.  For "udm create NAME --image SPEC" and similar tools.
 */
int udm_image_size(struct udm_ctx *ctx, const char *device, uint64_t *bytes);

/* Register a driver in ctx (built-in drivers are registered by udm_ctx_new). */
int udm_image_driver_register(struct udm_ctx *ctx, const struct udm_image_driver *drv);
/* Load a driver from a shared object and register it. */
int udm_image_driver_load(struct udm_ctx *ctx, const char *so_path);
/* Calls fn for each registered driver. */
int udm_ctx_foreach_image_driver(struct udm_ctx *ctx,
                                 int (*fn)(void *opaque,
                                           const struct udm_image_driver *drv),
                                 void *opaque);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
