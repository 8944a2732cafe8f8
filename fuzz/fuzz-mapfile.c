// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * GNU ddrescue mapfiles as "udm image convert --mapfile" reads them
 * (tools/udm-image/mapfile.c): the input is the mapfile, read for a
 * device of 1 GiB.  What must hold: a refusal names the line; an accepted
 * mapfile gives bad ranges that are sorted, merged, non-empty and inside
 * the device.
 */
#include "../tools/udm-image/mapfile.h"
#include "fuzz.h"

#define DEVICE_BYTES (1ull << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[300];
  if (!path[0])
    fuzz_path("mapfile", path, sizeof path);
  fuzz_file(path, data, size, 0);
  struct udmz_range *bad = NULL;
  size_t n = 0;
  char *err = NULL;
  if (ddrescue_mapfile_read(path, DEVICE_BYTES, &bad, &n, &err) < 0) {
    if (!err)
      abort();
    free(err);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (bad[i].len == 0 || bad[i].off + bad[i].len > DEVICE_BYTES ||
        bad[i].off + bad[i].len < bad[i].off)
      abort();
    if (i && bad[i].off <= bad[i - 1].off + bad[i - 1].len)
      abort(); /* unsorted, overlapping or not merged */
  }
  free(bad);
  free(err);
  return 0;
}
