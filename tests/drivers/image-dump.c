/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * image-dump: read a whole udm device through the in-process API, for the
 * driver tests to compare with what real tools (qemu-img, ddrescue) say.
 *
 *   image-dump [--load DRIVER.so]... [--bad FILE] [--extents FILE] [--piece BYTES]
 *              [--threads N] [--expect-load-error] --table 'TABLE' OUT
 *
 * OUT gets every byte of the device; sectors whose reads fail are written as
 * zeros and listed in --bad FILE as "OFFSET LENGTH" lines (bytes, merged).
 * --extents lists udm_device_extents as "OFFSET LENGTH FLAGS".  The device's
 * bad_block_hits is printed on stdout as "bad_block_hits N".  With
 * --expect-load-error the table must fail to load: its message goes to
 * stdout and the exit status is 0.  --threads N reads with N threads at once
 * (interleaved 1 MiB pieces), to exercise the drivers' locking; --piece
 * BYTES (a multiple of 512) reads in pieces of that size instead, so that
 * pieces cover parts of an image's chunks and go through its caches.
 * --expect-erofs first checks that a write fails with EROFS.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <udm/driver.h>
#include <udm/udm.h>

#define PIECE_MAX (16u << 20)
#define SECTOR 512u

struct shared {
  struct udm_device *dev;
  uint64_t size;
  unsigned nthreads;
  size_t piece;
  int out_fd;
  pthread_mutex_t lock;
  uint8_t *bad_sectors; /* one byte per sector: 1 = read failed */
  int error;
};

struct worker {
  struct shared *s;
  unsigned index;
};

static void *read_pieces(void *arg)
{
  struct worker *w = arg;
  struct shared *s = w->s;
  const size_t piece = s->piece;
  uint8_t *buf = malloc(piece);
  if (!buf) {
    s->error = ENOMEM;
    return NULL;
  }
  for (uint64_t off = (uint64_t)w->index * piece; off < s->size;
       off += (uint64_t)s->nthreads * piece) {
    size_t n = s->size - off < piece ? (size_t)(s->size - off) : piece;
    if (udm_device_pread(s->dev, buf, n, off) < 0) {
      if (errno != EIO) {
        fprintf(stderr, "image-dump: read at %llu: %s\n", (unsigned long long)off,
                udm_errmsg());
        s->error = errno;
        break;
      }
      /* Find the failing sectors one by one. */
      for (size_t pos = 0; pos < n; pos += SECTOR) {
        if (udm_device_pread(s->dev, buf + pos, SECTOR, off + pos) < 0) {
          if (errno != EIO) {
            s->error = errno;
            break;
          }
          memset(buf + pos, 0, SECTOR);
          s->bad_sectors[(off + pos) / SECTOR] = 1;
        }
      }
    }
    if (pwrite(s->out_fd, buf, n, (off_t)off) != (ssize_t)n) {
      perror("image-dump: write");
      s->error = EIO;
      break;
    }
  }
  free(buf);
  return NULL;
}

struct extent_out {
  FILE *f;
  uint64_t end;
};

static int print_extent(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct extent_out *e = opaque;
  fprintf(e->f, "%llu %llu %u\n", (unsigned long long)off, (unsigned long long)len,
          flags);
  e->end = off + len;
  return 0;
}

