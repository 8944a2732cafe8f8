/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bad crypt tables are refused with messages naming the fault; key messages
 * work only while suspended; I/O cannot continue after "key wipe" until
 * "key set"; 8 MiB requests round-trip and reach the file encrypted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <udm/udm.h>

static int failures;

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                      \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
    }                                                                           \
  } while (0)

static const char *K64 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                         "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

static void expect_refused(struct udm_ctx *ctx, const char *table, const char *needle)
{
  struct udm_device *d = udm_device_create(ctx, "bad", NULL, 0);
  int r = udm_table_load(d, table);
  CHECK(r < 0, "table loaded: %s", table);
  if (r < 0)
    CHECK(strstr(udm_errmsg(), needle), "'%s' lacks '%s'", udm_errmsg(), needle);
  CHECK(!strstr(udm_errmsg(), "0102030405"), "key material in message: %s", udm_errmsg());
  udm_device_remove(d, 0);
  udm_device_unref(d);
}

int main(void)
{
  char path[] = "/tmp/udm-crypt-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || ftruncate(fd, 64 << 20) < 0)
    return 99;
  close(fd);
  struct udm_ctx *ctx = udm_ctx_new();
  char t[1024];
#define TABLE(...) (snprintf(t, sizeof t, __VA_ARGS__), t)
  expect_refused(ctx, TABLE("0 8 crypt rot13-xts-plain64 %s 0 %s 0", K64, path),
                 "unknown cipher 'rot13'");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 0011 0 %s 0", path),
                 "invalid key size");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 abc 0 %s 0", path), "hex digits");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 zz 0 %s 0", path), "not a hex digit");
  expect_refused(ctx, TABLE("0 8 crypt aes-cbc-bogus %s 0 %s 0", K64, path),
                 "invalid IV mode 'bogus'");
  expect_refused(ctx, TABLE("0 8 crypt aes-cbc-essiv %s 0 %s 0", K64, path),
                 "digest algorithm missing");
  expect_refused(ctx, TABLE("0 8 crypt aes-cbc-random %s 0 %s 0", K64, path),
                 "not implemented");
  expect_refused(ctx, TABLE("0 8 crypt aes-gcm-plain64 %s 0 %s 0", K64, path),
                 "unsupported chaining mode");
  expect_refused(ctx, TABLE("0 8 crypt aes-cbc %s 0 %s 0", K64, path),
                 "IV mechanism required");
  expect_refused(ctx, TABLE("0 8 crypt aes:3-cbc-plain %s 0 %s 0", K64, path),
                 "bad cipher key count");
  expect_refused(ctx, TABLE("0 8 crypt cast5-xts-plain64 %s 0 %s 0", K64, path),
                 "128-bit block cipher");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 %s 0 %s 0 1 integrity:28:aead", K64,
                            path), "integrity");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 %s 0 %s 0 1 frobnicate", K64, path),
                 "invalid feature argument 'frobnicate'");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 %s 0 %s 0 1 sector_size:1000", K64,
                            path), "invalid sector_size");
  expect_refused(ctx, TABLE("0 12 crypt aes-xts-plain64 %s 0 %s 0 1 sector_size:4096", K64,
                            path), "not a multiple of sector_size");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 %s 3 %s 0 1 sector_size:4096", K64,
                            path), "invalid iv_offset");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 :64:logon:udm:none 0 %s 0", path),
                 "UDM_KEYS_DIR");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 - 0 %s 0", path), "invalid key size");
  expect_refused(ctx, TABLE("0 8 crypt aes-xts-plain64 %s 0 %s", K64, path),
                 "not enough arguments");

  /* Key references resolve through the context's keys-dir. */
  char dir[] = "/tmp/udm-keys-XXXXXX";
  if (mkdtemp(dir)) {
    char kp[512];
    snprintf(kp, sizeof kp, "%s/vol1", dir);
    FILE *f = fopen(kp, "wb");
    for (int i = 0; i < 64; i++)
      fputc(i, f);
    fclose(f);
    CHECK(udm_ctx_set_option(ctx, "keys-dir", dir) == 0, "keys-dir: %s", udm_errmsg());
    struct udm_device *d = udm_device_create(ctx, "ref", NULL, 0);
    CHECK(udm_table_load(d, TABLE("0 8 crypt aes-xts-plain64 :64:logon:vol1 0 %s 0", path)) == 0 &&
              udm_device_resume(d) == 0, "key reference: %s", udm_errmsg());
    char *out = NULL;
    udm_device_table(d, UDM_TABLE_SHOWKEYS, &out);
    CHECK(out && strstr(out, " :64:logon:vol1 0 "), "key reference table: %s", out);
    free(out);
    udm_device_remove(d, 0);
    udm_device_unref(d);
    unlink(kp);
    rmdir(dir);
  }

  /* Messages. */
  struct udm_device *d = udm_device_create(ctx, "c", NULL, 0);
  CHECK(udm_table_load(d, TABLE("0 131072 crypt aes-xts-plain64 %s 0 %s 0", K64, path)) == 0 &&
            udm_device_resume(d) == 0, "load: %s", udm_errmsg());
  char *reply = NULL;
  char msg[300];
  snprintf(msg, sizeof msg, "key set %s", K64);
  CHECK(udm_device_message(d, 0, msg, &reply) < 0 && strstr(udm_errmsg(), "suspended"),
        "key set while live: %s", udm_errmsg());
  char buf[4096] = "hello";
  CHECK(udm_device_pwrite(d, buf, sizeof buf, 0, 0) == 0, "write");
  CHECK(udm_device_suspend(d, 0) == 0, "suspend");
  CHECK(udm_device_message(d, 0, "key wipe", &reply) == 0, "wipe: %s", udm_errmsg());
  free(reply);
  char *tab = NULL;
  udm_device_table(d, UDM_TABLE_SHOWKEYS, &tab);
  CHECK(tab && strstr(tab, " 0000000000000000"), "wiped key shown: %s", tab);
  free(tab);
  CHECK(udm_device_resume(d) < 0 && strstr(udm_errmsg(), "key is not set"),
        "resume without key: %s", udm_errmsg());
  CHECK(udm_device_message(d, 0, "key set 0011", &reply) < 0 &&
            strstr(udm_errmsg(), "differs"), "short key accepted: %s", udm_errmsg());
  snprintf(msg, sizeof msg, "key set %s", K64);
  CHECK(udm_device_message(d, 0, msg, &reply) == 0, "key set: %s", udm_errmsg());
  free(reply);
  CHECK(udm_device_resume(d) == 0, "resume: %s", udm_errmsg());
  memset(buf, 0, sizeof buf);
  CHECK(udm_device_pread(d, buf, sizeof buf, 0) == 0 && !strcmp(buf, "hello"),
        "data after key set");
  CHECK(udm_device_pread(d, buf, 512, 512 * 3) == 0, "unaligned-free read");

  /*
   * Large requests (8 MiB, split by the core) round-trip through crypt, and
   * what reaches the file is ciphertext: read through linear, no sector holds
   * the plaintext and none equals its neighbour (the sector number is the
   * XTS tweak).  Speed is bench/crypt.sh's business, not a test's.
   */
  size_t len = 8 << 20, plain = 0, repeated = 0;
  off_t off = 1 << 20;
  char *big = malloc(len), *back = malloc(len), *raw = malloc(len);
  if (!big || !back || !raw)
    return 99;
  memset(big, 0x42, len);
  struct udm_device *lin = udm_device_create(ctx, "lin", NULL, 0);
  CHECK(lin && udm_table_load(lin, TABLE("0 131072 linear %s 0", path)) == 0 &&
            udm_device_resume(lin) == 0,
        "linear over the same file: %s", udm_errmsg());
  CHECK(udm_device_pwrite(d, big, len, off, 0) == 0, "crypt 8 MiB write: %s", udm_errmsg());
  CHECK(udm_device_pread(d, back, len, off) == 0 && memcmp(back, big, len) == 0,
        "crypt 8 MiB read does not give back what was written: %s", udm_errmsg());
  CHECK(udm_device_pread(lin, raw, len, off) == 0, "linear read: %s", udm_errmsg());
  for (size_t s = 0; s < len; s += 512) {
    plain += memcmp(raw + s, big + s, 512) == 0;
    repeated += s && memcmp(raw + s, raw + s - 512, 512) == 0;
  }
  CHECK(plain == 0 && repeated == 0,
        "of %zu sectors on the file, %zu hold the plaintext, %zu repeat the one before",
        len / 512, plain, repeated);
  free(back);
  free(raw);
  free(big);
  udm_device_unref(lin);
  udm_device_unref(d);
  udm_ctx_free(ctx);
  unlink(path);
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
