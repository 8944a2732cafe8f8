/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Requests handed from any thread to a backing device's own thread
 * (dev_nbd.c's poll loop, dev_rbd.c's completion loop), and the wait of a
 * blocking submit for its request.  Not installed.
 */
#ifndef UDM_LIB_REQQ_H
#define UDM_LIB_REQQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* A request's link in a udm__reqq; UDM__REQQ_ENTRY finds the request. */
struct udm__reqq_node {
  struct udm__reqq_node *next;
};
#define UDM__REQQ_ENTRY(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

/*
 * A FIFO of requests and a stop flag.  The consumer sleeps on the queue's
 * condition variable (udm__reqq_take with wait), or, when it polls other
 * descriptors too, on the read end of its pipe (udm__reqq_fd).
 */
struct udm__reqq {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct udm__reqq_node *head, **tail;
  bool stop;
  bool wake_pending; /* pipe: a byte is on its way, the next push needs none */
  int pipe[2];       /* -1 without a pipe */
};

/*
 * Ready the queue, with a pipe to poll when use_pipe; -errno.  Even when it
 * fails, udm__reqq_destroy may (and must) be called.
 */
int udm__reqq_init(struct udm__reqq *q, bool use_pipe);
void udm__reqq_destroy(struct udm__reqq *q);
/* The descriptor that turns readable when the queue needs its consumer. */
int udm__reqq_fd(const struct udm__reqq *q);
/* Append n and wake the consumer. */
void udm__reqq_push(struct udm__reqq *q, struct udm__reqq_node *n);
/*
 * Take every queued request, oldest first (NULL: none), and whether stop
 * was asked.  With wait, sleep until there is a request or a stop; with a
 * pipe, empty the pipe first.
 */
struct udm__reqq_node *udm__reqq_take(struct udm__reqq *q, bool wait, bool *stop);
/* Ask the consumer to stop, and wake it. */
void udm__reqq_stop(struct udm__reqq *q);

/* A blocking submit's wait for the completion of its request on another thread. */
struct udm__sync {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int err;
};
void udm__sync_begin(struct udm__sync *s);
/* The request is done with err: wake the waiter. */
void udm__sync_done(struct udm__sync *s, int err);
/* Sleep until s is done; its error.  s is finished with. */
int udm__sync_wait(struct udm__sync *s);

#endif
