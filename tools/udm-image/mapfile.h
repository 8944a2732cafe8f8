/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GNU ddrescue mapfiles: which parts of a rescued image are bad. */
#ifndef UDM_IMAGE_MAPFILE_H
#define UDM_IMAGE_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "../../drivers/udmz/udmz_write.h"

/*
 * Read the mapfile at PATH for a device of SIZE bytes.  Every block whose
 * status is not '+' (finished) is bad: '-' bad sector, '/' non-scraped,
 * '*' non-trimmed, '?' non-tried.  Parts of [0, SIZE) the mapfile does not
 * cover are bad as well (never tried).  *bad is malloc'd, sorted, merged.
 * 0 or -errno with *errmsg naming the line.
 */
int ddrescue_mapfile_read(const char *path, uint64_t size, struct udmz_range **bad,
                          size_t *nbad, char **errmsg);

#endif
