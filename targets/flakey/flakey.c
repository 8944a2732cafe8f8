/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flakey: a device that works for <up interval> seconds, then misbehaves
 * for <down interval> seconds, and so on, counted from table construction
 * (dm-flakey).  What "misbehaves" means is chosen by features; without any,
 * every request fails with EIO while down.
 *
 * dm-flakey's notion of a request is the bio; udm's is the request as map()
 * sees it: the part of a caller's request that falls inside this segment.
 * "The Nth byte" of corrupt_bio_byte counts from the start of that.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <udm/target.h>

#define PROBABILITY_BASE 1000000000u

/*
 * corrupt_bio_byte's <flags> is a mask over the kernel's bio op and flag
 * bits.  udm requests carry the op (read 0, write 1 in the low bits) and
 * FUA; the kernel's REQ_FUA is bit 17.  No other flag ever matches.
 */
#define KERNEL_REQ_OP_WRITE 1u
#define KERNEL_REQ_FUA (1u << 17)

struct flakey {
  struct udm_dev *dev;
  udm_sector_t start;
  unsigned up_interval;   /* seconds */
  unsigned down_interval; /* seconds */
  uint64_t born_ns;       /* monotonic time of construction: the clock's origin */

  bool error_reads;
  bool drop_writes;
  bool error_writes;
  unsigned corrupt_byte;  /* 1-based; 0: no corrupt_bio_byte feature */
  bool corrupt_writes;    /* corrupt_bio_byte direction: w (else r) */
  unsigned corrupt_value;
  unsigned corrupt_flags;
  unsigned random_read;   /* probability out of PROBABILITY_BASE */
  unsigned random_write;

  bool seeded;            /* udm extension: random_seed given */
  uint64_t seed;
  pthread_mutex_t rng_lock; /* draws come from many worker threads */
  bool rng_lock_ready;
  uint64_t rng[4];        /* xoshiro256** state */
};

/* A random corruption, drawn when the request is mapped (so draws follow map order). */
struct random_hit {
  uint32_t pos;
  unsigned char value;
};

/* Per request (io->per_io): what to corrupt, and a corrupted write's copy. */
struct flakey_io {
  bool fixed;              /* corrupt_bio_byte applies */
  bool random;             /* random_*_corrupt hit */
  struct random_hit hit;
  struct udm_io *io;
  struct udm_io child;     /* the corrupted copy of a write, submitted below */
  unsigned char *copy;
};

/* ---- per-target random numbers ------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void rng_seed(struct flakey *fc, uint64_t seed)
{
  for (unsigned i = 0; i < 4; i++)
    fc->rng[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

/* Caller holds rng_lock. */
static uint64_t rng_next(struct flakey *fc)
{
  uint64_t *s = fc->rng;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* An unseeded target still gets a distinct stream per instance and run. */
static uint64_t entropy_seed(const struct flakey *fc)
{
  struct timespec rt, mt;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mt);
  uint64_t x = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
  x ^= rotl((uint64_t)mt.tv_nsec, 21) ^ rotl((uint64_t)(uintptr_t)fc, 42);
  x ^= (uint64_t)getpid() << 32;
  return splitmix64(&x);
}

/* ---- constructor ------------------------------------------------------- */

static const struct udm_arg feature_count_arg = {0, 13, "invalid number of feature args"};
static const struct udm_arg corrupt_byte_arg = {1, UINT32_MAX, "invalid corrupt bio byte"};
static const struct udm_arg corrupt_value_arg = {0, 255, "invalid corrupt value (0-255)"};
static const struct udm_arg corrupt_flags_arg = {0, UINT32_MAX,
                                                 "invalid corrupt bio flags mask"};
static const struct udm_arg probability_arg = {0, PROBABILITY_BASE,
                                               "invalid random corrupt probability"};

/* Read a feature's parameter, checking it lies inside the announced group. */
static int feature_param(struct udm_target *ti, unsigned left, const char *feature,
                         unsigned need)
{
  if (left < need) {
    udm_target_error(ti, "feature %s requires %u parameter%s", feature, need,
                     need == 1 ? "" : "s");
    return -EINVAL;
  }
  return 0;
}

