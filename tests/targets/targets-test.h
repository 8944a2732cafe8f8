/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers for the target tests: checks that name their line, scratch
 * backing files, devices made from a table, and the text of table/status/
 * message replies.  Each test program is one behaviour family of one target.
 */
#ifndef UDM_TESTS_TARGETS_TEST_H
#define UDM_TESTS_TARGETS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <udm/udm.h>

#include "../unit/check.h" /* CHECK, CHECK_STR, CHECK_CONTAINS, check_failures */
#include "../unit/pattern.h"
#include "../unit/testdev.h"

static struct udm_ctx *ctx;
static char scratch[256];

/* Print what a test proved, so the log reads as a list of behaviours. */
static inline void checked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void checked(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("checked: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

static inline void setup(void)
{
  const char *base = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/udm-targets-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(scratch)) {
    perror("mkdtemp");
    exit(1);
  }
  ctx = udm_ctx_new();
  if (!ctx) {
    fprintf(stderr, "udm_ctx_new: %s\n", udm_errmsg());
    exit(1);
  }
}

static inline int finish(const char *name)
{
  udm_ctx_free(ctx);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", scratch);
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

/* A scratch file of SIZE bytes filled with pattern SEED; path in a static slot. */
static inline const char *backing(const char *name, size_t size, unsigned seed)
{
  static char paths[16][300];
  static unsigned next;
  char *path = paths[next++ % 16];
  snprintf(path, 300, "%s/%s", scratch, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  unsigned char *b = malloc(size);
  fill_pattern(b, size, seed, 0);
  if (fd < 0 || pwrite(fd, b, size, 0) != (ssize_t)size) {
    perror(path);
    exit(1);
  }
  free(b);
  close(fd);
  return path;
}

static inline unsigned char *file_bytes(const char *path, uint64_t off, size_t len)
{
  unsigned char *b = calloc(1, len);
  int fd = open(path, O_RDONLY);
  if (fd < 0 || pread(fd, b, len, (off_t)off) != (ssize_t)len) {
    perror(path);
    exit(1);
  }
  close(fd);
  return b;
}

/* Does [off, off+len) of PATH still hold pattern SEED? */
static inline int file_has_pattern(const char *path, uint64_t off, size_t len, unsigned seed)
{
  unsigned char *b = file_bytes(path, off, len);
  int ok = 1;
  for (size_t i = 0; i < len && ok; i++)
    ok = b[i] == pattern_byte(seed, off + i);
  free(b);
  return ok;
}

static inline struct udm_device *make(const char *name, const char *table)
{
  return test_make(ctx, name, table, 0);
}

/* "table" / "status" text (malloc'd; the caller frees). */
static inline char *table_of(struct udm_device *d)
{
  char *t = NULL;
  if (udm_device_table(d, 0, &t) < 0)
    fprintf(stderr, "table: %s\n", udm_errmsg());
  return t;
}

static inline char *status_of(struct udm_device *d)
{
  char *t = NULL;
  if (udm_device_status(d, 0, &t) < 0)
    fprintf(stderr, "status: %s\n", udm_errmsg());
  return t;
}

#define CHECK_TABLE(d, want)                                                   \
  do {                                                                         \
    char *t_ = table_of(d);                                                    \
    CHECK_STR(t_, want);                                                       \
    free(t_);                                                                  \
  } while (0)

#define CHECK_STATUS(d, want)                                                  \
  do {                                                                         \
    char *t_ = status_of(d);                                                   \
    CHECK_STR(t_, want);                                                       \
    free(t_);                                                                  \
  } while (0)

/* Loading TABLE must fail with EINVAL and a message containing FRAG. */
#define CHECK_BAD_TABLE(table, frag)                                           \
  do {                                                                         \
    struct udm_device *b_ = udm_device_create(ctx, "bad", NULL, 0);            \
    CHECK(b_ != NULL);                                                         \
    int r_ = udm_table_load(b_, table);                                        \
    int e_ = errno;                                                            \
    CHECK(r_ < 0);                                                             \
    CHECK(e_ == EINVAL);                                                       \
    CHECK_CONTAINS(udm_errmsg(), frag);                                        \
    test_drop(b_);                                                                  \
  } while (0)

/*
 * The table printed by D, loaded into a fresh device, must print the same
 * table again: table output reloads to the same device.
 */
static inline void check_round_trip(struct udm_device *d)
{
  char *t = table_of(d);
  struct udm_device *again = udm_device_create(ctx, "again", NULL, 0);
  CHECK(again && t);
  if (!again || !t)
    return;
  if (udm_table_load(again, t) < 0 || udm_device_resume(again) < 0) {
    fprintf(stderr, "round trip of '%s' failed: %s\n", t, udm_errmsg());
    check_failures++;
  } else {
    char *t2 = table_of(again);
    CHECK_STR(t2, t);
    free(t2);
  }
  free(t);
  test_drop(again);
}

/* Reply of a message that must succeed (malloc'd). */
static inline char *message_ok(struct udm_device *d, const char *msg)
{
  char *reply = NULL;
  if (udm_device_message(d, 0, msg, &reply) < 0) {
    fprintf(stderr, "message '%s' failed: %s\n", msg, udm_errmsg());
    check_failures++;
    return strdup("");
  }
  return reply;
}

#define CHECK_REPLY(d, msg, want)                                              \
  do {                                                                         \
    char *r_ = message_ok(d, msg);                                             \
    CHECK_STR(r_, want);                                                       \
    free(r_);                                                                  \
  } while (0)

/* A message that must fail with EINVAL and an explanation containing FRAG. */
#define CHECK_MESSAGE_FAILS(d, msg, frag)                                      \
  do {                                                                         \
    char *r_ = NULL;                                                           \
    int rc_ = udm_device_message(d, 0, msg, &r_);                              \
    int e_ = errno;                                                            \
    CHECK(rc_ < 0);                                                            \
    CHECK(e_ == EINVAL);                                                       \
    CHECK_CONTAINS(udm_errmsg(), frag);                                        \
    free(r_);                                                                  \
  } while (0)

/* pread/pwrite returning 0 or the errno. */
static inline int rd(struct udm_device *d, void *buf, size_t len, uint64_t off)
{
  return udm_device_pread(d, buf, len, off) < 0 ? errno : 0;
}

static inline int wr(struct udm_device *d, const void *buf, size_t len, uint64_t off,
              unsigned flags)
{
  return udm_device_pwrite(d, buf, len, off, flags) < 0 ? errno : 0;
}


/* Is TOOL on PATH (thin-provisioning-tools, xz ...)? */
static inline bool tool_on_path(const char *tool)
{
  char cmd[300];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
  return system(cmd) == 0;
}

/* Run the shell command FMT makes; its exit status (128: it did not exit). */
static inline int run_vsh(const char *fmt, va_list ap)
{
  char cmd[2048];
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static inline int run_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int run_sh(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = run_vsh(fmt, ap);
  va_end(ap);
  return r;
}

#endif
