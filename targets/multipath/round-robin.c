/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * round-robin: the usable paths of a group take requests in turn
 * (dm-ps-round-robin).  Per path: [<repeat_count>], accepted and shown as
 * the kernel does since repeat counts were deprecated (every value acts
 * as 1).  Unlike the kernel, which ignores them, selector arguments are
 * refused: the selector has none.
 */
#include <errno.h>

#include "selector.h"

static int rr_create(struct mpath_group *pg, unsigned argc, char **argv,
                     struct udm_target *ti)
{
  (void)pg;
  (void)argv;
  if (argc) {
    udm_target_error(ti, "round-robin takes no selector arguments (got %u)", argc);
    return -EINVAL;
  }
  return 0;
}

static int rr_add_path(struct mpath_path *p, unsigned argc, char **argv,
                       struct udm_target *ti)
{
  if (argc > 1) {
    udm_target_error(ti, "round-robin ps: incorrect number of arguments (%u; "
                         "[<repeat_count>] per path)", argc);
    return -EINVAL;
  }
  p->repeat_count = 1;
  return argc ? mpath_ps_repeat_count(argv[0], "round-robin", &p->repeat_count, ti) : 0;
}

static unsigned rr_select(struct mpath_group *pg, uint64_t nr_bytes, uint64_t now)
{
  (void)pg;
  (void)nr_bytes;
  (void)now;
  return 0; /* the head; multipath moves it to the tail */
}

static void rr_status(struct mpath_group *pg, struct mpath_path *p,
                      enum udm_status_type type, struct udm_buf *out)
{
  (void)pg;
  if (!p)
    udm_buf_puts(out, "0 ");
  else if (type == UDM_STATUS_TABLE)
    udm_buf_printf(out, "%u ", p->repeat_count);
}

const struct mpath_selector mpath_ps_round_robin = {
    .name = "round-robin",
    .table_args = 1,
    .info_args = 0,
    .create = rr_create,
    .add_path = rr_add_path,
    .select = rr_select,
    .status = rr_status,
};