static int parse_features(struct udm_target *ti, struct flakey *fc, struct udm_arg_set *as)
{
  unsigned left = 0;
  if (as->argc && udm_read_arg_group(as, &feature_count_arg, &left, ti) < 0)
    return -EINVAL;
  while (left) {
    const char *name = udm_shift_arg(as);
    left--;
    if (!strcasecmp(name, "error_reads")) {
      if (fc->error_reads)
        goto duplicated;
      fc->error_reads = true;
    } else if (!strcasecmp(name, "drop_writes")) {
      if (fc->drop_writes)
        goto duplicated;
      if (fc->error_writes) {
        udm_target_error(ti, "feature drop_writes conflicts with error_writes");
        return -EINVAL;
      }
      fc->drop_writes = true;
    } else if (!strcasecmp(name, "error_writes")) {
      if (fc->error_writes)
        goto duplicated;
      if (fc->drop_writes) {
        udm_target_error(ti, "feature error_writes conflicts with drop_writes");
        return -EINVAL;
      }
      fc->error_writes = true;
    } else if (!strcasecmp(name, "corrupt_bio_byte")) {
      if (fc->corrupt_byte)
        goto duplicated;
      if (feature_param(ti, left, "corrupt_bio_byte", 4) < 0)
        return -EINVAL;
      if (udm_read_arg(as, &corrupt_byte_arg, &fc->corrupt_byte, ti) < 0)
        return -EINVAL;
      const char *dir = udm_shift_arg(as);
      if (!strcasecmp(dir, "w")) {
        fc->corrupt_writes = true;
      } else if (strcasecmp(dir, "r")) {
        udm_target_error(ti, "invalid corrupt bio direction '%s' (r or w)", dir);
        return -EINVAL;
      }
      if (udm_read_arg(as, &corrupt_value_arg, &fc->corrupt_value, ti) < 0 ||
          udm_read_arg(as, &corrupt_flags_arg, &fc->corrupt_flags, ti) < 0)
        return -EINVAL;
      left -= 4;
    } else if (!strcasecmp(name, "random_read_corrupt") ||
               !strcasecmp(name, "random_write_corrupt")) {
      bool rd = !strcasecmp(name, "random_read_corrupt");
      unsigned *p = rd ? &fc->random_read : &fc->random_write;
      /* As in dm, a zero probability is "not given": it may be repeated. */
      if (*p)
        goto duplicated;
      if (feature_param(ti, left, name, 1) < 0 ||
          udm_read_arg(as, &probability_arg, p, ti) < 0)
        return -EINVAL;
      left--;
    } else if (!strcasecmp(name, "random_seed")) {
      /* udm extension: make random corruption replayable. */
      if (fc->seeded)
        goto duplicated;
      if (feature_param(ti, left, name, 1) < 0)
        return -EINVAL;
      const char *v = udm_shift_arg(as);
      if (udm_parse_u64(v, &fc->seed) < 0) {
        udm_target_error(ti, "invalid random_seed '%s' (0..%llu)", v,
                         (unsigned long long)UINT64_MAX);
        return -EINVAL;
      }
      fc->seeded = true;
      left--;
    } else {
      udm_target_error(ti, "unrecognised flakey feature '%s'", name);
      return -EINVAL;
    }
    continue;
  duplicated:
    udm_target_error(ti, "feature %s given twice", name);
    return -EINVAL;
  }

  bool fixed_writes = fc->corrupt_byte && fc->corrupt_writes;
  bool fixed_reads = fc->corrupt_byte && !fc->corrupt_writes;
  if ((fc->drop_writes || fc->error_writes) && (fixed_writes || fc->random_write)) {
    udm_target_error(ti, "%s is incompatible with random_write_corrupt or "
                         "corrupt_bio_byte in direction w",
                     fc->drop_writes ? "drop_writes" : "error_writes");
    return -EINVAL;
  }
  if (fc->error_reads && (fixed_reads || fc->random_read)) {
    udm_target_error(ti, "error_reads is incompatible with random_read_corrupt or "
                         "corrupt_bio_byte in direction r");
    return -EINVAL;
  }
  /* No behaviour chosen: while down, everything fails (dm's default). */
  if (!fc->corrupt_byte && !fc->error_reads && !fc->drop_writes && !fc->error_writes &&
      !fc->random_read && !fc->random_write)
    fc->error_reads = fc->error_writes = true;
  return 0;
}

