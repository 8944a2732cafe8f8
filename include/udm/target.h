/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <udm/target.h> — the API a target (linear, striped, crypt, ...) is written
 * against.  It mirrors Linux dm's callback set so that its vocabulary is the
 * one dm users already know: ctr, dtr, map, status (INFO and TABLE),
 * message, iterate_devices, and the suspend/resume hooks.
 *
 * A target is one struct udm_target_type with designated initialisers,
 * stamped with UDM_TARGET_TYPE_INIT so the core can tell which fields an
 * older target knows about.  An unset optional callback means "default".
 *
 * I/O is synchronous from the target's point of view: map() is called on a
 * worker thread and either remaps the request onto a backing device (the
 * core then submits it there), completes it itself, or fails it.  Many
 * threads call map() at once: per-target state needs its own locking.
 *
 * Internal convention: functions return 0 or a negative errno.
 */
#ifndef UDM_TARGET_H
#define UDM_TARGET_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/udm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UDM_TARGET_API_VERSION 1

typedef uint64_t udm_sector_t;

/* A backing device opened by a target: a file, a block device or a udm device. */
struct udm_dev;

enum udm_op {
  UDM_OP_READ = 0,
  UDM_OP_WRITE,
  UDM_OP_FLUSH,         /* nr_sectors == 0 */
  UDM_OP_DISCARD,       /* deallocate; later reads return zeros on udm's file backing */
  UDM_OP_WRITE_ZEROES,
};

/*
 * One request, in 512-byte sectors.  The core splits requests at segment
 * boundaries and at the target's max_io_len, so map() only ever sees a
 * request inside its own segment.  io->sector is relative to the device the
 * request is addressed to; on entry to map() it is the device sector, use
 * udm_target_offset() for the offset inside the segment.
 */
struct udm_io {
  enum udm_op op;
  unsigned flags;          /* UDM_IO_FUA, UDM_IO_MAY_UNMAP, UDM_IO_NO_FALLBACK */
  udm_sector_t sector;
  uint64_t nr_sectors;
  void *buf;               /* READ/WRITE: nr_sectors * 512 bytes; else NULL */
  struct udm_dev *dev;     /* set by map() when it returns UDM_MAPIO_REMAPPED */
  unsigned target_io_nr;   /* which of num_flush_ios/num_discard_ios this is */
};

/* map() results (a negative errno fails the request). */
#define UDM_MAPIO_REMAPPED 1 /* submit io to io->dev at io->sector */
#define UDM_MAPIO_DONE     2 /* the target completed io itself, successfully */

enum udm_status_type {
  UDM_STATUS_INFO,  /* runtime state, "dmsetup status" */
  UDM_STATUS_TABLE, /* constructor line that reloads to the same device */
};

