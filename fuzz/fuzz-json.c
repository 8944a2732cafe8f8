// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The strict JSON reader under LUKS2 metadata (volumes/json.c): the input
 * is a JSON area.  What must hold: a refusal points inside the input; a
 * tree that parses can be walked, and its members looked up, with no
 * crash and no leak.
 */
#include <errno.h>

#include "fuzz.h"
#include "json.h"

static void walk(const struct udm_json *j, unsigned depth)
{
  if (depth > 100000)
    abort();
  uint64_t v;
  if (j->type == UDM_JSON_OBJECT) {
    for (size_t i = 0; i < j->count; i++) {
      const struct udm_json *m = &j->items[i];
      if (!m->key || udm_json_get(j, m->key) == NULL)
        abort(); /* every member can be found by its name */
      udm_json_str(j, m->key);
      udm_json_u64(j, m->key, &v);
    }
  }
  if ((j->type == UDM_JSON_STRING || j->type == UDM_JSON_NUMBER) && !j->text)
    abort();
  for (size_t i = 0; i < j->count; i++)
    walk(&j->items[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct udm_json *j = NULL;
  size_t where = 0;
  int r = udm_json_parse((const char *)data, size, &j, &where);
  if (r < 0) {
    if ((r != -EINVAL && r != -EEXIST && r != -ENOMEM) || where > size)
      abort();
    return 0;
  }
  walk(j, 0);
  udm_json_free(j);
  return 0;
}
