/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "udm open" without the transport: from a volume, a passphrase (or key
 * material) and options, the list of crypt devices that map the volume, in
 * creation order (the bottom of a cascade first, NAME last), each with its
 * name, uuid and table.  The CLI sends them to udmd as create requests; the
 * kernel differential harness creates them in-process.
 *
 * Naming (docs/crypt.md): the top device is NAME with uuid
 * "CRYPT-<TYPE>-<volume uuid>-NAME" (LUKS1, LUKS2: the header's uuid without
 * dashes, as cryptsetup) or "CRYPT-<TYPE>-NAME" (TCRYPT, VERACRYPT, PLAIN);
 * the lower devices of a cascade are NAME_1 .. NAME_<n-1> (NAME_1 directly
 * below NAME) with uuid "CRYPT-SUBDEV-<TYPE>-NAME_<i>".
 */
#ifndef UDM_VOLUMES_OPEN_H
#define UDM_VOLUMES_OPEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcrypt.h"

#define UDM_OPEN_UUID_PREFIX "CRYPT-"
#define UDM_OPEN_SUBDEV_PREFIX "CRYPT-SUBDEV-"

struct udm_open_request {
  const char *type;             /* luks, luks1, luks2, tcrypt, veracrypt, plain */
  const char *source;           /* absolute path of the volume */
  const char *name;
  const char *secret;           /* passphrase, or key file contents */
  size_t secret_len;
  bool secret_is_keyfile;       /* plain: SECRET is a key file (used directly) */
  struct udm_tcrypt_params tcrypt;
  /* plain (cryptsetup's defaults when NULL / 0) */
  const char *cipher;
  const char *hash;
  unsigned key_bits;
  uint64_t offset, skip, size;  /* sectors */
  /* how a table names another udm device: "udm:" */
  const char *device_prefix;
};

struct udm_open_device {
  char *name;
  char *uuid;
  char *table;                  /* holds the key; wiped by udm_open_plan_free */
};

struct udm_open_plan {
  size_t count;
  struct udm_open_device dev[UDM_TCRYPT_MAX_LEVELS];
  char *warning;                /* a notice for the user, or NULL */
  char *description;            /* e.g. "TCRYPT AES-Twofish, SHA-512" */
};

/* Is TYPE one "udm open" knows? */
bool udm_open_type_valid(const char *type);

int udm_open_plan(const struct udm_open_request *req, struct udm_open_plan **out,
                  char **errmsg);
void udm_open_plan_free(struct udm_open_plan *plan);

#endif
