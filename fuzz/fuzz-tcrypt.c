// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * TrueCrypt and VeraCrypt header parsing after decryption (volumes/
 * tcrypt.c, udm_tcrypt_check_header): what udm_tcrypt_open checks once a
 * key has decrypted a header.  The input is
 *   byte 0      options: bit 0 VeraCrypt, 1 hidden, 2 system, 3 TrueCrypt 5
 *               hidden position, 4 keep the CRC32s as given (else the
 *               harness writes correct ones, as a right key would find)
 *   bytes 1-8   the device size in bytes, big-endian
 *   bytes 9-    the 448 decrypted header bytes (magic first; zeros after)
 * What must hold: a refusal says why; an accepted header maps an area of
 * whole sectors inside the device, clear of the header areas.
 */
#include <errno.h>

#include "fuzz.h"
#include "tcrypt.h"

#define ENC_LEN 448

static uint32_t crc32(const uint8_t *p, size_t n)
{
  uint32_t crc = ~0u;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++)
      crc = crc >> 1 ^ (0xEDB88320u & -(crc & 1));
  }
  return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 9)
    return 0;
  unsigned opt = data[0];
  uint64_t dev = 0;
  for (int i = 1; i <= 8; i++)
    dev = dev << 8 | data[i];
  uint8_t hdr[ENC_LEN] = {0};
  memcpy(hdr, data + 9, size - 9 < ENC_LEN ? size - 9 : ENC_LEN);
  if (!(opt & 16)) {
    put_be32(hdr + 8, crc32(hdr + 192, 256));
    put_be32(hdr + 188, crc32(hdr, 188));
  }
  struct udm_tcrypt_params prm = {.veracrypt = opt & 1, .hidden = opt & 2, .system = opt & 4};
  uint64_t off = 0, bytes = 0;
  char *err = NULL;
  int r = udm_tcrypt_check_header(hdr, &prm, dev, opt & 8, &off, &bytes, &err);
  if (r < 0) {
    if (!err && r != -EPERM)
      abort();
    free(err);
    return 0;
  }
  if (!bytes || off % 512 || bytes % 512 || off + bytes < off || off + bytes > dev ||
      off < 512)
    abort();
  free(err);
  return 0;
}
