/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O engine below file-backed devices: asynchronous reads, writes and
 * syncs on file descriptors, and a pool of threads for blocking work (image
 * drivers, fallocate, bounce buffers).  One engine per context, made on
 * first use.  io_uring on Linux (platform/), a portable thread engine
 * elsewhere or when io_uring is refused; UDM_IO_ENGINE=io_uring|threads
 * forces one.  The number of threads never grows with the queue depth.
 */
#ifndef UDM_LIB_ENGINE_H
#define UDM_LIB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <udm/target.h>

struct udm_ctx;
struct udm_engine;

/* One file operation.  The caller owns it until done(op, res) is called. */
struct udm_engine_op {
  int fd;
  enum udm_op op;   /* UDM_OP_READ, UDM_OP_WRITE, UDM_OP_FLUSH (fdatasync) */
  void *buf;
  size_t len;
  uint64_t off;
  /*
   * res: 0 when all len bytes moved (a read past the end of the file reads
   * zeros, as a hole), or -errno.  Runs on an engine thread or inline.
   */
  void (*done)(struct udm_engine_op *op, int res);
  void *opaque;     /* the caller's */
  size_t moved;     /* the engine's: bytes done so far (short transfers resume) */
};

/* The context's engine, made on first call; NULL with -errno in *err. */
struct udm_engine *udm__engine_get(struct udm_ctx *ctx, int *err);
void udm__engine_free(struct udm_engine *e);
/* "io_uring" or "threads". */
const char *udm__engine_name(const struct udm_engine *e);
/* Start op. */
void udm__engine_submit(struct udm_engine *e, struct udm_engine_op *op);
/* Run fn(arg) on a pool thread: blocking work that must not hold the caller. */
void udm__engine_run(struct udm_engine *e, void (*fn)(void *arg), void *arg);

#endif