/*
 * Construct a flakey mapping:
 *   <dev> <offset> <up interval> <down interval> [<#feature args> <feature>...]
 * Intervals are in seconds; up + down must be at least 1.  Features:
 *   error_reads                      fail reads while down
 *   drop_writes                      while down, writes succeed but are dropped
 *   error_writes                     fail writes while down
 *   corrupt_bio_byte <Nth byte> <r|w> <value> <flags>
 *                                    while down, set byte N (from 1) of each
 *                                    matching read/write to value; flags is a
 *                                    mask of kernel bio flags that must all be
 *                                    set (0: every request)
 *   random_read_corrupt <p>          while down, corrupt one random byte of a
 *   random_write_corrupt <p>         read/write with probability p/1000000000
 *   random_seed <n>                  (udm extension) seed those draws
 */
static int flakey_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  static const struct udm_arg up_arg = {0, UINT32_MAX, "invalid up interval"};
  static const struct udm_arg down_arg = {0, UINT32_MAX, "invalid down interval"};
  struct udm_arg_set as = {argc, argv};
  if (argc < 4) {
    udm_target_error(ti, "expected '<dev> <offset> <up interval> <down interval> "
                         "[<#feature args> <feature>...]', got %u argument%s",
                     argc, argc == 1 ? "" : "s");
    return -EINVAL;
  }
  struct flakey *fc = calloc(1, sizeof *fc);
  if (!fc)
    return -ENOMEM;
  ti->private = fc;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  fc->born_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
  if (pthread_mutex_init(&fc->rng_lock, NULL) != 0)
    return -ENOMEM;
  fc->rng_lock_ready = true;

  const char *path = udm_shift_arg(&as);
  const char *offset = udm_shift_arg(&as);
  if (udm_parse_u64(offset, &fc->start) < 0) {
    udm_target_error(ti, "invalid device sector '%s'", offset);
    return -EINVAL;
  }
  if (udm_read_arg(&as, &up_arg, &fc->up_interval, ti) < 0 ||
      udm_read_arg(&as, &down_arg, &fc->down_interval, ti) < 0)
    return -EINVAL;
  if (fc->up_interval + fc->down_interval == 0) {
    udm_target_error(ti, "total (up + down) interval is zero");
    return -EINVAL;
  }
  if (fc->up_interval + fc->down_interval < fc->up_interval) {
    udm_target_error(ti, "up + down interval overflows (%u + %u)", fc->up_interval,
                     fc->down_interval);
    return -EINVAL;
  }
  int r = parse_features(ti, fc, &as);
  if (r < 0)
    return r;
  if (as.argc) {
    udm_target_error(ti, "unexpected argument '%s' after the features", as.argv[0]);
    return -EINVAL;
  }
  rng_seed(fc, fc->seeded ? fc->seed : entropy_seed(fc));
  /* dm-flakey leaves write-zeroes unsupported: they arrive as plain writes. */
  ti->num_write_zeroes_ios = 0;
  ti->per_io_size = sizeof(struct flakey_io);
  return udm_get_device(ti, path, UDM_DEV_READ | UDM_DEV_WRITE, &fc->dev);
}

static void flakey_dtr(struct udm_target *ti)
{
  struct flakey *fc = ti->private;
  if (!fc)
    return;
  if (fc->dev)
    udm_put_device(ti, fc->dev);
  if (fc->rng_lock_ready)
    pthread_mutex_destroy(&fc->rng_lock);
  free(fc);
}

