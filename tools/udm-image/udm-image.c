/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm-image: look at, check and make disk images for udm's image drivers.
 * `udm image ARGS` runs this program.
 *
 *   udm-image [--load DRIVER.so]... formats
 *   udm-image [--load DRIVER.so]... info IMAGE
 *   udm-image [--load DRIVER.so]... verify [--progress] IMAGE
 *   udm-image [--load DRIVER.so]... table IMAGE
 *   udm-image convert [--progress] [--mapfile MAPFILE] [--chunk-size N] [--level N]
 *                     [--logical-block-size N] [--physical-block-size N]
 *                     [--meta KEY=VALUE]... SOURCE DEST.udmz
 *
 * IMAGE is FORMAT:PATH[?options] or a PATH whose format is probed (info,
 * verify and table only: tables themselves never guess).
 * Exit status: 0 success, 1 failure (verify: damage found), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <udm/driver.h>
#include <udm/udm.h>

#include "../../drivers/common/crc32c.h"
#include "../../drivers/common/util.h"
#include "progress.h"
#include "../../drivers/udmz/udmz_write.h"
#include "mapfile.h"

#define PROBE_BYTES 4096

static void usage(FILE *f)
{
  fputs("usage: udm-image [--load DRIVER.so]... COMMAND ...\n"
        "  formats                  list the image formats (FORMAT in FORMAT:PATH)\n"
        "  info IMAGE               the format (probed if not given) and its facts\n"
        "  verify [--progress] IMAGE\n"
        "                           check every checksum / table entry; exit 1 on damage\n"
        "  table IMAGE              a table line mapping the whole image\n"
        "  convert [--progress] [--mapfile MAPFILE] [--chunk-size N] [--level N]\n"
        "          [--logical-block-size N] [--physical-block-size N]\n"
        "          [--meta KEY=VALUE]... SOURCE DEST.udmz\n"
        "                           raw image or block device to udmz; bad ranges from\n"
        "                           a GNU ddrescue mapfile and from unreadable sectors\n"
        "IMAGE is FORMAT:PATH[?key=value&...] or a PATH (probed).\n"
        "verify and convert show a progress bar on a terminal (standard error);\n"
        "--progress also prints a line per percent where it is not one.\n",
        f);
}

/* ---- finding drivers ---- */

struct find {
  const char *name;
  const struct udm_image_driver *drv;
};

static int find_by_name(void *opaque, const struct udm_image_driver *drv)
{
  struct find *f = opaque;
  if (strcmp(drv->name, f->name) == 0) {
    f->drv = drv;
    return 1;
  }
  return 0;
}

struct probe {
  const uint8_t *header;
  size_t len;
  int best;
  const struct udm_image_driver *drv;
};

static int probe_one(void *opaque, const struct udm_image_driver *drv)
{
  struct probe *p = opaque;
  int score = drv->probe ? drv->probe(p->header, p->len) : 0;
  if (score > p->best) {
    p->best = score;
    p->drv = drv;
  }
  return 0;
}

static int print_format(void *opaque, const struct udm_image_driver *drv)
{
  (void)opaque;
  printf("%-10s %s\n", drv->name, drv->description ? drv->description : "");
  return 0;
}

/* An opened image: the driver (NULL for raw) and its handle. */
struct image {
  const struct udm_image_driver *drv;
  void *handle;
  char *path;
  uint64_t raw_size;
  const char *format;
};

static bool is_format_word(const char *s, size_t n)
{
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
          s[i] == '-'))
      return false;
  return true;
}

