/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * service-time: the path expected to finish the next request first takes
 * it, judged by the bytes in flight on each path divided by its relative
 * throughput (dm-ps-service-time).  Per path:
 * [<repeat_count> [<relative_throughput>]], the throughput 0..100 (default
 * 1; 0: used only when no path with a positive one is left).  Selector
 * arguments are refused (the kernel ignores them).
 */
#include <errno.h>

#include "selector.h"

#define ST_MAX_RELATIVE_THROUGHPUT 100u
#define ST_THROUGHPUT_SHIFT 7 /* 100 < 2^7: sizes below 2^57 multiply safely */
#define ST_MAX_INFLIGHT_SIZE (UINT64_MAX >> ST_THROUGHPUT_SHIFT)

static int st_create(struct mpath_group *pg, unsigned argc, char **argv,
                     struct udm_target *ti)
{
  (void)pg;
  (void)argv;
  if (argc) {
    udm_target_error(ti, "service-time takes no selector arguments (got %u)", argc);
    return -EINVAL;
  }
  return 0;
}

static int st_add_path(struct mpath_path *p, unsigned argc, char **argv,
                       struct udm_target *ti)
{
  if (argc > 2) {
    udm_target_error(ti, "service-time ps: incorrect number of arguments (%u; "
                         "[<repeat_count> [<relative_throughput>]] per path)", argc);
    return -EINVAL;
  }
  p->repeat_count = 1;
  p->relative_throughput = 1;
  if (argc && mpath_ps_repeat_count(argv[0], "service-time", &p->repeat_count, ti) < 0)
    return -EINVAL;
  if (argc == 2 && (udm_parse_uint(argv[1], &p->relative_throughput) < 0 ||
                    p->relative_throughput > ST_MAX_RELATIVE_THROUGHPUT)) {
    udm_target_error(ti, "service-time ps: invalid relative_throughput value '%s' "
                         "(expected 0..%u)", argv[1], ST_MAX_RELATIVE_THROUGHPUT);
    return -EINVAL;
  }
  return 0;
}

/* <0: p1 is the better path for a request of INCOMING bytes; >0: p2; 0: either. */
static int st_compare(const struct mpath_path *p1, const struct mpath_path *p2,
                      uint64_t incoming)
{
  uint64_t sz1 = p1->in_flight_bytes, sz2 = p2->in_flight_bytes;
  unsigned t1 = p1->relative_throughput, t2 = p2->relative_throughput;
  if (t1 == t2) /* the less loaded */
    return sz1 < sz2 ? -1 : sz1 > sz2;
  if (sz1 == sz2 || !t1 || !t2) /* the faster, or the one with a throughput */
    return t1 > t2 ? -1 : 1;
  /* Compare (sz + incoming) / throughput without dividing. */
  sz1 += incoming;
  sz2 += incoming;
  if (sz1 >= ST_MAX_INFLIGHT_SIZE || sz2 >= ST_MAX_INFLIGHT_SIZE) {
    sz1 >>= ST_THROUGHPUT_SHIFT;
    sz2 >>= ST_THROUGHPUT_SHIFT;
  }
  uint64_t st1 = sz1 * t2, st2 = sz2 * t1;
  if (st1 != st2)
    return st1 < st2 ? -1 : 1;
  return t1 > t2 ? -1 : 1; /* the same time: the faster */
}

static unsigned st_select(struct mpath_group *pg, uint64_t nr_bytes, uint64_t now)
{
  (void)now;
  unsigned best = 0;
  for (unsigned k = 1; k < pg->nvalid; k++)
    if (st_compare(&pg->paths[pg->order[k]], &pg->paths[pg->order[best]], nr_bytes) < 0)
      best = k;
  return best;
}

static void st_start_io(struct mpath_path *p, uint64_t nr_bytes)
{
  p->in_flight_bytes += nr_bytes;
}

static void st_end_io(struct mpath_path *p, uint64_t nr_bytes, uint64_t start, uint64_t now)
{
  (void)start;
  (void)now;
  p->in_flight_bytes -= nr_bytes;
}

static void st_status(struct mpath_group *pg, struct mpath_path *p,
                      enum udm_status_type type, struct udm_buf *out)
{
  (void)pg;
  if (!p)
    udm_buf_puts(out, "0 ");
  else if (type == UDM_STATUS_INFO)
    udm_buf_printf(out, "%llu %u ", (unsigned long long)p->in_flight_bytes,
                   p->relative_throughput);
  else
    udm_buf_printf(out, "%u %u ", p->repeat_count, p->relative_throughput);
}

const struct mpath_selector mpath_ps_service_time = {
    .name = "service-time",
    .table_args = 2,
    .info_args = 2,
    .create = st_create,
    .add_path = st_add_path,
    .select = st_select,
    .start_io = st_start_io,
    .end_io = st_end_io,
    .status = st_status,
};
