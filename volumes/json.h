/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small strict JSON reader for on-disk metadata (LUKS2): parse a buffer
 * into a tree, look members up.  Strings are unescaped (\uXXXX included);
 * numbers are kept as text and read with udm_json_u64.
 */
#ifndef UDM_VOLUMES_JSON_H
#define UDM_VOLUMES_JSON_H

#include <stddef.h>
#include <stdint.h>

enum udm_json_type {
  UDM_JSON_NULL, UDM_JSON_BOOL, UDM_JSON_NUMBER, UDM_JSON_STRING, UDM_JSON_ARRAY,
  UDM_JSON_OBJECT,
};

struct udm_json {
  enum udm_json_type type;
  char *text;              /* STRING: value; NUMBER: literal; BOOL: "true"/"false" */
  char *key;               /* name of this member inside its OBJECT parent */
  size_t count;            /* ARRAY/OBJECT: children */
  struct udm_json *items;
};

/*
 * Parse LEN bytes (trailing NULs after the value are allowed, as LUKS2 pads
 * its JSON area).  0, or -EINVAL (-EEXIST: a name twice in one object)
 * with *where set to the byte offset at fault.
 */
int udm_json_parse(const char *buf, size_t len, struct udm_json **out, size_t *where);
void udm_json_free(struct udm_json *j);

/* Member of an object (NULL if absent or j is not an object). */
const struct udm_json *udm_json_get(const struct udm_json *j, const char *key);
/* String member value, or NULL. */
const char *udm_json_str(const struct udm_json *j, const char *key);
/*
 * Unsigned integer member: a JSON number or a decimal string (LUKS2 writes
 * 64-bit values as strings).  0 or -EINVAL.
 */
int udm_json_u64(const struct udm_json *j, const char *key, uint64_t *out);

#endif