/* An output buffer for status/message text (dm's DMEMIT, but explicit). */
struct udm_buf;
/* Append formatted text; on allocation failure the buffer is marked failed. */
void udm_buf_printf(struct udm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void udm_buf_puts(struct udm_buf *b, const char *s);

/* A target instance: one segment of one table. */
struct udm_target {
  udm_sector_t begin;        /* first device sector of the segment */
  udm_sector_t len;          /* sectors */
  void *private;             /* the target's own state, set by ctr */
  /* Set by ctr as needed: */
  uint64_t max_io_len;       /* split I/O at multiples of this (0: no limit) */
  unsigned num_flush_ios;    /* flushes sent to map(), default 1 */
  unsigned num_discard_ios;  /* 0: discard unsupported (default 1) */
  unsigned num_write_zeroes_ios; /* 0: write-zeroes unsupported (default 1) */
  const struct udm_target_type *type;
  struct udm_table_ctx *table; /* opaque: the table under construction */
  char *error;               /* set via udm_target_error() */
};

/*
 * Limits of a table's device, combined over its targets and their backing
 * devices when the table is built (Linux dm's queue limits, reduced to what
 * udm uses).  The core owns this struct: fields may be added at its end.
 */
struct udm_limits {
  /*
   * The smallest request, in bytes, the device accepts (a power of two from
   * 512 to UDM_LOGICAL_BLOCK_SIZE_MAX).  Every request reaching the table
   * covers whole blocks of this size, and every segment starts and ends on
   * one; frontends advertise it (NBD minimum block size, loop block size).
   */
  unsigned logical_block_size;
};

#define UDM_LOGICAL_BLOCK_SIZE_MAX 65536u /* NBD's largest minimum block size */

typedef int (*udm_iterate_devices_fn)(struct udm_target *ti, struct udm_dev *dev,
                                      udm_sector_t start, udm_sector_t len,
                                      void *data);
typedef int (*udm_extent_fn)(void *opaque, udm_sector_t sector, uint64_t nr_sectors,
                             unsigned flags);

struct udm_target_type {
  /* Set by UDM_TARGET_TYPE_INIT: which fields this target was built with. */
  size_t struct_size;
  unsigned api_version;

  const char *name;          /* required */
  unsigned version[3];       /* reported by "udm targets" */

  /*
   * ctr (required): parse argv (the words after "<start> <len> <name>"),
   * open devices with udm_get_device(), set ti->private.  On failure call
   * udm_target_error() and return a negative errno; dtr is then called on
   * the half-built target, so dtr must cope with partial state.
   * The syntax of each target is documented above its ctr.
   */
  int (*ctr)(struct udm_target *ti, unsigned argc, char **argv);
  /* dtr (optional): release everything ctr took. ti->private may be NULL. */
  void (*dtr)(struct udm_target *ti);
  /* map (required): see UDM_MAPIO_*. */
  int (*map)(struct udm_target *ti, struct udm_io *io);
  /* status (optional): INFO or TABLE text.  Missing: INFO is empty. */
  void (*status)(struct udm_target *ti, enum udm_status_type type,
                 unsigned flags /* UDM_TABLE_SHOWKEYS */, struct udm_buf *out);
  /*
   * message (optional): argv is the message split on spaces.  Reply text goes
   * to out.  Return 0, or -EINVAL with udm_target_error() for bad messages.
   */
  int (*message)(struct udm_target *ti, unsigned argc, char **argv,
                 struct udm_buf *out);
  /* iterate_devices (optional): call fn once per backing device used. */
  int (*iterate_devices)(struct udm_target *ti, udm_iterate_devices_fn fn,
                         void *data);
  /* Suspend/resume hooks (all optional), called in table order. */
  void (*presuspend)(struct udm_target *ti);
  void (*postsuspend)(struct udm_target *ti);
  int (*preresume)(struct udm_target *ti);
  void (*resume)(struct udm_target *ti);
  /*
   * extents (optional): report allocation of [sector, sector+nr) inside the
   * segment (sector relative to the segment) through fn.  Missing: data.
   */
  int (*extents)(struct udm_target *ti, udm_sector_t sector, uint64_t nr_sectors,
                 udm_extent_fn fn, void *opaque);
  /*
   * io_hints (optional): adjust the limits of this segment, called once when
   * the table is built, after ctr.  On entry limits holds what the backing
   * devices reported through iterate_devices (at least 512).  A target may
   * raise logical_block_size (crypt raises it to its sector_size); a lower
   * value than on entry is ignored.  Missing: the devices' limits stand.
   * Appended last: targets built before it have it NULL.
   */
  void (*io_hints)(struct udm_target *ti, struct udm_limits *limits);
};

#define UDM_TARGET_TYPE_INIT \
  .struct_size = sizeof(struct udm_target_type), .api_version = UDM_TARGET_API_VERSION

/* Register an extra target type (built-in ones are registered by udm_ctx_new). */
int udm_target_register(struct udm_ctx *ctx, const struct udm_target_type *type);

/* ---- helpers for ctr ---------------------------------------------------- */

/* Set the message that explains a failure of ctr/message (printf-style). */
void udm_target_error(struct udm_target *ti, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sector inside the segment for a device sector. */
static inline udm_sector_t udm_target_offset(const struct udm_target *ti,
                                             udm_sector_t sector)
{
  return sector - ti->begin;
}

/* Open modes for udm_get_device(). */
#define UDM_DEV_READ  0x1u
#define UDM_DEV_WRITE 0x2u

/*
 * Open a backing device named in a table: a path to a regular file or block
 * device, or a udm device as "udm:NAME" or "/dev/mapper/NAME".  Opens are
 * shared within a table.  The mode is ignored for read-only devices (writes
 * then fail with EROFS); an image whose driver cannot write is opened
 * read-only, and the table's device is then reported UDM_CAP_READONLY.
 */
int udm_get_device(struct udm_target *ti, const char *path, unsigned mode,
                   struct udm_dev **out);
void udm_put_device(struct udm_target *ti, struct udm_dev *dev);
/*
 * For a ctr that reads a file other than a device (a key file): 0 when it
 * may, or -errno with udm_target_error() set when PATH leads into one of the
 * context's export directories (udm's own device files, which must never be
 * opened from inside the context: see udm_ctx_add_export_dir).  Decided
 * without opening PATH; call it before touching PATH.
 */
int udm_target_check_file(struct udm_target *ti, const char *path);
/* The name as given in the table (for TABLE status lines). */
const char *udm_dev_name(const struct udm_dev *dev);
/* Size in sectors. */
udm_sector_t udm_dev_size(const struct udm_dev *dev);
/* Submit a request synchronously to a backing device: 0 or -errno. */
int udm_dev_submit(struct udm_dev *dev, struct udm_io *io);
/* Extents of [sector, sector+nr) on the backing device, sectors relative to it. */
int udm_dev_extents(struct udm_dev *dev, udm_sector_t sector, uint64_t nr_sectors,
                    udm_extent_fn fn, void *opaque);

/* ---- argument parsing (dm_arg-like) ------------------------------------- */

/* Strict number parsers: reject empty, signs, trailing junk and overflow. */
int udm_parse_u64(const char *s, uint64_t *out);
int udm_parse_uint(const char *s, unsigned *out);

/* A cursor over a target's argv. */
struct udm_arg_set {
  unsigned argc;
  char **argv;
};

/* Range and error text for one numeric argument. */
struct udm_arg {
  unsigned min;
  unsigned max;
  const char *error; /* e.g. "Invalid number of stripes" */
};

/* Next word, or NULL when exhausted (shifts). */
const char *udm_shift_arg(struct udm_arg_set *as);
/* Read one unsigned in [arg->min, arg->max], set the target error on failure. */
int udm_read_arg(struct udm_arg_set *as, const struct udm_arg *arg,
                 unsigned *value, struct udm_target *ti);
/*
 * Read a "<#args>" group count, also checking that that many words remain
 * (dm's dm_read_arg_group), for "<#features> <feature>..." lists.
 */
int udm_read_arg_group(struct udm_arg_set *as, const struct udm_arg *arg,
                       unsigned *value, struct udm_target *ti);
void udm_consume_args(struct udm_arg_set *as, unsigned n);

#ifdef __cplusplus
}
#endif
#endif
