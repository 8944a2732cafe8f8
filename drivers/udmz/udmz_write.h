/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writing udmz images (used by udm-image convert; the reader is udmz.c). */
#ifndef UDM_UDMZ_WRITE_H
#define UDM_UDMZ_WRITE_H

#include <stddef.h>
#include <stdint.h>

struct udmz_range {
  uint64_t off;
  uint64_t len;
};

struct udmz_kv {
  const char *key;
  const char *value;
};

struct udmz_write_opts {
  uint32_t chunk_size;          /* power of two, 4 KiB .. 16 MiB */
  int level;                    /* zstd level */
  uint32_t logical_block_size;
  uint32_t physical_block_size;
  const struct udmz_range *bad; /* known bad ranges (any order, may overlap) */
  size_t nbad;
  const struct udmz_kv *meta;
  size_t nmeta;
  /* Optional: called after each chunk with the source bytes read so far. */
  void (*progress)(void *opaque, uint64_t done, uint64_t total);
  void *progress_opaque;
};

struct udmz_write_stats {
  uint64_t chunks, zero_chunks, raw_chunks;
  uint64_t stored_bytes;
  uint64_t bad_ranges, bad_bytes;
  uint64_t read_errors;         /* sectors the source failed to read */
};

/*
 * Copy SIZE bytes of SRC_FD into a udmz image on DST_FD (written
 * sequentially, never seeking back).  Sectors the source cannot read are
 * stored as zeros and added to the bad-block map.  0 or -errno with *errmsg.
 */
int udmz_write(int src_fd, uint64_t size, int dst_fd, const struct udmz_write_opts *o,
               struct udmz_write_stats *stats, char **errmsg);

#endif
