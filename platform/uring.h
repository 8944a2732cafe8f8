/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The io_uring half of the I/O engine (lib/engine.c), Linux only, built
 * when liburing is found (HAVE_LIBURING).  One ring, submissions from any
 * thread under a lock, one completion thread that calls op->done().
 */
#ifndef UDM_PLATFORM_URING_H
#define UDM_PLATFORM_URING_H

#include "engine.h"

struct udm_uring;

/*
 * A ring of DEPTH entries and its completion thread.  0, or -errno with
 * *why naming the step that failed ("io_uring_queue_init", ...).
 */
int udm_platform_uring_new(unsigned depth, struct udm_uring **out, const char **why);
/* Start op: READ, WRITE or FLUSH with the meaning of udm__engine_submit(). */
void udm_platform_uring_submit(struct udm_uring *u, struct udm_engine_op *op);
/* Nothing may be in flight (udm__engine_free's rule). */
void udm_platform_uring_free(struct udm_uring *u);

#endif
