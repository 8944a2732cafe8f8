// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An image driver (FUZZ_DRIVER: qcow2 or udmz) on a hostile image file: the
 * input is the file.  The harness probes it, opens it read-only, asks for
 * its size, info and a full check, lists the extents of its first 64 MiB,
 * and reads its first 1 MiB plus its last 64 KiB, in pieces that cross the
 * format's clusters and chunks.  What must hold: no crash, no leak, no
 * hang; a refusal comes with a message; reads fail cleanly or fill the
 * buffer.  (A qcow2 backing file named in the header is opened read-only,
 * as a table would.)
 */
#include <udm/driver.h>

#include "fuzz.h"

#define XSTR(x) #x
#define STR(x) XSTR(x)
#define DRIVER_SYM(d) udm_image_driver_##d
#define DRIVER_OF(d) DRIVER_SYM(d)
extern const struct udm_image_driver DRIVER_OF(FUZZ_DRIVER);
static const struct udm_image_driver *drv = &DRIVER_OF(FUZZ_DRIVER);

#define EXTENTS_MAX (64ull << 20)
#define READ_HEAD (1u << 20)
#define READ_TAIL (64u << 10)

static int count_extent(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  (void)off;
  (void)flags;
  if (len == 0)
    abort(); /* an extent covers at least one byte */
  (*(unsigned *)opaque)++;
  return 0;
}

/* Reads in pieces of 1, 8 and 17 blocks (the driver's block size), as a table would. */
static void read_range(void *h, uint8_t *buf, unsigned bs, uint64_t size, uint64_t from,
                       uint64_t len)
{
  static const unsigned blocks[] = {1, 8, 17};
  unsigned step = 0;
  from -= from % bs;
  for (uint64_t off = from; off < from + len && off < size;) {
    size_t piece = (size_t)bs * blocks[step++ % 3];
    size_t n = size - off < piece ? (size_t)(size - off) : piece;
    n -= n % bs;
    if (!n)
      break;
    if (drv->pread(h, buf, n, off) > 0)
      abort(); /* 0 or -errno */
    off += n;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[300];
  if (!path[0])
    fuzz_path("image", path, sizeof path);
  fuzz_file(path, data, size, 0);
  if (drv->probe)
    drv->probe(data, size);
  struct udm_image_options opts = {0};
  void *h = NULL;
  char *err = NULL;
  int r = drv->open(path, &opts, false, &h, &err);
  if (r < 0) {
    if (!err)
      abort(); /* a refusal names the problem */
    free(err);
    return 0;
  }
  free(err);
  uint64_t bytes = drv->size(h);
  char *text = NULL;
  if (drv->info && drv->info(h, &text) == 0 && !text)
    abort();
  free(text);
  text = NULL;
  if (drv->check) {
    drv->check(h, &text);
    free(text);
  }
  if (drv->extents && bytes) {
    unsigned n = 0;
    uint64_t len = bytes < EXTENTS_MAX ? bytes : EXTENTS_MAX;
    if (len >= 512)
      drv->extents(h, len - len % 512, 0, count_extent, &n);
  }
  unsigned bs = drv->block_size ? drv->block_size(h) : 512;
  if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
    abort(); /* the contract in <udm/driver.h> */
  uint8_t *buf = malloc((size_t)bs * 17);
  if (!buf)
    fuzz_die("malloc");
  read_range(h, buf, bs, bytes, 0, READ_HEAD);
  if (bytes > READ_TAIL)
    read_range(h, buf, bs, bytes, bytes - READ_TAIL, READ_TAIL);
  free(buf);
  drv->close(h);
  return 0;
}