static int open_image_parts(struct udm_ctx *ctx, const char *spec, struct image *im)
{
  const char *colon = strchr(spec, ':');
  char format[64] = "";
  const char *rest = spec;
  if (colon && is_format_word(spec, (size_t)(colon - spec)) &&
      (size_t)(colon - spec) < sizeof format) {
    snprintf(format, sizeof format, "%.*s", (int)(colon - spec), spec);
    rest = colon + 1;
  }
  const char *q = strchr(rest, '?');
  im->path = q ? strndup(rest, (size_t)(q - rest)) : strdup(rest);
  char *opts = q ? strdup(q + 1) : NULL;
  if (!im->path || (q && !opts)) {
    fprintf(stderr, "udm-image: out of memory\n");
    return -1;
  }
  if (!format[0]) {
    uint8_t header[PROBE_BYTES] = {0};
    int fd = open(im->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf(stderr, "udm-image: cannot open %s: %s\n", im->path, strerror(errno));
      free(opts);
      return -1;
    }
    ssize_t got = pread(fd, header, sizeof header, 0);
    close(fd);
    struct probe p = {header, got > 0 ? (size_t)got : 0, 0, NULL};
    udm_ctx_foreach_image_driver(ctx, probe_one, &p);
    snprintf(format, sizeof format, "%s", p.drv ? p.drv->name : "raw");
  }
  im->format = strdup(format);
  if (strcmp(format, "raw") == 0) {
    int fd = open(im->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      fprintf(stderr, "udm-image: cannot open %s: %s\n", im->path, strerror(errno));
      free(opts);
      return -1;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    im->raw_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : end > 0 ? (uint64_t)end : 0;
    close(fd);
    free(opts);
    return 0;
  }
  struct find f = {format, NULL};
  udm_ctx_foreach_image_driver(ctx, find_by_name, &f);
  if (!f.drv) {
    fprintf(stderr, "udm-image: unknown image format '%s' (see 'udm-image formats')\n",
            format);
    free(opts);
    return -1;
  }
  /* The same option split as tables; bad= is the core's and means nothing here. */
  size_t max = opts ? strlen(opts) + 1 : 1;
  const char **keys = calloc(max, sizeof *keys), **values = calloc(max, sizeof *values);
  struct udm_image_options o = {.keys = keys, .values = values, .ctx = ctx};
  char *msg = NULL;
  unsigned n = 0;
  if (!keys || !values || (opts && udm_drv_split_options(opts, keys, values, &n, &msg) < 0)) {
    fprintf(stderr, "udm-image: %s\n", msg ? msg : "out of memory");
    free(msg);
    free(keys);
    free(values);
    free(opts);
    return -1;
  }
  for (unsigned k = 0; k < n; k++)
    if (strcmp(keys[k], "bad") != 0) {
      keys[o.count] = keys[k];
      values[o.count++] = values[k];
    }
  int r = f.drv->open(im->path, &o, false, &im->handle, &msg);
  free(keys);
  free(values);
  free(opts);
  if (r < 0) {
    fprintf(stderr, "udm-image: %s: %s\n", f.drv->name, msg ? msg : strerror(-r));
    free(msg);
    return -1;
  }
  free(msg);
  im->drv = f.drv;
  return 0;
}

static void close_image(struct image *im);

/* Open SPEC ([FORMAT:]PATH[?opts]) into im; on failure im holds nothing. */
static int open_image(struct udm_ctx *ctx, const char *spec, struct image *im)
{
  memset(im, 0, sizeof *im);
  int r = open_image_parts(ctx, spec, im);
  if (r < 0)
    close_image(im);
  return r;
}

static uint64_t image_size(const struct image *im)
{
  return im->drv ? im->drv->size(im->handle) : im->raw_size;
}

static void close_image(struct image *im)
{
  if (im->drv && im->handle)
    im->drv->close(im->handle);
  free(im->path);
  free((char *)im->format);
}

/* ---- commands ---- */

static int cmd_info(struct udm_ctx *ctx, const char *spec)
{
  struct image im;
  if (open_image(ctx, spec, &im) < 0)
    return 1;
  char *text = NULL;
  if (im.drv && im.drv->info && im.drv->info(im.handle, &text) == 0 && text) {
    fputs(text, stdout);
    if (*text && text[strlen(text) - 1] != '\n')
      putchar('\n');
  } else {
    printf("Format: %s\nVirtual size: %llu\n", im.format,
           (unsigned long long)image_size(&im));
  }
  free(text);
  close_image(&im);
  return 0;
}

/* The driver's check reports through the context (udm_ctx_set_progress). */
static void show_progress(void *opaque, const char *what, uint64_t done, uint64_t total)
{
  (void)what;
  progress_update(opaque, done, total);
}

static int cmd_verify(struct udm_ctx *ctx, const char *spec, enum progress_mode mode)
{
  struct image im;
  if (open_image(ctx, spec, &im) < 0)
    return 1;
  char label[512];
  snprintf(label, sizeof label, "verify %s", im.path);
  struct progress bar;
  progress_begin(&bar, label, mode);
  udm_ctx_set_progress(ctx, show_progress, &bar);
  int status = 0;
  if (!im.drv || !im.drv->check) {
    printf("%s: format %s has no checksums to verify; it opens cleanly\n", im.path,
           im.format);
  } else {
    char *report = NULL;
    int r = im.drv->check(im.handle, &report);
    progress_end(&bar);
    if (report)
      fputs(report, r < 0 ? stderr : stdout);
    if (r < 0) {
      fprintf(stderr, "udm-image: %s: verification failed: %s\n", im.path,
              strerror(-r));
      status = 1;
    } else {
      printf("%s: OK\n", im.path);
    }
    free(report);
  }
  udm_ctx_set_progress(ctx, NULL, NULL);
  close_image(&im);
  return status;
}

static int cmd_table(struct udm_ctx *ctx, const char *spec)
{
  struct image im;
  if (open_image(ctx, spec, &im) < 0)
    return 1;
  uint64_t size = image_size(&im);
  int status = 0;
  if (size % 512) {
    fprintf(stderr, "udm-image: %s: size %llu is not a multiple of 512\n", im.path,
            (unsigned long long)size);
    status = 1;
  } else if (strchr(spec, ':') && strcmp(im.format, "raw") != 0) {
    printf("0 %llu linear %s 0\n", (unsigned long long)(size / 512), spec);
  } else {
    /* A probed image still gets its format written out: tables never guess. */
    printf("0 %llu linear %s:%s 0\n", (unsigned long long)(size / 512), im.format, spec);
  }
  close_image(&im);
  return status;
}

static bool parse_u32(const char *s, uint32_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  uint64_t mult = 1;
  if (*end == 'K' || *end == 'k')
    mult = 1024, end++;
  else if (*end == 'M' || *end == 'm')
    mult = 1024 * 1024, end++;
  if (errno || *end || s[0] == '-' || v * mult > 0xffffffffull)
    return false;
  *out = (uint32_t)(v * mult);
  return true;
}

static void convert_progress(void *opaque, uint64_t done, uint64_t total)
{
  progress_update(opaque, done, total);
}

static int cmd_convert(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"mapfile", required_argument, NULL, 'm'},
      {"chunk-size", required_argument, NULL, 'c'},
      {"level", required_argument, NULL, 'l'},
      {"logical-block-size", required_argument, NULL, 'L'},
      {"physical-block-size", required_argument, NULL, 'P'},
      {"meta", required_argument, NULL, 'M'},
      {"progress", no_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *mapfile = NULL;
  enum progress_mode mode = PROGRESS_AUTO;
  struct udmz_write_opts o = {.chunk_size = 64 * 1024,
                              .level = 3,
                              .logical_block_size = 512,
                              .physical_block_size = 512};
  struct udmz_kv meta[64];
  size_t nmeta = 0;
  uint32_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'm':
      mapfile = optarg;
      break;
    case 'c':
      if (!parse_u32(optarg, &o.chunk_size)) {
        fprintf(stderr, "udm-image convert: invalid chunk size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'l':
      if (!parse_u32(optarg, &v) || v < 1 || v > 19) {
        fprintf(stderr, "udm-image convert: invalid level '%s' (1 to 19)\n", optarg);
        return 2;
      }
      o.level = (int)v;
      break;
    case 'L':
    case 'P':
      if (!parse_u32(optarg, &v) || v < 512 || (v & (v - 1))) {
        fprintf(stderr, "udm-image convert: invalid block size '%s'\n", optarg);
        return 2;
      }
      *(c == 'L' ? &o.logical_block_size : &o.physical_block_size) = v;
      break;
    case 'M': {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg || nmeta >= sizeof meta / sizeof meta[0] - 4) {
        fprintf(stderr, "udm-image convert: --meta wants KEY=VALUE (at most 60)\n");
        return 2;
      }
      *eq = '\0';
      meta[nmeta].key = optarg;
      meta[nmeta++].value = eq + 1;
      break;
    }
    case 'p':
      mode = PROGRESS_ALWAYS;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (argc - optind != 2) {
    usage(stderr);
    return 2;
  }
  const char *src = argv[optind], *dst = argv[optind + 1];
  int sfd = open(src, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (sfd < 0 || fstat(sfd, &st) < 0) {
    fprintf(stderr, "udm-image convert: cannot open %s: %s\n", src, strerror(errno));
    return 1;
  }
  uint64_t size;
  if (S_ISREG(st.st_mode)) {
    size = (uint64_t)st.st_size;
  } else if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(sfd, 0, SEEK_END);
    size = end > 0 ? (uint64_t)end : 0;
  } else {
    fprintf(stderr, "udm-image convert: %s is not a regular file or block device\n", src);
    close(sfd);
    return 1;
  }
  struct udmz_range *bad = NULL;
  size_t nbad = 0;
  char *msg = NULL;
  if (mapfile && ddrescue_mapfile_read(mapfile, size, &bad, &nbad, &msg) < 0) {
    fprintf(stderr, "udm-image convert: %s\n", msg ? msg : "cannot read the mapfile");
    free(msg);
    close(sfd);
    return 1;
  }
  char created[32];
  time_t now = time(NULL);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  meta[nmeta++] = (struct udmz_kv){"source", src};
  meta[nmeta++] = (struct udmz_kv){"created", created};
  meta[nmeta++] = (struct udmz_kv){"creator", "udm-image " UDM_VERSION_STRING};
  if (mapfile)
    meta[nmeta++] = (struct udmz_kv){"ddrescue-mapfile", mapfile};
  o.bad = bad;
  o.nbad = nbad;
  o.meta = meta;
  o.nmeta = nmeta;

  /* Written under a temporary name: a half-written image never has DEST's name. */
  size_t tl = strlen(dst) + 8;
  char *tmp = malloc(tl);
  if (!tmp) {
    close(sfd);
    free(bad);
    return 1;
  }
  snprintf(tmp, tl, "%s.part", dst);
  int dfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (dfd < 0) {
    fprintf(stderr, "udm-image convert: cannot create %s: %s\n", tmp, strerror(errno));
    close(sfd);
    free(bad);
    free(tmp);
    return 1;
  }
  struct udmz_write_stats stats;
  char label[512];
  snprintf(label, sizeof label, "convert %s", src);
  struct progress bar;
  progress_begin(&bar, label, mode);
  o.progress = convert_progress;
  o.progress_opaque = &bar;
  int r = udmz_write(sfd, size, dfd, &o, &stats, &msg);
  progress_end(&bar);
  if (r == 0 && fsync(dfd) < 0)
    r = -errno;
  if (close(dfd) < 0 && r == 0)
    r = -errno;
  close(sfd);
  free(bad);
  if (r == 0 && rename(tmp, dst) < 0)
    r = -errno;
  if (r < 0) {
    fprintf(stderr, "udm-image convert: %s\n", msg ? msg : strerror(-r));
    unlink(tmp);
    free(msg);
    free(tmp);
    return 1;
  }
  free(tmp);
  printf("%s: %llu bytes in %llu chunks (%llu zero, %llu stored raw), %llu bytes "
         "stored; %llu bad ranges (%llu bytes), %llu unreadable sectors\n",
         dst, (unsigned long long)size, (unsigned long long)stats.chunks,
         (unsigned long long)stats.zero_chunks, (unsigned long long)stats.raw_chunks,
         (unsigned long long)stats.stored_bytes, (unsigned long long)stats.bad_ranges,
         (unsigned long long)stats.bad_bytes, (unsigned long long)stats.read_errors);
  return 0;
}

int main(int argc, char **argv)
{
  int i = 1;
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx) {
    fprintf(stderr, "udm-image: %s\n", udm_errmsg());
    return 1;
  }
  while (i + 1 < argc && strcmp(argv[i], "--load") == 0) {
    if (udm_image_driver_load(ctx, argv[i + 1]) < 0) {
      fprintf(stderr, "udm-image: %s\n", udm_errmsg());
      udm_ctx_free(ctx);
      return 1;
    }
    i += 2;
  }
  /* The writer (convert) has no context: it runs under this one's crc32c-accel. */
  char *accel = NULL;
  if (udm_ctx_get_option(ctx, "crc32c-accel", &accel) == 0)
    udm_crc32c_use_accel(!accel || strcmp(accel, "0") != 0);
  free(accel);
  int status = 2;
  const char *cmd = i < argc ? argv[i] : NULL;
  if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(cmd ? stdout : stderr);
    status = cmd ? 0 : 2;
  } else if (strcmp(cmd, "formats") == 0 && argc == i + 1) {
    printf("%-10s %s\n", "raw", "plain bytes: a regular file or block device");
    status = udm_ctx_foreach_image_driver(ctx, print_format, NULL) < 0 ? 1 : 0;
  } else if (strcmp(cmd, "info") == 0 && argc == i + 2) {
    status = cmd_info(ctx, argv[i + 1]);
  } else if (strcmp(cmd, "verify") == 0 && argc == i + 2) {
    status = cmd_verify(ctx, argv[i + 1], PROGRESS_AUTO);
  } else if (strcmp(cmd, "verify") == 0 && argc == i + 3 &&
             strcmp(argv[i + 1], "--progress") == 0) {
    status = cmd_verify(ctx, argv[i + 2], PROGRESS_ALWAYS);
  } else if (strcmp(cmd, "table") == 0 && argc == i + 2) {
    status = cmd_table(ctx, argv[i + 1]);
  } else if (strcmp(cmd, "convert") == 0) {
    status = cmd_convert(argc - i, argv + i);
  } else {
    usage(stderr);
  }
  udm_ctx_free(ctx);
  return status;
}
