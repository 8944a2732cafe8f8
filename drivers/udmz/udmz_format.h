/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The udmz on-disk format (docs/formats/udmz.md is the specification):
 *
 *   header (128 bytes, padded with zeros to UDMZ_DATA_START)
 *   chunk data, in chunk order, each chunk stored as zstd, raw, or not at all
 *   index      chunk_count entries of 24 bytes
 *   bad map    bad_count ranges of 16 bytes, sorted, disjoint
 *   metadata   key/value entries
 *   trailer    128 bytes, the last bytes of the file
 *
 * Everything is little-endian.  Each structure carries a CRC-32C xor a
 * constant of its own kind, so that one kind can never pass as another.
 * The writer never seeks back: the trailer says where the tables are.
 */
#ifndef UDM_UDMZ_FORMAT_H
#define UDM_UDMZ_FORMAT_H

#include "../common/endian.h"

#define UDMZ_MAGIC "UDMZ\r\n\x1a\n"
#define UDMZ_TRAILER_MAGIC "UDMZTRLR"
#define UDMZ_VERSION 1u
#define UDMZ_DATA_START 4096u

/* CRC-32C xor these, per kind of structure ("HDR ", "TRLR", "INDX", ...). */
#define UDMZ_CRC_HEADER 0x48445220u
#define UDMZ_CRC_TRAILER 0x54524c52u
#define UDMZ_CRC_INDEX 0x494e4458u
#define UDMZ_CRC_BADMAP 0x4241444du
#define UDMZ_CRC_META 0x4d455441u

#define UDMZ_COMPRESSION_ZSTD 1u

#define UDMZ_MIN_CHUNK 4096u
#define UDMZ_MAX_CHUNK (16u << 20)

/* Readers refuse images with incompatible feature bits they do not know. */
#define UDMZ_INCOMPAT_KNOWN 0u

struct udmz_header {
  char magic[8];
  udm_le32 version;
  udm_le32 header_size;       /* 128 */
  udm_le64 device_size;       /* bytes of the source device */
  udm_le32 chunk_size;        /* bytes, a power of two */
  udm_le32 logical_block_size;
  udm_le32 physical_block_size;
  udm_le32 compression;       /* UDMZ_COMPRESSION_ZSTD */
  udm_le32 incompat_features;
  udm_le32 compat_features;
  udm_le64 chunk_count;       /* ceil(device_size / chunk_size) */
  uint8_t image_id[16];       /* random; the trailer repeats it */
  uint8_t reserved[52];
  udm_le32 crc;               /* crc32c(header with crc = 0) ^ UDMZ_CRC_HEADER */
};
_Static_assert(sizeof(struct udmz_header) == 128, "udmz header layout");

enum udmz_chunk_kind {
  UDMZ_CHUNK_ZERO = 0, /* all zeros, nothing stored */
  UDMZ_CHUNK_RAW = 1,  /* stored as is (did not compress) */
  UDMZ_CHUNK_ZSTD = 2, /* one zstd frame */
};

struct udmz_index_entry {
  udm_le64 offset;     /* file offset of the stored bytes */
  udm_le32 stored_len; /* bytes stored (0 for ZERO) */
  udm_le16 kind;       /* enum udmz_chunk_kind */
  udm_le16 reserved;
  udm_le32 stored_crc; /* crc32c of the stored bytes (0 for ZERO) */
  udm_le32 data_crc;   /* crc32c of the chunk's bytes once decompressed */
};
_Static_assert(sizeof(struct udmz_index_entry) == 24, "udmz index entry layout");

struct udmz_bad_range {
  udm_le64 offset; /* bytes */
  udm_le64 length; /* bytes, > 0 */
};
_Static_assert(sizeof(struct udmz_bad_range) == 16, "udmz bad range layout");

/* Metadata entry: this, then key_len bytes of key, then value_len of value. */
struct udmz_meta_entry {
  udm_le16 key_len;
  udm_le32 value_len;
};
_Static_assert(sizeof(struct udmz_meta_entry) == 6, "udmz metadata entry layout");

struct udmz_trailer {
  char magic[8];
  udm_le32 version;
  udm_le32 trailer_size;      /* 128 */
  uint8_t image_id[16];
  udm_le64 index_offset;
  udm_le64 chunk_count;
  udm_le32 index_crc;         /* crc32c(index) ^ UDMZ_CRC_INDEX */
  udm_le64 badmap_offset;
  udm_le64 bad_count;
  udm_le32 badmap_crc;        /* crc32c(bad map) ^ UDMZ_CRC_BADMAP */
  udm_le64 meta_offset;
  udm_le64 meta_len;
  udm_le32 meta_crc;          /* crc32c(metadata) ^ UDMZ_CRC_META */
  uint8_t reserved[32];
  udm_le32 crc;               /* crc32c(trailer with crc = 0) ^ UDMZ_CRC_TRAILER */
};
_Static_assert(sizeof(struct udmz_trailer) == 128, "udmz trailer layout");

#endif
