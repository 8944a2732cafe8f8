/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Table loading: a catalogue of malformed tables, each refused with a message
 * naming the line and the token at fault, while the live device keeps its
 * table and its data.  Also: comments, blank lines, escapes, round trips.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/udm.h>

#include "check.h"
#include "util.h"

static struct udm_ctx *ctx;
static const char *small, *big;

struct bad {
  const char *table; /* %s: a 1 MiB file, %b: a 64 KiB file */
  const char *message;
  int err;
};

static char *expand(const char *t)
{
  static char out[4096];
  char *o = out;
  for (const char *p = t; *p; p++) {
    if (p[0] == '%' && (p[1] == 's' || p[1] == 'b')) {
      o += sprintf(o, "%s", p[1] == 's' ? big : small);
      p++;
    } else {
      *o++ = *p;
    }
  }
  *o = '\0';
  return out;
}

static void bad_tables_are_refused_and_the_live_table_survives(void)
{
  static const struct bad cases[] = {
      {"0 100 nosuch", "line 1: unknown target type 'nosuch'", EINVAL},
      {"0 100 linear %s 0\n200 100 linear %s 0", "line 2: start sector 200 leaves a gap", EINVAL},
      {"0 100 linear %s 0\n50 100 linear %s 0", "line 2: start sector 50 overlaps", EINVAL},
      {"10 100 linear %s 0", "line 1: start sector 10 leaves a gap", EINVAL},
      {"0 0 linear %s 0", "line 1: invalid length '0'", EINVAL},
      {"x 100 linear %s 0", "line 1: invalid start sector 'x'", EINVAL},
      {"0 100x linear %s 0", "line 1: invalid length '100x'", EINVAL},
      {"0 100", "line 1: expected '<start> <length> <target> [args]', got 2 words", EINVAL},
      {"0 100 linear %s", "line 1: linear: invalid argument count 1", EINVAL},
      {"0 100 linear %s 0 9", "line 1: linear: invalid argument count 3", EINVAL},
      {"0 100 linear %s 1x", "line 1: linear: invalid device sector '1x'", EINVAL},
      {"0 100 linear /nonexistent/file 0",
       "line 1: linear: cannot open for reading and writing /nonexistent/file: No such file",
       ENOENT},
      {"0 200 linear %b 0", "line 1: linear: device " /* path */, EINVAL},
      {"0 100 linear %b 100", "is too small: the table needs sectors 100..199 (100 sectors) but it has 128",
       EINVAL},
      /* The end of this range is past the largest sector: no wrapped numbers. */
      {"0 100 linear %b 18446744073709551615",
       "is too small: the table needs 100 sectors from sector 18446744073709551615 (past "
       "the largest sector number) but it has 128",
       EINVAL},
      {"0 1 linear %b 18446744073709551615",
       "the table needs sectors 18446744073709551615..18446744073709551615 (1 sector)",
       EINVAL},
      /* A comment begins after the target name: '#' inside it is part of the name. */
      {"0 100 zero#x", "line 1: unknown target type 'zero#x'", EINVAL},
      {"0 100 striped 3 8 %s 0 %s 0 %s 0", "line 1: striped: target length 100 not divisible by "
                                           "number of stripes 3", EINVAL},
      {"0 96 striped 3 64 %s 0 %s 0 %s 0", "not divisible by chunk size 64", EINVAL},
      {"0 96 striped 3 8 %s 0 %s 0", "3 stripes need 6 '<dev> <offset>' words, 4 given", EINVAL},
      {"0 96 striped 0 8", "invalid stripe count '0'", EINVAL},
      {"0 96 striped 3 0 %s 0 %s 0 %s 0", "invalid chunk size '0'", EINVAL},
      {"0 96 striped 3 x %s 0 %s 0 %s 0", "invalid chunk size 'x'", EINVAL},
      {"0 96 striped", "not enough arguments", EINVAL},
      {"0 100 zero extra", "line 1: zero: no arguments required, 1 given", EINVAL},
      {"0 100 error a", "line 1: error: expected no arguments or '<dev> <offset>', got 1", EINVAL},
      {"0 200 error %b 0", "line 1: error: device ", EINVAL}, /* 128 sectors: too small */
      {"0 100 linear udm:nosuch 0", "no udm device named 'nosuch'", ENOENT},
      {"0 100 linear vhdx:/x.img 0", "unknown image format 'vhdx'", EINVAL},
      {"0 100 linear 8:16 0", "looks like a major:minor device number", EINVAL},
      {"0 100 linear raw:%s?bogus=1 0", "unknown raw option 'bogus=1'", EINVAL},
      {"", "the table is empty", EINVAL},
      {"# only a comment\n\n", "the table is empty", EINVAL},
      {"0 100 linear %s 0\n# comment\n\n100 50 zero\n150 10 nosuch", "line 5: unknown target type",
       EINVAL},
  };
  struct udm_device *d = udm_device_create(ctx, "victim", NULL, 0);
  char live[256];
  snprintf(live, sizeof live, "0 2048 linear %s 0", big);
  CHECK(d && udm_table_load(d, live) == 0 && udm_device_resume(d) == 0);
  unsigned char buf[512], want[512];
  fill_pattern(want, sizeof want, 1, 4096);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *t = expand(cases[i].table);
    errno = 0;
    int r = udm_table_load(d, t);
    CHECK(r == -1);
    if (r != -1) {
      fprintf(stderr, "  table accepted: %s\n", t);
      continue;
    }
    CHECK(errno == cases[i].err);
    CHECK_CONTAINS(udm_errmsg(), cases[i].message);
    CHECK_CONTAINS(udm_errmsg(), "load victim: ");
    /* The live device is untouched: same table, same data, no inactive table. */
    char *text = NULL;
    CHECK(udm_device_table(d, 0, &text) == 0);
    char expect[300];
    snprintf(expect, sizeof expect, "%s\n", live);
    CHECK_STR(text, expect);
    free(text);
    struct udm_info info;
    udm_device_info(d, &info);
    CHECK(info.live_table && !info.inactive_table && !info.suspended);
    CHECK(udm_device_pread(d, buf, sizeof buf, 4096) == 0 && memcmp(buf, want, 512) == 0);
  }
  udm_device_remove(d, 0);
  udm_device_unref(d);
}

