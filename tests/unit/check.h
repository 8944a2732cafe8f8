/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A minimal assertion kit for udm's C tests: each failure names the line. */
#ifndef UDM_TEST_CHECK_H
#define UDM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      check_failures++;                                                        \
    }                                                                          \
  } while (0)

#define CHECK_STR(got, want)                                                   \
  do {                                                                         \
    const char *g_ = (got), *w_ = (want);                                      \
    if (!g_ || strcmp(g_, w_) != 0) {                                          \
      fprintf(stderr, "%s:%d: got \"%s\"\n%*swant \"%s\"\n", __FILE__,         \
              __LINE__, g_ ? g_ : "(null)", (int)strlen(__FILE__) + 6, "", w_);\
      check_failures++;                                                        \
    }                                                                          \
  } while (0)

/* The message must contain the fragment. */
#define CHECK_CONTAINS(got, frag)                                              \
  do {                                                                         \
    const char *g_ = (got), *f_ = (frag);                                      \
    if (!g_ || !strstr(g_, f_)) {                                              \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,     \
              __LINE__, g_ ? g_ : "(null)", f_);                               \
      check_failures++;                                                        \
    }                                                                          \
  } while (0)

static inline int check_summary(const char *name)
{
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
