/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O path: data lands where dm would put it (striped layout computed
 * here independently of the target), holes are reported and punched,
 * zeroing works, unaligned requests are read-modify-written, and errors are
 * the kernel's (EIO past the end and from error targets, EROFS read-only).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <udm/driver.h>
#include <udm/udm.h>

#include "check.h"
#include "testdev.h"
#include "util.h"

static struct udm_ctx *ctx;

static struct udm_device *make(const char *name, const char *table, unsigned flags)
{
  return test_make(ctx, name, table, flags);
}


/* Where striped puts device byte `off`: stripe index and byte on that stripe. */
static void stripe_of(uint64_t off, unsigned stripes, uint64_t chunk_sectors,
                      const uint64_t *starts, unsigned *s, uint64_t *dev_off)
{
  uint64_t chunk_bytes = chunk_sectors * 512;
  uint64_t chunk = off / chunk_bytes;
  *s = (unsigned)(chunk % stripes);
  *dev_off = starts[*s] * 512 + (chunk / stripes) * chunk_bytes + off % chunk_bytes;
}

static void striped_layout_matches_dm(unsigned stripes, uint64_t chunk)
{
  char names[3][32];
  const char *paths[3];
  uint64_t starts[3] = {0, 16, 40};
  uint64_t len = stripes * chunk * 8; /* sectors */
  for (unsigned i = 0; i < stripes; i++) {
    snprintf(names[i], sizeof names[i], "stripe%u.img", i);
    paths[i] = scratch_file(names[i], (starts[i] + len) * 512, 0);
  }
  char t[1024], *o = t;
  o += sprintf(o, "0 %llu striped %u %llu", (unsigned long long)len, stripes,
               (unsigned long long)chunk);
  for (unsigned i = 0; i < stripes; i++)
    o += sprintf(o, " %s %llu", paths[i], (unsigned long long)starts[i]);
  struct udm_device *d = make("striped", t, 0);
  size_t bytes = (size_t)len * 512;
  unsigned char *w = malloc(bytes), *r = malloc(bytes);
  fill_pattern(w, bytes, 7, 0);
  /* Odd-sized writes crossing chunk boundaries. */
  for (size_t off = 0; off < bytes;) {
    size_t n = 512 * (1 + (off / 512) % 37);
    if (off + n > bytes)
      n = bytes - off;
    CHECK(udm_device_pwrite(d, w + off, n, off, 0) == 0);
    off += n;
  }
  CHECK(udm_device_flush(d) == 0);
  /* Every byte is on the stripe and offset computed independently. */
  unsigned char *files[3];
  for (unsigned i = 0; i < stripes; i++)
    files[i] = read_file_at(paths[i], 0, (size_t)((starts[i] + len) * 512));
  size_t wrong = 0;
  for (size_t off = 0; off < bytes; off += 512) {
    unsigned s;
    uint64_t doff;
    stripe_of(off, stripes, chunk, starts, &s, &doff);
    wrong += memcmp(files[s] + doff, w + off, 512) != 0;
  }
  CHECK(wrong == 0);
  CHECK(udm_device_pread(d, r, bytes, 0) == 0 && memcmp(r, w, bytes) == 0);
  char *st = NULL;
  udm_device_status(d, 0, &st);
  CHECK_CONTAINS(st, stripes == 3 ? " 1 AAA\n" : " 1 AA\n");
  free(st);
  for (unsigned i = 0; i < stripes; i++)
    free(files[i]);
  free(w);
  free(r);
  test_drop(d);
}

