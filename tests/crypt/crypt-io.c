/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crypt-io: drive one in-process udm device from shell and Python tests.
 *
 *   crypt-io TABLE write OFFSET FILE       write FILE's bytes at OFFSET
 *   crypt-io TABLE read OFFSET LEN FILE    read LEN bytes at OFFSET into FILE
 *   crypt-io TABLE table [showkeys]        print the table as udm shows it
 *   crypt-io TABLE load-error              print the load error, exit 0 if it failed
 *
 * TABLE is one or more lines in dmsetup syntax.  The device is named "c";
 * a line may stack on a second device: "LOWER=<table>|<table>" creates
 * device "lower" from the first table first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/udm.h>

static struct udm_device *make(struct udm_ctx *ctx, const char *name, const char *table)
{
  struct udm_device *d = udm_device_create(ctx, name, NULL, 0);
  if (!d) {
    fprintf(stderr, "create %s: %s\n", name, udm_errmsg());
    return NULL;
  }
  if (udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "%s\n", udm_errmsg());
    udm_device_unref(d);
    return NULL;
  }
  return d;
}

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      }
      buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: crypt-io TABLE write|read|table|load-error ...\n");
    return 2;
  }
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx)
    return 1;
  char *table = strdup(argv[1]);
  const char *cmd = argv[2];
  char *top = table;
  char *bar = strchr(table, '|');
  if (!strncmp(table, "LOWER=", 6) && bar) {
    *bar = '\0';
    top = bar + 1;
    struct udm_device *lower = make(ctx, "lower", table + 6);
    if (!lower)
      return 1;
    udm_device_unref(lower); /* the context keeps it until udm_ctx_free */
  }
  if (!strcmp(cmd, "load-error")) {
    struct udm_device *d = udm_device_create(ctx, "c", NULL, 0);
    if (udm_table_load(d, top) < 0) {
      printf("%s\n", udm_errmsg());
      return 0;
    }
    fprintf(stderr, "table loaded although it should not\n");
    return 1;
  }
  struct udm_device *d = make(ctx, "c", top);
  if (!d)
    return 1;
  int rc = 0;
  if (!strcmp(cmd, "table")) {
    char *out;
    unsigned flags = argc > 3 && !strcmp(argv[3], "showkeys") ? UDM_TABLE_SHOWKEYS : 0;
    if (udm_device_table(d, flags, &out) < 0) {
      fprintf(stderr, "%s\n", udm_errmsg());
      return 1;
    }
    fputs(out, stdout);
    free(out);
  } else if (!strcmp(cmd, "write") && argc == 5) {
    size_t len;
    char *buf = slurp(argv[4], &len);
    if (!buf) {
      perror(argv[4]);
      return 1;
    }
    if (udm_device_pwrite(d, buf, len, strtoull(argv[3], NULL, 0), 0) < 0 ||
        udm_device_flush(d) < 0) {
      fprintf(stderr, "write: %s\n", udm_errmsg());
      rc = 1;
    }
    free(buf);
  } else if (!strcmp(cmd, "read") && argc == 6) {
    size_t len = strtoull(argv[4], NULL, 0);
    char *buf = malloc(len ? len : 1);
    if (udm_device_pread(d, buf, len, strtoull(argv[3], NULL, 0)) < 0) {
      fprintf(stderr, "read: %s\n", udm_errmsg());
      return 1;
    }
    FILE *f = fopen(argv[5], "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
      perror(argv[5]);
      return 1;
    }
    free(buf);
  } else {
    fprintf(stderr, "bad command\n");
    rc = 2;
  }
  udm_device_unref(d);
  udm_ctx_free(ctx);
  free(table);
  return rc;
}
