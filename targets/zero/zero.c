/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zero: reads return zeros, writes and discards are dropped (dm-zero). */
#include <errno.h>
#include <string.h>

#include <udm/target.h>

/* Construct a zero mapping: no arguments. */
static int zero_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  (void)argv;
  if (argc != 0) {
    udm_target_error(ti, "no arguments required, %u given", argc);
    return -EINVAL;
  }
  ti->num_flush_ios = 0;
  ti->num_write_zeroes_ios = 0; /* the core falls back to (dropped) writes */
  return 0;
}

static int zero_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti;
  if (io->op == UDM_OP_READ)
    memset(io->buf, 0, io->nr_sectors * UDM_SECTOR_SIZE);
  return UDM_MAPIO_DONE;
}

static int zero_extents(struct udm_target *ti, udm_sector_t sector, uint64_t nr,
                        udm_extent_fn fn, void *opaque)
{
  (void)ti;
  return fn(opaque, sector, nr, UDM_EXTENT_HOLE | UDM_EXTENT_ZERO);
}

const struct udm_target_type udm_target_type_zero = {
    UDM_TARGET_TYPE_INIT,
    .name = "zero",
    .version = {1, 2, 0},
    .ctr = zero_ctr,
    .map = zero_map,
    .extents = zero_extents,
};