static void comments_blank_lines_and_escapes_are_understood(void)
{
  struct udm_device *d = udm_device_create(ctx, "multi", NULL, 0);
  char t[1024];
  snprintf(t, sizeof t,
           "# a comment\n"
           "0 100 linear %s 0\r\n"
           "\n"
           "   100\t50 zero\n"
           "150 10 error\n",
           big);
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
  char *text = NULL;
  CHECK(udm_device_table(d, 0, &text) == 0);
  char want[1024];
  snprintf(want, sizeof want, "0 100 linear %s 0\n100 50 zero\n150 10 error\n", big);
  CHECK_STR(text, want);
  free(text);
  CHECK(udm_device_status(d, 0, &text) == 0);
  CHECK_STR(text, "0 100 linear \n100 50 zero \n150 10 error \n");
  free(text);
  CHECK(udm_device_size(d) == 160 * 512);

  /* A file name with a blank, written with a backslash escape. */
  const char *spaced = scratch_file("with space.img", 65536, 3);
  char esc[512], *o = esc;
  o += sprintf(o, "0 128 linear ");
  for (const char *p = spaced; *p; p++) {
    if (*p == ' ')
      *o++ = '\\';
    *o++ = *p;
  }
  sprintf(o, " 0");
  CHECK(udm_table_load(d, esc) == 0);
  CHECK(udm_device_resume(d) == 0);
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 3, 0);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);
  /* ... and table output escapes it again, so the table loads back. */
  CHECK(udm_device_table(d, 0, &text) == 0);
  char want_esc[600];
  snprintf(want_esc, sizeof want_esc, "%s\n", esc);
  CHECK_STR(text, want_esc);
  CHECK(udm_table_load(d, text) == 0 && udm_device_resume(d) == 0);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);
  free(text);
  udm_device_remove(d, 0);
  udm_device_unref(d);
}

