// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * LUKS1 and LUKS2 headers (volumes/luks.c) as "udm open" reads them: the
 * input is the start of the volume, which the harness extends with zeros
 * to 17 MiB (room for cryptsetup's default 16 MiB keyslot area), then
 * opens with the passphrase "fuzz".
 *
 * Two things the harness does so that the fuzzer gets past what a random
 * mutation can never satisfy, and past what would only make it slow:
 * - it writes the correct checksum into every LUKS2 binary header it finds
 *   at the offsets LUKS2 allows, so that the JSON parser and the metadata
 *   rules see every mutation (tests/crypt covers wrong checksums);
 * - it skips inputs whose KDFs would cost more than 1000 PBKDF2 iterations
 *   or Argon2 beyond 4 passes and 64 MiB: the rules that refuse absurd
 *   costs are unchanged, but a legal 4-billion-iteration header would
 *   stall the fuzzer for hours.
 * What must hold: a refusal comes with a message; an opened volume gives
 * its table; no crash, no leak.
 */
#include <errno.h>

#include <gcrypt.h>

#include "fuzz.h"
#include "json.h"
#include "luks.h"

#define VOLUME_BYTES (17ull << 20)
#define PBKDF2_MAX 1000
#define ARGON2_TIME_MAX 4
#define ARGON2_KIB_MAX 65536

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Does any member of J named like a KDF cost exceed what the fuzzer affords? */
static bool costly(const struct udm_json *j)
{
  if (j->type == UDM_JSON_OBJECT) {
    uint64_t v;
    if (udm_json_u64(j, "iterations", &v) == 0 && v > PBKDF2_MAX)
      return true;
    if (udm_json_u64(j, "time", &v) == 0 && v > ARGON2_TIME_MAX)
      return true;
    if (udm_json_u64(j, "memory", &v) == 0 && v > ARGON2_KIB_MAX)
      return true;
  }
  for (size_t i = 0; i < j->count; i++)
    if (costly(&j->items[i]))
      return true;
  return false;
}

static const uint64_t luks2_offsets[] = {0, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000,
                                         0x80000, 0x100000, 0x200000, 0x400000};

/* Fix the checksum of the LUKS2 header at OFF in BUF; false when it is too costly. */
static bool luks2_fix(uint8_t *buf, size_t size, uint64_t off)
{
  if (off + 4096 > size || memcmp(buf + off, off ? "SKUL\xba\xbe" : "LUKS\xba\xbe", 6) ||
      (be32(buf + off + 4) & 0xffff) != 2)
    return true;
  uint8_t *bin = buf + off;
  uint64_t hdr_size = be64(bin + 8);
  if (hdr_size < 0x4000 || hdr_size > 0x400000 || off + hdr_size > size)
    return true;
  char alg[33] = {0};
  memcpy(alg, bin + 72, 32);
  int hash = gcry_md_map_name(alg);
  unsigned dlen = hash ? gcry_md_get_algo_dlen(hash) : 0;
  if (!dlen || dlen > 64)
    return true;
  uint8_t digest[64];
  memset(bin + 448, 0, 64);
  gcry_md_hash_buffer(hash, digest, bin, hdr_size);
  memcpy(bin + 448, digest, dlen);
  struct udm_json *j = NULL;
  size_t where;
  bool ok = true;
  if (udm_json_parse((const char *)bin + 4096, hdr_size - 4096, &j, &where) == 0) {
    ok = !costly(j);
    udm_json_free(j);
  }
  return ok;
}

static bool prepare(uint8_t *buf, size_t size)
{
  if (size >= 592 && !memcmp(buf, "LUKS\xba\xbe\x00\x01", 8)) {
    if (be32(buf + 164) > PBKDF2_MAX)
      return false;
    for (unsigned i = 0; i < 8; i++)
      if (be32(buf + 208 + 48 * i + 4) > PBKDF2_MAX)
        return false;
    return true;
  }
  for (size_t i = 0; i < sizeof luks2_offsets / sizeof luks2_offsets[0]; i++)
    if (!luks2_fix(buf, size, luks2_offsets[i]))
      return false;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[300];
  if (!path[0]) {
    fuzz_path("volume", path, sizeof path);
    gcry_check_version(NULL);
  }
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf)
    fuzz_die("malloc");
  memcpy(buf, data, size);
  if (!prepare(buf, size)) {
    free(buf);
    return 0;
  }
  fuzz_file(path, buf, size, VOLUME_BYTES);
  free(buf);
  struct udm_luks_volume *vol = NULL;
  char *err = NULL;
  if (udm_luks_open(path, "fuzz", 4, &vol, &err) < 0) {
    if (!err)
      abort();
    free(err);
    return 0;
  }
  char *table = NULL;
  if (udm_luks_table(vol, 0, &table) < 0 || !table)
    abort();
  free(table);
  udm_luks_free(vol);
  return 0;
}
