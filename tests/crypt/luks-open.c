/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * luks-open: open a LUKS volume with volumes/luks.c and print what udm open
 * will use.
 *
 *   luks-open PATH PASSFILE table [showkeys]   the dm-crypt table line
 *   luks-open PATH PASSFILE key                the volume key in hex
 *
 * Errors and warnings go to stderr; exit 0 on success, 1 on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udm/udm.h>

#include "luks.h"
#include "secure.h"

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: luks-open PATH PASSFILE table [showkeys] | key\n");
    return 2;
  }
  char pass[1024];
  FILE *f = fopen(argv[2], "rb");
  if (!f) {
    perror(argv[2]);
    return 2;
  }
  size_t plen = fread(pass, 1, sizeof pass, f);
  fclose(f);
  struct udm_luks_volume *vol;
  char *err = NULL;
  int r = udm_luks_open(argv[1], pass, plen, &vol, &err);
  memset(pass, 0, sizeof pass);
  if (r < 0) {
    fprintf(stderr, "%s\n", err ? err : "failed");
    free(err);
    return 1;
  }
  if (udm_luks_warning(vol))
    fprintf(stderr, "warning: %s\n", udm_luks_warning(vol));
  if (!strcmp(argv[3], "key")) {
    size_t n;
    const uint8_t *k = udm_luks_volume_key(vol, &n);
    for (size_t i = 0; i < n; i++)
      printf("%02x", k[i]);
    printf("\n");
  } else {
    char *t;
    unsigned flags = argc > 4 && !strcmp(argv[4], "showkeys") ? UDM_TABLE_SHOWKEYS : 0;
    if (udm_luks_table(vol, flags, &t) < 0)
      return 1;
    printf("%s\n", t);
    udm_wipe_free_str(t);
  }
  udm_luks_free(vol);
  return 0;
}
