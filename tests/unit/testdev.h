/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Devices for udm's C tests: made live in one call, removed with a check. */
#ifndef UDM_TEST_TESTDEV_H
#define UDM_TEST_TESTDEV_H

#include <stdio.h>
#include <stdlib.h>

#include <udm/udm.h>

#include "check.h"

/* Create NAME with TABLE loaded and resumed; any failure ends the test. */
static inline struct udm_device *test_make(struct udm_ctx *ctx, const char *name,
                                           const char *table, unsigned flags)
{
  struct udm_device *d = udm_device_create(ctx, name, NULL, flags);
  if (!d || udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "make %s from '%s': %s\n", name, table, udm_errmsg());
    exit(1);
  }
  return d;
}

/* Remove (it must succeed) and drop the reference. */
static inline void test_drop(struct udm_device *d)
{
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
}

#endif