/* As dmsetup: after the target name, '#' starts a comment, glued or not. */
static void trailing_comments_are_ignored_as_dmsetup_does(void)
{
  struct udm_device *d = udm_device_create(ctx, "hash", NULL, 0);
  char t[1024];
  snprintf(t, sizeof t,
           "0 100 linear %s 0 # the first MiB\n"
           "100 50 zero #a comment where arguments would be\n"
           "150 10 linear %s 7#glued to an argument\n"
           "   # indented, after blanks\n"
           "160 8 error\t#\n",
           big, big);
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
  char *text = NULL, want[1024];
  CHECK(udm_device_table(d, 0, &text) == 0);
  snprintf(want, sizeof want, "0 100 linear %s 0\n100 50 zero\n150 10 linear %s 7\n"
           "160 8 error\n", big, big);
  CHECK_STR(text, want);
  free(text);

  /* A file whose name has '#' is written with "\#", and printed so. */
  const char *hashed = scratch_file("a#b.img", 65536, 4);
  char *esc = udm_table_escape(hashed);
  CHECK(esc && strstr(esc, "a\\#b.img"));
  snprintf(t, sizeof t, "0 128 linear %s 0 # comment", esc);
  CHECK(udm_table_load(d, t) == 0 && udm_device_resume(d) == 0);
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 4, 0);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);
  CHECK(udm_device_table(d, 0, &text) == 0);
  snprintf(want, sizeof want, "0 128 linear %s 0\n", esc);
  CHECK_STR(text, want);
  CHECK(udm_table_load(d, text) == 0 && udm_device_resume(d) == 0);
  free(text);
  free(esc);
  /* A line break cannot be escaped: refused, rather than a second table line. */
  errno = 0;
  CHECK(udm_table_escape("/tmp/a\n0 8 linear /etc/passwd") == NULL && errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "line break");
  udm_device_remove(d, 0);
  udm_device_unref(d);
}

static void table_output_loads_again_to_the_same_device(void)
{
  struct udm_device *a = udm_device_create(ctx, "rt-a", NULL, 0);
  char t[1024];
  snprintf(t, sizeof t, "0 96 striped 3 16 %s 0 %s 128 %s 256\n96 32 linear %s 7\n128 8 zero\n",
           big, big, big, big);
  CHECK(udm_table_load(a, t) == 0 && udm_device_resume(a) == 0);
  char *text = NULL;
  CHECK(udm_device_table(a, 0, &text) == 0);
  CHECK_STR(text, t);
  struct udm_device *b = udm_device_create(ctx, "rt-b", NULL, 0);
  CHECK(udm_table_load(b, text) == 0 && udm_device_resume(b) == 0);
  char *text2 = NULL;
  CHECK(udm_device_table(b, 0, &text2) == 0);
  CHECK_STR(text2, text);
  unsigned char x[136 * 512], y[136 * 512];
  CHECK(udm_device_pread(a, x, sizeof x, 0) == 0);
  CHECK(udm_device_pread(b, y, sizeof y, 0) == 0);
  CHECK(memcmp(x, y, sizeof x) == 0);
  free(text);
  free(text2);
  udm_device_remove(a, 0);
  udm_device_remove(b, 0);
  udm_device_unref(a);
  udm_device_unref(b);
}

