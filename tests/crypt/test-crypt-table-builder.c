/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volumes/table.c, the one builder of the crypt tables that udm open makes:
 * which cipher specifications pass its grammar, which fields it refuses,
 * and the exact line it writes (path escaping, hidden keys, sector_size).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secure.h"
#include "table.h"

static int failed;

static void expect(const char *what, int cond)
{
  printf("%s %s\n", cond ? "ok  " : "FAIL", what);
  failed += !cond;
}

static const char *const good_specs[] = {
    "aes-xts-plain64", "aes-cbc-essiv:sha256", "aes:64-cbc-lmk", "cipher_null-ecb",
    "des3_ede-cbc-plain", "serpent-cbc-essiv:sha3-256", "aes", "aes-ecb",
    "capi:xts(aes)-plain64", "capi:cbc(aes)-essiv:sha256",
    "capi:authenc(hmac(sha256),xts(aes))-random",
};

static const char *const bad_specs[] = {
    "", "aes xts", "aes-xts-plain64\n", "aes-xts-plain64\n0 8 zero", "aes\txts",
    "AES-xts-plain64", "aes--plain64", "-aes-xts", "aes-xts-", "aes-xts:", "aes/xts",
    "aes-xts-plain64 1 allow_discards", "aes(x)-plain64", "aes,xts", "capi:xts(aes",
    "capi:xts)aes(", "capi:xts-plain64", "capi:(aes)-plain64", "capi:xts()-plain64",
    "aes-cbc-essiv:sha256\\", "aes-xts-plain64\x01",
};

int main(void)
{
  char what[300];
  for (size_t i = 0; i < sizeof good_specs / sizeof good_specs[0]; i++) {
    snprintf(what, sizeof what, "accepts '%s'", good_specs[i]);
    expect(what, vol_cipher_spec_ok(good_specs[i]));
  }
  for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
    snprintf(what, sizeof what, "refuses spec #%zu", i);
    expect(what, !vol_cipher_spec_ok(bad_specs[i]));
  }
  char longest[200];
  memset(longest, 'a', sizeof longest);
  longest[VOL_CIPHER_MAX] = '\0';
  expect("accepts a 128-byte spec", vol_cipher_spec_ok(longest));
  longest[VOL_CIPHER_MAX] = 'a';
  longest[VOL_CIPHER_MAX + 1] = '\0';
  expect("refuses a 129-byte spec", !vol_cipher_spec_ok(longest));

  uint8_t key[64];
  for (unsigned i = 0; i < sizeof key; i++)
    key[i] = (uint8_t)i;
  struct vol_crypt_line l = {.length = 8192, .cipher = "aes-xts-plain64", .key = key,
                             .key_len = 64, .show_key = true, .iv_offset = 7,
                             .device = "/srv/my vol\\1.img", .offset = 32768,
                             .sector_size = 4096};
  char *t = NULL, *err = NULL;
  int r = vol_crypt_table(&l, &t, &err);
  char want[400];
  int n = snprintf(want, sizeof want, "0 8192 crypt aes-xts-plain64 ");
  for (unsigned i = 0; i < sizeof key; i++)
    n += snprintf(want + n, sizeof want - (size_t)n, "%02x", i);
  snprintf(want + n, sizeof want - (size_t)n,
           " 7 /srv/my\\ vol\\\\1.img 32768 1 sector_size:4096");
  expect("the line: key, escaped path, sector_size", r == 0 && t && !strcmp(t, want));
  if (t && strcmp(t, want))
    printf("  got  %s\n  want %s\n", t, want);
  udm_wipe_free_str(t);
  l.show_key = false;
  l.sector_size = 512;
  t = NULL;
  r = vol_crypt_table(&l, &t, NULL);
  expect("hidden key: zeros, no sector_size option",
         r == 0 && t && strstr(t, " crypt aes-xts-plain64 0000") &&
             strlen(t) == strlen("0 8192 crypt aes-xts-plain64  7 /srv/my\\ vol\\\\1.img 32768") +
                              128 &&
             !strstr(t, "sector_size"));
  free(t);

  struct {
    const char *what, *msg;
    struct vol_crypt_line l;
  } bad[] = {
      {"a cipher with a newline", "invalid cipher specification '(control characters)'",
       {.length = 8, .cipher = "aes-xts-plain64\n0 8 zero", .key = key, .key_len = 64,
        .device = "/x", .sector_size = 512}},
      {"a cipher with a blank", "invalid cipher specification 'aes xts'",
       {.length = 8, .cipher = "aes xts", .key = key, .key_len = 64, .device = "/x",
        .sector_size = 512}},
      {"a path with a newline", "the device path is empty or holds control characters",
       {.length = 8, .cipher = "aes-xts-plain64", .key = key, .key_len = 64,
        .device = "/x\n0 8 zero", .sector_size = 512}},
      {"an empty path", "the device path is empty or holds control characters",
       {.length = 8, .cipher = "aes-xts-plain64", .key = key, .key_len = 64, .device = "",
        .sector_size = 512}},
      {"a 513-byte key", "invalid key size 513 bytes (at most 512)",
       {.length = 8, .cipher = "aes-xts-plain64", .key = key, .key_len = 513, .device = "/x",
        .sector_size = 512}},
      {"sector size 1000", "invalid sector size 1000",
       {.length = 8, .cipher = "aes-xts-plain64", .key = key, .key_len = 64, .device = "/x",
        .sector_size = 1000}},
      {"no data", "the volume has no data area",
       {.length = 0, .cipher = "aes-xts-plain64", .key = key, .key_len = 64, .device = "/x",
        .sector_size = 512}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    t = NULL;
    err = NULL;
    r = vol_crypt_table(&bad[i].l, &t, &err);
    snprintf(what, sizeof what, "refuses %s: %s", bad[i].what, bad[i].msg);
    expect(what, r < 0 && !t && err && !strcmp(err, bad[i].msg));
    if (err && strcmp(err, bad[i].msg))
      printf("  got '%s'\n", err);
    free(err);
  }
  return failed ? 1 : 0;
}
