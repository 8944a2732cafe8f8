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
 * I/O is asynchronous.  map() is called for each piece of a request and
 * either remaps it onto a backing device (the core then submits it there:
 * a *remap* target, udm_remap()), completes it at once (UDM_MAPIO_DONE), or
 * takes ownership (UDM_MAPIO_SUBMITTED) and finishes it later with
 * udm_io_complete() from any thread: an *owning* target (delay is the
 * model: it queues, a timer releases, presuspend hands everything back).
 * UDM_MAPIO_REQUEUE parks the piece on the core's hold list until resume or
 * udm_target_kick(), so a suspend never waits for it.  Many threads call
 * map() at once: per-target state needs its own locking.  map() may still
 * block (udm_dev_submit() is the synchronous way to do I/O on a backing
 * device), at the cost of the calling thread; owning targets should not.
 *
 * Version 1 targets (no end_io, no per_io_size) keep loading: the size
 * stamp tells the core which fields a target knows.
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

/* Everything declared here is libudm's ABI (docs/abi.md); the library is
 * built with -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define UDM_TARGET_API_VERSION 3

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
  /* ---- API version 2 ---- */
  /*
   * Completion: whoever submits io asynchronously (udm_dev_submit_async)
   * sets end_io, and end_private for its own use; udm_io_complete() calls
   * end_io exactly once.  On requests the core hands to map() these belong
   * to the core: do not change them.
   */
  void (*end_io)(struct udm_io *io, int err);
  void *end_private;
  /* In map() and the type's end_io: ti->per_io_size bytes, zeroed before map(). */
  void *per_io;
};

/* map() results (a negative errno fails the request). */
#define UDM_MAPIO_REMAPPED 1 /* submit io to io->dev at io->sector */
#define UDM_MAPIO_DONE     2 /* the target completed io itself, successfully */
#define UDM_MAPIO_SUBMITTED 3 /* the target owns io and calls udm_io_complete() later */
#define UDM_MAPIO_REQUEUE  4 /* hold io; map it again at resume or udm_target_kick() */
#define UDM_MAPIO_KILL     5 /* fail io with EIO */

/* end_io results. */
#define UDM_ENDIO_DONE       0 /* complete with *err */
#define UDM_ENDIO_REQUEUE    1 /* hold io as UDM_MAPIO_REQUEUE does */
#define UDM_ENDIO_INCOMPLETE 2 /* the target took io back; it calls udm_io_complete() */

enum udm_status_type {
  UDM_STATUS_INFO,  /* runtime state, "dmsetup status" */
  UDM_STATUS_TABLE, /* constructor line that reloads to the same device */
  /*
   * IMA (API version 3): the kernel's STATUSTYPE_IMA text, "dmsetup measure":
   * udm_target_ima_header() then ",key=value" pairs and a final ';'.  Write
   * nothing if the kernel's target has none.  Targets built against API 1 or
   * 2 are never asked; their answer is empty, as for a kernel target
   * without STATUSTYPE_IMA.  Never write key material.
   */
  UDM_STATUS_IMA,
};