static void linear_offsets_and_multi_segment_reads(void)
{
  const char *f = scratch_file("lin.img", 1 << 20, 4);
  char t[512];
  snprintf(t, sizeof t, "0 8 zero\n8 16 linear %s 100\n24 8 error\n", f);
  struct udm_device *d = make("lin", t, 0);
  unsigned char b[32 * 512], w[16 * 512];
  memset(b, 0xee, sizeof b);
  CHECK(udm_device_pread(d, b, 24 * 512, 0) == 0);
  fill_pattern(w, sizeof w, 4, 100 * 512);
  unsigned char z[8 * 512] = {0};
  CHECK(memcmp(b, z, sizeof z) == 0);
  CHECK(memcmp(b + 8 * 512, w, sizeof w) == 0);
  /* A read that reaches the error segment fails with EIO, as a whole. */
  CHECK(udm_device_pread(d, b, 32 * 512, 0) == -1 && errno == EIO);
  CHECK_CONTAINS(udm_errmsg(), "read lin: 16384 bytes at offset 0: Input/output error");
  CHECK(udm_device_pwrite(d, b, 512, 24 * 512, 0) == -1 && errno == EIO);
  CHECK(udm_device_discard(d, 512, 24 * 512, 0) == -1 && errno == EIO);
  /* Flush is not sent to error targets: it succeeds, as in the kernel. */
  CHECK(udm_device_flush(d) == 0);
  /* Write-zeroes is not offered by error: fallback writes fail with EIO, a
   * no-fallback request with EOPNOTSUPP, as in the kernel. */
  CHECK(udm_device_write_zeroes(d, 512, 24 * 512, 0) == -1 && errno == EIO);
  CHECK(udm_device_write_zeroes(d, 512, 24 * 512, UDM_IO_NO_FALLBACK) == -1 &&
        errno == EOPNOTSUPP);
  CHECK(!(udm_device_caps(d) & UDM_CAP_WRITE_ZEROES));
  /* Writes to zero are dropped; reads stay zero. */
  CHECK(udm_device_pwrite(d, w, 512, 0, 0) == 0);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, z, 512) == 0);
  /* Past the end: EIO. */
  CHECK(udm_device_pread(d, b, 512, 32 * 512) == -1 && errno == EIO);
  CHECK(udm_device_pread(d, b, 1024, 31 * 512) == -1 && errno == EIO);
  test_drop(d);
}

static void unaligned_requests_are_read_modify_written(void)
{
  const char *f = scratch_file("rmw.img", 65536, 5);
  char t[512];
  snprintf(t, sizeof t, "0 128 linear %s 0", f);
  struct udm_device *d = make("rmw", t, 0);
  const char msg[] = "unaligned write across a sector boundary";
  CHECK(udm_device_pwrite(d, msg, sizeof msg, 500, 0) == 0);
  unsigned char *back = read_file_at(f, 0, 2048);
  unsigned char want[2048];
  fill_pattern(want, sizeof want, 5, 0);
  memcpy(want + 500, msg, sizeof msg);
  CHECK(memcmp(back, want, sizeof want) == 0);
  free(back);
  char got[sizeof msg];
  CHECK(udm_device_pread(d, got, sizeof got, 500) == 0 && memcmp(got, msg, sizeof msg) == 0);
  /* write-zeroes with unaligned edges zeroes exactly the range. */
  CHECK(udm_device_write_zeroes(d, 1000, 100, 0) == 0);
  back = read_file_at(f, 0, 2048);
  memset(want + 100, 0, 1000);
  CHECK(memcmp(back, want, sizeof want) == 0);
  free(back);
  /* ... but not when the caller wants it fast only. */
  CHECK(udm_device_write_zeroes(d, 100, 10, UDM_IO_NO_FALLBACK) == -1 && errno == EOPNOTSUPP);
  test_drop(d);
}

struct ext {
  uint64_t off[64], len[64];
  unsigned flags[64];
  unsigned n;
};

static int collect(void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct ext *e = opaque;
  if (e->n && e->flags[e->n - 1] == flags && e->off[e->n - 1] + e->len[e->n - 1] == off) {
    e->len[e->n - 1] += len;
    return 0;
  }
  if (e->n == 64)
    return 1;
  e->off[e->n] = off;
  e->len[e->n] = len;
  e->flags[e->n++] = flags;
  return 0;
}

static uint64_t allocated_bytes(const char *path)
{
  struct stat st;
  stat(path, &st);
  return (uint64_t)st.st_blocks * 512;
}