/* ---- I/O --------------------------------------------------------------- */

static bool flakey_is_down(const struct flakey *fc)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
  /* Whole seconds, truncated to 32 bits, as dm's jiffies arithmetic. */
  unsigned elapsed = (unsigned)((ns - fc->born_ns) / 1000000000u);
  return elapsed % (fc->up_interval + fc->down_interval) >= fc->up_interval;
}

static bool flags_match(const struct flakey *fc, const struct udm_io *io)
{
  unsigned opf = (io->op == UDM_OP_WRITE ? KERNEL_REQ_OP_WRITE : 0) |
                 ((io->flags & UDM_IO_FUA) ? KERNEL_REQ_FUA : 0);
  return (opf & fc->corrupt_flags) == fc->corrupt_flags;
}

/* Does a random draw out of PROBABILITY_BASE fall under P? */
static bool chance(struct flakey *fc, unsigned p)
{
  pthread_mutex_lock(&fc->rng_lock);
  bool hit = rng_next(fc) % PROBABILITY_BASE < p;
  pthread_mutex_unlock(&fc->rng_lock);
  return hit;
}

static struct random_hit draw_random_hit(struct flakey *fc)
{
  pthread_mutex_lock(&fc->rng_lock);
  /* dm draws a 32-bit position (modulo the size) and an 8-bit value. */
  struct random_hit h = {(uint32_t)(rng_next(fc) >> 32),
                         (unsigned char)(rng_next(fc) >> 56)};
  pthread_mutex_unlock(&fc->rng_lock);
  return h;
}

static void corrupt_random_byte(const struct random_hit *h, unsigned char *buf,
                                uint64_t size)
{
  buf[h->pos % size] = h->value;
}


static void corrupt_fixed_byte(const struct flakey *fc, unsigned char *buf, uint64_t size)
{
  /* A request shorter than N bytes is left alone. */
  if (fc->corrupt_byte <= size)
    buf[fc->corrupt_byte - 1] = (unsigned char)fc->corrupt_value;
}

static int flakey_read_down(struct flakey *fc, struct udm_io *io)
{
  if (fc->error_reads)
    return -EIO;
  /* Corruption happens to data that was read successfully: in end_io. */
  struct flakey_io *fio = io->per_io;
  fio->fixed = fc->corrupt_byte && !fc->corrupt_writes && flags_match(fc, io);
  fio->random = fc->random_read && chance(fc, fc->random_read);
  if (fio->random)
    fio->hit = draw_random_hit(fc);
  return UDM_MAPIO_REMAPPED;
}

static int flakey_end_io(struct udm_target *ti, struct udm_io *io, int *err)
{
  struct flakey_io *fio = io->per_io;
  uint64_t size = io->nr_sectors * UDM_SECTOR_SIZE;
  if (*err || io->op != UDM_OP_READ)
    return UDM_ENDIO_DONE;
  if (fio->fixed)
    corrupt_fixed_byte(ti->private, io->buf, size);
  if (fio->random)
    corrupt_random_byte(&fio->hit, io->buf, size);
  return UDM_ENDIO_DONE;
}

static void flakey_write_done(struct udm_io *child, int err)
{
  struct flakey_io *fio = (struct flakey_io *)((char *)child - offsetof(struct flakey_io, child));
  free(fio->copy);
  fio->copy = NULL;
  udm_io_complete(fio->io, err);
}

