/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request queues to a device's own thread, and blocking waits (reqq.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "reqq.h"

int udm__reqq_init(struct udm__reqq *q, bool use_pipe)
{
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->wake, NULL);
  q->head = NULL;
  q->tail = &q->head;
  q->stop = false;
  q->wake_pending = false;
  q->pipe[0] = q->pipe[1] = -1;
  if (!use_pipe)
    return 0;
  if (pipe(q->pipe) < 0 || fcntl(q->pipe[0], F_SETFL, O_NONBLOCK) < 0 ||
      fcntl(q->pipe[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(q->pipe[1], F_SETFD, FD_CLOEXEC) < 0)
    return -errno;
  return 0;
}

void udm__reqq_destroy(struct udm__reqq *q)
{
  for (int i = 0; i < 2; i++)
    if (q->pipe[i] >= 0)
      close(q->pipe[i]);
  pthread_cond_destroy(&q->wake);
  pthread_mutex_destroy(&q->lock);
}

int udm__reqq_fd(const struct udm__reqq *q)
{
  return q->pipe[0];
}

static void poke(struct udm__reqq *q)
{
  char b = 1;
  while (write(q->pipe[1], &b, 1) < 0 && errno == EINTR)
    ;
}

void udm__reqq_push(struct udm__reqq *q, struct udm__reqq_node *n)
{
  n->next = NULL;
  pthread_mutex_lock(&q->lock);
  *q->tail = n;
  q->tail = &n->next;
  bool wake = q->pipe[1] >= 0 && !q->wake_pending;
  if (wake)
    q->wake_pending = true;
  if (q->pipe[1] < 0)
    pthread_cond_signal(&q->wake);
  pthread_mutex_unlock(&q->lock);
  if (wake)
    poke(q);
}

struct udm__reqq_node *udm__reqq_take(struct udm__reqq *q, bool wait, bool *stop)
{
  if (q->pipe[0] >= 0) {
    char drain[64];
    while (read(q->pipe[0], drain, sizeof drain) > 0)
      ;
  }
  pthread_mutex_lock(&q->lock);
  while (wait && !q->head && !q->stop)
    pthread_cond_wait(&q->wake, &q->lock);
  struct udm__reqq_node *n = q->head;
  q->head = NULL;
  q->tail = &q->head;
  q->wake_pending = false;
  *stop = q->stop;
  pthread_mutex_unlock(&q->lock);
  return n;
}

void udm__reqq_stop(struct udm__reqq *q)
{
  pthread_mutex_lock(&q->lock);
  q->stop = true;
  pthread_cond_signal(&q->wake);
  pthread_mutex_unlock(&q->lock);
  if (q->pipe[1] >= 0)
    poke(q);
}

void udm__sync_begin(struct udm__sync *s)
{
  s->done = false;
  s->err = 0;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
}

void udm__sync_done(struct udm__sync *s, int err)
{
  pthread_mutex_lock(&s->lock);
  s->err = err;
  s->done = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

int udm__sync_wait(struct udm__sync *s)
{
  pthread_mutex_lock(&s->lock);
  while (!s->done)
    pthread_cond_wait(&s->cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  return s->err;
}