/* An output buffer for status/message text (dm's DMEMIT, but explicit). */
struct udm_buf;
/* Append formatted text; on allocation failure the buffer is marked failed. */
void udm_buf_printf(struct udm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void udm_buf_puts(struct udm_buf *b, const char *s);
struct udm_target;
/* Start an IMA answer: "target_name=NAME,target_version=A.B.C" (the kernel's
 * DMEMIT_TARGET_NAME_VERSION). */
void udm_target_ima_header(struct udm_target *ti, struct udm_buf *b);

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
  /* ---- API version 2 (the core allocates this struct: new fields go last) ---- */
  unsigned per_io_size;      /* bytes of io->per_io for each mapped piece */
  /* Set by udm_target_set_remap(): the default map, iterate_devices, extents. */
  struct udm_dev *remap_dev;
  udm_sector_t remap_start;
  /* ---- API version 3 ---- */
  /*
   * Set by ctr: discards are not split at max_io_len (only at segment ends
   * and the table's max_discard_sectors), as the kernel's dm core sends a
   * discard whole to a target without max_discard_granularity (dm-cache).
   */
  int whole_discards;      /* 0 or 1 */
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
  /*
   * Discards: the largest one a target takes, in sectors (0: no limit; the
   * core splits larger ones, each piece starting on a multiple of it inside
   * the segment), and the unit a discard frees, in bytes (0: the logical
   * block size; a power of two, advisory, for frontends).  A target's
   * io_hints sets them; a table keeps the smallest nonzero maximum and the
   * largest granularity of its segments.
   */
  uint64_t max_discard_sectors;
  unsigned discard_granularity;
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
  /*
   * map (required unless ctr calls udm_target_set_remap): see UDM_MAPIO_*.
   * io->sector is the device sector on entry; io->buf, when set, holds
   * nr_sectors * 512 bytes.
   */
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
  /* ---- API version 2 ---- */
  /*
   * end_io (optional): sees each remapped piece complete, with *err its
   * result (0 or -errno), before the request does; may change *err.
   * Returns UDM_ENDIO_*.  Runs on a completion thread: do not block.
   */
  int (*end_io)(struct udm_target *ti, struct udm_io *io, int *err);
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
/*
 * The table's context setting NAME (udm_ctx_get_option in <udm/udm.h>:
 * keys-dir, crypt-accel, ...) as a malloc'd string in *value (NULL: unset);
 * -1 with udm_errmsg() for an unknown NAME or no memory.
 */
int udm_target_get_option(struct udm_target *ti, const char *name, char **value);
/* The name as given in the table (for TABLE status lines). */
const char *udm_dev_name(const struct udm_dev *dev);
/* Size in sectors. */
udm_sector_t udm_dev_size(const struct udm_dev *dev);
/* The smallest request the device takes, in bytes (512 for files). */
unsigned udm_dev_logical_block_size(const struct udm_dev *dev);
/*
 * Submit a request synchronously to a backing device: 0 or -errno.  It
 * blocks the calling thread; never call it from end_io or a completion.
 */
int udm_dev_submit(struct udm_dev *dev, struct udm_io *io);
/*
 * Submit io asynchronously: io->end_io (required) is called once with 0 or
 * -errno, possibly before this returns.  io and its buffer stay the
 * caller's and must live until then.
 */
void udm_dev_submit_async(struct udm_dev *dev, struct udm_io *io);
/* Finish io with err (0 or -errno): for owning targets and for backing I/O. */
void udm_io_complete(struct udm_io *io, int err);

/*
 * Remap targets.  udm_remap() points io at DEV, START sectors into it, plus
 * the offset inside the segment, and returns UDM_MAPIO_REMAPPED: a
 * linear-like map() is one call.  udm_target_set_remap(), called in ctr,
 * makes that the target's whole map(), and gives it a default
 * iterate_devices and extents (the type may then leave map NULL).
 */
int udm_remap(struct udm_target *ti, struct udm_io *io, struct udm_dev *dev,
              udm_sector_t start);
void udm_target_set_remap(struct udm_target *ti, struct udm_dev *dev,
                          udm_sector_t start);
/*
 * Map again now every piece this target asked to be held (UDM_MAPIO_REQUEUE
 * or UDM_ENDIO_REQUEUE), on the calling thread.  Race-free: a piece whose
 * map() or end_io() ran before the kick but which reaches the hold list
 * after it is mapped again too, so "hold when no path; kick when a path
 * returns" never strands a piece.  An end_io that returns
 * UDM_ENDIO_REQUEUE after kicking has its piece mapped again at once (a
 * failover).  Does nothing while the device is suspended (resume maps
 * everything held).
 */
void udm_target_kick(struct udm_target *ti);
/*
 * Raise an event on the target's device (dm_table_event): its event_nr goes
 * up and udm_device_wait_event() / "udm wait" return.  For state a user
 * should look at (a pool low on space, a failed path); a table swap is not
 * one.  Any thread; does not block on I/O.
 */
void udm_target_event(struct udm_target *ti);
/* Extents of [sector, sector+nr) on the backing device, sectors relative to it. */
int udm_dev_extents(struct udm_dev *dev, udm_sector_t sector, uint64_t nr_sectors,
                    udm_extent_fn fn, void *opaque);

/* ---- deferred work and timers ------------------------------------------ */

/*
 * A worker is a thread of a target's own, for work that must not run in
 * map() or in a completion: releasing held requests on a timer, CPU-heavy
 * work, metadata I/O.  Work items and timers are structs the target embeds
 * in its own state; their callbacks run on the worker's thread, one at a
 * time, in queue order.  Make the worker in ctr, drain it at postsuspend
 * (after presuspend stopped new work), destroy it in dtr:
 *
 *   struct mytarget { struct udm_worker *w; struct udm_timer tick; ... };
 *   ctr:         udm_worker_create(ti, &mt->w);
 *                udm_timer_init(&mt->tick, mt->w, mytarget_tick);
 *   map:         ... udm_timer_arm(&mt->tick, udm_now_ns() + 1000000);
 *                return UDM_MAPIO_SUBMITTED;
 *   tick:        submit what is due with udm_dev_submit_async(), re-arm
 *   presuspend:  release everything held; postsuspend: udm_worker_drain(mt->w);
 *   dtr:         udm_worker_destroy(mt->w);
 *
 * Time is CLOCK_MONOTONIC in nanoseconds (udm_now_ns()).
 */
struct udm_worker;

struct udm_work {
  void (*fn)(struct udm_work *work); /* set before queueing */
  struct udm_work *next;             /* the worker's */
  int queued;                        /* the worker's */
};

struct udm_timer {
  void (*fn)(struct udm_timer *timer); /* set by udm_timer_init */
  struct udm_worker *worker;
  uint64_t deadline;                 /* the worker's */
  struct udm_timer *next;            /* the worker's */
  int armed;                         /* the worker's */
};

uint64_t udm_now_ns(void);
/* 0 or -errno (a thread could not be started). */
int udm_worker_create(struct udm_target *ti, struct udm_worker **out);
/* Runs what is queued, cancels timers, joins the thread.  NULL is ignored. */
void udm_worker_destroy(struct udm_worker *w);
/* Queue work unless it is queued already (then it runs once). */
void udm_worker_queue(struct udm_worker *w, struct udm_work *work);
/* Wait until everything queued before the call has run (not from the worker). */
void udm_worker_drain(struct udm_worker *w);
void udm_timer_init(struct udm_timer *t, struct udm_worker *w,
                    void (*fn)(struct udm_timer *t));
/* Fire at DEADLINE (udm_now_ns() clock); an armed timer moves. */
void udm_timer_arm(struct udm_timer *t, uint64_t deadline);
/* Disarm; true when it was armed.  The callback may be running meanwhile. */
int udm_timer_cancel(struct udm_timer *t);

/* ---- metadata block cache (Linux's dm-bufio) ----------------------------- */

/*
 * A cache of fixed-size blocks of one backing device, for targets that keep
 * metadata on disk (snapshot exceptions, thin/cache/era metadata, a custom
 * format's tables).  A target makes one client in ctr and destroys it in
 * dtr.  A block is read (or made, for a full overwrite) and comes back
 * *pinned*: its bytes stay put and it is not evicted until released.  A
 * changed block is marked dirty; udm_bufio_write_dirty() writes every dirty
 * block back in block order and then flushes the device: that is a commit
 * (persistent-data's).
 *
 * The cache holds at most max_blocks blocks.  A block that is neither
 * pinned nor dirty is evicted, least recently released first; when only
 * dirty ones are left, the oldest is written back first; when every block
 * is pinned, the call fails with -ENOMEM (it never waits for a release,
 * which could deadlock a thread holding pins).
 *
 * The calls that read or write (read, new, write_dirty, write_block, and
 * any that must evict a dirty block) block the calling thread on the
 * device: they are for ctr, message handlers, workers and timers, never for
 * map() or end_io on a hot path; prefetch only starts reads.  All calls
 * are thread-safe.  Failures return a negative errno and leave a message in
 * udm_errmsg() that names the device, the block and the cause (a target
 * passes it on with udm_target_error(ti, "%s", udm_errmsg())).  A block
 * that cannot be read or fails validation is not cached; a block whose
 * write-back fails stays dirty, so a later write-back tries it again.
 *
 * A validator checks a block once, when it comes from the disk (checksum,
 * its own block number, bounds: persistent-data's order), and may stamp it
 * before each write-back (the checksum):
 *
 *   static int sb_check(const struct udm_bufio_validator *v, uint64_t block,
 *                       const void *data, size_t size, char *why, size_t n)
 *   {
 *     const struct my_sb *sb = data;
 *     if (le64_to_cpu(sb->blocknr) != block)
 *       return snprintf(why, n, "it says it is block %llu", ...), -EILSEQ;
 *     if (crc32c(data + 4, size - 4) != le32_to_cpu(sb->csum))
 *       return snprintf(why, n, "bad checksum"), -EILSEQ;
 *     return 0;
 *   }
 *   static void sb_prepare(const struct udm_bufio_validator *v, uint64_t block,
 *                          void *data, size_t size) { ... set blocknr, csum ... }
 *   static const struct udm_bufio_validator sb_validator = {
 *       .name = "superblock", .check = sb_check, .prepare_for_write = sb_prepare};
 *
 *   // ctr:
 *   r = udm_bufio_create(meta_dev, 4096, 1024, &st->bufio);
 *   r = udm_bufio_read(st->bufio, 0, &sb_validator, &b);
 *   if (r < 0) { udm_target_error(ti, "%s", udm_errmsg()); return r; }
 *   ... read udm_buffer_data(b) ...
 *   udm_bufio_release(b);
 *   // a commit, from a worker:
 *   r = udm_bufio_new(st->bufio, 7, &node_validator, &b);   // no read
 *   memcpy(udm_buffer_data(b), node, 4096);
 *   udm_bufio_mark_dirty(b);
 *   udm_bufio_release(b);
 *   r = udm_bufio_write_dirty(st->bufio);                    // writes, then FLUSH
 *   // dtr:
 *   udm_bufio_destroy(st->bufio);
 */
struct udm_bufio;
struct udm_buffer;

struct udm_bufio_validator {
  const char *name;  /* for messages: "superblock", "btree node" */
  /*
   * Check a block read from the device: 0, or -EILSEQ (corrupt) / -EIO
   * with a reason in why (n bytes).  Must not call the cache.
   */
  int (*check)(const struct udm_bufio_validator *v, uint64_t block, const void *data,
               size_t size, char *why, size_t n);
  /* Optional: stamp a dirty block just before it is written back. */
  void (*prepare_for_write)(const struct udm_bufio_validator *v, uint64_t block,
                            void *data, size_t size);
};

/*
 * A client over DEV (opened for writing if blocks are to be written back)
 * with BLOCK_SIZE bytes per block (a power of two from 512 to 1 MiB, and at
 * least the device's logical block size) holding at most MAX_BLOCKS blocks
 * (at least 1).  The device's last partial block, if any, is not usable.
 */
int udm_bufio_create(struct udm_dev *dev, unsigned block_size, unsigned max_blocks,
                     struct udm_bufio **out);
/*
 * Wait for prefetches, write dirty blocks back (and flush), free.  Every
 * buffer must have been released.  Returns the write-back's result: call
 * udm_bufio_write_dirty() first where a failure matters.  NULL is a no-op.
 */
int udm_bufio_destroy(struct udm_bufio *c);
/*
 * The pinned block BLOCK, read from the device unless cached.  V
 * (optional) checks it once; a cached block read without V, or with
 * another validator, is checked by V now.
 */
int udm_bufio_read(struct udm_bufio *c, uint64_t block,
                   const struct udm_bufio_validator *v, struct udm_buffer **out);
/*
 * The pinned block BLOCK without reading it, for a caller that overwrites
 * all of it: the cached bytes if cached, else zeros.  V stamps it at
 * write-back.
 */
int udm_bufio_new(struct udm_bufio *c, uint64_t block,
                  const struct udm_bufio_validator *v, struct udm_buffer **out);
void *udm_buffer_data(struct udm_buffer *b);
uint64_t udm_buffer_block(const struct udm_buffer *b);
/* The next write-back writes this block: call after changing it, while pinned. */
void udm_bufio_mark_dirty(struct udm_buffer *b);
/* Unpin (once per read/new). */
void udm_bufio_release(struct udm_buffer *b);
/*
 * Write every dirty block back (started in block order, all in flight at
 * once), wait for them, then flush the device.
 * Returns the first error; the blocks that failed stay dirty.  Blocks still
 * pinned are written too (as dm-bufio does), so the target must keep its
 * writers out while it commits (its own lock: a transaction's): bytes
 * changed during the write may reach the disk torn.  A block marked dirty
 * again meanwhile stays dirty for the next write-back.
 */
int udm_bufio_write_dirty(struct udm_bufio *c);
/* Write BLOCK back now if it is cached and dirty (no flush). */
int udm_bufio_write_block(struct udm_bufio *c, uint64_t block);
/*
 * Drop BLOCK from the cache (the next read goes to the device), as
 * dm_bufio_forget does: only a clean block nobody holds.  0 when it is not
 * cached any more, -EBUSY when it is pinned, dirty or in I/O.
 */
int udm_bufio_forget(struct udm_bufio *c, uint64_t block);
/*
 * Start reading COUNT blocks from BLOCK into the cache in the background
 * (udm_dev_submit_async), so that later reads hit.  A hint: blocks already
 * cached, past the end, or with no room for them (pinned or dirty blocks
 * fill the cache) are skipped; a failed read caches nothing.  Never blocks.
 */
void udm_bufio_prefetch(struct udm_bufio *c, uint64_t block, uint64_t count);

/* Counters, for status lines. */
struct udm_bufio_stats {
  uint64_t hits;     /* read/new found the block cached */
  uint64_t misses;   /* blocks read from the device (prefetches included) */
  uint64_t writes;   /* blocks written back */
  unsigned cached;   /* blocks in the cache now */
  unsigned dirty;    /* of which dirty */
  unsigned pinned;   /* of which pinned */
};
void udm_bufio_stats(struct udm_bufio *c, struct udm_bufio_stats *out);

/* ---- the context's registry: state shared across tables ----------------- */

/*
 * Targets keep no file-level state: what several tables must share (a thin
 * pool and its thin devices, a snapshot origin and its snapshots, a pool
 * reloaded with a new table while the old one still runs) lives in the
 * registry of the context the table belongs to, as refcounted objects
 * keyed by strings.  Each context has its own, so two contexts in one
 * process never meet.
 *
 * udm_target_registry_get() finds the object KEY, or makes it: SIZE bytes,
 * zeroed and max_align_t-aligned, then init(obj, arg) (optional) fills it;
 * when init fails (a negative errno) the object is dropped and the error
 * returned, and the next get tries again.  Returns 1 when this call made
 * the object, 0 when it was there already (init is not called again), or
 * -EINVAL when KEY exists with another SIZE (two kinds of object under one
 * key), -ENOMEM.  Each successful get takes a reference, given back with
 * udm_target_registry_put(); the last put calls release(obj) (optional,
 * as given by the get that made it) and frees the object.  A get for KEY
 * waits while another thread runs its init or release, so an object is
 * never seen half made, nor made again before the old one is released.
 *
 * Keys are the target's own: prefix them with the target name and the
 * identity of what is shared, e.g. "thin-pool:/dev/sdb1".  init and release
 * may do I/O and may use the registry for other keys; they must not get
 * their own key.  Use from ctr/dtr, workers and message handlers; the
 * calls take a lock of their own and are thread-safe.  Objects left when
 * the context is freed (a target that forgot a put) are released then.
 *
 *   struct pool { struct udm_bufio *meta; ... };
 *   static int pool_init(void *obj, void *arg) { ... read the superblock ... }
 *   static void pool_release(void *obj) { ... commit, udm_bufio_destroy ... }
 *   // ctr:
 *   r = udm_target_registry_get(ti, key, sizeof(struct pool), pool_init,
 *                               pool_release, ti, (void **)&pool);
 *   // dtr:
 *   udm_target_registry_put(ti, pool);
 */
int udm_target_registry_get(struct udm_target *ti, const char *key, size_t size,
                            int (*init)(void *obj, void *arg),
                            void (*release)(void *obj), void *arg, void **out);
/* Drop a reference taken by get: 0, or -EINVAL when the registry holds no OBJ. */
int udm_target_registry_put(struct udm_target *ti, void *obj);

/* ---- fan-out I/O (dm-io) ------------------------------------------------- */

/*
 * One write, flush, discard or write-zeroes sent to several devices at once,
 * or a read from one, finished by one callback with each region's result:
 * what a mirror writes to its legs.  Every region's I/O is started with
 * udm_dev_submit_async(); no thread waits; a call is one allocation.
 *
 *   struct udm_region legs[2] = {{m->leg[0], sector}, {m->leg[1], sector}};
 *   int r = udm_dmio_submit(legs, 2, UDM_OP_WRITE, io->flags, io->nr_sectors,
 *                           io->buf, mirror_written, io);
 *   return r < 0 ? r : UDM_MAPIO_SUBMITTED;
 *
 *   static void mirror_written(void *opaque, int err, const int *errs)
 *   {
 *     ... errs[0], errs[1]: each leg's 0 or -errno ...
 *     udm_io_complete(opaque, err);
 *   }
 */

/* A range's start on a backing device (its length is given with the call). */
struct udm_region {
  struct udm_dev *dev;
  udm_sector_t sector;
};

/*
 * err is the first nonzero of errs[0..n-1] in region order, or 0; errs has
 * one result per region, in the caller's order, and lives until the
 * callback returns.  Runs on a completion thread, or inline in the submit
 * call when every device completes synchronously: do not block.
 */
typedef void (*udm_dmio_done_fn)(void *opaque, int err, const int *errs);

/*
 * Send OP to each of the n regions: nr_sectors from each region's sector,
 * from or into BUF (nr_sectors * 512 bytes; READ and WRITE only, NULL
 * otherwise).  A READ takes exactly one region; a FLUSH has nr_sectors 0
 * (its sectors are ignored).  FLAGS are UDM_IO_* and go to every region.
 * Returns 0 and DONE is called exactly once, possibly before this returns;
 * or -EINVAL (an argument breaks these rules) or -ENOMEM, with the reason
 * in udm_errmsg(), and DONE is never called.  BUF must live until DONE;
 * REGIONS only until this returns.
 */
int udm_dmio_submit(const struct udm_region *regions, unsigned n, enum udm_op op,
                    unsigned flags, uint64_t nr_sectors, void *buf,
                    udm_dmio_done_fn done, void *opaque);

/* ---- the copy service (kcopyd) ------------------------------------------ */

/*
 * Copy a region of one device to several others, or zero several, in
 * chunks: each chunk is read from the source, then written to every
 * destination with udm_dmio_submit().  A copier belongs to one target
 * (made in ctr, destroyed in dtr) and runs any number of jobs at once,
 * sharing its limits between them: the chunk size (default 512 KiB), the
 * chunks in flight (default 8), and a rate in bytes per second (default 0:
 * unthrottled).  Everything is driven by completions; a throttled copier
 * has one thread for its timer.  A destination that fails gets no further
 * writes while the job goes on to the others; a read error stops the job.
 * Stop a target's copies at presuspend and wait for them:
 *
 *   ctr:        udm_copier_create(ti, &m->copier);
 *               udm_copier_set_throttle(m->copier, 8u << 20);   (optional)
 *   resync:     struct udm_region from = {m->leg[0], region_start};
 *               struct udm_region to[1] = {{m->leg[1], region_start}};
 *               struct udm_copy job = {.from = &from, .to = to, .n = 1,
 *                   .nr_sectors = region_len, .done = resynced, .opaque = m};
 *               r = udm_copy_start(m->copier, &job, NULL);
 *   resynced:   (void *opaque, int err, const int *errs): 0, or the error;
 *               errs[i] is destination i's own
 *   presuspend: udm_copy_cancel(m->copier, 0); udm_copier_wait(m->copier);
 *   dtr:        udm_copier_destroy(m->copier);
 *
 * Callbacks of one copier never run concurrently; they run on a completion
 * or timer thread, or inline in a copier call (start, cancel, a setter):
 * do not block, and never call udm_copier_wait or udm_copier_destroy from
 * them (starting and cancelling jobs is fine).  Over devices that complete
 * synchronously, a job's chunks run in whichever thread finds the copier
 * idle, possibly the one starting it.  Source and destinations must not
 * overlap.
 */
struct udm_copier;

/* Progress of a job: bytes read and written so far, growing, at most the total. */
typedef void (*udm_copy_progress_fn)(void *opaque, uint64_t bytes_done);
/*
 * The end of a job, exactly once.  err: the source's read error, else the
 * first destination's error in destination order, else -ECANCELED when
 * cancelled before every chunk was done, else 0.  errs[i]: destination i's
 * first write error or 0, valid until the callback returns.  A job that
 * succeeds has had a last progress call with its total.
 */
typedef void (*udm_copy_done_fn)(void *opaque, int err, const int *errs);

struct udm_copy {
  const struct udm_region *from; /* NULL: zero the destinations (write-zeroes) */
  const struct udm_region *to;   /* n destinations */
  unsigned n;
  uint64_t nr_sectors;           /* of each region */
  unsigned flags;                /* UDM_IO_FUA: for every write */
  udm_copy_progress_fn progress; /* optional */
  udm_copy_done_fn done;         /* required */
  void *opaque;
};

/* 0 or -ENOMEM. */
int udm_copier_create(struct udm_target *ti, struct udm_copier **out);
/* Cancels and waits for the copier's jobs, then frees it.  NULL is ignored. */
void udm_copier_destroy(struct udm_copier *c);
/*
 * Chunk size for chunks started from now on: 1..131072 sectors, else
 * -EINVAL.  The setters' errors, like udm_copy_start's, come with a
 * message in udm_errmsg().
 */
int udm_copier_set_chunk_size(struct udm_copier *c, uint64_t sectors);
/* Chunks in flight over all jobs (at least 1, else -EINVAL). */
int udm_copier_set_max_in_flight(struct udm_copier *c, unsigned chunks);
/*
 * Bytes per second over all jobs, 0 for none; the first nonzero rate starts
 * the copier's timer thread (-errno when it cannot).
 */
int udm_copier_set_throttle(struct udm_copier *c, uint64_t bytes_per_second);
/*
 * Start a job.  Returns 0 and req->done is called exactly once, possibly
 * before this returns; *id (when id is not NULL) names the job for
 * udm_copy_cancel.  Or -EINVAL (no destination or done callback, a region
 * without a device or past its device's end) or -ENOMEM, and nothing
 * starts; udm_errmsg() names the region and the problem.  req and its arrays are copied.  Zero sectors complete at once.
 */
int udm_copy_start(struct udm_copier *c, const struct udm_copy *req, uint64_t *id);
/*
 * Cancel job ID (0: every job of the copier): no further chunks start; the
 * job's done follows once those in flight are back.  An ID already
 * finished is ignored.
 */
void udm_copy_cancel(struct udm_copier *c, uint64_t id);
/* Wait until the copier has no job (not from its callbacks nor a completion). */
void udm_copier_wait(struct udm_copier *c);

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

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
