/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crypt with sector_size:4096 makes a device with 4096-byte logical blocks
 * (docs/crypt.md): udm_device_block_size says so, devices stacked on it
 * inherit it, tables that would cut its blocks are refused with the live
 * table kept, and a 512-byte write through the C API read-modify-writes the
 * whole crypt sector.  The ciphertext it leaves is checked against an
 * independent AES-XTS computation (libgcrypt directly, IV = plain64 of the
 * 512-byte sector number, one 4096-byte data unit), as dm-crypt writes it.
 */
#include <errno.h>
#include <stdlib.h>

#include <gcrypt.h>

#include <udm/udm.h>

#include "../unit/check.h"
#include "../unit/testdev.h"
#include "../unit/util.h"

#define KEY_HEX \
  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" \
  "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff"
#define SIZE (1u << 20)
#define DATA_OFF 16 /* sectors of the file before the encrypted area */

static struct udm_ctx *ctx;

static struct udm_device *make(const char *name, const char *table)
{
  return test_make(ctx, name, table, 0);
}


/* Decrypt the 4096-byte crypt sector at SECTOR (512-byte units) of the area. */
static void reference_decrypt(const unsigned char *cipher, unsigned char *plain,
                              uint64_t sector)
{
  unsigned char key[64], iv[16] = {0};
  for (int i = 0; i < 64; i++) {
    unsigned v;
    sscanf(&KEY_HEX[2 * i], "%2x", &v);
    key[i] = (unsigned char)v;
  }
  for (int i = 0; i < 8; i++)
    iv[i] = (unsigned char)(sector >> (8 * i));
  gcry_cipher_hd_t h;
  CHECK(gcry_cipher_open(&h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_XTS, 0) == 0);
  CHECK(gcry_cipher_setkey(h, key, sizeof key) == 0);
  CHECK(gcry_cipher_setiv(h, iv, sizeof iv) == 0);
  CHECK(gcry_cipher_decrypt(h, plain, 4096, cipher, 4096) == 0);
  gcry_cipher_close(h);
}

static char *table_of(struct udm_device *d)
{
  char *t = NULL;
  CHECK(udm_device_table(d, 0, &t) == 0);
  return t;
}

int main(void)
{
  if (!gcry_check_version(NULL))
    return 1;
  scratch_init();
  ctx = udm_ctx_new();
  const char *file = scratch_file("crypt4k.img", SIZE + DATA_OFF * 512, 3);
  char t[1024];
  snprintf(t, sizeof t, "0 %u crypt aes-xts-plain64 %s 0 %s %u 1 sector_size:4096",
           SIZE / 512, KEY_HEX, file, DATA_OFF);
  struct udm_device *c = make("c4k", t);
  CHECK(udm_device_block_size(c) == 4096);

  /* Whole-block data first, then 512 bytes at 512 through the C API. */
  unsigned char *want = malloc(SIZE), *got = malloc(SIZE);
  fill_pattern(want, SIZE, 21, 0);
  CHECK(udm_device_pwrite(c, want, SIZE, 0, 0) == 0);
  unsigned char sector[512];
  fill_pattern(sector, sizeof sector, 22, 0);
  CHECK(udm_device_pwrite(c, sector, 512, 512, 0) == 0);
  memcpy(want + 512, sector, 512);
  CHECK(udm_device_pread(c, got, 512, 512) == 0 && memcmp(got, sector, 512) == 0);
  CHECK(udm_device_pread(c, got, SIZE, 0) == 0 && memcmp(got, want, SIZE) == 0);
  /* Unaligned bytes across crypt sectors 1 and 2. */
  const char msg[] = "bytes across two crypt sectors";
  CHECK(udm_device_pwrite(c, msg, sizeof msg, 8192 - 11, 0) == 0);
  memcpy(want + 8192 - 11, msg, sizeof msg);
  CHECK(udm_device_pread(c, got, 100, 8150) == 0 && memcmp(got, want + 8150, 100) == 0);

  /* What is on the file is what dm-crypt would have written. */
  unsigned char *disk = read_file_at(file, DATA_OFF * 512, 3 * 4096);
  unsigned char plain[4096];
  for (unsigned s = 0; s < 3; s++) {
    reference_decrypt(disk + s * 4096, plain, s * 8);
    CHECK(memcmp(plain, want + s * 4096, 4096) == 0);
  }
  free(disk);
  /* The plaintext before the file's encrypted area is untouched. */
  unsigned char *head = read_file_at(file, 0, DATA_OFF * 512), pat[DATA_OFF * 512];
  fill_pattern(pat, sizeof pat, 3, 0);
  CHECK(memcmp(head, pat, sizeof pat) == 0);
  free(head);

  /* A linear, or a 512-byte crypt, stacked on it inherits 4096. */
  struct udm_device *up = make("up", "0 1024 linear udm:c4k 8");
  CHECK(udm_device_block_size(up) == 4096);
  CHECK(udm_device_pread(up, got, 4096, 0) == 0 && memcmp(got, want + 4096, 4096) == 0);
  CHECK(udm_device_pwrite(up, msg, sizeof msg, 700, 0) == 0);
  memcpy(want + 4096 + 700, msg, sizeof msg);
  CHECK(udm_device_pread(c, got, 4096, 4096) == 0 && memcmp(got, want + 4096, 4096) == 0);
  snprintf(t, sizeof t, "0 1024 crypt aes-cbc-essiv:sha256 %.64s 0 udm:c4k 0", KEY_HEX);
  struct udm_device *inner = make("inner", t);
  CHECK(udm_device_block_size(inner) == 4096);
  test_drop(inner);

  /* Tables that cut its blocks are refused; "up" keeps its table and data. */
  static const struct {
    const char *table, *frag;
  } bad[] = {
      {"0 1024 linear udm:c4k 1",
       "load up: line 1: linear: the table maps sectors 1..1024 (1024 sectors) of udm:c4k, which has a "
       "logical block size of 4096 bytes: start and length must be multiples of 8 "
       "sectors"},
      {"0 1020 linear udm:c4k 8", "the table maps sectors 8..1027 (1020 sectors) of udm:c4k"},
      {"0 8 linear udm:c4k 0\n8 4 zero",
       "load up: line 2: segment (start 8, length 4 sectors) is not aligned to the "
       "device's logical block size of 4096 bytes (8 sectors), which line 1 sets"},
      {"0 64 striped 2 4 udm:c4k 0 udm:c4k 64",
       "line 1: striped: requests are split every 4 sectors, which is not a multiple of "
       "the device's logical block size of 4096 bytes (8 sectors)"},
  };
  char *before = table_of(up);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    CHECK(udm_table_load(up, bad[i].table) == -1 && errno == EINVAL);
    CHECK_CONTAINS(udm_errmsg(), bad[i].frag);
    char *after = table_of(up);
    CHECK_STR(after, before);
    free(after);
    struct udm_info info;
    udm_device_info(up, &info);
    CHECK(info.live_table && !info.inactive_table && !info.suspended);
    CHECK(udm_device_block_size(up) == 4096);
    CHECK(udm_device_pread(up, got, 4096, 0) == 0 && memcmp(got, want + 4096, 4096) == 0);
  }
  free(before);
  test_drop(up);
  test_drop(c);
  free(want);
  free(got);
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-crypt-blocks");
}
