/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * historical-service-time: each path keeps a time-weighted moving average
 * of how long its requests took; the next request goes to the path whose
 * average, times its requests in flight plus one, is lowest
 * (dm-ps-historical-service-time).  A path that finished nothing for a
 * while is "stale": when idle it gets a request to probe it; when busy it
 * gets no more than the others.
 *
 * Selector arguments: [<base_weight> [<threshold_multiplier>]]: the
 * average's weight of the past, 0..1023 in 1/1024 (default 972, 95%), and
 * how many times slower a path must be to count as slower (0 or 1: any).
 * Per path: [<repeat_count>] (TABLE shows 0, as the kernel's does).
 * Averages are kept in fixed point with 10 fraction bits; the weight of an
 * interval decays per ~16 ms bucket of service time, as in the kernel.
 */
#include <errno.h>

#include "selector.h"

#define HST_SHIFT 10
#define HST_ONE (1u << HST_SHIFT)
#define HST_MAX (UINT64_MAX >> HST_SHIFT)
#define HST_DEFAULT_BASE 972u  /* 0.95 */
#define HST_BUCKET_SHIFT 24    /* 2^24 ns ~ 16.8 ms */
#define HST_MAX_INFLIGHT HST_ONE
#define HST_WEIGHTS 64u

/* x^n in fixed point, rounding each product. */
static uint64_t fixed_pow(uint64_t x, unsigned n)
{
  uint64_t r = HST_ONE;
  while (n) {
    if (n & 1)
      r = (r * x + HST_ONE / 2) >> HST_SHIFT;
    n >>= 1;
    if (n)
      x = (x * x + HST_ONE / 2) >> HST_SHIFT;
  }
  return r;
}

/* The moving average: last * w + next * (1 - w), w in fixed point. */
static uint64_t fixed_ema(uint64_t last, uint64_t next, uint64_t w)
{
  return (last * w + next * (HST_ONE - w) + HST_ONE / 2) >> HST_SHIFT;
}

static int hst_create(struct mpath_group *pg, unsigned argc, char **argv,
                      struct udm_target *ti)
{
  unsigned base = HST_DEFAULT_BASE;
  pg->hst_threshold = 0;
  if (argc > 2) {
    udm_target_error(ti, "historical-service-time takes at most 2 selector arguments "
                         "([<base_weight> [<threshold_multiplier>]]), got %u", argc);
    return -EINVAL;
  }
  if (argc && (udm_parse_uint(argv[0], &base) < 0 || base >= HST_ONE)) {
    udm_target_error(ti, "historical-service-time: invalid base weight '%s' "
                         "(expected 0..%u)", argv[0], HST_ONE - 1);
    return -EINVAL;
  }
  if (argc > 1 && udm_parse_uint(argv[1], &pg->hst_threshold) < 0) {
    udm_target_error(ti, "historical-service-time: invalid threshold multiplier '%s'",
                     argv[1]);
    return -EINVAL;
  }
  for (unsigned i = 0; i < HST_WEIGHTS - 1; i++)
    pg->hst_weights[i] = (unsigned)fixed_pow(base, i + 1);
  pg->hst_weights[HST_WEIGHTS - 1] = 0;
  return 0;
}

static int hst_add_path(struct mpath_path *p, unsigned argc, char **argv,
                        struct udm_target *ti)
{
  if (argc > 1) {
    udm_target_error(ti, "historical-service-time ps: incorrect number of arguments "
                         "(%u; [<repeat_count>] per path)", argc);
    return -EINVAL;
  }
  p->repeat_count = 1;
  if (argc && udm_parse_uint(argv[0], &p->repeat_count) < 0) {
    udm_target_error(ti, "historical-service-time ps: invalid repeat count '%s'", argv[0]);
    return -EINVAL;
  }
  p->hst = HST_ONE;
  p->in_flight = 0;
  p->stale_after = 0;
  p->last_finish = 0;
  return 0;
}

static int sign64(int64_t v)
{
  return v < 0 ? -1 : v > 0;
}

/* <0: p1 is better; >0: p2; 0: no difference. */
static int hst_compare(const struct mpath_group *pg, const struct mpath_path *p1,
                       const struct mpath_path *p2, uint64_t now)
{
  uint64_t h1 = p1->hst, h2 = p2->hst;
  int64_t out1 = (int64_t)p1->in_flight, out2 = (int64_t)p2->in_flight;
  uint64_t stale1 = p1->stale_after, stale2 = p2->stale_after;
  /* Too similar to tell apart: the less loaded. */
  int over = h1 > h2 ? h1 > pg->hst_threshold * h2 : h2 > pg->hst_threshold * h1;
  if (!over)
    return sign64(out1 - out2);
  /* An idle stale path gets a probe; of two idle paths the staler. */
  if ((!out1 && stale1 < now) || (!out2 && stale2 < now) || (!out1 && !out2))
    return sign64((int64_t)(!out2 * stale1) - (int64_t)(!out1 * stale2));
  bool p2_better;
  if (out1 == out2) {
    p2_better = h1 > h2;
  } else {
    if (out1 >= HST_MAX_INFLIGHT || out2 >= HST_MAX_INFLIGHT) {
      h1 >>= HST_SHIFT;
      h2 >>= HST_SHIFT;
    }
    p2_better = (uint64_t)(1 + out1) * h1 > (uint64_t)(1 + out2) * h2;
  }
  /* A stale winner gets no more than an equal share. */
  if (p2_better)
    return stale2 < now ? sign64(out1 - out2) : 1;
  return stale1 < now ? sign64(out1 - out2) : -1;
}

static unsigned hst_select(struct mpath_group *pg, uint64_t nr_bytes, uint64_t now)
{
  (void)nr_bytes;
  unsigned best = 0;
  for (unsigned k = 1; k < pg->nvalid; k++)
    if (hst_compare(pg, &pg->paths[pg->order[k]], &pg->paths[pg->order[best]], now) < 0)
      best = k;
  return best;
}

static void hst_start_io(struct mpath_path *p, uint64_t nr_bytes)
{
  (void)nr_bytes;
  p->in_flight++;
}

static void hst_end_io(struct mpath_path *p, uint64_t nr_bytes, uint64_t start, uint64_t now)
{
  (void)nr_bytes;
  /* Requests overlapping an earlier one's completion count from it (served in turn). */
  if (p->last_finish > start)
    start = p->last_finish;
  p->last_finish = now;
  uint64_t st = now > start ? now - start : 0;
  uint64_t bucket = st >> HST_BUCKET_SHIFT;
  if (bucket > HST_WEIGHTS - 1)
    bucket = HST_WEIGHTS - 1;
  p->in_flight--;
  p->hst = fixed_ema(p->hst, st < HST_MAX ? st * HST_ONE : HST_MAX,
                     p->pg->hst_weights[bucket]);
  p->stale_after = p->last_finish + p->pg->nvalid * (p->hst >> HST_SHIFT);
}

static void hst_status(struct mpath_group *pg, struct mpath_path *p,
                       enum udm_status_type type, struct udm_buf *out)
{
  if (!p)
    udm_buf_printf(out, "2 %u %u ", pg->hst_weights[0], pg->hst_threshold);
  else if (type == UDM_STATUS_INFO)
    udm_buf_printf(out, "%llu %llu %llu ", (unsigned long long)p->hst,
                   (unsigned long long)p->in_flight, (unsigned long long)p->stale_after);
  else
    udm_buf_puts(out, "0 ");
}

const struct mpath_selector mpath_ps_historical_service_time = {
    .name = "historical-service-time",
    .table_args = 1,
    .info_args = 3,
    .create = hst_create,
    .add_path = hst_add_path,
    .select = hst_select,
    .start_io = hst_start_io,
    .end_io = hst_end_io,
    .status = hst_status,
};
