/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Argument helpers: strict numbers and dm_arg-style range checks. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <udm/target.h>

#include "check.h"

static void strict_numbers_reject_junk_signs_and_overflow(void)
{
  uint64_t v = 7;
  CHECK(udm_parse_u64("0", &v) == 0 && v == 0);
  CHECK(udm_parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX);
  CHECK(udm_parse_u64("18446744073709551616", &v) == -ERANGE);
  CHECK(udm_parse_u64("100x", &v) == -EINVAL);
  CHECK(udm_parse_u64("", &v) == -EINVAL);
  CHECK(udm_parse_u64("-1", &v) == -EINVAL);
  CHECK(udm_parse_u64("+1", &v) == -EINVAL);
  CHECK(udm_parse_u64(" 1", &v) == -EINVAL);
  CHECK(udm_parse_u64("1 ", &v) == -EINVAL);
  CHECK(udm_parse_u64("0x10", &v) == -EINVAL);
  CHECK(udm_parse_u64(NULL, &v) == -EINVAL);
  unsigned u;
  CHECK(udm_parse_uint("4294967295", &u) == 0 && u == UINT32_MAX);
  CHECK(udm_parse_uint("4294967296", &u) == -ERANGE);
}

static void read_arg_checks_range_and_names_the_word(void)
{
  struct udm_target ti = {0};
  char *words[] = {"3", "9", "abc"};
  struct udm_arg_set as = {3, words};
  static const struct udm_arg count = {1, 8, "Invalid stripe count"};
  unsigned v = 0;
  CHECK(udm_read_arg(&as, &count, &v, &ti) == 0 && v == 3);
  CHECK(udm_read_arg(&as, &count, &v, &ti) == -EINVAL);
  CHECK_STR(ti.error, "Invalid stripe count '9' (expected 1..8)");
  CHECK(udm_read_arg(&as, &count, &v, &ti) == -EINVAL);
  CHECK_STR(ti.error, "Invalid stripe count 'abc' (expected 1..8)");
  CHECK(udm_read_arg(&as, &count, &v, &ti) == -EINVAL);
  CHECK_STR(ti.error, "Invalid stripe count: argument missing");
  free(ti.error);
}

static void arg_group_checks_that_the_words_exist(void)
{
  struct udm_target ti = {0};
  char *words[] = {"2", "drop_writes"};
  struct udm_arg_set as = {2, words};
  static const struct udm_arg features = {0, 7, "Invalid number of feature args"};
  unsigned v;
  CHECK(udm_read_arg_group(&as, &features, &v, &ti) == -EINVAL);
  CHECK_CONTAINS(ti.error, "2 arguments announced, only 1 given");
  char *ok[] = {"1", "drop_writes"};
  struct udm_arg_set as2 = {2, ok};
  CHECK(udm_read_arg_group(&as2, &features, &v, &ti) == 0 && v == 1);
  CHECK_STR(udm_shift_arg(&as2), "drop_writes");
  CHECK(udm_shift_arg(&as2) == NULL);
  free(ti.error);
}

int main(void)
{
  strict_numbers_reject_junk_signs_and_overflow();
  read_arg_checks_range_and_names_the_word();
  arg_group_checks_that_the_words_exist();
  return check_summary("test-args");
}
