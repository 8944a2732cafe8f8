/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Progress of long work done inside the library (an image driver's check,
 * later a target's resync or cleaning), passed to the function the program
 * registered on the context: the library draws nothing itself.
 */
#include "internal.h"

int udm_ctx_set_progress(struct udm_ctx *ctx, udm_progress_fn *fn, void *opaque)
{
  pthread_mutex_lock(&ctx->settings_lock);
  ctx->progress_fn = fn;
  ctx->progress_opaque = opaque;
  pthread_mutex_unlock(&ctx->settings_lock);
  return 0;
}

void udm_ctx_progress(struct udm_ctx *ctx, const char *what, uint64_t done, uint64_t total)
{
  if (!ctx)
    return;
  pthread_mutex_lock(&ctx->settings_lock);
  udm_progress_fn *fn = ctx->progress_fn;
  void *opaque = ctx->progress_opaque;
  pthread_mutex_unlock(&ctx->settings_lock);
  if (fn)
    fn(opaque, what, done, total);
}
