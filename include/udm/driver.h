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
 * Asynchronous drivers (API version 2): a driver may also give aio(), which
 * starts a request and finishes it later with udm_image_req_complete().  Its
 * data I/O on the image file goes through the core's I/O engine
 * (udm_image_req_file_io: io_uring, or the portable engine), so a request
 * waiting for the disk holds no thread.  What must block (a metadata read
 * that misses the driver's cache) or burn CPU (decompression) the driver
 * hands back (-EWOULDBLOCK: the core runs the blocking callback on its pool)
 * or defers (udm_image_req_defer).  Without aio() every request runs the
 * blocking callbacks on the core's pool, as drivers of API version 1 do.
 * UDM_IMAGE_AIO=off in the environment of the process that opens the image
 * forces the pool for every driver (for comparisons).
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

#include <udm/target.h> /* enum udm_op, UDM_IO_FUA */
#include <udm/udm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is libudm's ABI (docs/abi.md); the library is
 * built with -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/*
 * 1: the blocking callbacks only.  2: adds aio().  A driver built for 1 (its
 * struct_size ends before aio) keeps loading and runs on the pool.
 */
#define UDM_IMAGE_DRIVER_API_VERSION 2

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

/*
 * One asynchronous request (API version 2), made by the core and valid until
 * the driver completes it.  Fields may be added at the end; drivers never
 * allocate one.
 */
struct udm_image_req {
  enum udm_op op;     /* UDM_OP_READ, UDM_OP_WRITE, UDM_OP_FLUSH, UDM_OP_DISCARD */
  unsigned flags;     /* UDM_IO_FUA on writes */
  void *buf;          /* READ: fill LEN bytes; WRITE: the LEN bytes to write */
  size_t len;         /* bytes; multiples of 512 and of block_size() */
  uint64_t off;       /* bytes into the image */
  void *driver_data;  /* the driver's own, NULL when aio() is called */
};

/*
 * Finish REQ with ERR (0 or -errno), exactly once, from any thread, possibly
 * before aio() returns.  REQ is gone afterwards.  A read that fails with
 * -EIO on a range the driver's extents() marks bad gets the core's bad-block
 * policy, as a blocking pread() does.
 */
void udm_image_req_complete(struct udm_image_req *req, int err);

typedef void (*udm_image_io_done_fn)(struct udm_image_req *req, void *opaque, int res);
/*
 * Asynchronous file I/O for REQ through the core's I/O engine: OP is
 * UDM_OP_READ (LEN bytes of FD at OFF into BUF; past the end of the file
 * reads zeros), UDM_OP_WRITE (BUF to FD) or UDM_OP_FLUSH (fdatasync of FD;
 * BUF, LEN and OFF ignored).  done(req, opaque, res) runs once, res 0 when
 * every byte moved or -errno, on an engine thread or before this returns;
 * it must not block (defer blocking work).  A driver may have several in
 * flight for one request; BUF must stay valid until done.  FD stays open
 * while the image is open (the core remembers whether it bypasses the page
 * cache: reads and small writes through the cache are done before this
 * returns, on the calling thread).
 */
void udm_image_req_file_io(struct udm_image_req *req, enum udm_op op, int fd, void *buf,
                           size_t len, uint64_t off, udm_image_io_done_fn done,
                           void *opaque);
/*
 * Run fn(req, opaque) on the core's pool: work that blocks (a metadata read
 * that missed a cache) or burns CPU (decompression), which must not hold up
 * the thread that completes I/O.  Counted as a pool job (one thread busy).
 */
void udm_image_req_defer(struct udm_image_req *req,
                         void (*fn)(struct udm_image_req *req, void *opaque),
                         void *opaque);

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

  /* ---- API version 2 ---- */
  /*
   * aio (optional): start REQ and return 0; the driver then completes it
   * once with udm_image_req_complete().  Called on a thread that must not
   * block (a frontend's or an I/O completion's): do cached lookups only, the
   * data I/O with udm_image_req_file_io, and defer anything that waits.
   * Return -EWOULDBLOCK, having started nothing, for a request the driver
   * cannot do that way (a cache miss, a kind of op it has no asynchronous
   * path for): the core then runs the blocking callback (pread, pwrite,
   * flush, discard) on its pool.  Any other -errno fails REQ at once, with
   * nothing started.  Never called for write-zeroes (the core writes zero
   * buffers through pwrite).
   */
  int (*aio)(void *handle, struct udm_image_req *req);
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
