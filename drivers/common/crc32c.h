/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI and ext4 use. */
#ifndef UDM_DRIVERS_CRC32C_H
#define UDM_DRIVERS_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC: start with crc = 0 and feed the pieces in order.  The
 * standard initial and final inversions are applied inside, so
 * udm_crc32c(0, "123456789", 9) == 0xE3069283.  Uses the CPU's CRC-32C
 * instruction when it has one, unless UDM_CRC32C_ACCEL=0 is in the
 * environment (read once, at the first call).
 */
uint32_t udm_crc32c(uint32_t crc, const void *data, size_t len);

/* For tests and benchmarks: the same function by one path only. */
uint32_t udm_crc32c_sw(uint32_t crc, const void *data, size_t len);
/* True when this build and CPU have the instruction (whatever the environment says). */
bool udm_crc32c_hw_usable(void);
/* Only when udm_crc32c_hw_usable(); aborts otherwise. */
uint32_t udm_crc32c_hw(uint32_t crc, const void *data, size_t len);
/* What udm_crc32c uses: "sse4.2", "armv8-crc" or "software". */
const char *udm_crc32c_impl(void);

#endif
