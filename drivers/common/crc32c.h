/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI and ext4 use. */
#ifndef UDM_DRIVERS_CRC32C_H
#define UDM_DRIVERS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC: start with crc = 0 and feed the pieces in order.  The
 * standard initial and final inversions are applied inside, so
 * udm_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t udm_crc32c(uint32_t crc, const void *data, size_t len);

#endif
