/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * queue-length: the path with the fewest requests in flight takes the next
 * one; among equals the one used longest ago (dm-ps-queue-length).  Per
 * path: [<repeat_count>] as round-robin.  Selector arguments are refused
 * (the kernel ignores them).
 */
#include <errno.h>

#include "selector.h"

static int ql_create(struct mpath_group *pg, unsigned argc, char **argv,
                     struct udm_target *ti)
{
  (void)pg;
  (void)argv;
  if (argc) {
    udm_target_error(ti, "queue-length takes no selector arguments (got %u)", argc);
    return -EINVAL;
  }
  return 0;
}

static int ql_add_path(struct mpath_path *p, unsigned argc, char **argv,
                       struct udm_target *ti)
{
  if (argc > 1) {
    udm_target_error(ti, "queue-length ps: incorrect number of arguments (%u; "
                         "[<repeat_count>] per path)", argc);
    return -EINVAL;
  }
  p->repeat_count = 1;
  return argc ? mpath_ps_repeat_count(argv[0], "queue-length", &p->repeat_count, ti) : 0;
}

static unsigned ql_select(struct mpath_group *pg, uint64_t nr_bytes, uint64_t now)
{
  (void)nr_bytes;
  (void)now;
  unsigned best = 0;
  for (unsigned k = 0; k < pg->nvalid; k++) {
    if (pg->paths[pg->order[k]].in_flight < pg->paths[pg->order[best]].in_flight)
      best = k;
    if (pg->paths[pg->order[best]].in_flight == 0)
      break;
  }
  return best;
}

static void ql_start_io(struct mpath_path *p, uint64_t nr_bytes)
{
  (void)nr_bytes;
  p->in_flight++;
}

static void ql_end_io(struct mpath_path *p, uint64_t nr_bytes, uint64_t start, uint64_t now)
{
  (void)nr_bytes;
  (void)start;
  (void)now;
  p->in_flight--;
}

static void ql_status(struct mpath_group *pg, struct mpath_path *p,
                      enum udm_status_type type, struct udm_buf *out)
{
  (void)pg;
  if (!p)
    udm_buf_puts(out, "0 ");
  else if (type == UDM_STATUS_INFO)
    udm_buf_printf(out, "%llu ", (unsigned long long)p->in_flight);
  else
    udm_buf_printf(out, "%u ", p->repeat_count);
}

const struct mpath_selector mpath_ps_queue_length = {
    .name = "queue-length",
    .table_args = 1,
    .info_args = 1,
    .create = ql_create,
    .add_path = ql_add_path,
    .select = ql_select,
    .start_io = ql_start_io,
    .end_io = ql_end_io,
    .status = ql_status,
};
