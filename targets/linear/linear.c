/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * linear: map a range of the device onto a range of one backing device.
 * The core's remap does the I/O, iterate_devices and extents.
 */
#include <errno.h>
#include <stdlib.h>

#include <udm/target.h>

struct linear {
  struct udm_dev *dev;
  udm_sector_t start;
};

/*
 * Construct a linear mapping:
 *   <dev> <offset>
 * offset is the first sector of dev that the segment maps to.
 */
static int linear_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc != 2) {
    udm_target_error(ti, "invalid argument count %u: expected '<dev> <offset>'", argc);
    return -EINVAL;
  }
  struct linear *lc = calloc(1, sizeof *lc);
  if (!lc)
    return -ENOMEM;
  ti->private = lc;
  if (udm_parse_u64(argv[1], &lc->start) < 0) {
    udm_target_error(ti, "invalid device sector '%s'", argv[1]);
    return -EINVAL;
  }
  int r = udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &lc->dev);
  if (r == 0)
    udm_target_set_remap(ti, lc->dev, lc->start); /* map, devices and extents */
  return r;
}

static void linear_dtr(struct udm_target *ti)
{
  struct linear *lc = ti->private;
  if (!lc)
    return;
  if (lc->dev)
    udm_put_device(ti, lc->dev);
  free(lc);
}

static void linear_status(struct udm_target *ti, enum udm_status_type type,
                          unsigned flags, struct udm_buf *out)
{
  struct linear *lc = ti->private;
  (void)flags;
  if (type == UDM_STATUS_TABLE)
    udm_buf_printf(out, "%s %llu", udm_dev_name(lc->dev), (unsigned long long)lc->start);
  else if (type == UDM_STATUS_IMA) {
    udm_target_ima_header(ti, out);
    udm_buf_printf(out, ",device_name=%s,start=%llu;", udm_dev_name(lc->dev),
                   (unsigned long long)lc->start);
  }
}

const struct udm_target_type udm_target_type_linear = {
    UDM_TARGET_TYPE_INIT,
    .name = "linear",
    .version = {1, 5, 0},
    .ctr = linear_ctr,
    .dtr = linear_dtr,
    .status = linear_status,
};
