/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Path selectors of the multipath target (dm's path selectors): each picks
 * the path of a priority group that the next request goes to.  One file
 * each; multipath.c holds the table of them.
 *
 * A group keeps its usable paths in `order`, the selector's preference
 * order (a failed path leaves it, a reinstated one comes back last); every
 * callback runs under the multipath's lock.
 */
#ifndef UDM_MULTIPATH_SELECTOR_H
#define UDM_MULTIPATH_SELECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <udm/target.h>

struct mpath_group;

struct mpath_path {
  struct udm_dev *dev;
  struct mpath_group *pg;
  unsigned fail_count;      /* times it was failed */
  bool active;
  /* Selector state: */
  unsigned repeat_count;    /* accepted for the table; dm uses 1 since 4.x */
  unsigned relative_throughput; /* service-time: 0..100 */
  uint64_t in_flight;       /* requests (queue-length, historical-service-time) */
  uint64_t in_flight_bytes; /* service-time */
  uint64_t hst;             /* historical-service-time: fixed point, ns */
  uint64_t stale_after;     /* ns */
  uint64_t last_finish;     /* ns */
};

struct mpath_selector {
  const char *name;
  unsigned table_args;      /* per-path words in TABLE status */
  unsigned info_args;       /* per-path words in INFO status */
  /* The selector's own arguments ("<#ps args> <arg>..."): 0 or -EINVAL with an error. */
  int (*create)(struct mpath_group *pg, unsigned argc, char **argv, struct udm_target *ti);
  /* A path's arguments ("<#selector args>" of them): 0 or -EINVAL with an error. */
  int (*add_path)(struct mpath_path *p, unsigned argc, char **argv, struct udm_target *ti);
  /* Index into pg->order of the path for the next request of NR_BYTES (nvalid > 0). */
  unsigned (*select)(struct mpath_group *pg, uint64_t nr_bytes, uint64_t now_ns);
  void (*start_io)(struct mpath_path *p, uint64_t nr_bytes);
  void (*end_io)(struct mpath_path *p, uint64_t nr_bytes, uint64_t start_ns,
                 uint64_t now_ns);
  /* P NULL: the selector's own status words ("<#args> <arg>... "); else the path's. */
  void (*status)(struct mpath_group *pg, struct mpath_path *p, enum udm_status_type type,
                 struct udm_buf *out);
};

struct mpath_group {
  unsigned num;             /* 1-based, in table order */
  const struct mpath_selector *ps;
  unsigned npaths;
  struct mpath_path *paths;
  unsigned *order;          /* indexes into paths: the usable ones, preferred first */
  unsigned nvalid;
  bool bypassed;            /* disable_group */
  /* historical-service-time's selector arguments */
  unsigned hst_weights[64];
  unsigned hst_threshold;
};

/* Read a repeat count as dm does ("<name> ps: invalid repeat count"). */
int mpath_ps_repeat_count(const char *word, const char *name, unsigned *out,
                          struct udm_target *ti);

extern const struct mpath_selector mpath_ps_round_robin;
extern const struct mpath_selector mpath_ps_queue_length;
extern const struct mpath_selector mpath_ps_service_time;
extern const struct mpath_selector mpath_ps_historical_service_time;

#endif
