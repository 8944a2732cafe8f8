/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * striped: RAID-0.  Chunk n of the segment lives on stripe n % stripes, at
 * chunk n / stripes of that stripe.  Chunks need not be powers of two.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <udm/target.h>

struct stripe {
  struct udm_dev *dev;
  udm_sector_t start;
  atomic_uint errors;
};

struct striped {
  unsigned stripes;
  uint64_t chunk;        /* sectors */
  udm_sector_t width;    /* sectors per stripe */
  struct stripe stripe[];
};

static const struct udm_arg stripes_arg = {1, 1u << 16, "invalid stripe count"};
static const struct udm_arg chunk_arg = {1, UINT32_MAX, "invalid chunk size"};

/*
 * Construct a striped mapping:
 *   <#stripes> <chunk size> [<dev> <offset>]{#stripes}
 * The segment length must divide by #stripes, and each stripe's share by the
 * chunk size.
 */
static int striped_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct udm_arg_set as = {argc, argv};
  unsigned stripes, chunk;
  if (argc < 2) {
    udm_target_error(ti, "not enough arguments: expected '<#stripes> <chunk size> "
                         "[<dev> <offset>]...'");
    return -EINVAL;
  }
  if (udm_read_arg(&as, &stripes_arg, &stripes, ti) < 0 ||
      udm_read_arg(&as, &chunk_arg, &chunk, ti) < 0)
    return -EINVAL;
  if (ti->len % stripes) {
    udm_target_error(ti, "target length %llu not divisible by number of stripes %u",
                     (unsigned long long)ti->len, stripes);
    return -EINVAL;
  }
  udm_sector_t width = ti->len / stripes;
  if (width % chunk) {
    udm_target_error(ti, "target length %llu not divisible by chunk size %u "
                         "times %u stripes",
                     (unsigned long long)ti->len, chunk, stripes);
    return -EINVAL;
  }
  if (as.argc != 2u * stripes) {
    udm_target_error(ti, "%u stripes need %u '<dev> <offset>' words, %u given",
                     stripes, 2 * stripes, as.argc);
    return -EINVAL;
  }
  struct striped *sc = calloc(1, sizeof *sc + stripes * sizeof sc->stripe[0]);
  if (!sc)
    return -ENOMEM;
  ti->private = sc;
  sc->chunk = chunk;
  sc->width = width;
  for (unsigned i = 0; i < stripes; i++) {
    const char *path = udm_shift_arg(&as), *off = udm_shift_arg(&as);
    if (udm_parse_u64(off, &sc->stripe[i].start) < 0) {
      udm_target_error(ti, "invalid offset '%s' of stripe %u", off, i);
      return -EINVAL;
    }
    int r = udm_get_device(ti, path, UDM_DEV_READ | UDM_DEV_WRITE, &sc->stripe[i].dev);
    if (r < 0)
      return r;
    sc->stripes = i + 1; /* what dtr must put */
  }
  ti->max_io_len = chunk;
  ti->per_io_size = sizeof(unsigned);
  ti->num_flush_ios = stripes;
  return 0;
}

static void striped_dtr(struct udm_target *ti)
{
  struct striped *sc = ti->private;
  if (!sc)
    return;
  for (unsigned i = 0; i < sc->stripes; i++)
    udm_put_device(ti, sc->stripe[i].dev);
  free(sc);
}

static int striped_map(struct udm_target *ti, struct udm_io *io)
{
  struct striped *sc = ti->private;
  unsigned s;
  if (io->op == UDM_OP_FLUSH) {
    s = io->target_io_nr;
  } else {
    /* The core split io at chunk boundaries: it lies inside one chunk. */
    udm_sector_t off = udm_target_offset(ti, io->sector);
    uint64_t chunk = off / sc->chunk;
    s = (unsigned)(chunk % sc->stripes);
    io->sector = sc->stripe[s].start + chunk / sc->stripes * sc->chunk + off % sc->chunk;
  }
  io->dev = sc->stripe[s].dev;
  *(unsigned *)io->per_io = s; /* for end_io's count */
  return UDM_MAPIO_REMAPPED;
}

