/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * error: every read, write, discard and write-zeroes fails with EIO.
 * Flushes are not sent to it and succeed, as in the kernel.
 */
#include <errno.h>
#include <stdlib.h>

#include <udm/target.h>

struct error_target {
  struct udm_dev *dev; /* only with the two-argument form */
  udm_sector_t start;
};

/*
 * Construct an error mapping:
 *   (no arguments)
 *   <dev> <offset>   as the kernel accepts (it opens dev for its limits);
 *                    the device is opened and checked, then never read.
 */
static int error_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  /* As the kernel: flushes are not sent, write-zeroes is not offered (a
   * caller's fallback writes then fail with EIO). */
  ti->num_flush_ios = 0;
  ti->num_write_zeroes_ios = 0;
  if (argc == 0)
    return 0;
  if (argc != 2) {
    udm_target_error(ti, "expected no arguments or '<dev> <offset>', got %u", argc);
    return -EINVAL;
  }
  struct error_target *et = calloc(1, sizeof *et);
  if (!et)
    return -ENOMEM;
  ti->private = et;
  if (udm_parse_u64(argv[1], &et->start) < 0) {
    udm_target_error(ti, "invalid device sector '%s'", argv[1]);
    return -EINVAL;
  }
  return udm_get_device(ti, argv[0], UDM_DEV_READ, &et->dev);
}

static void error_dtr(struct udm_target *ti)
{
  struct error_target *et = ti->private;
  if (!et)
    return;
  if (et->dev)
    udm_put_device(ti, et->dev);
  free(et);
}

static int error_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                 void *data)
{
  struct error_target *et = ti->private;
  return et && et->dev ? fn(ti, et->dev, et->start, ti->len, data) : 0;
}

static int error_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti, (void)io;
  return -EIO;
}

const struct udm_target_type udm_target_type_error = {
    UDM_TARGET_TYPE_INIT,
    .name = "error",
    .version = {1, 7, 0},
    .ctr = error_ctr,
    .dtr = error_dtr,
    .map = error_map,
    .iterate_devices = error_iterate_devices,
};
