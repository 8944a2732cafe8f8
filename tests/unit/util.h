/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scratch files and patterns for udm's C tests. */
#ifndef UDM_TEST_UTIL_H
#define UDM_TEST_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"

/* A fresh scratch directory, removed by scratch_cleanup(). */
static char scratch_dir[256];

static inline const char *scratch_init(void)
{
  const char *base = getenv("TMPDIR");
  snprintf(scratch_dir, sizeof scratch_dir, "%s/udm-test-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(scratch_dir)) {
    perror("mkdtemp");
    exit(1);
  }
  return scratch_dir;
}

static inline void scratch_cleanup(void)
{
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", scratch_dir);
}

/* Create (or truncate) NAME in the scratch dir with SIZE bytes; fill with
 * pattern SEED when seed != 0, else leave sparse.  Returns the path (static). */
static inline const char *scratch_file(const char *name, uint64_t size, unsigned seed)
{
  static char paths[16][300];
  static int next;
  char *path = paths[next++ % 16];
  snprintf(path, 300, "%s/%s", scratch_dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
    perror(path);
    exit(1);
  }
  if (seed) {
    unsigned char *b = malloc(1 << 16);
    for (uint64_t off = 0; off < size; off += 1 << 16) {
      size_t n = size - off < (1 << 16) ? (size_t)(size - off) : (1 << 16);
      fill_pattern(b, n, seed, off);
      if (pwrite(fd, b, n, (off_t)off) != (ssize_t)n) {
        perror("pwrite");
        exit(1);
      }
    }
    free(b);
  }
  close(fd);
  return path;
}

/* Read LEN bytes at OFF of a file into a malloc'd buffer. */
static inline unsigned char *read_file_at(const char *path, uint64_t off, size_t len)
{
  unsigned char *b = calloc(1, len ? len : 1);
  int fd = open(path, O_RDONLY);
  if (fd < 0 || pread(fd, b, len, (off_t)off) < 0) {
    perror(path);
    exit(1);
  }
  close(fd);
  return b;
}

#endif