static void holes_are_reported_punched_and_zeroed(void)
{
  const char *f = scratch_file("sparse.img", 4 << 20, 0);
  char t[512];
  snprintf(t, sizeof t, "0 8192 linear %s 0\n8192 2048 zero", f);
  struct udm_device *d = make("sparse", t, 0);
  unsigned char *data = malloc(1 << 20);
  fill_pattern(data, 1 << 20, 9, 0);
  CHECK(udm_device_pwrite(d, data, 1 << 20, 1 << 20, 0) == 0);
  CHECK(udm_device_flush(d) == 0);
  struct ext e = {0};
  CHECK(udm_device_extents(d, 5 << 20, 0, collect, &e) == 0);
  CHECK(e.n == 3);
  CHECK(e.off[0] == 0 && e.len[0] == 1 << 20 && e.flags[0] == (UDM_EXTENT_HOLE | UDM_EXTENT_ZERO));
  CHECK(e.off[1] == 1 << 20 && e.len[1] == 1 << 20 && e.flags[1] == 0);
  CHECK(e.off[2] == 2 << 20 && e.len[2] == 3 << 20 &&
        e.flags[2] == (UDM_EXTENT_HOLE | UDM_EXTENT_ZERO));
  /* A request that starts in the middle reports from exactly there. */
  struct ext m = {0};
  CHECK(udm_device_extents(d, 4096, (1 << 20) + 1000, collect, &m) == 0);
  CHECK(m.n == 1 && m.off[0] == (1 << 20) + 1000 && m.len[0] == 4096 && m.flags[0] == 0);

  uint64_t before = allocated_bytes(f);
  CHECK(before >= 1 << 20);
  CHECK(udm_device_discard(d, 1 << 19, 1 << 20, 0) == 0);
  CHECK(allocated_bytes(f) <= before - (1 << 19));
  unsigned char *z = calloc(1, 1 << 19), *r = malloc(1 << 19);
  CHECK(udm_device_pread(d, r, 1 << 19, 1 << 20) == 0 && memcmp(r, z, 1 << 19) == 0);
  /* write-zeroes that may unmap punches; without MAY_UNMAP it keeps blocks. */
  uint64_t mid = allocated_bytes(f);
  CHECK(udm_device_write_zeroes(d, 1 << 18, (1 << 20) + (1 << 19), UDM_IO_MAY_UNMAP) == 0);
  CHECK(allocated_bytes(f) <= mid - (1 << 18));
  CHECK(udm_device_pread(d, r, 1 << 18, (1 << 20) + (1 << 19)) == 0 && memcmp(r, z, 1 << 18) == 0);
  CHECK(udm_device_write_zeroes(d, 1 << 18, (1 << 20) + (3 << 18), 0) == 0);
  CHECK(udm_device_pread(d, r, 1 << 18, (1 << 20) + (3 << 18)) == 0 && memcmp(r, z, 1 << 18) == 0);
  /* Zero targets take write-zeroes by (dropped) writes. */
  CHECK(udm_device_write_zeroes(d, 4096, 4 << 20, 0) == 0);
  unsigned caps = udm_device_caps(d);
  CHECK((caps & UDM_CAP_DISCARD) && !(caps & UDM_CAP_WRITE_ZEROES) && !(caps & UDM_CAP_READONLY));
  free(z);
  free(r);
  free(data);
  test_drop(d);
}

static void readonly_devices_refuse_writes(void)
{
  const char *f = scratch_file("ro.img", 65536, 6);
  chmod(f, 0400);
  char t[512];
  snprintf(t, sizeof t, "0 128 linear %s 0", f);
  struct udm_device *d = make("ro", t, UDM_DEVICE_READONLY);
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 6, 0);
  CHECK(udm_device_pread(d, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);
  CHECK(udm_device_pwrite(d, b, 512, 0, 0) == -1 && errno == EROFS);
  CHECK(udm_device_discard(d, 512, 0, 0) == -1 && errno == EROFS);
  CHECK(udm_device_caps(d) & UDM_CAP_READONLY);
  /* Stacking a writable device on a read-only one is refused. */
  struct udm_device *up = udm_device_create(ctx, "ro-up", NULL, 0);
  CHECK(udm_table_load(up, "0 128 linear udm:ro 0") == -1 && errno == EROFS);
  CHECK_CONTAINS(udm_errmsg(), "udm device 'ro' is read-only");
  udm_device_remove(up, 0);
  udm_device_unref(up);
  test_drop(d);
}

/* The image driver "ro": 64 KiB of pattern 8, and no pwrite, so read-only. */
static int ro_open(const char *path, const struct udm_image_options *opts, bool writable,
                   void **handle, char **errmsg)
{
  (void)path, (void)opts, (void)writable, (void)errmsg;
  static int token;
  *handle = &token;
  return 0;
}

static void ro_close(void *h)
{
  (void)h;
}

static uint64_t ro_size(void *h)
{
  (void)h;
  return 65536;
}

static int ro_pread(void *h, void *buf, size_t len, uint64_t off)
{
  (void)h;
  fill_pattern(buf, len, 8, off);
  return 0;
}

static const struct udm_image_driver ro_driver = {
    UDM_IMAGE_DRIVER_INIT,
    .name = "ro",
    .description = "read-only pattern (test-io)",
    .open = ro_open,
    .close = ro_close,
    .size = ro_size,
    .pread = ro_pread,
};

/*
 * A read-write table over an image its driver can only read is a read-only
 * device to frontends (UDM_CAP_READONLY), even for the segments on files.
 */