/* A stripe that failed a request is shown 'D' in INFO. */
static int striped_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  struct striped *sc = ti->private;
  if (*err < 0 && *err != -EOPNOTSUPP)
    atomic_fetch_add(&sc->stripe[*(unsigned *)io->per_io].errors, 1);
  return UDM_ENDIO_DONE;
}

/*
 * INFO:  <#stripes> <dev>... 1 <A|D per stripe>  (D: the stripe saw errors)
 * TABLE: <#stripes> <chunk size> [<dev> <offset>]...
 */
static void striped_status(struct udm_target *ti, enum udm_status_type type,
                           unsigned flags, struct udm_buf *out)
{
  struct striped *sc = ti->private;
  (void)flags;
  if (type == UDM_STATUS_INFO) {
    udm_buf_printf(out, "%u ", sc->stripes);
    for (unsigned i = 0; i < sc->stripes; i++)
      udm_buf_printf(out, "%s ", udm_dev_name(sc->stripe[i].dev));
    udm_buf_puts(out, "1 ");
    for (unsigned i = 0; i < sc->stripes; i++)
      udm_buf_puts(out, atomic_load(&sc->stripe[i].errors) ? "D" : "A");
  } else if (type == UDM_STATUS_IMA) {
    udm_target_ima_header(ti, out);
    udm_buf_printf(out, ",stripes=%u,chunk_size=%llu", sc->stripes,
                   (unsigned long long)sc->chunk);
    for (unsigned i = 0; i < sc->stripes; i++)
      udm_buf_printf(out, ",stripe_%u_device_name=%s,stripe_%u_physical_start=%llu"
                          ",stripe_%u_status=%c",
                     i, udm_dev_name(sc->stripe[i].dev), i,
                     (unsigned long long)sc->stripe[i].start, i,
                     atomic_load(&sc->stripe[i].errors) ? 'D' : 'A');
    udm_buf_puts(out, ";");
  } else {
    udm_buf_printf(out, "%u %llu", sc->stripes, (unsigned long long)sc->chunk);
    for (unsigned i = 0; i < sc->stripes; i++)
      udm_buf_printf(out, " %s %llu", udm_dev_name(sc->stripe[i].dev),
                     (unsigned long long)sc->stripe[i].start);
  }
}

static int striped_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                   void *data)
{
  struct striped *sc = ti->private;
  int r = 0;
  for (unsigned i = 0; i < sc->stripes && r == 0; i++)
    r = fn(ti, sc->stripe[i].dev, sc->stripe[i].start, sc->width, data);
  return r;
}

struct chunk_extents {
  udm_extent_fn fn;
  void *opaque;
  udm_sector_t dev_base; /* backing sector of the chunk's start */
  udm_sector_t seg_base; /* segment sector of the chunk's start */
};

static int chunk_extent(void *opaque, udm_sector_t sector, uint64_t nr, unsigned flags)
{
  struct chunk_extents *c = opaque;
  return c->fn(c->opaque, c->seg_base + (sector - c->dev_base), nr, flags);
}

static int striped_extents(struct udm_target *ti, udm_sector_t sector, uint64_t nr,
                           udm_extent_fn fn, void *opaque)
{
  struct striped *sc = ti->private;
  while (nr > 0) {
    uint64_t chunk = sector / sc->chunk, in = sector % sc->chunk;
    uint64_t n = sc->chunk - in < nr ? sc->chunk - in : nr;
    unsigned s = (unsigned)(chunk % sc->stripes);
    udm_sector_t dev_sector = sc->stripe[s].start + chunk / sc->stripes * sc->chunk + in;
    struct chunk_extents c = {fn, opaque, dev_sector, sector};
    int r = udm_dev_extents(sc->stripe[s].dev, dev_sector, n, chunk_extent, &c);
    if (r)
      return r;
    sector += n;
    nr -= n;
  }
  return 0;
}

const struct udm_target_type udm_target_type_striped = {
    UDM_TARGET_TYPE_INIT,
    .name = "striped",
    .version = {1, 7, 0},
    .ctr = striped_ctr,
    .dtr = striped_dtr,
    .map = striped_map,
    .end_io = striped_end_io,
    .status = striped_status,
    .iterate_devices = striped_iterate_devices,
    .extents = striped_extents,
};
