/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * map-file: the smallest program that uses libudm in-process, with no daemon.
 * It maps FILE through a linear device (skipping its first OFFSET sectors),
 * writes a greeting through the device and reads it back.
 *
 *   cc map-file.c $(pkg-config --cflags --libs udm) -o map-file
 *   truncate -s 1M disk.img && ./map-file disk.img 8
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <udm/udm.h>

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: %s FILE OFFSET-SECTORS\n", argv[0]);
    return 2;
  }
  struct stat st;
  if (stat(argv[1], &st) < 0) {
    perror(argv[1]);
    return 1;
  }
  unsigned long long offset = strtoull(argv[2], NULL, 10);
  unsigned long long sectors = (unsigned long long)st.st_size / 512;
  if (offset >= sectors) {
    fprintf(stderr, "%s: offset %llu is past the end (%llu sectors)\n", argv[0], offset,
            sectors);
    return 1;
  }

  char table[4096];
  snprintf(table, sizeof table, "0 %llu linear %s %llu", sectors - offset, argv[1],
           offset);

  struct udm_ctx *ctx = udm_ctx_new();
  struct udm_device *dev = ctx ? udm_device_create(ctx, "example", NULL, 0) : NULL;
  if (!dev || udm_table_load(dev, table) < 0 || udm_device_resume(dev) < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], udm_errmsg());
    udm_ctx_free(ctx);
    return 1;
  }

  const char msg[] = "hello from udm";
  char back[sizeof msg];
  if (udm_device_pwrite(dev, msg, sizeof msg, 0, 0) < 0 ||
      udm_device_pread(dev, back, sizeof back, 0) < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], udm_errmsg());
    udm_device_unref(dev);
    udm_ctx_free(ctx);
    return 1;
  }
  char *text = NULL;
  udm_device_table(dev, 0, &text);
  printf("table:  %s", text);
  printf("size:   %llu bytes\n", (unsigned long long)udm_device_size(dev));
  printf("read:   %s (written at byte %llu of %s)\n", back, offset * 512, argv[1]);
  free(text);
  udm_device_unref(dev);
  udm_ctx_free(ctx);
  return strcmp(msg, back) == 0 ? 0 : 1;
}
