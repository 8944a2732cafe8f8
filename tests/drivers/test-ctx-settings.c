/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-context settings (udm_ctx_set_option): two contexts in one program
 * that differ, each seen through what it does.
 *   keys-dir      the same key reference reads different keys: each device
 *                 reads its data back, the ciphertexts differ, and the
 *                 first one decrypts with the first directory's key given
 *                 as hex; a context without one refuses the reference.
 *   driver-path   one context finds the rle plugin, the other does not.
 *   crc32c-accel  udmz images report the checksum path their context chose
 *                 ("Checksums: crc32c, software" with 0).
 *   crypt-accel   0 in one context, 1 in the other: the same key writes the
 *                 same ciphertext (the paths agree).
 * Also: the environment is each setting's default (the test runs with
 * UDM_KEYS_DIR=/env/keys and UDM_DRIVER_PATH=/env/drivers), bad names and values are refused and change
 * nothing.
 *
 *   test-ctx-settings RLE_PLUGIN UDM_IMAGE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udm/driver.h>
#include <udm/udm.h>

static int fails;
#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
      fprintf(stderr, __VA_ARGS__);                             \
      fputc('\n', stderr);                                      \
      fails++;                                                  \
    }                                                           \
  } while (0)

static char tmp[] = "/tmp/udm-settings-XXXXXX";

