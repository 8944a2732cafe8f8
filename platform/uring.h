/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The io_uring half of the I/O engine (lib/engine.c), Linux only, built
 * when liburing is found (HAVE_LIBURING).  One ring and one thread that
 * alone enters it; any thread submits, the ring thread calls op->done().
 */
#ifndef UDM_PLATFORM_URING_H
#define UDM_PLATFORM_URING_H

#include "engine.h"

struct udm_uring;

/*
 * A ring of DEPTH entries (DEPTH - 1 operations in the kernel at once; the
 * rest wait their turn), and its thread; the kernel's
 * workers for it (io-wq) are limited to MAX_WORKERS of each kind.  0, or
 * -errno with *why naming the step that failed ("io_uring_queue_init", ...).
 */
int udm_platform_uring_new(unsigned depth, unsigned max_workers, struct udm_uring **out,
                           const char **why);
/* Start op: READ, WRITE or FLUSH with the meaning of udm__engine_submit(). */
void udm_platform_uring_submit(struct udm_uring *u, struct udm_engine_op *op);
/* Nothing may be in flight (udm__engine_free's rule). */
void udm_platform_uring_free(struct udm_uring *u);

#endif
