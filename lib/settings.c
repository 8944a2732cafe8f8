/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A context's settings (udm_ctx_set_option): where crypt key references are
 * read, where image driver plugins are looked for, and whether the CPU's
 * AES-XTS and CRC-32C instructions are used.  udm_ctx_new takes each from
 * the environment, so a program that never calls the setter behaves as the
 * environment says; two contexts of one program may then differ.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum setting { KEYS_DIR, DRIVER_PATH, CRYPT_ACCEL, CRC32C_ACCEL };

static const struct {
  const char *name;
  const char *env;
} settings[] = {
    [KEYS_DIR] = {"keys-dir", "UDM_KEYS_DIR"},
    [DRIVER_PATH] = {"driver-path", "UDM_DRIVER_PATH"},
    [CRYPT_ACCEL] = {"crypt-accel", "UDM_CRYPT_ACCEL"},
    [CRC32C_ACCEL] = {"crc32c-accel", "UDM_CRC32C_ACCEL"},
};
#define NUM_SETTINGS (sizeof settings / sizeof settings[0])

static int find(const char *name)
{
  for (unsigned i = 0; name && i < NUM_SETTINGS; i++)
    if (strcmp(name, settings[i].name) == 0)
      return (int)i;
  return -1;
}

/* Replaces *slot with a copy of VALUE (NULL stays NULL). */
static int set_string(struct udm_ctx *ctx, char **slot, const char *value)
{
  char *copy = NULL;
  if (value && !(copy = strdup(value)))
    return -ENOMEM;
  pthread_mutex_lock(&ctx->settings_lock);
  char *old = *slot;
  *slot = copy;
  pthread_mutex_unlock(&ctx->settings_lock);
  free(old);
  return 0;
}

static int get_string(struct udm_ctx *ctx, char *const *slot, char **out)
{
  int r = 0;
  pthread_mutex_lock(&ctx->settings_lock);
  *out = NULL;
  if (*slot && !(*out = strdup(*slot)))
    r = -ENOMEM;
  pthread_mutex_unlock(&ctx->settings_lock);
  return r;
}

int udm__ctx_settings_init(struct udm_ctx *ctx)
{
  pthread_mutex_init(&ctx->settings_lock, NULL);
  /* An empty UDM_KEYS_DIR always meant "none"; "0" alone turns an accelerator off. */
  const char *keys = getenv(settings[KEYS_DIR].env);
  const char *path = getenv(settings[DRIVER_PATH].env);
  const char *crypt = getenv(settings[CRYPT_ACCEL].env);
  const char *crc = getenv(settings[CRC32C_ACCEL].env);
  atomic_init(&ctx->crypt_accel, !crypt || strcmp(crypt, "0") != 0);
  atomic_init(&ctx->crc32c_accel, !crc || strcmp(crc, "0") != 0);
  if (set_string(ctx, &ctx->keys_dir, keys && *keys ? keys : NULL) < 0 ||
      set_string(ctx, &ctx->driver_path, path) < 0)
    return udm__fail(ENOMEM, "udm_ctx_new: out of memory");
  return 0;
}

void udm__ctx_settings_free(struct udm_ctx *ctx)
{
  free(ctx->keys_dir);
  free(ctx->driver_path);
  pthread_mutex_destroy(&ctx->settings_lock);
}

int udm__ctx_driver_path(struct udm_ctx *ctx, char **out)
{
  return get_string(ctx, &ctx->driver_path, out);
}

static int parse_switch(const char *name, const char *value, bool *on)
{
  if (value && strcmp(value, "0") == 0)
    *on = false;
  else if (value && strcmp(value, "1") == 0)
    *on = true;
  else
    return udm__fail(EINVAL, "udm_ctx_set_option: %s takes 0 or 1, not %s%s%s", name,
                     value ? "'" : "", value ? value : "nothing", value ? "'" : "");
  return 0;
}

int udm_ctx_set_option(struct udm_ctx *ctx, const char *name, const char *value)
{
  bool on;
  switch (find(name)) {
  case KEYS_DIR:
    if (value && !*value)
      return udm__fail(EINVAL, "udm_ctx_set_option: keys-dir must not be empty "
                               "(NULL means no key directory)");
    if (set_string(ctx, &ctx->keys_dir, value) < 0)
      return udm__fail(ENOMEM, "udm_ctx_set_option: out of memory");
    return 0;
  case DRIVER_PATH:
    if (set_string(ctx, &ctx->driver_path, value) < 0)
      return udm__fail(ENOMEM, "udm_ctx_set_option: out of memory");
    /* The next lookup of an unknown format scans the new directories. */
    pthread_mutex_lock(&ctx->lock);
    ctx->plugin_dir_scanned = false;
    pthread_mutex_unlock(&ctx->lock);
    return 0;
  case CRYPT_ACCEL:
    if (parse_switch(name, value, &on) < 0)
      return -1;
    atomic_store(&ctx->crypt_accel, on);
    return 0;
  case CRC32C_ACCEL:
    if (parse_switch(name, value, &on) < 0)
      return -1;
    atomic_store(&ctx->crc32c_accel, on);
    return 0;
  }
  return udm__fail(EINVAL, "udm_ctx_set_option: unknown setting '%s' (keys-dir, "
                           "driver-path, crypt-accel, crc32c-accel)",
                   name ? name : "(null)");
}

int udm_ctx_get_option(struct udm_ctx *ctx, const char *name, char **value)
{
  int r = 0;
  switch (find(name)) {
  case KEYS_DIR:
    r = get_string(ctx, &ctx->keys_dir, value);
    break;
  case DRIVER_PATH:
    r = get_string(ctx, &ctx->driver_path, value);
    break;
  case CRYPT_ACCEL:
  case CRC32C_ACCEL: {
    bool on = atomic_load(find(name) == CRYPT_ACCEL ? &ctx->crypt_accel : &ctx->crc32c_accel);
    if (!(*value = strdup(on ? "1" : "0")))
      r = -ENOMEM;
    break;
  }
  default:
    return udm__fail(EINVAL, "udm_ctx_get_option: unknown setting '%s' (keys-dir, "
                             "driver-path, crypt-accel, crc32c-accel)",
                     name ? name : "(null)");
  }
  if (r < 0)
    return udm__fail(ENOMEM, "udm_ctx_get_option: out of memory");
  return 0;
}

int udm_target_get_option(struct udm_target *ti, const char *name, char **value)
{
  return udm_ctx_get_option(ti->table->ctx, name, value);
}