static void write_file(const char *path, const void *data, size_t len)
{
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void read_file(const char *path, void *data, size_t len)
{
  FILE *f = fopen(path, "rb");
  if (!f || fread(data, 1, len, f) != len) {
    perror(path);
    exit(1);
  }
  fclose(f);
}

static char *path_in(const char *name)
{
  static char bufs[8][512];
  static unsigned next;
  char *p = bufs[next++ % 8];
  snprintf(p, 512, "%s/%s", tmp, name);
  return p;
}

static bool option_is(struct udm_ctx *ctx, const char *name, const char *want)
{
  char *v = NULL;
  if (udm_ctx_get_option(ctx, name, &v) < 0)
    return false;
  bool same = want ? v && strcmp(v, want) == 0 : v == NULL;
  free(v);
  return same;
}

/* A 64 KiB crypt device over BACKING named NAME with KEY; -1 on failure. */
static struct udm_device *crypt_dev(struct udm_ctx *ctx, const char *name, const char *key,
                                    const char *backing)
{
  char table[512];
  snprintf(table, sizeof table, "0 128 crypt aes-xts-plain64 %s 0 %s 0", key, backing);
  struct udm_device *d = udm_device_create(ctx, name, NULL, 0);
  if (!d)
    return NULL;
  if (udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    udm_device_remove(d, UDM_REMOVE_FORCE);
    udm_device_unref(d);
    return NULL;
  }
  return d;
}

static void drop(struct udm_device *d)
{
  if (d) {
    udm_device_remove(d, 0);
    udm_device_unref(d);
  }
}

#define DEV_BYTES 65536

static void keys_dirs(struct udm_ctx *a, struct udm_ctx *b)
{
  uint8_t ka[64], kb[64];
  for (int i = 0; i < 64; i++)
    ka[i] = (uint8_t)i, kb[i] = (uint8_t)(0xa5 ^ i);
  mkdir(path_in("keys-a"), 0700);
  mkdir(path_in("keys-b"), 0700);
  write_file(path_in("keys-a/vol"), ka, sizeof ka);
  write_file(path_in("keys-b/vol"), kb, sizeof kb);
  static uint8_t zeros[DEV_BYTES], plain[DEV_BYTES], got[DEV_BYTES], ca[DEV_BYTES],
      cb[DEV_BYTES];
  write_file(path_in("disk-a"), zeros, sizeof zeros);
  write_file(path_in("disk-b"), zeros, sizeof zeros);
  for (size_t i = 0; i < sizeof plain; i++)
    plain[i] = (uint8_t)(i * 7 + 3);

  CHECK(udm_ctx_set_option(a, "keys-dir", path_in("keys-a")) == 0, "%s", udm_errmsg());
  CHECK(udm_ctx_set_option(b, "keys-dir", path_in("keys-b")) == 0, "%s", udm_errmsg());
  struct udm_device *da = crypt_dev(a, "ka", ":64:logon:vol", path_in("disk-a"));
  CHECK(da, "keys-dir a: %s", udm_errmsg());
  struct udm_device *db = crypt_dev(b, "kb", ":64:logon:vol", path_in("disk-b"));
  CHECK(db, "keys-dir b: %s", udm_errmsg());
  if (da && db) {
    CHECK(udm_device_pwrite(da, plain, sizeof plain, 0, 0) == 0, "%s", udm_errmsg());
    CHECK(udm_device_pwrite(db, plain, sizeof plain, 0, 0) == 0, "%s", udm_errmsg());
    CHECK(udm_device_flush(da) == 0 && udm_device_flush(db) == 0, "%s", udm_errmsg());
    CHECK(udm_device_pread(da, got, sizeof got, 0) == 0 && !memcmp(got, plain, sizeof got),
          "device a does not read its data back");
    CHECK(udm_device_pread(db, got, sizeof got, 0) == 0 && !memcmp(got, plain, sizeof got),
          "device b does not read its data back");
    read_file(path_in("disk-a"), ca, sizeof ca);
    read_file(path_in("disk-b"), cb, sizeof cb);
    CHECK(memcmp(ca, plain, sizeof ca) && memcmp(ca, cb, sizeof ca),
          "the two key directories gave the same ciphertext");
  }
  drop(da);
  drop(db);
  /* Directory a's key, given as hex in a third context, reads disk a. */
  struct udm_ctx *c = udm_ctx_new();
  char hex[129];
  for (int i = 0; i < 64; i++)
    snprintf(hex + 2 * i, 3, "%02x", ka[i]);
  struct udm_device *dc = c ? crypt_dev(c, "kc", hex, path_in("disk-a")) : NULL;
  CHECK(dc && udm_device_pread(dc, got, sizeof got, 0) == 0 && !memcmp(got, plain, sizeof got),
        "disk a was not written with keys-a/vol");
  drop(dc);
  /* Without a key directory the reference is refused, naming the setting. */
  CHECK(udm_ctx_set_option(c, "keys-dir", NULL) == 0, "%s", udm_errmsg());
  dc = crypt_dev(c, "kd", ":64:logon:vol", path_in("disk-a"));
  CHECK(!dc && strstr(udm_errmsg(), "keys-dir"), "no keys-dir: %s", udm_errmsg());
  drop(dc);
  udm_ctx_free(c);
}

struct find {
  const char *name;
  const struct udm_image_driver *drv;
};

static int find_driver(void *opaque, const struct udm_image_driver *drv)
{
  struct find *f = opaque;
  if (strcmp(drv->name, f->name) == 0)
    f->drv = drv;
  return 0;
}

static const struct udm_image_driver *lookup(struct udm_ctx *ctx, const char *name)
{
  struct find f = {name, NULL};
  udm_ctx_foreach_image_driver(ctx, find_driver, &f);
  return f.drv;
}

static void driver_paths(struct udm_ctx *a, struct udm_ctx *b, const char *plugin)
{
  mkdir(path_in("plugins"), 0700);
  mkdir(path_in("empty"), 0700);
  char *abs = realpath(plugin, NULL);
  CHECK(abs && symlink(abs, path_in("plugins/rle.so")) == 0, "%s: %s", plugin, strerror(errno));
  free(abs);
  CHECK(udm_ctx_set_option(a, "driver-path", path_in("plugins")) == 0, "%s", udm_errmsg());
  CHECK(udm_ctx_set_option(b, "driver-path", path_in("empty")) == 0, "%s", udm_errmsg());
  CHECK(lookup(a, "rle"), "driver-path with rle.so: no rle driver (%s)", udm_errmsg());
  CHECK(!lookup(b, "rle"), "driver-path without rle.so: an rle driver");
}

/* The "Checksums:" line of udmz's info for an image opened through CTX. */
static char *checksums(struct udm_ctx *ctx, const char *image)
{
  const struct udm_image_driver *drv = lookup(ctx, "udmz");
  struct udm_image_options o = {.ctx = ctx};
  void *h = NULL;
  char *msg = NULL, *text = NULL, *line = NULL;
  if (!drv || drv->open(image, &o, false, &h, &msg) < 0) {
    fprintf(stderr, "udmz open: %s\n", msg ? msg : "no udmz driver");
    free(msg);
    return NULL;
  }
  if (drv->info(h, &text) == 0 && text) {
    char *l = strstr(text, "Checksums: ");
    if (l)
      line = strndup(l, strcspn(l, "\n"));
  }
  free(text);
  drv->close(h);
  return line;
}

static void crc32c_accel(struct udm_ctx *a, struct udm_ctx *b, const char *udm_image)
{
  static uint8_t data[DEV_BYTES];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i >> 3);
  write_file(path_in("src.raw"), data, sizeof data);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' >/dev/null", udm_image,
           path_in("src.raw"), path_in("img.udmz"));
  CHECK(system(cmd) == 0, "%s failed", cmd);
  CHECK(udm_ctx_set_option(a, "crc32c-accel", "0") == 0, "%s", udm_errmsg());
  CHECK(udm_ctx_set_option(b, "crc32c-accel", "1") == 0, "%s", udm_errmsg());
  char *la = checksums(a, path_in("img.udmz")), *lb = checksums(b, path_in("img.udmz"));
  printf("crc32c-accel 0: %s; 1: %s\n", la ? la : "?", lb ? lb : "?");
  CHECK(la && strcmp(la, "Checksums: crc32c, software") == 0, "accel 0: %s", la);
  /* On a CPU with the instruction (every CI machine) the second differs. */
  CHECK(lb && (strcmp(lb, "Checksums: crc32c, sse4.2") == 0 ||
               strcmp(lb, "Checksums: crc32c, armv8-crc") == 0
#if !defined(__x86_64__) && !defined(__aarch64__)
               || strcmp(lb, "Checksums: crc32c, software") == 0
#endif
               ),
        "accel 1: %s", lb);
  free(la);
  free(lb);
}

