/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Target workers: one thread per worker running queued work items and
 * timers in order (see <udm/target.h>).  Condition variables time out
 * against CLOCK_REALTIME portably (macOS has no pthread_condattr_setclock),
 * so a wait converts the remaining monotonic time, capped at a second, and
 * the loop re-reads the monotonic clock: a jump of the wall clock costs at
 * most one early wake-up or a bounded late one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct udm_worker {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;   /* work queued, a timer armed earlier, or stop */
  pthread_cond_t idle;   /* a batch finished: drain re-checks */
  struct udm_work *head, **tail;
  struct udm_timer *timers; /* sorted by deadline */
  uint64_t queued, ran;  /* work items ever queued / run: drain waits on these */
  bool stop;
};

uint64_t udm_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wait_until(struct udm_worker *w, uint64_t deadline)
{
  uint64_t now = udm_now_ns();
  if (now >= deadline)
    return;
  uint64_t left = deadline - now;
  if (left > 1000000000u)
    left = 1000000000u;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t nsec = (uint64_t)ts.tv_nsec + left;
  ts.tv_sec += (time_t)(nsec / 1000000000u);
  ts.tv_nsec = (long)(nsec % 1000000000u);
  pthread_cond_timedwait(&w->wake, &w->lock, &ts);
}

static void *worker_main(void *arg)
{
  struct udm_worker *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    if (w->head) {
      struct udm_work *work = w->head;
      w->head = work->next;
      if (!w->head)
        w->tail = &w->head;
      work->queued = 0;
      pthread_mutex_unlock(&w->lock);
      work->fn(work);
      pthread_mutex_lock(&w->lock);
      w->ran++;
      pthread_cond_broadcast(&w->idle);
      continue;
    }
    if (w->timers && w->timers->deadline <= udm_now_ns()) {
      struct udm_timer *t = w->timers;
      w->timers = t->next;
      t->armed = 0;
      pthread_mutex_unlock(&w->lock);
      t->fn(t);
      pthread_mutex_lock(&w->lock);
      continue;
    }
    if (w->stop)
      break;
    if (w->timers)
      wait_until(w, w->timers->deadline);
    else
      pthread_cond_wait(&w->wake, &w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int udm_worker_create(struct udm_target *ti, struct udm_worker **out)
{
  (void)ti;
  struct udm_worker *w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  w->tail = &w->head;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  pthread_cond_init(&w->idle, NULL);
  int r = pthread_create(&w->thread, NULL, worker_main, w);
  if (r != 0) {
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return -r;
  }
  *out = w;
  return 0;
}

void udm_worker_destroy(struct udm_worker *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stop = true;
  for (struct udm_timer *t = w->timers; t; t = t->next)
    t->armed = 0;
  w->timers = NULL;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->idle);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  free(w);
}

void udm_worker_queue(struct udm_worker *w, struct udm_work *work)
{
  pthread_mutex_lock(&w->lock);
  if (!work->queued) {
    work->queued = 1;
    work->next = NULL;
    *w->tail = work;
    w->tail = &work->next;
    w->queued++;
    pthread_cond_signal(&w->wake);
  }
  pthread_mutex_unlock(&w->lock);
}

void udm_worker_drain(struct udm_worker *w)
{
  pthread_mutex_lock(&w->lock);
  uint64_t target = w->queued;
  while (w->ran < target)
    pthread_cond_wait(&w->idle, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

void udm_timer_init(struct udm_timer *t, struct udm_worker *w,
                    void (*fn)(struct udm_timer *t))
{
  *t = (struct udm_timer){.fn = fn, .worker = w};
}

static void unlink_timer(struct udm_worker *w, struct udm_timer *t)
{
  for (struct udm_timer **p = &w->timers; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->armed = 0;
}

void udm_timer_arm(struct udm_timer *t, uint64_t deadline)
{
  struct udm_worker *w = t->worker;
  pthread_mutex_lock(&w->lock);
  if (w->stop) {
    pthread_mutex_unlock(&w->lock);
    return;
  }
  if (t->armed)
    unlink_timer(w, t);
  t->deadline = deadline;
  struct udm_timer **p = &w->timers;
  while (*p && (*p)->deadline <= deadline)
    p = &(*p)->next;
  t->next = *p;
  *p = t;
  t->armed = 1;
  if (w->timers == t)
    pthread_cond_signal(&w->wake); /* the earliest changed */
  pthread_mutex_unlock(&w->lock);
}

int udm_timer_cancel(struct udm_timer *t)
{
  struct udm_worker *w = t->worker;
  pthread_mutex_lock(&w->lock);
  int was = t->armed;
  if (was)
    unlink_timer(w, t);
  pthread_mutex_unlock(&w->lock);
  return was;
}
