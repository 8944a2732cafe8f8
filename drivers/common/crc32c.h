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
 * instruction when ACCEL and the CPU has one, else software; the result
 * is the same.
 */
uint32_t udm_crc32c_with(bool accel, uint32_t crc, const void *data, size_t len);
/*
 * udm_crc32c_with() with the calling thread's choice: accelerated unless
 * udm_crc32c_use_accel(false) was called on this thread.  Code that has no
 * context at hand (persistent-data's validators) runs under the choice its
 * caller set from the context (lib/bufio.c does around every validator).
 */
uint32_t udm_crc32c(uint32_t crc, const void *data, size_t len);
/* Sets the calling thread's choice; returns the previous one. */
bool udm_crc32c_use_accel(bool accel);

/* For tests and benchmarks: the same function by one path only. */
uint32_t udm_crc32c_sw(uint32_t crc, const void *data, size_t len);
/* True when this build and CPU have the instruction (whatever the environment says). */
bool udm_crc32c_hw_usable(void);
/* Only when udm_crc32c_hw_usable(); aborts otherwise. */
uint32_t udm_crc32c_hw(uint32_t crc, const void *data, size_t len);
/* What udm_crc32c_with(ACCEL) uses: "sse4.2", "armv8-crc" or "software". */
const char *udm_crc32c_impl(bool accel);

#endif