static void crypt_accel(struct udm_ctx *a, struct udm_ctx *b)
{
  static const char key[] = "0123456789abcdef0123456789abcdef"
                            "fedcba9876543210fedcba9876543210";
  static uint8_t zeros[DEV_BYTES], plain[DEV_BYTES], ca[DEV_BYTES], cb[DEV_BYTES];
  for (size_t i = 0; i < sizeof plain; i++)
    plain[i] = (uint8_t)(i * 13 + 1);
  write_file(path_in("xa"), zeros, sizeof zeros);
  write_file(path_in("xb"), zeros, sizeof zeros);
  CHECK(udm_ctx_set_option(a, "crypt-accel", "0") == 0, "%s", udm_errmsg());
  CHECK(udm_ctx_set_option(b, "crypt-accel", "1") == 0, "%s", udm_errmsg());
  struct udm_device *da = crypt_dev(a, "xa", key, path_in("xa"));
  struct udm_device *db = crypt_dev(b, "xb", key, path_in("xb"));
  CHECK(da && db, "crypt devices: %s", udm_errmsg());
  if (da && db) {
    CHECK(udm_device_pwrite(da, plain, sizeof plain, 0, 0) == 0 &&
              udm_device_pwrite(db, plain, sizeof plain, 0, 0) == 0 &&
              udm_device_flush(da) == 0 && udm_device_flush(db) == 0,
          "crypt writes: %s", udm_errmsg());
    read_file(path_in("xa"), ca, sizeof ca);
    read_file(path_in("xb"), cb, sizeof cb);
    CHECK(memcmp(ca, plain, sizeof ca) && !memcmp(ca, cb, sizeof ca),
          "crypt-accel 0 and 1 wrote different ciphertexts");
  }
  drop(da);
  drop(db);
}

static void refusals(struct udm_ctx *a)
{
  CHECK(option_is(a, "crypt-accel", "0"), "crypt-accel not 0 before the refusals");
  CHECK(udm_ctx_set_option(a, "crypt-accel", "yes") < 0 && udm_errno() == EINVAL &&
            strstr(udm_errmsg(), "'yes'"),
        "crypt-accel yes: %s", udm_errmsg());
  CHECK(option_is(a, "crypt-accel", "0"), "a refused value changed crypt-accel");
  CHECK(udm_ctx_set_option(a, "crc32c-accel", NULL) < 0, "crc32c-accel NULL accepted");
  CHECK(udm_ctx_set_option(a, "keys-dir", "") < 0, "an empty keys-dir accepted");
  CHECK(udm_ctx_set_option(a, "key-dir", "/x") < 0 && strstr(udm_errmsg(), "'key-dir'"),
        "unknown setting: %s", udm_errmsg());
  char *v = NULL;
  CHECK(udm_ctx_get_option(a, "frobnicate", &v) < 0 && udm_errno() == EINVAL,
        "unknown setting read");
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: test-ctx-settings RLE_PLUGIN UDM_IMAGE\n");
    return 2;
  }
  if (!mkdtemp(tmp)) {
    perror("mkdtemp");
    return 1;
  }
  struct udm_ctx *a = udm_ctx_new(), *b = udm_ctx_new();
  if (!a || !b) {
    fprintf(stderr, "udm_ctx_new: %s\n", udm_errmsg());
    return 1;
  }
  /* The environment is the default (meson sets these for this test). */
  CHECK(option_is(a, "keys-dir", "/env/keys"), "keys-dir does not default to UDM_KEYS_DIR");
  CHECK(option_is(a, "driver-path", "/env/drivers"),
        "driver-path does not default to UDM_DRIVER_PATH");
  CHECK(option_is(a, "crc32c-accel", "0"), "crc32c-accel does not default to UDM_CRC32C_ACCEL");
  CHECK(option_is(a, "crypt-accel", "1"), "crypt-accel is not on by default");

  keys_dirs(a, b);
  driver_paths(a, b, argv[1]);
  crc32c_accel(a, b, argv[2]);
  crypt_accel(a, b);
  refusals(a);

  udm_ctx_free(a);
  udm_ctx_free(b);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  if (fails)
    return 1;
  printf("ok: two contexts with different keys-dir, driver-path, crc32c-accel, crypt-accel\n");
  return 0;
}