int main(int argc, char **argv)
{
  const char *table = NULL, *bad_path = NULL, *extents_path = NULL, *out = NULL;
  unsigned nthreads = 1;
  long piece = 1 << 20;
  bool expect_load_error = false, expect_erofs = false;
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx) {
    fprintf(stderr, "image-dump: %s\n", udm_errmsg());
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--load") == 0 && i + 1 < argc) {
      if (udm_image_driver_load(ctx, argv[++i]) < 0) {
        fprintf(stderr, "image-dump: %s\n", udm_errmsg());
        return 1;
      }
    } else if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) {
      table = argv[++i];
    } else if (strcmp(argv[i], "--bad") == 0 && i + 1 < argc) {
      bad_path = argv[++i];
    } else if (strcmp(argv[i], "--extents") == 0 && i + 1 < argc) {
      extents_path = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      nthreads = (unsigned)atoi(argv[++i]);
    } else if (strcmp(argv[i], "--piece") == 0 && i + 1 < argc) {
      piece = atol(argv[++i]);
    } else if (strcmp(argv[i], "--expect-erofs") == 0) {
      expect_erofs = true;
    } else if (strcmp(argv[i], "--expect-load-error") == 0) {
      expect_load_error = true;
    } else if (!out && argv[i][0] != '-') {
      out = argv[i];
    } else {
      fprintf(stderr, "image-dump: bad argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!table || (!out && !expect_load_error) || nthreads < 1 || nthreads > 64 ||
      piece < (long)SECTOR || piece > (long)PIECE_MAX || piece % SECTOR) {
    fprintf(stderr, "usage: image-dump [--load SO]... [--bad FILE] [--extents FILE] "
                    "[--threads N] [--piece BYTES] [--expect-erofs] [--expect-load-error] "
                    "--table TABLE OUT\n");
    return 2;
  }
  struct udm_device *dev = udm_device_create(ctx, "img", NULL, 0);
  if (!dev) {
    fprintf(stderr, "image-dump: %s\n", udm_errmsg());
    return 1;
  }
  if (udm_table_load(dev, table) < 0) {
    if (expect_load_error) {
      printf("%s\n", udm_errmsg());
      udm_device_unref(dev);
      udm_ctx_free(ctx);
      return 0;
    }
    fprintf(stderr, "image-dump: %s\n", udm_errmsg());
    return 1;
  }
  if (expect_load_error) {
    fprintf(stderr, "image-dump: the table loaded, but it should have failed\n");
    return 1;
  }
  if (udm_device_resume(dev) < 0) {
    fprintf(stderr, "image-dump: %s\n", udm_errmsg());
    return 1;
  }
  if (expect_erofs) {
    char sector[SECTOR] = {0};
    if (udm_device_pwrite(dev, sector, sizeof sector, 0, 0) == 0 || errno != EROFS) {
      fprintf(stderr, "image-dump: a write to the image gave '%s', want EROFS\n",
              udm_errmsg());
      return 1;
    }
  }
  struct shared s = {.dev = dev, .size = udm_device_size(dev), .nthreads = nthreads,
                     .piece = (size_t)piece};
  pthread_mutex_init(&s.lock, NULL);
  s.out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  s.bad_sectors = calloc(s.size / SECTOR + 1, 1);
  if (s.out_fd < 0 || !s.bad_sectors || ftruncate(s.out_fd, (off_t)s.size) < 0) {
    perror(out);
    return 1;
  }
  pthread_t th[64];
  struct worker w[64];
  for (unsigned i = 0; i < nthreads; i++) {
    w[i] = (struct worker){&s, i};
    pthread_create(&th[i], NULL, read_pieces, &w[i]);
  }
  for (unsigned i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  close(s.out_fd);
  if (s.error)
    return 1;
  if (bad_path) {
    FILE *f = fopen(bad_path, "w");
    if (!f) {
      perror(bad_path);
      return 1;
    }
    uint64_t n = s.size / SECTOR;
    for (uint64_t i = 0; i < n; i++) {
      if (!s.bad_sectors[i])
        continue;
      uint64_t j = i;
      while (j < n && s.bad_sectors[j])
        j++;
      fprintf(f, "%llu %llu\n", (unsigned long long)(i * SECTOR),
              (unsigned long long)((j - i) * SECTOR));
      i = j;
    }
    fclose(f);
  }
  if (extents_path) {
    struct extent_out e = {fopen(extents_path, "w"), 0};
    if (!e.f) {
      perror(extents_path);
      return 1;
    }
    /* An answer may cover a prefix only: ask again from where it ended. */
    while (e.end < s.size) {
      uint64_t before = e.end;
      if (udm_device_extents(dev, s.size - e.end, e.end, print_extent, &e) < 0 ||
          e.end <= before) {
        fprintf(stderr, "image-dump: extents: %s\n", udm_errmsg());
        return 1;
      }
    }
    fclose(e.f);
  }
  struct udm_info info;
  udm_device_info(dev, &info);
  printf("bad_block_hits %llu\n", (unsigned long long)info.bad_block_hits);
  udm_device_unref(dev);
  udm_ctx_free(ctx);
  free(s.bad_sectors);
  return 0;
}
