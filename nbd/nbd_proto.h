/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD wire protocol: the numbers of the fixed newstyle handshake and the
 * transmission phase (NetworkBlockDevice/nbd doc/proto.md), and big-endian
 * field access.  Fields are read and written through byte arrays so that no
 * packed struct or host byte order leaks onto the wire.
 */
#ifndef UDM_NBD_PROTO_H
#define UDM_NBD_PROTO_H

#include <stdint.h>

/* Handshake */
#define NBD_MAGIC_INIT   0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_MAGIC_OPT    0x49484156454F5054ull /* "IHAVEOPT" */
#define NBD_MAGIC_REPLY  0x3e889045565a9ull    /* option replies */

#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

#define NBD_REP_ACK          1u
#define NBD_REP_SERVER       2u
#define NBD_REP_INFO         3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_ERR(n)       ((1u << 31) + (n))
#define NBD_REP_ERR_UNSUP    NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY   NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID  NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN  NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_TOO_BIG  NBD_REP_ERR(9)

#define NBD_INFO_EXPORT      0
#define NBD_INFO_NAME        1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE  3

/* Transmission flags */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_CACHE         (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)

/* Requests and replies */
#define NBD_REQUEST_MAGIC    0x25609513u
#define NBD_SIMPLE_MAGIC     0x67446698u
#define NBD_STRUCTURED_MAGIC 0x668e33efu
#define NBD_REQUEST_SIZE     28
#define NBD_SIMPLE_SIZE      16
#define NBD_STRUCTURED_SIZE  20

#define NBD_CMD_READ         0
#define NBD_CMD_WRITE        1
#define NBD_CMD_DISC         2
#define NBD_CMD_FLUSH        3
#define NBD_CMD_TRIM         4
#define NBD_CMD_CACHE        5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

#define NBD_REPLY_FLAG_DONE (1u << 0)

#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) + 1)

#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* Error values: a fixed set, not the host's errno numbers. */
#define NBD_EPERM     1
#define NBD_EIO       5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95
#define NBD_ESHUTDOWN 108

/* The one context of the base: namespace that udm serves. */
#define NBD_META_BASE_ALLOCATION "base:allocation"
/*
 * udm's own context: bit 0 set where the image behind the export has bad
 * blocks (reads there fail with EIO, or return the fill of ?bad=zero|fill).
 */
#define NBD_META_UDM_BAD "udm:bad"
#define UDM_NBD_STATE_BAD (1u << 0)
/* The ids SET_META_CONTEXT gives the two contexts. */
#define NBD_META_ID_ALLOCATION 1u
#define NBD_META_ID_BAD 2u

/* Sizes udm advertises (NBD_INFO_BLOCK_SIZE) and enforces. */
/* Preferred block size at least; the minimum is the device's logical block size. */
#define NBD_BLOCK_PREFERRED 4096u
#define NBD_PAYLOAD_MAX     (32u << 20)

static inline void nbd_put16(unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

static inline void nbd_put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static inline void nbd_put64(unsigned char *p, uint64_t v)
{
  nbd_put32(p, (uint32_t)(v >> 32));
  nbd_put32(p + 4, (uint32_t)v);
}

static inline uint16_t nbd_get16(const unsigned char *p)
{
  return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t nbd_get32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t nbd_get64(const unsigned char *p)
{
  return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

#endif
