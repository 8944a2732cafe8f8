/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the fuzz targets: a scratch directory made once per
 * process, and scratch files that hold the current input for parsers that
 * read a path (image drivers, LUKS, mapfiles).  Any failure here is the
 * harness's, not the code under test's: it aborts with a message.
 */
#ifndef UDM_FUZZ_H
#define UDM_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_die(const char *what)
{
  perror(what);
  abort();
}

/* $TMPDIR/udm-fuzz-XXXXXX, made on first use, removed at exit. */
static char fuzz_dir_path[256];

static inline void fuzz_dir_remove(void)
{
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
  if (system(cmd) != 0) {
    /* a leftover scratch directory is no reason to fail */
  }
}

static inline const char *fuzz_dir(void)
{
  if (!fuzz_dir_path[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/udm-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(fuzz_dir_path))
      fuzz_die("mkdtemp");
    atexit(fuzz_dir_remove);
  }
  return fuzz_dir_path;
}

/* A path in the scratch directory, static storage (one per name). */
static inline const char *fuzz_path(const char *name, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s/%s", fuzz_dir(), name);
  return buf;
}

/*
 * Make the file at PATH hold exactly DATA, then grow it (sparse, zeros) to
 * at least MIN_SIZE bytes.
 */
static inline void fuzz_file(const char *path, const uint8_t *data, size_t size,
                             uint64_t min_size)
{
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fflush(f))
    fuzz_die(path);
  if (min_size > size && ftruncate(fileno(f), (off_t)min_size) < 0)
    fuzz_die("ftruncate");
  fclose(f);
}

#endif
