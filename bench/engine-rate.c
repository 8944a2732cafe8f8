/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O engine's raw rate (lib/engine.h), without devices, targets or
 * frontends: random reads or writes of one block size on one file, kept at
 * a queue depth, for each engine in turn.  Every completion resubmits its
 * operation at a new offset until the time is up.
 *
 *   engine-rate [--file PATH] [--size-mb N] [--bs BYTES] [--runtime S] [--direct]
 *
 * The file (default: in $TMPDIR, removed after) is written in full first.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../platform/platform.h"
#include "engine.h"

struct job {
  struct udm_engine_op op;
  uint64_t rnd;
  struct run *run;
};

struct run {
  struct udm_engine *e;
  uint64_t blocks;
  atomic_bool stop;
  atomic_ulong done, errors;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned active;
};

static uint64_t next_offset(struct job *j)
{
  j->rnd ^= j->rnd << 13;
  j->rnd ^= j->rnd >> 7;
  j->rnd ^= j->rnd << 17;
  return (j->rnd % j->run->blocks) * j->op.len;
}

static void job_done(struct udm_engine_op *op, int res)
{
  struct job *j = op->opaque;
  struct run *r = j->run;
  atomic_fetch_add(res ? &r->errors : &r->done, 1);
  if (!atomic_load(&r->stop)) {
    op->off = next_offset(j);
    udm__engine_submit(r->e, op);
    return;
  }
  pthread_mutex_lock(&r->lock);
  if (--r->active == 0)
    pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Operations per second, or -1 when a request failed. */
static double measure(struct udm_engine *e, int fd, enum udm_op kind, size_t bs,
                      uint64_t size, unsigned depth, double runtime)
{
  struct run r = {.e = e, .blocks = size / bs, .active = depth};
  atomic_init(&r.stop, false);
  atomic_init(&r.done, 0);
  atomic_init(&r.errors, 0);
  pthread_mutex_init(&r.lock, NULL);
  pthread_cond_init(&r.cond, NULL);
  struct job *jobs = calloc(depth, sizeof *jobs);
  unsigned char *bufs;
  if (!jobs || posix_memalign((void **)&bufs, 4096, (size_t)depth * bs)) {
    fprintf(stderr, "engine-rate: out of memory\n");
    exit(1);
  }
  memset(bufs, 0x5a, (size_t)depth * bs);
  double t0 = now();
  for (unsigned i = 0; i < depth; i++) {
    struct job *j = &jobs[i];
    j->run = &r;
    j->rnd = 0x9E3779B97F4A7C15ull * (i + 1);
    j->op = (struct udm_engine_op){.fd = fd, .op = kind, .buf = bufs + (size_t)i * bs,
                                   .len = bs, .done = job_done, .opaque = j};
    j->op.off = next_offset(j);
    udm__engine_submit(e, &j->op);
  }
  struct timespec ts = {(time_t)runtime, (long)((runtime - (double)(time_t)runtime) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&r.stop, true);
  pthread_mutex_lock(&r.lock);
  while (r.active)
    pthread_cond_wait(&r.cond, &r.lock);
  pthread_mutex_unlock(&r.lock);
  double secs = now() - t0;
  free(bufs);
  free(jobs);
  pthread_cond_destroy(&r.cond);
  pthread_mutex_destroy(&r.lock);
  return atomic_load(&r.errors) ? -1 : (double)atomic_load(&r.done) / secs;
}

int main(int argc, char **argv)
{
  const char *file = NULL;
  uint64_t size_mb = 256;
  size_t bs = 4096;
  double runtime = 3;
  bool direct = false;
  static const struct option longs[] = {
      {"file", required_argument, NULL, 'f'}, {"size-mb", required_argument, NULL, 's'},
      {"bs", required_argument, NULL, 'b'},   {"runtime", required_argument, NULL, 't'},
      {"direct", no_argument, NULL, 'd'},     {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 'f': file = optarg; break;
    case 's': size_mb = strtoull(optarg, NULL, 10); break;
    case 'b': bs = (size_t)strtoull(optarg, NULL, 10); break;
    case 't': runtime = strtod(optarg, NULL); break;
    case 'd': direct = true; break;
    default:
      fprintf(stderr, "usage: engine-rate [--file PATH] [--size-mb N] [--bs BYTES] "
                      "[--runtime S] [--direct]\n");
      return 2;
    }
  }
  if (bs == 0 || bs % 512 || size_mb == 0 || runtime <= 0) {
    fprintf(stderr, "engine-rate: --bs must be a multiple of 512, --size-mb and "
                    "--runtime positive\n");
    return 2;
  }
  char tmp[512];
  if (!file) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/udm-engine-rate-XXXXXX", dir ? dir : "/tmp");
    int t = mkstemp(tmp);
    if (t < 0) {
      perror(tmp);
      return 1;
    }
    close(t);
    file = tmp;
  }
  uint64_t size = size_mb << 20;
  int fd = open(file, O_RDWR | O_CREAT, 0600);
  unsigned char *fill = malloc(1 << 20);
  if (fd < 0 || !fill) {
    perror(file);
    return 1;
  }
  memset(fill, 0xa5, 1 << 20);
  for (uint64_t off = 0; off < size; off += 1 << 20)
    if (pwrite(fd, fill, 1 << 20, (off_t)off) != 1 << 20) {
      perror(file);
      return 1;
    }
  free(fill);
  fsync(fd);
  if (direct) {
    close(fd);
    fd = udm_platform_open_direct(file, O_RDWR);
    if (fd < 0) {
      fprintf(stderr, "engine-rate: %s: cannot open with O_DIRECT: %s\n", file,
              strerror(-fd));
      return 1;
    }
  }
  printf("engine-rate: %s, %llu MiB, %zu-byte blocks, %s, %.1f s per run\n", file,
         (unsigned long long)size_mb, bs, direct ? "direct" : "page cache", runtime);
  printf("%-9s %-6s %5s %12s %10s\n", "engine", "op", "depth", "ops/s", "MiB/s");
  static const enum udm_engine_kind kinds[] = {UDM_ENGINE_THREADS, UDM_ENGINE_IO_URING};
  static const unsigned depths[] = {1, 32, 256};
  int rc = 0;
  for (unsigned k = 0; k < 2; k++) {
    struct udm_engine *e = NULL;
    char *msg = NULL;
    if (udm__engine_new(kinds[k], &e, &msg) < 0) {
      printf("%-9s (%s)\n", k ? "io_uring" : "threads", msg ? msg : "unavailable");
      free(msg);
      continue;
    }
    for (int w = 0; w <= 1; w++)
      for (unsigned d = 0; d < 3; d++) {
        double rate = measure(e, fd, w ? UDM_OP_WRITE : UDM_OP_READ, bs, size, depths[d],
                              runtime);
        if (rate < 0) {
          printf("%-9s %-6s %5u  a request failed\n", udm__engine_name(e),
                 w ? "write" : "read", depths[d]);
          rc = 1;
          continue;
        }
        printf("%-9s %-6s %5u %12.0f %10.1f\n", udm__engine_name(e), w ? "write" : "read",
               depths[d], rate, rate * (double)bs / (1 << 20));
      }
    udm__engine_free(e);
  }
  close(fd);
  if (file == tmp)
    unlink(tmp);
  return rc;
}