static void read_only_images_make_read_only_devices(void)
{
  CHECK(udm_image_driver_register(ctx, &ro_driver) == 0);
  const char *f = scratch_file("rw.img", 65536, 9);
  char t[512];
  snprintf(t, sizeof t, "0 128 linear %s 0", f);
  struct udm_device *d = make("ro-image", "0 128 linear ro:x 0", 0);
  unsigned caps = udm_device_caps(d);
  CHECK(caps & UDM_CAP_READONLY);
  CHECK(!(caps & (UDM_CAP_DISCARD | UDM_CAP_WRITE_ZEROES)));
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 8, 512);
  CHECK(udm_device_pread(d, b, 512, 512) == 0 && memcmp(b, w, 512) == 0);
  errno = 0;
  CHECK(udm_device_pwrite(d, b, 512, 0, 0) == -1 && errno == EROFS);
  /* Mixed with a file segment, still read-only; over the file alone, writable. */
  snprintf(t, sizeof t, "0 128 linear %s 0\n128 128 linear ro:x 0", f);
  CHECK(udm_table_load(d, t) == 0 && udm_device_resume(d) == 0);
  CHECK(udm_device_caps(d) & UDM_CAP_READONLY);
  snprintf(t, sizeof t, "0 128 linear %s 0", f);
  CHECK(udm_table_load(d, t) == 0 && udm_device_resume(d) == 0);
  caps = udm_device_caps(d);
  CHECK(!(caps & UDM_CAP_READONLY) && (caps & UDM_CAP_WRITE_ZEROES));
  test_drop(d);
}

static void direct_io_backing_bounces_misaligned_buffers(void)
{
  const char *f = scratch_file("direct.img", 1 << 20, 8);
  char t[512];
  snprintf(t, sizeof t, "0 2048 linear raw:%s?direct=on 0", f);
  struct udm_device *d = udm_device_create(ctx, "direct", NULL, 0);
  if (udm_table_load(d, t) < 0) {
    /* Only a file system without O_DIRECT (tmpfs) may refuse, and it must say so. */
    CHECK_CONTAINS(udm_errmsg(), "direct=on (the file system refuses O_DIRECT)");
    printf("  direct=on: %s refuses O_DIRECT; checked the message only\n", scratch_dir);
    udm_device_remove(d, 0);
    udm_device_unref(d);
    return;
  }
  CHECK(udm_device_resume(d) == 0);
  /* A buffer that is not 4 KiB aligned, and an unaligned length. */
  unsigned char *mem = malloc(65536 + 1), *buf = mem + 1, want[65536];
  fill_pattern(want, sizeof want, 8, 4096);
  CHECK(udm_device_pread(d, buf, 65536, 4096) == 0 && memcmp(buf, want, 65536) == 0);
  fill_pattern(buf, 65536, 9, 0);
  CHECK(udm_device_pwrite(d, buf, 65536, 8192, UDM_IO_FUA) == 0);
  CHECK(udm_device_pwrite(d, "edge", 4, 100, 0) == 0);
  unsigned char *back = read_file_at(f, 8192, 65536);
  CHECK(memcmp(back, buf, 65536) == 0);
  free(back);
  back = read_file_at(f, 100, 4);
  CHECK(memcmp(back, "edge", 4) == 0);
  free(back);
  char *text = NULL;
  CHECK(udm_device_table(d, 0, &text) == 0);
  CHECK_CONTAINS(text, "?direct=on 0");
  free(text);
  free(mem);
  test_drop(d);
}

static void image_size_reports_what_a_table_would_see(void)
{
  const char *f = scratch_file("sized.img", 3 * 65536 + 100, 0); /* tail ignored */
  uint64_t bytes = 0;
  CHECK(udm_image_size(ctx, f, &bytes) == 0 && bytes == 3 * 65536);
  char t[512];
  snprintf(t, sizeof t, "0 100 linear %s 0", f);
  struct udm_device *d = make("sized", t, 0);
  CHECK(udm_image_size(ctx, "udm:sized", &bytes) == 0 && bytes == 100 * 512);
  CHECK(udm_image_size(ctx, "/nonexistent/x.img", &bytes) == -1 && errno == ENOENT);
  CHECK_CONTAINS(udm_errmsg(), "/nonexistent/x.img: cannot open for reading");
  test_drop(d);
}

int main(void)
{
  scratch_init();
  ctx = udm_ctx_new();
  striped_layout_matches_dm(3, 8);
  striped_layout_matches_dm(2, 128);
  striped_layout_matches_dm(3, 24); /* not a power of two */
  linear_offsets_and_multi_segment_reads();
  unaligned_requests_are_read_modify_written();
  holes_are_reported_punched_and_zeroed();
  readonly_devices_refuse_writes();
  read_only_images_make_read_only_devices();
  image_size_reports_what_a_table_would_see();
  direct_io_backing_bounces_misaligned_buffers();
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-io");
}