static int flakey_write_down(struct flakey *fc, struct udm_io *io)
{
  /* To dm, flushes and discards are writes too: dropped or failed alike. */
  if (fc->drop_writes)
    return UDM_MAPIO_DONE;
  if (fc->error_writes)
    return -EIO;
  if (io->op != UDM_OP_WRITE)
    return UDM_MAPIO_REMAPPED; /* no data to corrupt */
  bool fixed = fc->corrupt_byte && fc->corrupt_writes && flags_match(fc, io);
  bool random = fc->random_write && chance(fc, fc->random_write);
  if (!fixed && !random)
    return UDM_MAPIO_REMAPPED;
  /* Corrupt a copy: the caller's buffer must come back as it was given. */
  struct flakey_io *fio = io->per_io;
  uint64_t size = io->nr_sectors * UDM_SECTOR_SIZE;
  if (!(fio->copy = malloc(size)))
    return -ENOMEM;
  memcpy(fio->copy, io->buf, size);
  if (fixed)
    corrupt_fixed_byte(fc, fio->copy, size);
  if (random) {
    struct random_hit h = draw_random_hit(fc);
    corrupt_random_byte(&h, fio->copy, size);
  }
  fio->io = io;
  fio->child = (struct udm_io){.op = io->op, .flags = io->flags, .sector = io->sector,
                               .nr_sectors = io->nr_sectors, .buf = fio->copy,
                               .end_io = flakey_write_done};
  udm_dev_submit_async(io->dev, &fio->child);
  return UDM_MAPIO_SUBMITTED;
}

static int flakey_map(struct udm_target *ti, struct udm_io *io)
{
  struct flakey *fc = ti->private;
  io->dev = fc->dev;
  if (io->op != UDM_OP_FLUSH)
    io->sector = fc->start + udm_target_offset(ti, io->sector);
  if (!flakey_is_down(fc))
    return UDM_MAPIO_REMAPPED;
  return io->op == UDM_OP_READ ? flakey_read_down(fc, io) : flakey_write_down(fc, io);
}

/*
 * INFO:  empty
 * TABLE: <dev> <offset> <up> <down> <#feature args> [features], features in
 *        dm's order (an empty feature list reads back as the error_reads
 *        error_writes it means), then udm's random_seed if given.
 */
static void flakey_status(struct udm_target *ti, enum udm_status_type type,
                          unsigned flags, struct udm_buf *out)
{
  struct flakey *fc = ti->private;
  (void)flags;
  if (type == UDM_STATUS_IMA)
    return; /* the kernel's flakey measures nothing (empty IMA text) */
  if (type == UDM_STATUS_INFO)
    return;
  bool write_mode = fc->drop_writes || fc->error_writes;
  unsigned nargs = fc->error_reads + write_mode + (fc->corrupt_byte ? 5 : 0) +
                   (fc->random_read ? 2 : 0) + (fc->random_write ? 2 : 0) +
                   (fc->seeded ? 2 : 0);
  udm_buf_printf(out, "%s %llu %u %u %u", udm_dev_name(fc->dev),
                 (unsigned long long)fc->start, fc->up_interval, fc->down_interval,
                 nargs);
  if (fc->error_reads)
    udm_buf_puts(out, " error_reads");
  if (fc->drop_writes)
    udm_buf_puts(out, " drop_writes");
  else if (fc->error_writes)
    udm_buf_puts(out, " error_writes");
  if (fc->corrupt_byte)
    udm_buf_printf(out, " corrupt_bio_byte %u %c %u %u", fc->corrupt_byte,
                   fc->corrupt_writes ? 'w' : 'r', fc->corrupt_value, fc->corrupt_flags);
  if (fc->random_read)
    udm_buf_printf(out, " random_read_corrupt %u", fc->random_read);
  if (fc->random_write)
    udm_buf_printf(out, " random_write_corrupt %u", fc->random_write);
  if (fc->seeded)
    udm_buf_printf(out, " random_seed %llu", (unsigned long long)fc->seed);
}

static int flakey_iterate_devices(struct udm_target *ti, udm_iterate_devices_fn fn,
                                  void *data)
{
  struct flakey *fc = ti->private;
  return fn(ti, fc->dev, fc->start, ti->len, data);
}

const struct udm_target_type udm_target_type_flakey = {
    UDM_TARGET_TYPE_INIT,
    .name = "flakey",
    .version = {1, 5, 0},
    .ctr = flakey_ctr,
    .dtr = flakey_dtr,
    .map = flakey_map,
    .end_io = flakey_end_io,
    .status = flakey_status,
    .iterate_devices = flakey_iterate_devices,
};