static void inactive_table_is_separate_until_resume(void)
{
  struct udm_device *d = udm_device_create(ctx, "swap", NULL, 0);
  char t1[512], t2[512];
  snprintf(t1, sizeof t1, "0 64 linear %s 0", big);
  snprintf(t2, sizeof t2, "0 32 linear %s 64", big);
  CHECK(udm_table_load(d, t1) == 0 && udm_device_resume(d) == 0);
  CHECK(udm_table_load(d, t2) == 0);
  char *live = NULL, *inactive = NULL;
  udm_device_table(d, 0, &live);
  udm_device_table(d, UDM_TABLE_INACTIVE, &inactive);
  CHECK_CONTAINS(live, "0 64 linear");
  CHECK_CONTAINS(inactive, "0 32 linear");
  CHECK(udm_device_size(d) == 64 * 512);
  free(live);
  free(inactive);
  CHECK(udm_table_clear(d) == 0);
  struct udm_info info;
  udm_device_info(d, &info);
  CHECK(!info.inactive_table && info.live_table);
  CHECK(udm_table_load(d, t2) == 0 && udm_device_resume(d) == 0);
  CHECK(udm_device_size(d) == 32 * 512);
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 1, 64 * 512);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);
  udm_device_info(d, &info);
  CHECK(info.event_nr == 0); /* swaps are not events, as in the kernel */
  udm_device_remove(d, 0);
  udm_device_unref(d);
}

static void names_are_checked(void)
{
  CHECK(udm_device_create(ctx, "a/b", NULL, 0) == NULL && errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "invalid device name 'a/b'");
  CHECK(udm_device_create(ctx, "", NULL, 0) == NULL);
  CHECK(udm_device_create(ctx, "a b", NULL, 0) == NULL);
  CHECK(udm_device_create(ctx, "..", NULL, 0) == NULL);
  struct udm_device *d = udm_device_create(ctx, "dup", "uuid-1", 0);
  CHECK(d != NULL);
  CHECK(udm_device_create(ctx, "dup", NULL, 0) == NULL && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "device 'dup' already exists");
  CHECK(udm_device_create(ctx, "other", "uuid-1", 0) == NULL && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "uuid 'uuid-1' is already used");
  CHECK(udm_device_resume(d) == -1 && errno == ENXIO);
  CHECK_CONTAINS(udm_errmsg(), "resume dup: no table is loaded");
  udm_device_remove(d, 0);
  udm_device_unref(d);
  CHECK(udm_device_lookup(ctx, "dup") == NULL && errno == ENXIO);
}

/*
 * Linux's DM_MAX_TARGETS: one segment more than 1,048,576 is refused before
 * any ctr runs; at exactly 1,048,576 the count passes and the table's own
 * error (an unknown target on line 1, so that no ctr runs) is the one given.
 */
static void tables_are_limited_to_the_kernels_target_count(void)
{
  const size_t n = UDM_TABLE_MAX_TARGETS;
  char *text = malloc((n + 1) * 24 + 64);
  CHECK(text != NULL);
  size_t len = (size_t)sprintf(text, "0 1 nosuch\n");
  for (size_t i = 1; i < n; i++)
    len += (size_t)sprintf(text + len, "%zu 1 zero\n", i);
  struct udm_device *d = udm_device_create(ctx, "many", NULL, 0);
  CHECK(d != NULL);
  CHECK(udm_table_load(d, text) < 0);
  CHECK_CONTAINS(udm_errmsg(), "line 1: ");
  CHECK(strstr(udm_errmsg(), "targets in one table") == NULL);
  /* a comment and a blank line do not count */
  len += (size_t)sprintf(text + len, "# the next line is one too many\n\n%zu 1 zero\n", n);
  CHECK(udm_table_load(d, text) < 0);
  CHECK(errno == E2BIG);
  CHECK_CONTAINS(udm_errmsg(), "line 1048579: more than 1048576 targets in one table");
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
  free(text);
}

int main(void)
{
  scratch_init();
  big = scratch_file("big.img", 1 << 20, 1);
  small = scratch_file("small.img", 65536, 2);
  ctx = udm_ctx_new();
  CHECK(ctx != NULL);
  bad_tables_are_refused_and_the_live_table_survives();
  comments_blank_lines_and_escapes_are_understood();
  trailing_comments_are_ignored_as_dmsetup_does();
  table_output_loads_again_to_the_same_device();
  inactive_table_is_separate_until_resume();
  names_are_checked();
  tables_are_limited_to_the_kernels_target_count();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-table");
}
