/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mirror's dirty region log (Linux's dm-log.c): which regions are clean
 * (all legs agree) and which are in sync, kept in memory ("core") or on a
 * log device in the kernel's format ("disk"), so that a log written by udm
 * is resumed by the kernel's dm-mirror and the other way round:
 *
 *   byte 0     le32 magic 0x4D695272 ("MiRr" read as a little-endian word)
 *   byte 4     le32 version 2
 *   byte 8     le64 number of regions
 *   byte 1024  the clean bitset: region r is bit r % 8 of byte r / 8 (the
 *              kernel's little-endian bit order), rounded up to 64 regions
 *
 * The log block is 1024 bytes plus the bitset, rounded up to the log
 * device's logical block size, and is written whole.  Bytes between the
 * header and the bitset, and after it, keep what the device held.
 *
 * Not thread-safe: the mirror calls it under its own lock, and the calls
 * that do I/O (resume, flush) only from its worker or its control hooks.
 */
#ifndef UDM_TARGETS_MIRROR_DIRTY_LOG_H
#define UDM_TARGETS_MIRROR_DIRTY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <udm/target.h>

enum mlog_sync {
  MLOG_DEFAULTSYNC, /* resync what the log says is dirty (everything for core) */
  MLOG_NOSYNC,      /* the legs are known to agree */
  MLOG_FORCESYNC,   /* resync everything */
};

struct mlog {
  struct udm_target *ti;
  struct udm_dev *dev;      /* disk log; NULL for a core log */
  enum mlog_sync sync;
  bool block_on_error;      /* udm extension, disk only: see mirror.c */
  uint32_t region_size;     /* sectors */
  uint64_t region_count;
  size_t bitset_bytes;      /* region_count rounded up to 64 bits */
  uint8_t *clean;           /* core: its own array; disk: inside buf */
  uint8_t *sync_bits;
  uint8_t *recovering;
  uint64_t sync_count;
  uint64_t sync_search;     /* next region get_resync_work looks at */
  bool touched_dirtied;     /* a clean bit was cleared since the last flush */
  bool touched_cleaned;     /* a clean bit was set since the last flush */
  bool flush_failed;        /* the legs could not be flushed: nothing is clean */
  /* disk log */
  unsigned char *buf;       /* header, then the bitset at 1024 */
  size_t buf_size;
  bool dev_failed;
  bool dev_flush_failed;
};

/*
 * Parse "<region_size> [sync|nosync]" (core) or "<dev> <region_size>
 * [sync|nosync] [block_on_error]" (disk) for target TI, as the kernel's
 * dm-log does.  On failure the target error is set and a negative errno
 * returned; mlog_dtr() cleans up either way.
 */
int mlog_ctr(struct mlog *log, struct udm_target *ti, bool disk, unsigned argc,
             char **argv);
void mlog_dtr(struct mlog *log);

/* Resume: a core log restarts its resync scan; a disk log reads the device. */
void mlog_resume(struct mlog *log);
/*
 * Write a changed log (disk only; blocking).  FLUSH_LEGS (the mirror's) is
 * called first when regions were cleaned, so that a region is marked clean
 * on disk only after its data is.  0 or -errno.
 */
int mlog_flush(struct mlog *log, int (*flush_legs)(void *arg), void *arg);

bool mlog_in_sync(const struct mlog *log, uint64_t region);
bool mlog_is_clean(const struct mlog *log, uint64_t region);
void mlog_mark_region(struct mlog *log, uint64_t region);  /* dirty */
void mlog_clear_region(struct mlog *log, uint64_t region); /* clean */
/* The next region to resync, if any. */
bool mlog_get_resync_work(struct mlog *log, uint64_t *region);
void mlog_set_region_sync(struct mlog *log, uint64_t region, bool in_sync);

/* The log's part of the mirror's INFO or TABLE status. */
void mlog_status(const struct mlog *log, enum udm_status_type type, struct udm_buf *out);

#endif
