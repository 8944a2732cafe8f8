/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fan-out I/O (Linux's dm-io): one write, flush, discard or write-zeroes sent
 * to several regions at once, or a read from one, finished by one callback
 * that carries each region's result (see <udm/target.h>).
 *
 * A call is one allocation: its header, one struct udm_io per region and
 * the array of results.  Every region's I/O goes through
 * udm_dev_submit_async(); the call holds one reference of its own while it
 * submits, so a region completing inline (a synchronous device) can never
 * finish the call while later regions are still being started.  No thread
 * waits anywhere.
 */
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct dmio_call {
  udm_dmio_done_fn done;
  void *opaque;
  unsigned n;
  atomic_uint pending;    /* regions not yet completed, +1 while submitting */
  int *errs;              /* n results, inside this allocation */
  struct udm_io ios[];    /* n, then the results */
};

static void dmio_put(struct dmio_call *call)
{
  /* The decrement orders each region's result before the final reader. */
  if (atomic_fetch_sub(&call->pending, 1) != 1)
    return;
  int err = 0;
  for (unsigned i = 0; i < call->n && err == 0; i++)
    err = call->errs[i];
  call->done(call->opaque, err, call->errs);
  free(call);
}

static void dmio_end(struct udm_io *io, int err)
{
  struct dmio_call *call = io->end_private;
  call->errs[io - call->ios] = err;
  dmio_put(call);
}

static const char *const op_names[] = {"read", "write", "flush", "discard",
                                        "write-zeroes"};

/* Why OP cannot go to n regions with these sectors and buffer, or NULL. */
static const char *dmio_op_refusal(enum udm_op op, unsigned n, uint64_t nr_sectors,
                                   const void *buf)
{
  switch (op) {
  case UDM_OP_READ:
    if (n != 1)
      return "takes exactly one region";
    /* fall through */
  case UDM_OP_WRITE:
    return !buf ? "needs a buffer" : nr_sectors == 0 ? "needs sectors" : NULL;
  case UDM_OP_FLUSH:
    return buf ? "takes no buffer" : nr_sectors ? "takes no sectors" : NULL;
  case UDM_OP_DISCARD:
  case UDM_OP_WRITE_ZEROES:
    return buf ? "takes no buffer" : nr_sectors == 0 ? "needs sectors" : NULL;
  }
  return "is not an operation";
}

/* Refuse a call: -EINVAL, with the reason in udm_errmsg(). */
static int dmio_refuse(enum udm_op op, const char *why, unsigned region)
{
  const char *name = (unsigned)op < UDM_ARRAY_SIZE(op_names) ? op_names[op] : "?";
  if (region == UINT_MAX)
    udm__fail(EINVAL, "fan-out %s: %s", name, why);
  else
    udm__fail(EINVAL, "fan-out %s: region %u %s", name, region, why);
  return -EINVAL;
}

int udm_dmio_submit(const struct udm_region *regions, unsigned n, enum udm_op op,
                    unsigned flags, uint64_t nr_sectors, void *buf,
                    udm_dmio_done_fn done, void *opaque)
{
  if (!regions || n == 0)
    return dmio_refuse(op, "no region", UINT_MAX);
  if (!done)
    return dmio_refuse(op, "no completion callback", UINT_MAX);
  const char *why = dmio_op_refusal(op, n, nr_sectors, buf);
  if (why)
    return dmio_refuse(op, why, UINT_MAX);
  if (nr_sectors > SIZE_MAX / UDM_SECTOR_SIZE)
    return dmio_refuse(op, "too many sectors for a buffer", UINT_MAX);
  for (unsigned i = 0; i < n; i++)
    if (!regions[i].dev)
      return dmio_refuse(op, "has no device", i);
  size_t head = offsetof(struct dmio_call, ios);
  _Static_assert(sizeof(struct udm_io) % alignof(int) == 0, "results follow the ios");
  struct dmio_call *call = NULL;
  if (n <= (SIZE_MAX - head) / (sizeof(struct udm_io) + sizeof(int)))
    call = malloc(head + n * (sizeof(struct udm_io) + sizeof(int)));
  if (!call) {
    udm__fail(ENOMEM, "fan-out %s to %u regions: out of memory", op_names[op], n);
    return -ENOMEM;
  }
  call->done = done;
  call->opaque = opaque;
  call->n = n;
  call->errs = (int *)(void *)&call->ios[n];
  memset(call->errs, 0, n * sizeof(int));
  atomic_init(&call->pending, n + 1);
  for (unsigned i = 0; i < n; i++)
    call->ios[i] = (struct udm_io){
        .op = op,
        .flags = flags,
        .sector = op == UDM_OP_FLUSH ? 0 : regions[i].sector,
        .nr_sectors = nr_sectors,
        .buf = buf,
        .end_io = dmio_end,
        .end_private = call,
    };
  for (unsigned i = 0; i < n; i++)
    udm_dev_submit_async(regions[i].dev, &call->ios[i]);
  dmio_put(call);
  return 0;
}
